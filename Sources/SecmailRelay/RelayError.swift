/// The one error type of `SecmailRelay`.
public struct RelayError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The database cannot be opened or used.
        case storage
        /// The database's schema history does not match this build's migrations.
        case schemaMismatch
        /// A request names something that does not exist (a leaf, a name, a size).
        case notFound
        /// The name is registered already (first come, first served).
        case nameTaken
        /// The request is malformed or not allowed as made (wrong key version, bad continuity).
        case invalidRequest
        /// This relay requires a valid, unused invite code to register.
        case inviteRequired
        /// The caller proved nothing (no valid token).
        case unauthorized
        /// The caller's proof was refused (bad signature, used or expired challenge), or the
        /// caller may not do this (another user's mailbox).
        case forbidden
        /// The request repeats something accepted once only (a message id per recipient).
        case conflict
        /// A limit on stored data (a mailbox quota, the envelope size) would be exceeded.
        case quotaExceeded
        /// Too many requests from one address or identity.
        case rateLimited
    }

    public var code: Code
    public var reason: String
    /// SQLite's own message, where it gave one.
    public var sqliteMessage: String?

    public init(_ code: Code, _ reason: String, sqliteMessage: String? = nil) {
        self.code = code
        self.reason = reason
        self.sqliteMessage = sqliteMessage
    }

    public var description: String {
        guard let sqliteMessage, !sqliteMessage.isEmpty else { return reason }
        return "\(reason) (SQLite: \(sqliteMessage))"
    }
}
