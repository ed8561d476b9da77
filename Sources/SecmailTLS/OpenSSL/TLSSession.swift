internal import COpenSSL
import NIOCore

/// One TLS connection's OpenSSL state: an `SSL` reading ciphertext from one memory BIO and
/// writing ciphertext to another. It does no I/O; `TLSHandler` moves the bytes.
final class TLSSession {
    enum HandshakeResult {
        case complete
        case inProgress
        case failed(TLSError)
    }

    enum ReadResult {
        /// Plaintext was appended to the buffer.
        case data
        /// No complete record is buffered; more ciphertext is needed.
        case wantRead
        /// The peer sent close_notify.
        case closeNotify
        case failed(TLSError)
    }

    private let ssl: OpaquePointer
    /// Ciphertext from the network: a BIO that reads straight from the buffers `withInput`
    /// lends it, so received bytes are copied once (into OpenSSL's record buffer), not three
    /// times as through a memory BIO.
    private let inbound: OpaquePointer
    /// Received bytes OpenSSL has not consumed yet (the start of an incomplete record).
    private var unconsumed: ByteBuffer?
    /// Ciphertext produced by OpenSSL, for the network.
    private let outbound: OpaquePointer
    private let isClient: Bool
    private let expectedHost: String?
    /// Kept alive for as long as the SSL: the SSL_CTX's C callbacks read data the context owns.
    private let context: TLSContext

    /// Largest plaintext of one TLS record.
    static let maximumRecordPlaintext = 16_384

    init(context: TLSContext, serverHostname: String?) throws {
        OpenSSLErrors.clear()
        guard let ssl = SSL_new(context.pointer) else {
            throw OpenSSLErrors.error(.invalidConfiguration, "could not create a TLS connection")
        }
        guard let inbound = secmail_input_bio_new(), let outbound = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw OpenSSLErrors.error(.invalidConfiguration, "could not create the connection's BIOs")
        }
        // SSL_set_bio takes ownership of both BIOs.
        SSL_set_bio(ssl, inbound, outbound)
        self.ssl = ssl
        self.inbound = inbound
        self.outbound = outbound
        isClient = context.configuration.role == .client
        expectedHost = serverHostname
        self.context = context

