import Foundation
import GRDB
import SecmailCrypto

/// The embedded engine: one SQLite file (system libsqlite3 through GRDB) in WAL mode, with
/// synchronous=FULL on every connection so that a commit is on disk before the relay
/// acknowledges anything. One writer at a time (GRDB's writer queue), readers on snapshots.
final class SQLiteEngine: StorageEngine {
    let pool: DatabasePool
    let path: String

    /// `PRAGMA synchronous` value FULL: in WAL mode the WAL is synced at every commit (NORMAL
    /// syncs it only at checkpoints, so the last commits may be lost on power failure).
    static let fullSynchronous = 2

    /// Opens (creating if needed) the database at `path`; `RelayDatabase` migrates it.
    init(path: String) throws {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            try Self.setFullSynchronous(db)
            // A deposit's savepoint journals the pages it changes; past 64 KiB SQLite would spill
            // that journal to a temporary file in /var/tmp, outside the data directory, and write
            // every further page there as well.
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            // DatabasePool switches its writer to WAL *after* prepareDatabase, and that step sets
            // synchronous=NORMAL on the writer (GRDB 7, Database.setUpWALMode). Only the writer
            // commits, so it is set back here, and both kinds of connection are checked.
            try pool.writeWithoutTransaction(Self.setFullSynchronous)
        } catch let error as DatabaseError {
            throw RelayError(.storage, "cannot open the database \(path)", databaseMessage: error.message)
        }
        self.path = path
        try assertFullSynchronous()
        // Only the relay reads its database (SQLite gives the -wal and -shm files the same mode).
        try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
    }

    /// The table of applied migrations (STRICT, as every table of this engine).
    static let historyTable = """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT
        """

    /// Sets synchronous=FULL on one connection and checks that SQLite took it.
    private static func setFullSynchronous(_ db: Database) throws {
        try db.execute(sql: "PRAGMA synchronous = FULL")
        let value = try Int.fetchOne(db, sql: "PRAGMA synchronous")
        guard value == fullSynchronous else {
            throw RelayError(.storage, "SQLite kept synchronous=\(value ?? -1) after PRAGMA synchronous = FULL")
        }
    }

    /// Refuses to run with a connection that could acknowledge a commit before it is on disk.
    private func assertFullSynchronous() throws {
        let writer = try write { db in try db.fetchOne(Int.self, "PRAGMA synchronous") }
        let reader = try read { db in try db.fetchOne(Int.self, "PRAGMA synchronous") }
        guard writer == Self.fullSynchronous, reader == Self.fullSynchronous else {
            throw RelayError(.storage, "the database \(path) runs with synchronous=\(writer ?? -1) on its writer and \(reader ?? -1) on its readers, not FULL (2): commits could be acknowledged before they are on disk")
        }
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        try await Self.mapped("write") { try await pool.write { db in try body(SQLiteTransaction(db: db)) } }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        try await Self.mapped("read") { try await pool.read { db in try body(SQLiteTransaction(db: db)) } }
    }

    func write<T>(_ body: (any StorageTransaction) throws -> T) throws -> T {
        do {
            return try pool.write { db in try body(SQLiteTransaction(db: db)) }
        } catch let error as DatabaseError {
            throw Self.storageError("write", error)
        }
    }

    func read<T>(_ body: (any StorageTransaction) throws -> T) throws -> T {
        do {
            return try pool.read { db in try body(SQLiteTransaction(db: db)) }
        } catch let error as DatabaseError {
            throw Self.storageError("read", error)
        }
    }

    private static func mapped<T>(_ kind: String, _ work: () async throws -> T) async throws -> T {
        do {
            return try await work()
        } catch let error as DatabaseError {
            throw storageError(kind, error)
        }
    }

    private static func storageError(_ kind: String, _ error: DatabaseError) -> RelayError {
        RelayError(error.resultCode == .SQLITE_FULL ? .storageFull : .storage, "a database \(kind) failed", databaseMessage: error.message)
    }
}

/// A GRDB transaction as a `StorageTransaction`. Every statement is a cached one: a map update
/// or proof runs the same few statements once per level, and preparing them anew each time
/// cost more than the rest of the work.
struct SQLiteTransaction: StorageTransaction {
    let db: Database

    func execute(_ sql: String, _ arguments: [any StorageArgument]) throws -> Int {
        try db.cachedStatement(sql: sql).execute(arguments: Self.arguments(arguments))
        return db.changesCount
    }

    func fetchRows(_ sql: String, _ arguments: [any StorageArgument]) throws -> [StorageRow] {
        let statement = try db.cachedStatement(sql: sql)
        let columns = statement.columnNames
        return try Row.fetchAll(statement, arguments: Self.arguments(arguments)).map { row in
            StorageRow(columns: columns, values: (0..<columns.count).map { index in
                switch row[index] as DatabaseValue {
                case let value where value.isNull: .null
                case let value:
                    switch value.storage {
                    case .int64(let integer): .integer(integer)
                    case .double(let double): .integer(Int64(double))
                    case .string(let text): .text(text)
                    case .blob(let data): .blob(data)
                    case .null: .null
                    }
                }
            })
        }
    }

    func executeScript(_ sql: String) throws {
        try db.execute(sql: sql)
    }

    func inSavepoint(_ body: () throws -> Void) throws {
        try db.inSavepoint {
            try body()
            return .commit
        }
    }

    private static func arguments(_ values: [any StorageArgument]) -> StatementArguments {
        StatementArguments(values.map { value -> (any DatabaseValueConvertible)? in
            switch value.storageValue {
            case .null: nil
            case .integer(let integer): integer
            case .text(let text): text
            case .blob(let data): data
            }
        })
    }
}
