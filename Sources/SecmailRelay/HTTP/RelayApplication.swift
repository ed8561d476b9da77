import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import SecmailAPI
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

extension RelayServices {
    /// What `GET /v1/relay` announces.
    var info: RelayInfo {
        RelayInfo(version: RelayInfo.currentVersion, origin: signer.origin, limits: .init(
            maximumEnvelopeSize: mailboxes.maximumEnvelopeSize, mailboxQuota: mailboxes.mailboxQuota,
            maximumRecipients: MailboxController.maximumRecipients,
            requestsPerSecondPerAddress: limits.perAddress.perSecond,
            requestsPerSecondPerIdentity: authenticator.identityLimiter.limit.perSecond,
            idleTimeoutSeconds: Int(limits.deadlines.idle.seconds),
            idleTimeoutBeforeSignInSeconds: Int(limits.deadlines.idleBeforeSignIn.seconds),
            maximumClockSkewSeconds: Int(mailboxes.timeWindow.futureSkew), maximumEnvelopeAgeSeconds: Int(mailboxes.timeWindow.maximumAge)),
            invitesRequired: directory.requiresInvite)
    }
}

/// Request and connection limits (envelope size and mailbox quota live in `MailboxStore`, the
/// per-identity request rate in `Authenticator`).
public struct RelayLimits: Sendable {
    /// Requests per client address group (`grouping`).
    public var perAddress: RateLimiter.Limit
    /// Open connections; beyond it new ones wait in the listen backlog.
    public var maximumConnections: Int
    /// Open connections per address group; more are closed at once.
    public var maximumConnectionsPerAddress: Int
    /// New connections per second per address group; faster ones are closed before the handshake.
    public var connectionsPerSecondPerAddress: RateLimiter.Limit
    /// Which addresses count as one client.
    public var grouping: AddressGrouping
    /// Header, body, write and idle deadlines of every connection (TLS handshakes have their own
    /// 10 s limit in SecmailTLS).
    public var deadlines: ConnectionDeadlines
    /// Deposits under way at once, per depositor and in bytes.
    public var uploads: UploadBudget
    /// Device reads all fetches may keep under way beyond one each.
    public var fetchReadAhead: FetchReadAhead
    /// Registrations per address group and in all, per hour.
    public var registrations: RegistrationLimits

    public init(perAddress: RateLimiter.Limit = .init(perSecond: 200, burst: 400), maximumConnections: Int = 512,
                maximumConnectionsPerAddress: Int = 32, connectionsPerSecondPerAddress: RateLimiter.Limit = .init(perSecond: 20, burst: 40),
                grouping: AddressGrouping = AddressGrouping(),
                deadlines: ConnectionDeadlines = ConnectionDeadlines(), uploads: UploadBudget = UploadBudget(),
                fetchReadAhead: FetchReadAhead = FetchReadAhead(), registrations: RegistrationLimits = RegistrationLimits()) {
        self.perAddress = perAddress
        self.maximumConnections = maximumConnections
        self.maximumConnectionsPerAddress = maximumConnectionsPerAddress
        self.connectionsPerSecondPerAddress = connectionsPerSecondPerAddress
        self.grouping = grouping
        self.deadlines = deadlines
        self.uploads = uploads
        self.fetchReadAhead = fetchReadAhead
        self.registrations = registrations
    }
}

/// Builds the relay's HTTP/1.1 application behind secmail's TLS, listening on `host:port`
/// (port 0 picks a free one; `onRunning` is told the port), its connections served by the event
/// loops of `eventLoopGroup` (NIO's process-wide group unless a test gives it loops of its own).
public func buildRelayApplication(
    services: RelayServices, certificate: ServingCertificate, host: String, port: Int, logger: Logger = Logger(label: "secmail-relay"),
    eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = Router(context: RelayRequestContext.self)
    router.add(middleware: RequestLogMiddleware(grouping: services.limits.grouping))
    router.add(middleware: JSONErrorMiddleware())
    router.add(middleware: AddressRateLimitMiddleware(limiter: RateLimiter(services.limits.perAddress), grouping: services.limits.grouping))
    router.on(.health) { _, _ in "ok\n" }
    let info = services.info
    router.on(.relayInfo) { _, _ in info }
    DirectoryController(directory: services.directory, signer: services.signer, authenticator: services.authenticator,
                        registrations: services.limits.registrations).addRoutes(to: router)
    LogController(log: services.log, signer: services.signer).addRoutes(to: router)
    AuthController(authenticator: services.authenticator).addRoutes(to: router)
    MailboxController(mailboxes: services.mailboxes, authenticator: services.authenticator, uploads: services.limits.uploads,
                      fetchReadAhead: services.limits.fetchReadAhead).addRoutes(to: router)
    return Application(
        router: router,
        server: .secmailTLS(certificate: certificate, deadlines: services.limits.deadlines,
                            connections: ConnectionLimiter(perGroup: services.limits.maximumConnectionsPerAddress,
                                                           capacity: services.limits.maximumConnections,
                                                           openingsPerGroup: services.limits.connectionsPerSecondPerAddress,
                                                           grouping: services.limits.grouping)),
        // Accepting goes on a little past the cap, so that a newcomer can take the slot of a
        // connection that makes no progress (ConnectionLimiter); past this, the kernel queues.
        configuration: .init(address: .hostname(host, port: port), serverName: "secmail-relay",
                             availableConnectionsDelegate: MaximumAvailableConnections(services.limits.maximumConnections + 64)),
        onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
        eventLoopGroupProvider: .shared(eventLoopGroup),
        logger: logger)
}
