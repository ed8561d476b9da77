/// `GET /v1/relay`: what the relay is and what it accepts, so that a client can check a message
/// against the limits before the passphrase, image work or an upload.
public struct RelayInfo: Codable, Sendable, Equatable {
    /// The relay software's version.
    public let version: String
    /// The transparency log's origin (first line of its checkpoints, name of its key).
    public let origin: String
    public let limits: Limits
    /// Whether registering needs an invite code from the operator (absent from relays that
    /// predate it), so that a client can say so before it makes any key.
    public let invitesRequired: Bool?

    public struct Limits: Codable, Sendable, Equatable {
        /// Largest envelope a deposit may carry, in bytes.
        public let maximumEnvelopeSize: Int
        /// Most bytes one mailbox holds.
        public let mailboxQuota: Int
        /// Most recipients one deposit may name.
        public let maximumRecipients: Int
        /// Requests per second per client address, and per identity once authenticated.
        public let requestsPerSecondPerAddress: Double
        public let requestsPerSecondPerIdentity: Double
        /// Seconds an idle connection stays open once it carried an authenticated request.
        public let idleTimeoutSeconds: Int
        /// Seconds an idle connection stays open before that (shorter: unauthenticated
        /// connections are cheap to open and the first thing an attacker holds).
        public let idleTimeoutBeforeSignInSeconds: Int
        /// How far ahead of the relay's clock, and how long before it, a deposited envelope may be
        /// dated (absent from relays that predate them).
        public let maximumClockSkewSeconds: Int?
        public let maximumEnvelopeAgeSeconds: Int?

        public init(maximumEnvelopeSize: Int, mailboxQuota: Int, maximumRecipients: Int, requestsPerSecondPerAddress: Double,
                    requestsPerSecondPerIdentity: Double, idleTimeoutSeconds: Int, idleTimeoutBeforeSignInSeconds: Int,
                    maximumClockSkewSeconds: Int?, maximumEnvelopeAgeSeconds: Int?) {
            self.maximumEnvelopeSize = maximumEnvelopeSize
            self.mailboxQuota = mailboxQuota
            self.maximumRecipients = maximumRecipients
            self.requestsPerSecondPerAddress = requestsPerSecondPerAddress
            self.requestsPerSecondPerIdentity = requestsPerSecondPerIdentity
            self.idleTimeoutSeconds = idleTimeoutSeconds
            self.idleTimeoutBeforeSignInSeconds = idleTimeoutBeforeSignInSeconds
            self.maximumClockSkewSeconds = maximumClockSkewSeconds
            self.maximumEnvelopeAgeSeconds = maximumEnvelopeAgeSeconds
        }
    }

    public init(version: String, origin: String, limits: Limits, invitesRequired: Bool?) {
        self.version = version
        self.origin = origin
        self.limits = limits
        self.invitesRequired = invitesRequired
    }

    /// This build's version, announced by the relay and shown by the client.
    public static let currentVersion = "0.5.0"
}
