internal import COpenSSL

/// Owns one `EVP_PKEY` and does the encoding work shared by every key type.
final class EVPKey: @unchecked Sendable {
    // @unchecked: an EVP_PKEY is not mutated after construction, and OpenSSL 3 allows
    // concurrent const use of one key from several threads.
    let pointer: OpaquePointer

    init(taking pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        EVP_PKEY_free(pointer)
    }

    var bitCount: Int { Int(EVP_PKEY_get_bits(pointer)) }

    func isType(_ name: String) -> Bool {
        EVP_PKEY_is_a(pointer, name) == 1
    }

    /// Parses DER SubjectPublicKeyInfo, rejecting trailing bytes.
    static func publicKey(der: [UInt8]) throws -> EVPKey {
        OpenSSLErrorQueue.clear()
        guard !der.isEmpty, let key = secmail_read_spki_der(der, der.count) else {
            throw OpenSSLErrorQueue.error(.malformedInput, "not a DER SubjectPublicKeyInfo public key")
        }
        _ = OpenSSLErrorQueue.drain()
        return EVPKey(taking: key)
    }

    /// Parses a PEM "PUBLIC KEY" block.
    static func publicKey(pem: String) throws -> EVPKey {
        try withMemoryBIO(contents: Array(pem.utf8)) { bio in
            guard let key = PEM_read_bio_PUBKEY(bio, nil, nil, nil) else {
                throw OpenSSLErrorQueue.error(.malformedInput, "not a PEM public key (expected -----BEGIN PUBLIC KEY-----)")
            }
            return EVPKey(taking: key)
        }
    }

    /// Parses an unencrypted DER PKCS#8 PrivateKeyInfo.
    static func privateKey(pkcs8DER der: [UInt8]) throws -> EVPKey {
        OpenSSLErrorQueue.clear()
        guard !der.isEmpty, let key = secmail_read_pkcs8_der(der, der.count) else {
            throw OpenSSLErrorQueue.error(.malformedInput, "not a DER PKCS#8 private key")
        }
        _ = OpenSSLErrorQueue.drain()
        return EVPKey(taking: key)
    }

    /// Parses an encrypted PKCS#8 PEM and decrypts it.
    static func privateKey(encryptedPEM pem: String, passphrase: Passphrase) throws -> EVPKey {
        guard pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") else {
            throw CryptoError(.malformedInput, "not an encrypted PKCS#8 private key (expected -----BEGIN ENCRYPTED PRIVATE KEY-----); unencrypted key files are refused")
        }
        return try withMemoryBIO(contents: Array(pem.utf8)) { bio in
            var failedStage: Int32 = 0
            let key = passphrase.bytes.withUnsafeBufferPointer { pass in
                pass.withMemoryRebound(to: CChar.self) { chars in
                    secmail_read_pkcs8_encrypted_pem(bio, chars.baseAddress, Int32(chars.count), &failedStage)
                }
            }
            guard let key else {
                let message = OpenSSLErrorQueue.drain()
                switch failedStage {
                case 2:
                    throw CryptoError(.wrongPassphrase, "wrong passphrase for the private key (or the key file is damaged)", openSSLMessage: message)
                case 3:
                    throw CryptoError(.unsupportedKey, "the decrypted private key is not a usable key", openSSLMessage: message)
                default:
                    throw CryptoError(.malformedInput, "the encrypted private key file could not be parsed", openSSLMessage: message)
                }
            }
            return EVPKey(taking: key)
        }
    }

    /// DER SubjectPublicKeyInfo of the public half.
    func publicDER() throws -> [UInt8] {
        OpenSSLErrorQueue.clear()
        var out: UnsafeMutablePointer<UInt8>?
        let length = i2d_PUBKEY(pointer, &out)
        guard length > 0, let out else {
            throw OpenSSLErrorQueue.error(.internalFailure, "could not encode the public key")
        }
        defer { secmail_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(length)))
    }

    /// PEM "PUBLIC KEY" of the public half.
    func publicPEM() throws -> String {
        try withMemoryBIO(contents: []) { bio in
            guard PEM_write_bio_PUBKEY(bio, pointer) == 1 else {
                throw OpenSSLErrorQueue.error(.internalFailure, "could not write the public key as PEM")
            }
            return Self.contents(of: bio)
        }
    }

    /// Encrypted PKCS#8 PEM with PBES2, scrypt (N = 2^14, r = 8, p = 1) and AES-256-CBC.
    /// OpenSSL's PKCS#8 path caps scrypt memory, which allows N = 2^14 with r = 8.
    func encryptedPEM(passphrase: Passphrase) throws -> String {
        try withMemoryBIO(contents: []) { bio in
            let ok = passphrase.bytes.withUnsafeBufferPointer { pass in
                pass.withMemoryRebound(to: CChar.self) { chars in
                    secmail_write_pkcs8_scrypt_pem(bio, pointer, chars.baseAddress, Int32(chars.count), 1 << 14, 8, 1)
                }
            }
            guard ok == 1 else {
                throw OpenSSLErrorQueue.error(.internalFailure, "could not encrypt the private key")
            }
            return Self.contents(of: bio)
        }
    }

    private static func contents(of bio: OpaquePointer) -> String {
        var data: UnsafePointer<UInt8>?
        let length = secmail_bio_contents(bio, &data)
        guard length > 0, let data else { return "" }
        return String(decoding: UnsafeBufferPointer(start: data, count: length), as: UTF8.self)
    }

    /// Runs `body` with a memory BIO holding `contents`, with the error queue cleared first.
    private static func withMemoryBIO<R>(contents: [UInt8], _ body: (OpaquePointer) throws -> R) throws -> R {
        OpenSSLErrorQueue.clear()
        guard let bio = BIO_new(BIO_s_mem()) else {
            throw OpenSSLErrorQueue.error(.internalFailure, "could not allocate a memory BIO")
        }
        defer { BIO_free(bio) }
        if !contents.isEmpty {
            guard BIO_write(bio, contents, Int32(contents.count)) == Int32(contents.count) else {
                throw OpenSSLErrorQueue.error(.internalFailure, "could not fill a memory BIO")
            }
        }
        let result = try body(bio)
        _ = OpenSSLErrorQueue.drain()
        return result
    }

    private func withMemoryBIO<R>(contents: [UInt8], _ body: (OpaquePointer) throws -> R) throws -> R {
        try Self.withMemoryBIO(contents: contents, body)
    }
}
