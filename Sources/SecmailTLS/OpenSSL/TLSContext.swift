internal import CLibSSL
internal import COpenSSL

/// An `SSL_CTX` built from a `TLSConfiguration`; shared by every connection of one endpoint.
public final class TLSContext: @unchecked Sendable {
    // @unchecked: the SSL_CTX is configured in init and afterwards only used to create SSL
    // objects, which OpenSSL allows from any thread.
    let pointer: OpaquePointer
    private let callbackData: UnsafeMutablePointer<secmail_tls_context_data>
    public let configuration: TLSConfiguration

    /// Validates and applies `configuration`; throws `.invalidConfiguration` with a reason.
    public init(configuration: TLSConfiguration) throws {
        self.configuration = configuration
        // libssl is loaded on first use (CLibSSL); a missing one is this context's error.
        var reason = [CChar](repeating: 0, count: 512)
        guard secmail_libssl_load(&reason, reason.count) == 1 else {
            let text = String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw TLSError(.invalidConfiguration, "cannot load libssl (\(text)); install libssl3")
        }
        OpenSSLErrors.clear()
        let method = configuration.role == .server ? TLS_server_method() : TLS_client_method()
        guard let pointer = SSL_CTX_new(method), let callbackData = secmail_tls_context_data_new() else {
            throw OpenSSLErrors.error(.invalidConfiguration, "could not create a TLS context")
        }
        self.pointer = pointer
        self.callbackData = callbackData

        let minimum = configuration.minimumVersion == .tls13 ? TLS1_3_VERSION : TLS1_2_VERSION
        guard secmail_ssl_ctx_set_min_version(pointer, minimum) == 1 else {
            throw OpenSSLErrors.error(.invalidConfiguration, "could not set the minimum TLS version")
        }

        if let chain = configuration.certificateChainFile {
            guard SSL_CTX_use_certificate_chain_file(pointer, chain) == 1 else {
                throw OpenSSLErrors.error(.invalidConfiguration, "cannot load the certificate chain \(chain)")
            }
            guard let key = configuration.privateKeyFile else {
                throw TLSError(.invalidConfiguration, "a certificate needs its private key file")
            }
            guard SSL_CTX_use_PrivateKey_file(pointer, key, SSL_FILETYPE_PEM) == 1 else {
                throw OpenSSLErrors.error(.invalidConfiguration, "cannot load the private key \(key)")
            }
            guard SSL_CTX_check_private_key(pointer) == 1 else {
                throw OpenSSLErrors.error(.invalidConfiguration, "the private key \(key) does not match the certificate \(chain)")
            }
        } else if configuration.role == .server {
            throw TLSError(.invalidConfiguration, "a TLS server needs a certificate chain and a private key")
        }

        switch configuration.role {
        case .client:
            switch configuration.trust {
            case .certificateAuthorities(let file):
                guard SSL_CTX_load_verify_locations(pointer, file, nil) == 1 else {
                    throw OpenSSLErrors.error(.invalidConfiguration, "cannot load CA certificates from \(file)")
                }
                SSL_CTX_set_verify(pointer, SSL_VERIFY_PEER, nil)
            case .pinnedPublicKey(let sha256):
                guard sha256.count == 32 else {
                    throw TLSError(.invalidConfiguration, "a pinned key is a 32-byte SHA-256, not \(sha256.count) bytes")
                }
                secmail_ssl_ctx_use_pin(pointer, callbackData, sha256)
            case nil:
                throw TLSError(.invalidConfiguration, "a TLS client needs a CA file or a pinned server key")
            }
        case .server:
            if !configuration.applicationProtocols.isEmpty {
                let wire = try Self.alpnWireFormat(configuration.applicationProtocols)
                guard secmail_ssl_ctx_set_alpn_server(pointer, callbackData, wire, UInt32(wire.count)) == 1 else {
                    throw OpenSSLErrors.error(.invalidConfiguration, "cannot set the ALPN protocols")
                }
            }
        }
        _ = OpenSSLErrors.drain()
    }

    deinit {
        SSL_CTX_free(pointer)
        secmail_tls_context_data_free(callbackData)
    }

    /// ALPN wire format: each name behind a one-byte length (RFC 7301).
    static func alpnWireFormat(_ protocols: [String]) throws -> [UInt8] {
        var wire: [UInt8] = []
        for name in protocols {
            let bytes = Array(name.utf8)
            guard (1...255).contains(bytes.count) else {
                throw TLSError(.invalidConfiguration, "an ALPN protocol name is 1 to 255 bytes")
            }
            wire.append(UInt8(bytes.count))
            wire.append(contentsOf: bytes)
        }
        return wire
    }
}
