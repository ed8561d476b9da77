/// The one error type of `SecmailClient`.
public struct ClientError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// There is no identity in this home yet.
        case noIdentity
        /// An identity exists already; it is never overwritten.
        case identityExists
        /// A file or directory could not be read or written.
        case io
        /// A key file is readable by others, or the home is open to them or not the user's.
        case insecurePermissions
        /// A stored file is damaged.
        case corruptState
        /// Input given by the user is not acceptable.
        case invalidInput
        /// The relay's answer failed verification: a forged proof, an unpinned key, a rolled-back
        /// or forked log. Never accepted, never retried silently.
        case verificationFailed
        /// The relay refused the request for a reason with no code of its own below (its reason is
        /// in the message).
        case relayRefused
        /// The relay could not be reached, or the connection broke before the answer was complete.
        case relayUnreachable
        /// The connection broke after a request the relay carries out once went out (a deposit),
        /// and no answer said whether the relay carried it out.
        case outcomeUnknown
        /// The relay presented another TLS key than the one pinned at registration.
        case pinMismatch
        /// The relay's log does not extend what this client saw before (rolled back or forked).
        case logInconsistent
        /// The relay signs its log under another origin than the pinned one: its operator started
        /// a new log, which a home follows only deliberately (`register --new-log`).
        case newLog
        /// A name is not registered on the relay.
        case notRegistered
        /// A message the mailbox does not hold.
        case noSuchMessage
        /// The name is registered already.
        case nameTaken
        /// A relay limit: envelope size, mailbox quota, number of recipients.
        case limitExceeded
        /// The relay asks to slow down.
        case rateLimited
        /// The relay does not take this home's signing key as the identity's current one: its keys
        /// were rotated elsewhere (another copy of the home), or by someone else.
        case keyNotCurrent
        /// This computer's clock is too far from the relay's for the relay to take what this
        /// client dates and signs.
        case clockSkewed
        /// Another command holds a lock of this home: it is changing the keys (a rotation, a
        /// passphrase change), or saving the relay's log view.
        case homeBusy
        /// The relay answered something that is not its API (malformed JSON, a wrong status).
        case malformedAnswer
        /// The key agent failed or stopped in the middle of a command.
        case agentFailed
    }

    public var code: Code
    public var reason: String
    /// The name the error is about, where it is one a caller may say more of (the recipient that
    /// no one is registered as, the origin of a new log).
    public var subject: String?

    public init(_ code: Code, _ reason: String, subject: String? = nil) {
        self.code = code
        self.reason = reason
        self.subject = subject
    }

    public var description: String { reason }

    /// The relay signs its log under `origin`, not the pinned `pinned`: a new log (`secmail relay
    /// new-log`), which a user follows only deliberately, with the key its operator publishes. The
    /// command to follow it names the relay and the home's identity, `name`, where they are known
    /// (`RelayClient` says them; the pure checks of `DirectoryVerification` know neither). The
    /// error's subject is the new origin.
    static func newLog(_ origin: String, pinned: String, relayURL: String? = nil, name: String? = nil) -> ClientError {
        ClientError(.newLog, """
            the relay now signs its log as \(origin), not as \(pinned), the log you pinned: its operator started a new log \
            (after restoring the relay from a backup, say). Do not trust keys from it until you have its new log key from \
            the operator; then follow it with: secmail register \(name ?? "NAME") --relay \(relayURL ?? "URL") --new-log --log-key KEY \
            (secmail monitor --new-log --log-key KEY in a home that only monitors)
            """, subject: origin)
    }

    /// Whether the failure means that data did not verify (a forged proof, a swapped key, a forked
    /// log), as opposed to something that may work when tried again.
    public var isVerificationFailure: Bool {
        [.verificationFailed, .pinMismatch, .logInconsistent, .newLog].contains(code)
    }
}
