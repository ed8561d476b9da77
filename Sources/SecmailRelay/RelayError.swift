import SecmailAPI

/// The one error type of `SecmailRelay`.
public struct RelayError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The relay's errors are the API's error codes (SecmailAPI), so a refusal reaches the client
    /// with the code it was raised with.
    public typealias Code = ErrorCode

    public var code: Code
    public var reason: String
    /// The database's own message (SQLite's, PostgreSQL's), where it gave one.
    public var databaseMessage: String?
    /// For `rateLimited` by a request rate: whole seconds until the same request is let through
    /// (the answer's `Retry-After`).
    public var retryAfter: Int?

    public init(_ code: Code, _ reason: String, databaseMessage: String? = nil, retryAfter: Int? = nil) {
        self.code = code
        self.reason = reason
        self.databaseMessage = databaseMessage
        self.retryAfter = retryAfter
    }

    public var description: String {
        guard let databaseMessage, !databaseMessage.isEmpty else { return reason }
        return "\(reason) (database: \(databaseMessage))"
    }
}
