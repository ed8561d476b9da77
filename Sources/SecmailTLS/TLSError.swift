/// The one error type of `SecmailTLS`.
public struct TLSError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The configuration cannot be used (missing file, key not matching the certificate, ...).
        case invalidConfiguration
        /// The handshake failed: protocol version, alert, malformed input.
        case handshakeFailed
        /// The peer's certificate did not verify (unknown CA, wrong host, expired, pin mismatch).
        case certificateVerificationFailed
        /// The handshake did not finish within the configured time.
        case handshakeTimeout
        /// The connection ended without a close_notify alert: the data may have been truncated.
        case uncleanShutdown
        /// A TLS record could not be processed after the handshake.
        case protocolError
        /// The connection is closed; the write was not sent.
        case closed
    }

    public var code: Code
    public var reason: String
    /// OpenSSL's error strings, when it gave any.
    public var openSSLMessage: String?

    public init(_ code: Code, _ reason: String, openSSLMessage: String? = nil) {
        self.code = code
        self.reason = reason
        self.openSSLMessage = openSSLMessage
    }

    public var description: String {
        guard let openSSLMessage, !openSSLMessage.isEmpty else { return reason }
        return "\(reason) (OpenSSL: \(openSSLMessage))"
    }
}
