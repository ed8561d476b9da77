import NIOCore

/// What a TLS endpoint presents and whom it trusts.
public struct TLSConfiguration: Sendable {
    public enum Role: Sendable {
        case client
        case server
    }

    /// Lowest protocol version accepted. TLS 1.3 unless a deployment must allow 1.2.
    public enum MinimumVersion: Sendable {
        case tls12
        case tls13
    }

    /// How a client decides that the server is the right one.
    public enum Trust: Sendable, Equatable {
        /// Verify the chain against the CA certificates in this PEM file, and the host name.
        case certificateAuthorities(file: String)
        /// Accept exactly the server key whose SubjectPublicKeyInfo has this SHA-256 (32 bytes),
        /// whatever signed its certificate.
        case pinnedPublicKey(sha256: [UInt8])
    }

    public var role: Role
    public var minimumVersion: MinimumVersion = .tls13
    /// PEM file with the certificate, then any intermediates (servers; optional for clients).
    public var certificateChainFile: String?
    /// PEM file with the unencrypted private key for the certificate.
    public var privateKeyFile: String?
    /// Required for clients.
    public var trust: Trust?
    /// ALPN protocol names, most preferred first. Servers refuse a client that offers none of them.
    public var applicationProtocols: [String] = []
    public var handshakeTimeout: TimeAmount = .seconds(10)
    /// How long to wait for the peer's close_notify after sending ours.
    public var shutdownTimeout: TimeAmount = .seconds(3)

    /// A server presenting the chain and key in these PEM files.
    public static func server(certificateChainFile: String, privateKeyFile: String) -> TLSConfiguration {
        var configuration = TLSConfiguration(role: .server)
        configuration.certificateChainFile = certificateChainFile
        configuration.privateKeyFile = privateKeyFile
        return configuration
    }

    /// A client that trusts servers as `trust` says.
    public static func client(trust: Trust) -> TLSConfiguration {
        var configuration = TLSConfiguration(role: .client)
        configuration.trust = trust
        return configuration
    }

    public init(role: Role) {
        self.role = role
    }
}
