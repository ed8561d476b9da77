internal import COpenSSL

/// AES-GCM (NIST SP 800-38D) with 128-, 192- or 256-bit keys, a nonce of 1 to 128 bytes and a
/// 16-byte tag. (OpenSSL's GCM keeps at most 128 IV bytes; longer nonces are refused with
/// `.invalidParameter` rather than processed differently. secmail itself uses 12-byte nonces.)
///
/// One instance keeps the expanded key, so sealing many chunks under one key only resets the
/// nonce; the `into:` variants write into a buffer the caller reuses, so a stream of chunks
/// allocates nothing. An instance is not safe to use from two threads at once.
public final class AESGCM: @unchecked Sendable {
    // @unchecked: the cipher contexts are mutated by every call; the type is Sendable only so
    // that an owner can move it between tasks, never to share it.
    private let encryptContext: OpaquePointer
    private let decryptContext: OpaquePointer

    /// Length of the authentication tag in bytes.
    public static let tagByteCount = 16

    /// Longest nonce accepted (OpenSSL's GCM_IV_MAX_SIZE).
    public static let maximumNonceByteCount = 128

    /// A cipher for `key` (16, 24 or 32 bytes).
    public init(key: SymmetricKey) throws {
        let cipher: OpaquePointer?
        switch key.count {
        case 16: cipher = EVP_aes_128_gcm()
        case 24: cipher = EVP_aes_192_gcm()
        case 32: cipher = EVP_aes_256_gcm()
        default:
            throw CryptoError(.invalidParameter, "AES-GCM needs a 16-, 24- or 32-byte key, not \(key.count) bytes")
        }
        OpenSSLErrorQueue.clear()
        guard let encryptContext = EVP_CIPHER_CTX_new() else {
            throw OpenSSLErrorQueue.error(.internalFailure, "could not allocate a cipher context")
        }
        guard let decryptContext = EVP_CIPHER_CTX_new() else {
            EVP_CIPHER_CTX_free(encryptContext)
            throw OpenSSLErrorQueue.error(.internalFailure, "could not allocate a cipher context")
        }
        self.encryptContext = encryptContext
        self.decryptContext = decryptContext
        let keyed = key.withBytes { keyBytes in
            EVP_EncryptInit_ex(encryptContext, cipher, nil, keyBytes.baseAddress, nil) == 1
                && EVP_DecryptInit_ex(decryptContext, cipher, nil, keyBytes.baseAddress, nil) == 1
        }
        guard keyed else {
            throw OpenSSLErrorQueue.error(.internalFailure, "could not set the AES-GCM key")
        }
        _ = OpenSSLErrorQueue.drain()
    }

    deinit {
        EVP_CIPHER_CTX_free(encryptContext)
        EVP_CIPHER_CTX_free(decryptContext)
    }

    /// Encrypts `plaintext` and returns ciphertext followed by the 16-byte tag.
    public func seal(
        _ plaintext: some ContiguousByteStorage,
        nonce: some ContiguousByteStorage,
        authenticating aad: some ContiguousByteStorage = [UInt8]()
    ) throws -> [UInt8] {
        let count = plaintext.withUnsafeBytes { $0.count }
        var output = [UInt8](repeating: 0, count: count + Self.tagByteCount)
        _ = try seal(plaintext, nonce: nonce, authenticating: aad, into: &output)
        return output
    }

    /// Encrypts `plaintext` into the start of `output` (which must hold plaintext + 16 bytes)
    /// as ciphertext then tag; returns the number of bytes written.
    public func seal(
        _ plaintext: some ContiguousByteStorage,
        nonce: some ContiguousByteStorage,
        authenticating aad: some ContiguousByteStorage = [UInt8](),
        into output: inout [UInt8]
    ) throws -> Int {
        let context = encryptContext
        return try plaintext.withUnsafeBytes { input in
            let total = input.count + Self.tagByteCount
            precondition(output.count >= total, "AES-GCM output buffer too small")
            try output.withUnsafeMutableBytes { out in
                guard let outBase = out.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
                OpenSSLErrorQueue.clear()
                try Self.start(context, nonce: nonce, aad: aad, encrypting: true)
                var written: Int32 = 0
                var produced = 0
                if input.count > 0 {
                    guard EVP_EncryptUpdate(context, outBase, &written,
                                            input.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                            Int32(input.count)) == 1 else {
                        throw OpenSSLErrorQueue.error(.internalFailure, "AES-GCM encryption failed")
                    }
                    produced = Int(written)
                }
                guard EVP_EncryptFinal_ex(context, outBase + produced, &written) == 1,
                      secmail_gcm_get_tag(context, outBase + input.count, Int32(Self.tagByteCount)) == 1 else {
                    throw OpenSSLErrorQueue.error(.internalFailure, "AES-GCM could not finish")
                }
            }
            return total
        }
    }

