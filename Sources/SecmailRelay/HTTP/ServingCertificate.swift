import Foundation
import SecmailFormat
import SecmailTLS

/// The TLS certificate the relay serves, read from its chain and key files and read again on
/// `reload()` (SIGHUP, after a renewal): each new connection takes the context current when it
/// opens, so open connections keep theirs and none is dropped. Clients pin the relay's public key
/// (`publicKeyPin`), so a renewal must keep the key; one that does not is refused and the
/// certificate in use stays.
public final class ServingCertificate: @unchecked Sendable {
    // @unchecked: `context` and `currentValidity` are only read and replaced while holding `lock`.
    private let lock = NSLock()
    private var context: TLSContext
    private var currentValidity: (notBefore: Int64, notAfter: Int64)
    public let chainFile: URL
    public let keyFile: URL
    /// SHA-256 of the certificate's public key, as clients pin it.
    public let publicKeyPin: [UInt8]

    /// How long before its end a certificate is said to need renewing.
    public static let renewalNotice: Int64 = 30 * 86_400

    public init(chainFile: URL, keyFile: URL) throws {
        self.chainFile = chainFile
        self.keyFile = keyFile
        context = try TLSContext(configuration: .server(certificateChainFile: chainFile.path, privateKeyFile: keyFile.path))
        publicKeyPin = try DevelopmentCertificates.publicKeyPin(certificateFile: chainFile)
        currentValidity = try DevelopmentCertificates.validity(certificateFile: chainFile)
    }

    /// The context for a connection opening now.
    var current: TLSContext { lock.withLock { context } }

    /// When the certificate served now stops being valid, in seconds since 1970.
    public var notAfter: Int64 { lock.withLock { currentValidity.notAfter } }

    /// "valid until TIME", or "expired on TIME" once that has passed (at `now`, seconds since 1970).
    public func validitySummary(at now: Int64 = Int64(Date().timeIntervalSince1970)) -> String {
        let end = notAfter
        return "\(now < end ? "valid until" : "expired on") \(HumanTime.describe(end))"
    }

    /// What the operator must hear about the certificate served now, at `now` (seconds since
    /// 1970): that it has expired, is not valid yet, or expires within `renewalNotice`; nil when
    /// none of these holds. Clients that trust the relay through a CA (`--ca`) check these dates
    /// and refuse an expired certificate; clients that pinned its key do not look at them.
    public func validityWarning(at now: Int64 = Int64(Date().timeIntervalSince1970)) -> String? {
        let validity = lock.withLock { currentValidity }
        let renew = "renew it with the same key (e.g. certbot --reuse-key) and send the relay SIGHUP"
        if now >= validity.notAfter {
            return "the certificate in \(chainFile.path) expired on \(HumanTime.describe(validity.notAfter)): clients that check it against a CA (--ca) refuse this relay, those that pinned its key still connect; \(renew)"
        }
        if now < validity.notBefore {
            return "the certificate in \(chainFile.path) is valid only from \(HumanTime.describe(validity.notBefore)) (is this machine's clock right?): clients that check it against a CA (--ca) refuse this relay until then"
        }
        if validity.notAfter - now < Self.renewalNotice {
            let days = (validity.notAfter - now) / 86_400
            return "the certificate in \(chainFile.path) expires on \(HumanTime.describe(validity.notAfter)), \(days == 0 ? "within a day" : "in \(days) day\(days == 1 ? "" : "s")"); \(renew)"
        }
        return nil
    }

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
        let validity = try DevelopmentCertificates.validity(certificateFile: chainFile)
        lock.withLock {
            context = renewed
            currentValidity = validity
        }
    }
}
