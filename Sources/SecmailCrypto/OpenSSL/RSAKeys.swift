internal import COpenSSL

/// An RSA public key: encrypts with OAEP (SHA-256, MGF1-SHA-256) and verifies PSS
/// (SHA-256, MGF1-SHA-256, 32-byte salt) signatures.
public struct RSAPublicKey: Sendable {
    let key: EVPKey

    init(key: EVPKey) throws {
        guard key.isType("RSA") else {
            throw CryptoError(.unsupportedKey, "the key is not an RSA key")
        }
        self.key = key
    }

    /// Parses DER SubjectPublicKeyInfo.
    public init(derRepresentation der: [UInt8]) throws {
        try self.init(key: EVPKey.publicKey(der: der))
    }

    /// Parses a PEM "PUBLIC KEY" block.
    public init(pemRepresentation pem: String) throws {
        try self.init(key: EVPKey.publicKey(pem: pem))
    }

    /// DER SubjectPublicKeyInfo.
    public var derRepresentation: [UInt8] {
        get throws { try key.publicDER() }
    }

    /// PEM "PUBLIC KEY".
    public var pemRepresentation: String {
        get throws { try key.publicPEM() }
    }

    /// Modulus size in bits.
    public var bitCount: Int { key.bitCount }

    /// Modulus size in bytes: the length of every OAEP ciphertext and PSS signature.
    public var modulusByteCount: Int { (key.bitCount + 7) / 8 }

    /// RSA-OAEP encryption of a short message (at most modulus - 66 bytes).
    public func encrypt(_ message: [UInt8], label: [UInt8] = []) throws -> [UInt8] {
        try RSAOperation.run(key, kind: .encrypt, label: label, input: message)
    }

    /// Wraps a symmetric key with RSA-OAEP.
    public func wrap(_ symmetricKey: SymmetricKey) throws -> [UInt8] {
        try symmetricKey.withBytes { bytes in
            try RSAOperation.run(key, kind: .encrypt, label: [], input: RawBytes(bytes))
        }
    }

    /// Whether `signature` is a valid RSA-PSS signature over `message`.
    public func isValidSignature(_ signature: [UInt8], for message: some ContiguousByteStorage) -> Bool {
        RSAOperation.verify(key, signature: signature, message: message)
    }
}

/// An RSA private key. Generated keys use e = 65537.
public struct RSAPrivateKey: Sendable {
    let key: EVPKey

    init(key: EVPKey) throws {
        guard key.isType("RSA") else {
            throw CryptoError(.unsupportedKey, "the key is not an RSA key")
        }
        self.key = key
    }

    /// A new key of `bitCount` bits (3072 for suite 1). Takes a fraction of a second to seconds:
    /// call it off event loops.
    public static func generate(bitCount: Int = 3072) throws -> RSAPrivateKey {
        precondition(bitCount >= 2048, "RSA keys below 2048 bits are not generated")
        OpenSSLErrorQueue.clear()
        guard let pointer = secmail_rsa_generate(UInt32(bitCount)) else {
            throw OpenSSLErrorQueue.error(.internalFailure, "RSA key generation failed")
        }
        _ = OpenSSLErrorQueue.drain()
        return try RSAPrivateKey(key: EVPKey(taking: pointer))
    }

    /// Parses an unencrypted DER PKCS#8 key (test vectors only; keys at rest are always encrypted).
    public init(pkcs8DERRepresentation der: [UInt8]) throws {
        try self.init(key: EVPKey.privateKey(pkcs8DER: der))
    }

    /// Decrypts an encrypted PKCS#8 PEM ("ENCRYPTED PRIVATE KEY").
    public init(encryptedPEM pem: String, passphrase: Passphrase) throws {
        try self.init(key: EVPKey.privateKey(encryptedPEM: pem, passphrase: passphrase))
    }

    /// Encrypted PKCS#8 PEM: PBES2 with scrypt and AES-256-CBC.
    public func encryptedPEM(passphrase: Passphrase) throws -> String {
        try key.encryptedPEM(passphrase: passphrase)
    }

    /// The public half.
    public var publicKey: RSAPublicKey {
        get throws { try RSAPublicKey(derRepresentation: key.publicDER()) }
    }

    /// Modulus size in bits.
    public var bitCount: Int { key.bitCount }

    /// RSA-OAEP decryption; throws `.authenticationFailed` for any invalid ciphertext.
    public func decrypt(_ ciphertext: [UInt8], label: [UInt8] = []) throws -> [UInt8] {
        try RSAOperation.run(key, kind: .decrypt, label: label, input: ciphertext)
    }