        if isClient {
            SSL_set_connect_state(ssl)
            if !context.configuration.applicationProtocols.isEmpty {
                let wire = try TLSContext.alpnWireFormat(context.configuration.applicationProtocols)
                // SSL_set_alpn_protos returns 0 on success.
                guard SSL_set_alpn_protos(ssl, wire, UInt32(wire.count)) == 0 else {
                    throw OpenSSLErrors.error(.invalidConfiguration, "cannot offer the ALPN protocols")
                }
            }
            if let host = serverHostname, case .certificateAuthorities = context.configuration.trust {
                try Self.expect(host: host, on: ssl)
            } else if case .certificateAuthorities = context.configuration.trust {
                throw TLSError(.invalidConfiguration, "a client that verifies against a CA needs the server's host name")
            }
            // SNI carries DNS names only (RFC 6066 section 3), never IP literals.
            if let host = serverHostname, !Self.isIPAddress(host) {
                guard secmail_ssl_set_sni(ssl, host) == 1 else {
                    throw OpenSSLErrors.error(.invalidConfiguration, "cannot set the server name \(host)")
                }
            }
        } else {
            SSL_set_accept_state(ssl)
        }
        _ = OpenSSLErrors.drain()
    }

    deinit {
        SSL_free(ssl)
    }

    /// Makes `received` (after any bytes left over from before) readable by OpenSSL while
    /// `body` runs handshake and read steps; keeps what OpenSSL did not consume for next time.
    func withInput<R>(_ received: ByteBuffer, _ body: () -> R) -> R {
        let earlier = unconsumed ?? ByteBuffer()
        unconsumed = nil
        return earlier.withUnsafeReadableBytes { first in
            received.withUnsafeReadableBytes { second in
                secmail_input_bio_set(inbound, first.baseAddress?.assumingMemoryBound(to: UInt8.self), first.count,
                                      second.baseAddress?.assumingMemoryBound(to: UInt8.self), second.count)
                let result = body()
                var firstConsumed = 0, secondConsumed = 0
                secmail_input_bio_take(inbound, &firstConsumed, &secondConsumed)
                unconsumed = Self.leftover(earlier, firstConsumed, received, secondConsumed)
                return result
            }
        }
    }

    /// The bytes not yet consumed, without copying in the common case (all of `earlier` used).
    private static func leftover(_ earlier: ByteBuffer, _ firstConsumed: Int, _ received: ByteBuffer, _ secondConsumed: Int) -> ByteBuffer? {
        let earlierLeft = earlier.readableBytes - firstConsumed
        let receivedLeft = received.readableBytes - secondConsumed
        if earlierLeft == 0 {
            return receivedLeft == 0 ? nil : received.getSlice(at: received.readerIndex + secondConsumed, length: receivedLeft)
        }
        // OpenSSL stopped inside the older bytes, so it read none of the new ones.
        var joined = earlier.getSlice(at: earlier.readerIndex + firstConsumed, length: earlierLeft) ?? ByteBuffer()
        var rest = received
        joined.writeBuffer(&rest)
        return joined
    }

    func handshake() -> HandshakeResult {
        OpenSSLErrors.clear()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            _ = OpenSSLErrors.drain()
            return .complete
        }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .inProgress
        default:
            return .failed(handshakeError())
        }
    }

    /// Decrypts at most one record's worth of plaintext into `buffer`.
    func read(into buffer: inout ByteBuffer) -> ReadResult {
        OpenSSLErrors.clear()
        var count: Int32 = 0
        _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.maximumRecordPlaintext) { target in
            count = SSL_read(ssl, target.baseAddress, Int32(min(target.count, Int(Int32.max))))
            return count > 0 ? Int(count) : 0
        }
        if count > 0 { return .data }
        switch SSL_get_error(ssl, count) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .wantRead
        case SSL_ERROR_ZERO_RETURN:
            _ = OpenSSLErrors.drain()
            return .closeNotify
        default:
            return .failed(OpenSSLErrors.error(.protocolError, "a TLS record could not be processed"))
        }
    }

    /// Encrypts all of `bytes` into the outbound BIO.
    func write(_ bytes: ByteBufferView) throws {
        guard !bytes.isEmpty else { return }
        OpenSSLErrors.clear()
        let written = bytes.withContiguousStorageIfAvailable { storage -> Int32 in
            SSL_write(ssl, storage.baseAddress, Int32(storage.count))
        } ?? -1
        guard written == Int32(bytes.count) else {
            throw OpenSSLErrors.error(.protocolError, "TLS encryption failed")
        }
    }

    /// Sends close_notify (once); returns true when the peer's close_notify has also arrived.
    @discardableResult
    func shutdown() -> Bool {
        OpenSSLErrors.clear()
        let result = SSL_shutdown(ssl)
        _ = OpenSSLErrors.drain()
        return result == 1
    }

    /// Asks the peer to update traffic keys (TLS 1.3 KeyUpdate, requesting its own update too).
    func requestKeyUpdate() throws {
        OpenSSLErrors.clear()
        guard SSL_key_update(ssl, SSL_KEY_UPDATE_REQUESTED) == 1 else {
            throw OpenSSLErrors.error(.protocolError, "KeyUpdate is not possible now")
        }
        // The update is sent with the next write; an empty write would be refused, so make
        // OpenSSL emit it now.
        _ = SSL_do_handshake(ssl)
        _ = OpenSSLErrors.drain()
    }

    /// Ciphertext waiting to be sent, if any.
    func takeOutput(allocator: ByteBufferAllocator) -> ByteBuffer? {
        let pending = secmail_bio_pending(outbound)
        guard pending > 0 else { return nil }
        var buffer = allocator.buffer(capacity: pending)
        _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: pending) { target in
            Int(max(0, BIO_read(outbound, target.baseAddress, Int32(pending))))
        }
        return buffer
    }

    /// The protocol chosen by ALPN.
    var negotiatedProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// SHA-256 of the peer certificate's SubjectPublicKeyInfo (what a client pins), once known.
    var peerPublicKeyPin: [UInt8]? {
        guard let certificate = SSL_get0_peer_certificate(ssl) else { return nil }
        var digest = [UInt8](repeating: 0, count: 32)
        return secmail_x509_spki_sha256(certificate, &digest) == 1 ? digest : nil
    }

    /// The DNS names the peer's certificate is issued for.
    var peerDNSNames: [String] {
        guard let certificate = SSL_get0_peer_certificate(ssl) else { return [] }
        return DevelopmentCertificates.dnsNames(of: certificate)
    }

    /// "TLSv1.3" or "TLSv1.2".
    var protocolVersion: String {
        String(cString: SSL_get_version(ssl))
    }

    // MARK: Helpers

    private func handshakeError() -> TLSError {
        let message = OpenSSLErrors.drain()
        if isClient {
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK {
                let reason = String(cString: X509_verify_cert_error_string(verify))
                let detail = verify == X509_V_ERR_APPLICATION_VERIFICATION
                    ? "the server's key does not match the pinned key" : reason
                return TLSError(.certificateVerificationFailed,
                                "the server's certificate did not verify\(expectedHost.map { " for \($0)" } ?? ""): \(detail)",
                                openSSLMessage: message)
            }
        }
        return TLSError(.handshakeFailed, "the TLS handshake failed", openSSLMessage: message)
    }

    private static func expect(host: String, on ssl: OpaquePointer) throws {
        let ok: Bool
        if isIPAddress(host) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1
        } else {
            ok = SSL_set1_host(ssl, host) == 1
        }
        guard ok else {
            throw OpenSSLErrors.error(.invalidConfiguration, "cannot expect the host name \(host)")
        }
    }

    static func isIPAddress(_ host: String) -> Bool {
        host.contains(":") || (host.split(separator: ".").count == 4 && host.allSatisfy { $0.isNumber || $0 == "." })
    }
}