    /// Checks the tag at the end of `sealed` and returns the plaintext; throws
    /// `.authenticationFailed` if any byte of ciphertext, tag, nonce or AAD was changed.
    public func open(
        _ sealed: some ContiguousByteStorage,
        nonce: some ContiguousByteStorage,
        authenticating aad: some ContiguousByteStorage = [UInt8]()
    ) throws -> [UInt8] {
        let count = sealed.withUnsafeBytes { $0.count }
        var output = [UInt8](repeating: 0, count: max(count - Self.tagByteCount, 0))
        let produced = try open(sealed, nonce: nonce, authenticating: aad, into: &output)
        precondition(produced == output.count)
        return output
    }

    /// Authenticates and decrypts `sealed` (ciphertext then tag) into the start of `output`,
    /// which must hold the ciphertext length; returns the plaintext length. On failure the
    /// output bytes are wiped and `.authenticationFailed` is thrown.
    public func open(
        _ sealed: some ContiguousByteStorage,
        nonce: some ContiguousByteStorage,
        authenticating aad: some ContiguousByteStorage = [UInt8](),
        into output: inout [UInt8]
    ) throws -> Int {
        let context = decryptContext
        return try sealed.withUnsafeBytes { input in
            guard input.count >= Self.tagByteCount, let inBase = input.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
                throw CryptoError(.authenticationFailed, "AES-GCM input is shorter than its tag")
            }
            let bodyCount = input.count - Self.tagByteCount
            precondition(output.count >= bodyCount, "AES-GCM output buffer too small")
            let authentic = try output.withUnsafeMutableBytes { out -> Bool in
                // A zero-length body still needs a valid pointer for EVP_DecryptFinal_ex.
                var spare: UInt8 = 0
                let outBase = out.baseAddress?.assumingMemoryBound(to: UInt8.self)
                OpenSSLErrorQueue.clear()
                try Self.start(context, nonce: nonce, aad: aad, encrypting: false)
                var written: Int32 = 0
                var produced = 0
                if bodyCount > 0, let outBase {
                    guard EVP_DecryptUpdate(context, outBase, &written, inBase, Int32(bodyCount)) == 1 else {
                        throw OpenSSLErrorQueue.error(.internalFailure, "AES-GCM decryption failed")
                    }
                    produced = Int(written)
                }
                guard secmail_gcm_set_tag(context, inBase + bodyCount, Int32(Self.tagByteCount)) == 1 else {
                    throw OpenSSLErrorQueue.error(.internalFailure, "AES-GCM could not take the tag")
                }
                // EVP_DecryptFinal_ex compares the tag in constant time.
                let verified = withUnsafeMutablePointer(to: &spare) { sparePointer in
                    EVP_DecryptFinal_ex(context, outBase.map { $0 + produced } ?? sparePointer, &written) == 1
                }
                _ = OpenSSLErrorQueue.drain()
                if !verified, let base = out.baseAddress { OPENSSL_cleanse(base, bodyCount) }
                return verified
            }
            guard authentic else {
                throw CryptoError(.authenticationFailed, "AES-GCM authentication failed: the data was changed or the key is wrong")
            }
            return bodyCount
        }
    }

    /// Sets the nonce (and feeds the AAD) for the next message on `context`.
    private static func start(
        _ context: OpaquePointer, nonce: some ContiguousByteStorage, aad: some ContiguousByteStorage, encrypting: Bool
    ) throws {
        try nonce.withUnsafeBytes { nonceBytes in
            // An empty IV makes GCM's security collapse (SP 800-38D requires len(IV) >= 1).
            guard nonceBytes.count > 0 else {
                throw CryptoError(.invalidParameter, "AES-GCM needs a nonce of at least one byte")
            }
            guard nonceBytes.count <= maximumNonceByteCount else {
                throw CryptoError(.invalidParameter, "AES-GCM nonces longer than \(maximumNonceByteCount) bytes are not supported")
            }
            let iv = nonceBytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
            let ok = secmail_gcm_set_iv_length(context, Int32(nonceBytes.count)) == 1
                && (encrypting
                    ? EVP_EncryptInit_ex(context, nil, nil, nil, iv) == 1
                    : EVP_DecryptInit_ex(context, nil, nil, nil, iv) == 1)
            guard ok else {
                throw OpenSSLErrorQueue.error(.invalidParameter, "AES-GCM rejected a \(nonceBytes.count)-byte nonce")
            }
        }
        try aad.withUnsafeBytes { aadBytes in
            guard aadBytes.count > 0 else { return }
            var written: Int32 = 0
            let fed = encrypting
                ? EVP_EncryptUpdate(context, nil, &written, aadBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(aadBytes.count))
                : EVP_DecryptUpdate(context, nil, &written, aadBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(aadBytes.count))
            guard fed == 1 else {
                throw OpenSSLErrorQueue.error(.internalFailure, "AES-GCM rejected the associated data")
            }
        }
    }
}
