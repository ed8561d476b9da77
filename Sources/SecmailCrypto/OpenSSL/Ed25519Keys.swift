internal import COpenSSL

/// An Ed25519 public key (RFC 8032), used for the transparency log's checkpoint signatures.
public struct Ed25519PublicKey: Sendable {
    let key: EVPKey

    /// Length of a raw public key.
    public static let rawByteCount = 32

    init(key: EVPKey) throws {
        guard key.isType("ED25519") else {
            throw CryptoError(.unsupportedKey, "the key is not an Ed25519 key")
        }
        self.key = key
    }

    /// The 32-byte encoding of RFC 8032.
    public init(rawRepresentation raw: [UInt8]) throws {
        guard raw.count == Self.rawByteCount else {
            throw CryptoError(.malformedInput, "an Ed25519 public key is 32 bytes, not \(raw.count)")
        }
        OpenSSLErrorQueue.clear()
        guard let pointer = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, raw, raw.count) else {
            throw OpenSSLErrorQueue.error(.malformedInput, "not a valid Ed25519 public key")
        }
        _ = OpenSSLErrorQueue.drain()
        try self.init(key: EVPKey(taking: pointer))
    }

    /// Parses DER SubjectPublicKeyInfo.
    public init(derRepresentation der: [UInt8]) throws {
        try self.init(key: EVPKey.publicKey(der: der))
    }

    /// Parses a PEM "PUBLIC KEY" block.
    public init(pemRepresentation pem: String) throws {
        try self.init(key: EVPKey.publicKey(pem: pem))
    }

    /// The 32-byte encoding.
    public var rawRepresentation: [UInt8] {
        get throws {
            var length = Self.rawByteCount
            var raw = [UInt8](repeating: 0, count: length)
            try OpenSSLErrorQueue.check(.internalFailure, "could not export the Ed25519 public key") {
                EVP_PKEY_get_raw_public_key(key.pointer, &raw, &length) == 1 && length == Self.rawByteCount
            }
            return raw
        }
    }

    /// DER SubjectPublicKeyInfo.
    public var derRepresentation: [UInt8] {
        get throws { try key.publicDER() }
    }

    /// PEM "PUBLIC KEY".
    public var pemRepresentation: String {
        get throws { try key.publicPEM() }
    }

    /// Whether `signature` is a valid Ed25519 signature over `message`.
    public func isValidSignature(_ signature: [UInt8], for message: some ContiguousByteStorage) -> Bool {
        signature.count == 64 && key.isValidSignature(signature, for: message, digest: nil, configure: { _ in true })
    }
}

/// An Ed25519 private key.
public struct Ed25519PrivateKey: Sendable {
    let key: EVPKey

    init(key: EVPKey) throws {
        guard key.isType("ED25519") else {
            throw CryptoError(.unsupportedKey, "the key is not an Ed25519 key")
        }
        self.key = key
    }

    /// A new random key.
    public static func generate() throws -> Ed25519PrivateKey {
        OpenSSLErrorQueue.clear()
        var pointer: OpaquePointer?
        guard let context = EVP_PKEY_CTX_new_from_name(nil, "ED25519", nil) else {
            throw OpenSSLErrorQueue.error(.internalFailure, "Ed25519 is not available")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_generate(context, &pointer) == 1, let pointer else {
            throw OpenSSLErrorQueue.error(.internalFailure, "Ed25519 key generation failed")
        }
        _ = OpenSSLErrorQueue.drain()
        return try Ed25519PrivateKey(key: EVPKey(taking: pointer))
    }

    /// Decrypts an encrypted PKCS#8 PEM.
    public init(encryptedPEM pem: String, passphrase: Passphrase) throws {
        try self.init(key: EVPKey.privateKey(encryptedPEM: pem, passphrase: passphrase))
    }

    /// The key whose 32-byte seed (RFC 8032 "private key") is `seed`.
    public init(seed: [UInt8]) throws {
        guard seed.count == 32 else {
            throw CryptoError(.malformedInput, "an Ed25519 seed is 32 bytes, not \(seed.count)")
        }
        OpenSSLErrorQueue.clear()
        guard let pointer = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, seed, seed.count) else {
            throw OpenSSLErrorQueue.error(.malformedInput, "not a valid Ed25519 seed")
        }
        _ = OpenSSLErrorQueue.drain()
        try self.init(key: EVPKey(taking: pointer))
    }

    /// Encrypted PKCS#8 PEM: PBES2 with scrypt and AES-256-CBC.
    public func encryptedPEM(passphrase: Passphrase) throws -> String {
        try key.encryptedPEM(passphrase: passphrase)
    }

    /// The public half.
    public var publicKey: Ed25519PublicKey {
        get throws { try Ed25519PublicKey(derRepresentation: key.publicDER()) }
    }

    /// The 32-byte seed: secret, for a key file the caller protects (0600).
    public var seed: [UInt8] {
        get throws {
            var length = 32
            var seed = [UInt8](repeating: 0, count: 32)
            try OpenSSLErrorQueue.check(.internalFailure, "could not export the Ed25519 seed") {
                EVP_PKEY_get_raw_private_key(key.pointer, &seed, &length) == 1 && length == 32
            }
            return seed
        }
    }

    /// An Ed25519 signature (64 bytes) over `message`.
    public func signature(for message: some ContiguousByteStorage) throws -> [UInt8] {
        try key.sign(message, digest: nil, configure: { _ in true })
    }
}
