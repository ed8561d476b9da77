/// The one error type of `SecmailRelay`.
public struct RelayError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The database cannot be opened or used.
        case storage
        /// The database's schema history does not match this build's migrations.
        case schemaMismatch
        /// A request names something that does not exist (a leaf, a name, a size).
        case notFound
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