    /// Unwraps a symmetric key of `expectedByteCount` bytes wrapped with RSA-OAEP.
    public func unwrap(_ wrapped: [UInt8], expectedByteCount: Int = 32) throws -> SymmetricKey {
        var bytes = try decrypt(wrapped)
        defer { SecretBytes.wipe(&bytes) }
        guard bytes.count == expectedByteCount else {
            throw CryptoError(.authenticationFailed, "the wrapped key has the wrong length")
        }
        return SymmetricKey(bytes: bytes)
    }

    /// An RSA-PSS signature over `message`.
    public func signature(for message: some ContiguousByteStorage) throws -> [UInt8] {
        try RSAOperation.sign(key, message: message)
    }
}

/// The EVP_PKEY_CTX plumbing shared by OAEP and PSS.
enum RSAOperation {
    enum Kind { case encrypt, decrypt }

    static func run(_ key: EVPKey, kind: Kind, label: [UInt8], input: some ContiguousByteStorage) throws -> [UInt8] {
        OpenSSLErrorQueue.clear()
        guard let context = EVP_PKEY_CTX_new_from_pkey(nil, key.pointer, nil) else {
            throw OpenSSLErrorQueue.error(.internalFailure, "could not create an RSA context")
        }
        defer { EVP_PKEY_CTX_free(context) }
        let initialised = kind == .encrypt ? EVP_PKEY_encrypt_init(context) : EVP_PKEY_decrypt_init(context)
        guard initialised == 1,
              EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_OAEP_PADDING) == 1,
              EVP_PKEY_CTX_set_rsa_oaep_md(context, EVP_sha256()) == 1,
              EVP_PKEY_CTX_set_rsa_mgf1_md(context, EVP_sha256()) == 1 else {
            throw OpenSSLErrorQueue.error(.internalFailure, "could not configure RSA-OAEP")
        }
        if !label.isEmpty {
            // set0_rsa_oaep_label takes ownership of an OPENSSL_malloc'd copy.
            guard let copy = CRYPTO_memdup(label, label.count, nil, 0) else {
                throw OpenSSLErrorQueue.error(.internalFailure, "could not copy the OAEP label")
            }
            guard EVP_PKEY_CTX_set0_rsa_oaep_label(context, copy, Int32(label.count)) == 1 else {
                secmail_free(copy)
                throw OpenSSLErrorQueue.error(.internalFailure, "could not set the OAEP label")
            }
        }
        return try input.withUnsafeBytes { inputBytes in
            let inBase = inputBytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
            var length = 0
            let sized = kind == .encrypt
                ? EVP_PKEY_encrypt(context, nil, &length, inBase, inputBytes.count)
                : EVP_PKEY_decrypt(context, nil, &length, inBase, inputBytes.count)
            guard sized == 1 else {
                throw OpenSSLErrorQueue.error(.malformedInput, "RSA-OAEP could not size its output")
            }
            var output = [UInt8](repeating: 0, count: length)
            let done = kind == .encrypt
                ? EVP_PKEY_encrypt(context, &output, &length, inBase, inputBytes.count)
                : EVP_PKEY_decrypt(context, &output, &length, inBase, inputBytes.count)
            guard done == 1 else {
                SecretBytes.wipe(&output)
                if kind == .decrypt {
                    // One message for every decryption failure, so that no padding oracle
                    // is exposed through error text.
                    _ = OpenSSLErrorQueue.drain()
                    throw CryptoError(.authenticationFailed, "RSA-OAEP decryption failed: not encrypted to this key, or corrupted")
                }
                throw OpenSSLErrorQueue.error(.invalidParameter, "RSA-OAEP encryption failed (message too long for the key?)")
            }
            _ = OpenSSLErrorQueue.drain()
            output.removeSubrange(length...)
            return output
        }
    }

    static func sign(_ key: EVPKey, message: some ContiguousByteStorage) throws -> [UInt8] {
        try key.sign(message, digest: "SHA256", configure: configurePSS)
    }

    static func verify(_ key: EVPKey, signature: [UInt8], message: some ContiguousByteStorage) -> Bool {
        key.isValidSignature(signature, for: message, digest: "SHA256", configure: configurePSS)
    }

    /// PSS with MGF1-SHA-256 and an exact 32-byte salt: verification rejects any other salt length.
    private static func configurePSS(_ context: OpaquePointer) -> Bool {
        EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PSS_PADDING) == 1
            && EVP_PKEY_CTX_set_rsa_mgf1_md(context, EVP_sha256()) == 1
            && EVP_PKEY_CTX_set_rsa_pss_saltlen(context, 32) == 1
    }
}
