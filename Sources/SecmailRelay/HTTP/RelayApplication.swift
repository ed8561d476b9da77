import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import SecmailTLS

/// Everything the relay serves, and where.
public struct RelayServices: Sendable {
    public let directory: Directory
    public let log: LogStore
    public let signer: CheckpointSigner
    public let authenticator: Authenticator
    public let mailboxes: MailboxStore
    public let limits: RelayLimits

    public init(directory: Directory, log: LogStore, signer: CheckpointSigner, authenticator: Authenticator, mailboxes: MailboxStore,
                limits: RelayLimits = RelayLimits()) {
        self.directory = directory
        self.log = log
        self.signer = signer
        self.authenticator = authenticator
        self.mailboxes = mailboxes
        self.limits = limits
    }
}

/// Request and connection limits (envelope size and mailbox quota live in `MailboxStore`, the
/// per-identity request rate in `Authenticator`).
public struct RelayLimits: Sendable {
    /// Requests per client address.
    public var perAddress: RateLimiter.Limit
    /// Open connections; beyond it new ones wait in the listen backlog.
    public var maximumConnections: Int
    /// A connection with no request in flight for this long is closed (TLS handshakes have their
    /// own 10 s limit in SecmailTLS).
    public var idleTimeout: TimeAmount

    public init(perAddress: RateLimiter.Limit = .init(perSecond: 200, burst: 400), maximumConnections: Int = 512,
                idleTimeout: TimeAmount = .seconds(60)) {
        self.perAddress = perAddress
        self.maximumConnections = maximumConnections
        self.idleTimeout = idleTimeout
    }
}

/// Builds the relay's HTTP/1.1 application behind secmail's TLS, listening on `host:port`
/// (port 0 picks a free one; `onRunning` is told the port).
public func buildRelayApplication(
    services: RelayServices, tls: TLSContext, host: String, port: Int, logger: Logger = Logger(label: "secmail-relay"),
    onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = Router(context: RelayRequestContext.self)
    router.add(middleware: AddressRateLimitMiddleware(limiter: RateLimiter(services.limits.perAddress)))
    let v1 = router.group("v1")
    v1.get("health") { _, _ in "ok\n" }
    DirectoryController(directory: services.directory, signer: services.signer, authenticator: services.authenticator)
        .addRoutes(to: v1.group("directory"))
    LogController(log: services.log, signer: services.signer).addRoutes(to: v1.group("log"))
    AuthController(authenticator: services.authenticator).addRoutes(to: v1.group("auth"))
    let mail = MailboxController(mailboxes: services.mailboxes, authenticator: services.authenticator)
    mail.addDepositRoute(to: v1.group("messages"))
    mail.addMailboxRoutes(to: v1.group("mailbox"))
    return Application(
        router: router,
        server: .secmailTLS(context: tls, idleTimeout: services.limits.idleTimeout),
        configuration: .init(address: .hostname(host, port: port), serverName: "secmail-relay",
                             availableConnectionsDelegate: MaximumAvailableConnections(services.limits.maximumConnections)),
        onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
        logger: logger)
}
