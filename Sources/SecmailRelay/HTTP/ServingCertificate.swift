import Foundation
import SecmailTLS

/// The TLS certificate the relay serves, read from its chain and key files and read again on
/// `reload()` (SIGHUP, after a renewal): each new connection takes the context current when it
/// opens, so open connections keep theirs and none is dropped. Clients pin the relay's public key
/// (`publicKeyPin`), so a renewal must keep the key; one that does not is refused and the
/// certificate in use stays.
public final class ServingCertificate: @unchecked Sendable {
    // @unchecked: `context` is only read and replaced while holding `lock`.
    private let lock = NSLock()
    private var context: TLSContext
    public let chainFile: URL
    public let keyFile: URL
    /// SHA-256 of the certificate's public key, as clients pin it.
    public let publicKeyPin: [UInt8]

    public init(chainFile: URL, keyFile: URL) throws {
        self.chainFile = chainFile
        self.keyFile = keyFile
        context = try TLSContext(configuration: .server(certificateChainFile: chainFile.path, privateKeyFile: keyFile.path))
        publicKeyPin = try DevelopmentCertificates.publicKeyPin(certificateFile: chainFile)
    }

    /// The context for a connection opening now.
    var current: TLSContext { lock.withLock { context } }

    /// Reads the chain and key files again and serves them to new connections, when they load,
    /// match each other and carry the pinned public key; otherwise throws and changes nothing.
    public func reload() throws {
        let renewed = try TLSContext(configuration: .server(certificateChainFile: chainFile.path, privateKeyFile: keyFile.path))
        let pin = try DevelopmentCertificates.publicKeyPin(certificateFile: chainFile)
        guard pin == publicKeyPin else {
            throw RelayError(.invalidRequest, """
                \(chainFile.path) now holds a certificate for another public key; clients pinned the one in use, so it stays \
                (renew with the same key, e.g. certbot --reuse-key, or restart the relay to change keys on purpose)
                """)
        }
        lock.withLock { context = renewed }
    }
}
