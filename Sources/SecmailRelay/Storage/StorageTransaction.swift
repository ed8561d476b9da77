import Foundation

/// One transaction of the relay's database, on SQLite or on PostgreSQL: the storage boundary
/// the directory, the log, sign-in and the mailboxes are written against. Statements are
/// portable SQL with `?` placeholders (the PostgreSQL engine numbers them); every integer is
/// 64-bit, every byte string a blob (BLOB, BYTEA).
///
/// Synchronous on purpose: a transaction runs on a thread of its engine's own (GRDB's writer
/// and reader queues; the PostgreSQL engine's connection threads), never on a request task's,
/// so the Merkle log and the name map compute over it with the same synchronous node sources
/// on both engines.
public protocol StorageTransaction {
    /// Runs one statement; returns how many rows it inserted, updated or deleted.
    @discardableResult
    func execute(_ sql: String, _ arguments: [any StorageArgument]) throws -> Int

    /// Every row `sql` selects.
    func fetchRows(_ sql: String, _ arguments: [any StorageArgument]) throws -> [StorageRow]

    /// Runs several statements separated by semicolons, without arguments (a migration).
    func executeScript(_ sql: String) throws

    /// Runs `body` in a savepoint: what it wrote stays if it returns and is undone if it throws
    /// (the error is rethrown), while the transaction goes on either way.
    func inSavepoint(_ body: () throws -> Void) throws
}

extension StorageTransaction {
    @discardableResult
    public func execute(_ sql: String) throws -> Int {
        try execute(sql, [])
    }

    public func fetchRows(_ sql: String) throws -> [StorageRow] {
        try fetchRows(sql, [])
    }

    /// The first row `sql` selects, if any.
    public func fetchRow(_ sql: String, _ arguments: [any StorageArgument] = []) throws -> StorageRow? {
        try fetchRows(sql, arguments).first
    }

    /// The first column of the first row, nil when there is no row or it is NULL.
    public func fetchOne<Value: StorageColumn>(_ type: Value.Type, _ sql: String, _ arguments: [any StorageArgument] = []) throws -> Value? {
        guard let row = try fetchRow(sql, arguments), let value = row.values.first, value != .null else { return nil }
        return try Value(storageValue: value, column: row.columns[0])
    }

    /// The first column of every row.
    public func fetchAll<Value: StorageColumn>(_ type: Value.Type, _ sql: String, _ arguments: [any StorageArgument] = []) throws -> [Value] {
        try fetchRows(sql, arguments).map { row in
            guard let value = row.values.first else { throw StorageRow.missing(column: "the first column") }
            return try Value(storageValue: value, column: row.columns[0])
        }
    }
}

/// A value stored in, or bound to, a statement.
public enum StorageValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case text(String)
    case blob(Data)
}

/// What can be bound to a `?` of a statement.
public protocol StorageArgument {
    var storageValue: StorageValue { get }
}

extension Int64: StorageArgument {
    public var storageValue: StorageValue { .integer(self) }
}

extension Int: StorageArgument {
    public var storageValue: StorageValue { .integer(Int64(self)) }
}

extension String: StorageArgument {
    public var storageValue: StorageValue { .text(self) }
}

extension Data: StorageArgument {
    public var storageValue: StorageValue { .blob(self) }
}

extension Optional: StorageArgument where Wrapped: StorageArgument {
    public var storageValue: StorageValue { self?.storageValue ?? .null }
}

/// What a column can be read as.
public protocol StorageColumn {
    init(storageValue: StorageValue, column: String) throws
}

extension Int64: StorageColumn {
    public init(storageValue: StorageValue, column: String) throws {
        guard case .integer(let value) = storageValue else { throw StorageRow.mismatch(column: column, expected: "an integer", found: storageValue) }
        self = value
    }
}

extension Int: StorageColumn {
    public init(storageValue: StorageValue, column: String) throws {
        self = Int(try Int64(storageValue: storageValue, column: column))
    }
}

extension Bool: StorageColumn {
    /// SQLite answers `EXISTS` with 0 or 1; PostgreSQL's boolean arrives as the same.
    public init(storageValue: StorageValue, column: String) throws {
        self = try Int64(storageValue: storageValue, column: column) != 0
    }
}

extension String: StorageColumn {
    public init(storageValue: StorageValue, column: String) throws {
        guard case .text(let value) = storageValue else { throw StorageRow.mismatch(column: column, expected: "text", found: storageValue) }
        self = value
    }
}

extension Data: StorageColumn {
    public init(storageValue: StorageValue, column: String) throws {
        guard case .blob(let value) = storageValue else { throw StorageRow.mismatch(column: column, expected: "a blob", found: storageValue) }
        self = value
    }
}

/// One selected row: its columns by name.
public struct StorageRow: Sendable {
    public let columns: [String]
    public let values: [StorageValue]

    public init(columns: [String], values: [StorageValue]) {
        precondition(columns.count == values.count, "a row has a value per column")
        self.columns = columns
        self.values = values
    }

    /// The value of `column`, which must not be NULL.
    public func get<Value: StorageColumn>(_ column: String) throws -> Value {
        guard let value = try optional(column) as Value? else { throw Self.mismatch(column: column, expected: "a value", found: .null) }
        return value
    }

    /// The value of `column`, nil when it is NULL.
    public func get<Value: StorageColumn>(_ column: String) throws -> Value? {
        try optional(column)
    }

    private func optional<Value: StorageColumn>(_ column: String) throws -> Value? {
        guard let index = columns.firstIndex(of: column) else { throw Self.missing(column: column) }
        if values[index] == .null { return nil }
        return try Value(storageValue: values[index], column: column)
    }

    static func missing(column: String) -> RelayError {
        RelayError(.storage, "a query selected no column \(column)")
    }

    static func mismatch(column: String, expected: String, found: StorageValue) -> RelayError {
        let kind = switch found {
        case .null: "NULL"
        case .integer: "an integer"
        case .text: "text"
        case .blob: "a blob"
        }
        return RelayError(.storage, "the database holds \(kind) in \(column), not \(expected): the database is damaged")
    }
}
