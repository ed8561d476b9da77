internal import COpenSSL
import NIOCore

/// One TLS connection's OpenSSL state: an `SSL` reading ciphertext from buffers it is lent and
/// writing ciphertext into buffers it is lent (or one of its own). It does no I/O; `TLSHandler`
/// moves the bytes.
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
    /// Ciphertext produced by OpenSSL, for the network: a BIO that writes the records of
    /// application data straight into the buffer `seal` sends (one copy fewer than through a
    /// memory BIO, which they were copied into and then out of), and anything else (handshake,
    /// alerts, close_notify) into a buffer of its own that `takeOutput` copies out.
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
        guard let inbound = secmail_input_bio_new(), let outbound = secmail_output_bio_new() else {
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

    /// Received bytes OpenSSL has not read yet (during `withInput`).
    var unreadInput: Int {
        Int(BIO_ctrl_pending(inbound))
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

    /// Encrypts all of `bytes`; returns the ciphertext to send (with any output that was waiting
    /// before it), nil if there is none.
    func seal(_ bytes: ByteBufferView, allocator: ByteBufferAllocator) throws -> ByteBuffer? {
        guard !bytes.isEmpty else { return takeOutput(allocator: allocator) }
        OpenSSLErrors.clear()
        var buffer = allocator.buffer(capacity: Self.sealedCapacity(bytes.count))
        var written: Int32 = -1
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: buffer.capacity) { target in
            secmail_output_bio_lend(outbound, target.baseAddress?.assumingMemoryBound(to: UInt8.self), target.count)
            written = bytes.withContiguousStorageIfAvailable { storage -> Int32 in
                SSL_write(ssl, storage.baseAddress, Int32(storage.count))
            } ?? -1
            return Int(secmail_output_bio_return(outbound))
        }
        guard written == Int32(bytes.count) else {
            throw OpenSSLErrors.error(.protocolError, "TLS encryption failed")
        }
        // What went to the BIO's own buffer follows what was written in place: records that
        // did not fit, or (when output was waiting there already, so that none was written in
        // place) that output and all of this write's.
        appendOverflow(to: &buffer)
        return buffer.readableBytes > 0 ? buffer : nil
    }

    /// Room for the records of `count` bytes of plaintext (each record adds a 5-byte header, a
    /// content-type byte and a 16-byte tag) and a little more.
    static func sealedCapacity(_ count: Int) -> Int {
        let records = (count + maximumRecordPlaintext - 1) / maximumRecordPlaintext
        return count + records * 22 + 64
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

    /// Ciphertext waiting to be sent (handshake messages, alerts, close_notify), if any.
    func takeOutput(allocator: ByteBufferAllocator) -> ByteBuffer? {
        var buffer = allocator.buffer(capacity: 0)
        appendOverflow(to: &buffer)
        return buffer.readableBytes > 0 ? buffer : nil
    }

    /// Moves what the outbound BIO holds in its own buffer to the end of `buffer`.
    private func appendOverflow(to buffer: inout ByteBuffer) {
        var bytes: UnsafePointer<UInt8>?
        let count = secmail_output_bio_overflow(outbound, &bytes)
        guard count > 0, let bytes else { return }
        buffer.writeBytes(UnsafeRawBufferPointer(start: bytes, count: count))
        secmail_output_bio_clear_overflow(outbound)
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
