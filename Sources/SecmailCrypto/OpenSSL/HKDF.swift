internal import COpenSSL

/// HKDF with SHA-256 (RFC 5869): extract-then-expand key derivation.
public enum HKDF {
    /// Largest output RFC 5869 allows for SHA-256: 255 blocks of 32 bytes.
    public static let maximumOutputByteCount = 255 * 32

    /// Derives `count` public bytes (for commitments and test vectors).
    public static func deriveBytes(
        inputKeyMaterial: some ContiguousByteStorage,
        salt: some ContiguousByteStorage,
        info: some ContiguousByteStorage,
        count: Int
    ) throws -> [UInt8] {
        guard count > 0, count <= maximumOutputByteCount else {
            throw CryptoError(.invalidParameter, "HKDF-SHA256 output must be 1 to \(maximumOutputByteCount) bytes, not \(count)")
        }
        var output = [UInt8](repeating: 0, count: count)
        try inputKeyMaterial.withUnsafeBytes { ikm in
            try salt.withUnsafeBytes { saltBytes in
                try info.withUnsafeBytes { infoBytes in
                    try OpenSSLErrorQueue.check(.internalFailure, "HKDF-SHA256 failed") {
                        secmail_hkdf_sha256(
                            ikm.baseAddress?.assumingMemoryBound(to: UInt8.self), ikm.count,
                            saltBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), saltBytes.count,
                            infoBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), infoBytes.count,
                            &output, count) == 1
                    }
                }
            }
        }
        return output
    }

    /// Derives a secret key of `count` bytes from a secret key.
    public static func deriveKey(
        from key: SymmetricKey,
        salt: some ContiguousByteStorage,
        info: some ContiguousByteStorage,
        count: Int = 32
    ) throws -> SymmetricKey {
        var bytes = try key.withBytes { ikm in
            try deriveBytes(inputKeyMaterial: RawBytes(ikm), salt: salt, info: info, count: count)
        }
        defer { SecretBytes.wipe(&bytes) }
        return SymmetricKey(bytes: bytes)
    }

    /// Derives public bytes (such as a key commitment) from a secret key.
    public static func deriveBytes(
        from key: SymmetricKey,
        salt: some ContiguousByteStorage,
        info: some ContiguousByteStorage,
        count: Int = 32
    ) throws -> [UInt8] {
        try key.withBytes { ikm in
            try deriveBytes(inputKeyMaterial: RawBytes(ikm), salt: salt, info: info, count: count)
        }
    }
}

/// A borrowed view of raw bytes, valid only inside the closure that made it.
struct RawBytes: ContiguousByteStorage {
    let buffer: UnsafeRawBufferPointer
    init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(buffer)
    }
}
