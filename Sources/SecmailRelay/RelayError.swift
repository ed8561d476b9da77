import SecmailAPI

/// The one error type of `SecmailRelay`.
public struct RelayError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The relay's errors are the API's error codes (SecmailAPI), so a refusal reaches the client
    /// with the code it was raised with.
    public typealias Code = ErrorCode

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
