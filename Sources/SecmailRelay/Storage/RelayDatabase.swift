import Foundation
import SecmailCrypto
import SecmailFormat
import SecmailMigrations

/// The relay's database: SQLite in the data directory (the default, one relay process), or
/// PostgreSQL shared by several relay processes. Either way migrated on open, and a write is
/// acknowledged only once it is durable.
public final class RelayDatabase: Sendable {
    let engine: any StorageEngine
    /// Which engine this is.
    public let kind: Kind
    /// The SQLite file's path, or the PostgreSQL server and database (never a password).
    public let location: String
    /// The migrations this opening applied, oldest first: all of them for a new database, the
    /// newer ones for a database an older relay left, none otherwise (or when not `migrating`).
    public let appliedMigrations: [String]
    /// Whether this opening created the schema (a new database: every migration applied).
    public let isNew: Bool

    /// Opens (creating if needed) the SQLite database at `path` and applies pending migrations;
    /// with `migrating` false, refuses one that has migrations pending instead (`SchemaMigrator.check`).
    public convenience init(path: String, migrating: Bool = true) throws {
        try self.init(engine: SQLiteEngine(path: path), kind: .sqlite, location: path, migrations: SchemaMigrations.sqlite,
                      historyTable: SQLiteEngine.historyTable, migrating: migrating)
    }

    /// Connects to the PostgreSQL database `address` names and applies pending migrations (or,
    /// with `migrating` false, refuses a database that has some).
    public convenience init(postgres address: PostgresAddress, migrating: Bool = true) throws {
        try self.init(engine: PostgresEngine(address: address), kind: .postgres, location: address.description,
                      migrations: SchemaMigrations.postgres, historyTable: PostgresEngine.historyTable, migrating: migrating)
    }

    private init(engine: any StorageEngine, kind: Kind, location: String, migrations: [SchemaMigrations.Migration],
                 historyTable: String, migrating: Bool) throws {
        do {
            if migrating {
                appliedMigrations = try engine.write { db in try SchemaMigrator.migrate(db, migrations: migrations, historyTable: historyTable) }
            } else {
                try engine.read { db in try SchemaMigrator.check(db, migrations: migrations) }
                appliedMigrations = []
            }
        } catch {
            engine.close()
            throw error
        }
        isNew = appliedMigrations.count == migrations.count
        self.engine = engine
        self.kind = kind
        self.location = location
    }

    public enum Kind: String, Sendable {
        /// One file in the data directory, one relay process; large envelopes are files beside it.
        case sqlite
        /// A server shared by any number of relay processes; every envelope's bytes are in it.
        case postgres
    }

    /// The SQLite engine, for what only it can do (the online backup).
    var sqlite: SQLiteEngine? { engine as? SQLiteEngine }

    /// Runs `body` in a write transaction on the engine's own threads, suspending (never
    /// blocking) the calling task; writes of every relay process sharing the database run one at
    /// a time. Database errors become `RelayError`s. What request handlers use.
    @discardableResult
    public func write<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        try await engine.write(body)
    }

    /// Runs `body` on a consistent snapshot, suspending the calling task.
    public func read<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        try await engine.read(body)
    }

    /// Runs `body` in a write transaction, blocking the calling thread: for start-up,
    /// administrative commands and tools, never for request handlers.
    @discardableResult
    public func write<T>(_ body: (any StorageTransaction) throws -> T) throws -> T {
        try engine.write(body)
    }

    /// Runs `body` on a consistent snapshot, blocking the calling thread (see the blocking `write`).
    public func read<T>(_ body: (any StorageTransaction) throws -> T) throws -> T {
        try engine.read(body)
    }

    /// Closes the engine's connections (PostgreSQL); SQLite's close with the last reference.
    public func close() {
        engine.close()
    }
}

/// What `RelayDatabase` runs on: transactions on the engine's own threads.
protocol StorageEngine: Sendable {
    func write<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T
    func read<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T
    func write<T>(_ body: (any StorageTransaction) throws -> T) throws -> T
    func read<T>(_ body: (any StorageTransaction) throws -> T) throws -> T
    func close()
}

extension StorageEngine {
    func close() {}
}

/// Applies an engine's migrations in order, once each, recording each one's checksum; refuses a
/// database whose recorded history is not a prefix of this build's (an edited migration, or a
/// database written by a newer relay).
enum SchemaMigrator {
    /// Returns the names of the migrations it applied.
    @discardableResult
    static func migrate(_ db: any StorageTransaction, migrations: [SchemaMigrations.Migration], historyTable: String) throws -> [String] {
        try db.executeScript(historyTable)
        let applied = try checkedHistory(db, migrations: migrations)
        let pending = migrations.dropFirst(applied)
        for migration in pending {
            let actual = hexEncoded(SHA256.hash(Array(migration.sql.utf8)))
            guard actual == migration.sha256 else {
                throw RelayError(.schemaMismatch, "migration \(migration.name) does not match its recorded checksum; shipped migrations must never change")
            }
            try db.executeScript(migration.sql)
            try db.execute("INSERT INTO schema_migrations (name, sha256, applied_at) VALUES (?, ?, ?)",
                           [migration.name, migration.sha256, Int64(Date().timeIntervalSince1970)])
        }
        return pending.map(\.name)
    }

    /// Checks, changing nothing, that the database has exactly this build's migrations: for a tool
    /// that reads a database a relay serves (`relay status`), which must not migrate it under a
    /// relay of an older version.
    static func check(_ db: any StorageTransaction, migrations: [SchemaMigrations.Migration]) throws {
        let applied = try checkedHistory(db, migrations: migrations)
        guard applied == migrations.count else {
            throw RelayError(.schemaMismatch, "the database lacks migration \(migrations[applied].name) of this secmail: a relay of an older version serves it; start the relay with this version first (it migrates the database)")
        }
    }

    /// How many of `migrations` the database has applied, after checking that its history is a
    /// prefix of them.
    private static func checkedHistory(_ db: any StorageTransaction, migrations: [SchemaMigrations.Migration]) throws -> Int {
        let applied = try db.fetchRows("SELECT name, sha256 FROM schema_migrations ORDER BY name")
        for (position, row) in applied.enumerated() {
            let name: String = try row.get("name"), sha256: String = try row.get("sha256")
            guard position < migrations.count, migrations[position].name == name else {
                throw RelayError(.schemaMismatch, "the database has migration \(name), which this relay does not know: it was written by a newer or different relay")
            }
            guard migrations[position].sha256 == sha256 else {
                throw RelayError(.schemaMismatch, "migration \(name) in the database differs from the one in this relay (checksum \(sha256.prefix(12))… vs \(migrations[position].sha256.prefix(12))…); shipped migrations must never change")
            }
        }
        return applied.count
    }
}
