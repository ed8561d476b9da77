import Foundation
import GRDB
import SecmailCrypto
import SecmailFormat
import SecmailMigrations

/// The relay's SQLite database (system libsqlite3 through GRDB): WAL mode, synchronous=FULL on
/// every connection so that a commit is on disk before the relay acknowledges anything, migrated
/// on open.
public final class RelayDatabase: Sendable {
    let pool: DatabasePool
    public let path: String

    /// `PRAGMA synchronous` value FULL: in WAL mode the WAL is synced at every commit (NORMAL
    /// syncs it only at checkpoints, so the last commits may be lost on power failure).
    static let fullSynchronous = 2

    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    public init(path: String) throws {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            try Self.setFullSynchronous(db)
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            // DatabasePool switches its writer to WAL *after* prepareDatabase, and that step sets
            // synchronous=NORMAL on the writer (GRDB 7, Database.setUpWALMode). Only the writer
            // commits, so it is set back here, and both kinds of connection are checked.
            try pool.writeWithoutTransaction(Self.setFullSynchronous)
        } catch let error as DatabaseError {
            throw RelayError(.storage, "cannot open the database \(path)", sqliteMessage: error.message)
        }
        self.path = path
        try assertFullSynchronous()
        // Only the relay reads its database (SQLite gives the -wal and -shm files the same mode).
        try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        try SchemaMigrator.migrate(pool, migrations: SchemaMigrations.all)
    }

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
        let writer = try write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
        let reader = try read { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
        guard writer == Self.fullSynchronous, reader == Self.fullSynchronous else {
            throw RelayError(.storage, "the database \(path) runs with synchronous=\(writer ?? -1) on its writer and \(reader ?? -1) on its readers, not FULL (2): commits could be acknowledged before they are on disk")
        }
    }

    /// Runs `body` in a write transaction on GRDB's writer queue, suspending (never blocking) the
    /// calling task; SQLite errors become `RelayError`s. What request handlers use.
    public func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.write(body)
        } catch let error as DatabaseError {
            throw RelayError(.storage, "a database write failed", sqliteMessage: error.message)
        }
    }

    /// Runs `body` on a consistent snapshot on a reader queue, suspending the calling task.
    public func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch let error as DatabaseError {
            throw RelayError(.storage, "a database read failed", sqliteMessage: error.message)
        }
    }

    /// Runs `body` in a write transaction, blocking the calling thread: for start-up,
    /// administrative commands and tools, never for request handlers.
    public func write<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.write(body)
        } catch let error as DatabaseError {
            throw RelayError(.storage, "a database write failed", sqliteMessage: error.message)
        }
    }

    /// Runs `body` on a consistent snapshot, blocking the calling thread (see the blocking `write`).
    public func read<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.read(body)
        } catch let error as DatabaseError {
            throw RelayError(.storage, "a database read failed", sqliteMessage: error.message)
        }
    }
}

/// Applies `SchemaMigrations` in order, once each, recording each one's checksum; refuses a
/// database whose recorded history is not a prefix of this build's (an edited migration, or a
/// database written by a newer relay).
enum SchemaMigrator {
    static func migrate(_ writer: DatabaseWriter, migrations: [SchemaMigrations.Migration]) throws {
        do {
            try writer.write { db in
                try db.execute(sql: """
                    CREATE TABLE IF NOT EXISTS schema_migrations (
                        name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT
                    """)
                let applied = try Row.fetchAll(db, sql: "SELECT name, sha256 FROM schema_migrations ORDER BY name")
                for (position, row) in applied.enumerated() {
                    let name: String = row["name"], sha256: String = row["sha256"]
                    guard position < migrations.count, migrations[position].name == name else {
                        throw RelayError(.schemaMismatch, "the database has migration \(name), which this relay does not know: it was written by a newer or different relay")
                    }
                    guard migrations[position].sha256 == sha256 else {
                        throw RelayError(.schemaMismatch, "migration \(name) in the database differs from the one in this relay (checksum \(sha256.prefix(12))… vs \(migrations[position].sha256.prefix(12))…); shipped migrations must never change")
                    }
                }
                for migration in migrations.dropFirst(applied.count) {
                    let actual = hexEncoded(SHA256.hash(Array(migration.sql.utf8)))
                    guard actual == migration.sha256 else {
                        throw RelayError(.schemaMismatch, "migration \(migration.name) does not match its recorded checksum; shipped migrations must never change")
                    }
                    try db.execute(sql: migration.sql)
                    try db.execute(sql: "INSERT INTO schema_migrations (name, sha256, applied_at) VALUES (?, ?, ?)",
                                   arguments: [migration.name, migration.sha256, Int64(Date().timeIntervalSince1970)])
                }
            }
        } catch let error as DatabaseError {
            throw RelayError(.storage, "migrating the database failed", sqliteMessage: error.message)
        }
    }
}
