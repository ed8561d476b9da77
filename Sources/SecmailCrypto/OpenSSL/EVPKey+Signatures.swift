internal import COpenSSL

/// One-shot EVP_DigestSign/EVP_DigestVerify, shared by RSA-PSS (digest "SHA256", padding set by
/// `configure`) and Ed25519 (no separate digest).
extension EVPKey {
    func sign(_ message: some ContiguousByteStorage, digest: String?, configure: (OpaquePointer) -> Bool) throws -> [UInt8] {
        try withDigestContext(signing: true, digest: digest, configure: configure) { context in
            try message.withUnsafeBytes { bytes in
                let input = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
                var length = 0
                guard EVP_DigestSign(context, nil, &length, input, bytes.count) == 1 else {
                    throw OpenSSLErrorQueue.error(.internalFailure, "could not size the signature")
                }
                var signature = [UInt8](repeating: 0, count: length)
                guard EVP_DigestSign(context, &signature, &length, input, bytes.count) == 1 else {
                    throw OpenSSLErrorQueue.error(.internalFailure, "signing failed")
                }
                signature.removeSubrange(length...)
                return signature
            }
        }
    }

    func isValidSignature(_ signature: [UInt8], for message: some ContiguousByteStorage, digest: String?,
                          configure: (OpaquePointer) -> Bool) -> Bool {
        let valid = try? withDigestContext(signing: false, digest: digest, configure: configure) { context in
            message.withUnsafeBytes { bytes in
                EVP_DigestVerify(context, signature, signature.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count) == 1
            }
        }
        return valid ?? false
    }

    private func withDigestContext<R>(
        signing: Bool, digest: String?, configure: (OpaquePointer) -> Bool, _ body: (OpaquePointer) throws -> R
    ) throws -> R {
        OpenSSLErrorQueue.clear()
        defer { _ = OpenSSLErrorQueue.drain() }
        guard let context = EVP_MD_CTX_new() else {
            throw OpenSSLErrorQueue.error(.internalFailure, "could not allocate a digest context")
        }
        defer { EVP_MD_CTX_free(context) }
        var pkeyContext: OpaquePointer?
        let initialised = signing
            ? EVP_DigestSignInit_ex(context, &pkeyContext, digest, nil, nil, pointer, nil)
            : EVP_DigestVerifyInit_ex(context, &pkeyContext, digest, nil, nil, pointer, nil)
        guard initialised == 1, let pkeyContext, configure(pkeyContext) else {
            throw OpenSSLErrorQueue.error(.internalFailure, "could not set up the signature operation")
        }
        return try body(context)
    }
}
