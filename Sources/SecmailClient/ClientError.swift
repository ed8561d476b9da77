/// The one error type of `SecmailClient`.
public struct ClientError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// There is no identity in this home yet.
        case noIdentity
        /// An identity exists already; it is never overwritten.
        case identityExists
        /// A file or directory could not be read or written.
        case io
        /// A key file is readable by others.
        case insecurePermissions
        /// A stored file is damaged.
        case corruptState
        /// Input given by the user is not acceptable.
        case invalidInput
        /// The relay's answer failed verification: a forged proof, an unpinned key, a rolled-back
        /// or forked log. Never accepted, never retried silently.
        case verificationFailed
        /// The relay refused the request (the HTTP status and its reason are in the message).
        case relayRefused
    }

    public var code: Code
    public var reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { reason }
}
