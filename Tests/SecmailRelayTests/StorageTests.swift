import Foundation
import GRDB
import SecmailCrypto
import SecmailFormat
import SecmailMigrations
@testable import SecmailRelay
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

@Suite struct MigrationTests {
    static let migrationsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("migrations", isDirectory: true)

    /// Shipped migrations never change: every file of each engine's folder still has the
    /// checksum recorded when it shipped, the binary embeds exactly that file, and no SQL file is
    /// missing from the list.
    @Test(arguments: ["sqlite", "postgres"])
    func everyMigrationFileMatchesItsShippedChecksumAndIsEmbedded(engine: String) async throws {
        let history = engine == "postgres" ? SchemaMigrations.postgres : SchemaMigrations.sqlite
        let folder = Self.migrationsDirectory.appendingPathComponent(engine, isDirectory: true)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(files == history.map { $0.name + ".sql" })
        for migration in history {
            let bytes = Array(try Data(contentsOf: folder.appendingPathComponent(migration.name + ".sql")))
            #expect(hexString(SHA256.hash(bytes)) == migration.sha256, "\(migration.name) was edited after shipping")
            #expect(Array(migration.sql.utf8) == bytes)
        }
        #expect(history.map(\.name) == history.map(\.name).sorted())
        let stray = try FileManager.default.contentsOfDirectory(atPath: Self.migrationsDirectory.path).filter { $0.hasSuffix(".sql") }
        #expect(stray.isEmpty, "SQL files belong in migrations/sqlite or migrations/postgres: \(stray)")
    }

    @Test func databaseUsesWALWithFullSyncAndMigratesOnce() async throws {
        let directory = try makeTemporaryDirectory("relay-db")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("relay.sqlite").path
        for opening in 0..<2 {
            let database = try RelayDatabase(path: path)
            // The first opening creates every table; the second has nothing to apply.
            #expect(database.appliedMigrations == (opening == 0 ? SchemaMigrations.sqlite.map(\.name) : []))
            #expect(database.isNew == (opening == 0))
            let (journal, readerSynchronous, applied, hasNodes) = try await database.read { db in
                (try db.fetchOne(String.self, "PRAGMA journal_mode"), try db.fetchOne(Int.self, "PRAGMA synchronous"),
                 try db.fetchOne(Int.self, "SELECT COUNT(*) FROM schema_migrations"),
                 try db.fetchOne(Bool.self, "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'log_nodes')") == true)
            }
            // The writer is the connection whose commits are acknowledged; GRDB's WAL set-up
            // leaves it at NORMAL (1) unless RelayDatabase sets it back.
            let writerSynchronous = try await database.write { db in try db.fetchOne(Int.self, "PRAGMA synchronous") }
            // Savepoint journals stay in memory, never spilled to a file in /var/tmp.
            let writerTempStore = try await database.write { db in try db.fetchOne(Int.self, "PRAGMA temp_store") }
            #expect(writerTempStore == 2)  // MEMORY
            #expect(journal == "wal")
            #expect(writerSynchronous == 2)  // FULL
            #expect(readerSynchronous == 2)
            #expect(applied == SchemaMigrations.sqlite.count)
            #expect(hasNodes)
        }
    }

    @Test func anEditedOrUnknownMigrationHistoryIsRefused() async throws {
        let directory = try makeTemporaryDirectory("relay-db")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("relay.sqlite").path
        let database = try RelayDatabase(path: path)
        try await database.write { db in try db.execute("UPDATE schema_migrations SET sha256 = 'edited'") }
        let edited = #expect(throws: RelayError.self) { try RelayDatabase(path: path) }
        #expect(edited?.code == .schemaMismatch)
        #expect(edited?.reason.contains("must never change") == true)

        try await database.write { db in
            for migration in SchemaMigrations.sqlite {
                try db.execute("UPDATE schema_migrations SET sha256 = ? WHERE name = ?", [migration.sha256, migration.name])
            }
            try db.execute("INSERT INTO schema_migrations VALUES ('V999__future', 'x', 0)")
        }
        let newer = #expect(throws: RelayError.self) { try RelayDatabase(path: path) }
        #expect(newer?.reason.contains("newer or different relay") == true)
    }

    /// What an older relay left at `path`: a database migrated up to, not including, `migration`,
    /// then filled by `fill`.
    func olderDatabase(before migration: String, at path: String, _ fill: @escaping @Sendable (SQLiteTransaction) throws -> Void) async throws {
        let history = Array(SchemaMigrations.sqlite.prefix { $0.name != migration })
        #expect(history.count < SchemaMigrations.sqlite.count, "no migration named \(migration)")
        let database = try DatabaseQueue(path: path)
        try await database.write { db in
            let transaction = SQLiteTransaction(db: db)
            try SchemaMigrator.migrate(transaction, migrations: history, historyTable: SQLiteEngine.historyTable)
            try fill(transaction)
        }
        try database.close()
    }

    /// V009 fills the per-sender usage of existing mailboxes from their deliveries.
    @Test func senderUsageIsBackfilledFromTheMailboxesOnUpgrade() async throws {
        let directory = try makeTemporaryDirectory("relay-db")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("relay.sqlite").path
        try await olderDatabase(before: "V009__sender_usage", at: path) { transaction in
            for (index, (sender, size, recipients)) in [("alice", 100, ["bob", "carol"]), ("alice", 50, ["bob"]), ("dora", 7, ["bob"])].enumerated() {
                let envelopeID = "envelope-\(index)", messageID = Data(repeating: UInt8(index), count: 16)
                _ = try transaction.execute("INSERT INTO envelopes (envelope_id, message_id, sender, size, sha256, received_at) VALUES (?, ?, ?, ?, ?, 0)", [envelopeID, messageID, sender, size, Data(repeating: 0, count: 32)])
                for recipient in recipients {
                    _ = try transaction.execute("INSERT INTO deliveries (recipient, message_id, envelope_id) VALUES (?, ?, ?)", [recipient, messageID, envelopeID])
                }
            }
        }
        let upgraded = try RelayDatabase(path: path)
        let usage = try await upgraded.read { db in
            try db.fetchRows("SELECT recipient, sender, bytes FROM sender_usage ORDER BY recipient, sender")
                .map { "\(try $0.get("recipient") as String) \(try $0.get("sender") as String) \(try $0.get("bytes") as Int)" }
        }
        #expect(usage == ["bob alice 150", "bob dora 7", "carol alice 100"])
    }

    /// V010 drops the envelopes' unused sha256 column from a database that has mail, keeping
    /// every row, and the upgraded relay serves and accepts mail as before.
    @Test func theEnvelopeHashColumnIsDroppedOnUpgradeKeepingTheMail() async throws {
        let directory = try makeTemporaryDirectory("relay-db")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("relay.sqlite").path
        try await olderDatabase(before: "V010__envelope_hash_dropped", at: path) { transaction in
            for index in 0..<3 {
                _ = try transaction.execute("""
                    INSERT INTO envelopes (envelope_id, message_id, sender, size, sha256, received_at, inline_data) VALUES (?, ?, 'alice', 3, ?, ?, ?)
                    """, ["envelope-\(index)", Data(repeating: UInt8(index), count: 16), Data(repeating: 7, count: 32), index, Data([1, 2, UInt8(index)])])
            }
        }
        let upgraded = try RelayDatabase(path: path)
        #expect(upgraded.appliedMigrations == ["V010__envelope_hash_dropped"] && !upgraded.isNew)
        let (columns, rows) = try await upgraded.read { db in
            (try db.fetchAll(String.self, "SELECT name FROM pragma_table_info('envelopes') ORDER BY cid"),
             try db.fetchRows("SELECT envelope_id, received_at, inline_data FROM envelopes ORDER BY envelope_id")
                .map { "\(try $0.get("envelope_id") as String) \(try $0.get("received_at") as Int) \(Array(try $0.get("inline_data") as Data))" })
        }
        #expect(columns == ["envelope_id", "message_id", "sender", "size", "received_at", "inline_data"])
        #expect(rows == ["envelope-0 0 [1, 2, 0]", "envelope-1 1 [1, 2, 1]", "envelope-2 2 [1, 2, 2]"])
    }
}

@Suite struct LogStoreTests {
    @Test(arguments: EngineUnderTest.available)
    func storedLogMatchesTheInMemoryTreeAndSurvivesARestart(engine: EngineUnderTest) async throws {
        let directory = try makeTemporaryDirectory("relay-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        let open = try await engine.opener(in: directory)
        let leaves = (0..<100).map { Array("leaf \($0)".utf8) }
        var memory = MerkleTree()
        do {
            let database = try open()
            defer { database.close() }
            let log = LogStore(database: database)
            for (index, leaf) in leaves.prefix(70).enumerated() {
                #expect(try await log.append(leaf) == UInt64(index))
                memory.append(leafHash: MerkleHash.leaf(leaf))
            }
            #expect(try await log.root() == memory.root())
        }
        // Reopened: the same tree, and appends continue from it.
        let log = LogStore(database: try open())
        #expect(try await log.size() == 70)
        #expect(try await log.root() == memory.root())
        for leaf in leaves.dropFirst(70) {
            try await log.append(leaf)
            memory.append(leafHash: MerkleHash.leaf(leaf))
        }
        #expect(try await log.leaf(at: 42) == leaves[42])
        for size in stride(from: 1, through: 100, by: 7).map(UInt64.init) {
            let root = try await log.root(size: size)
            #expect(root == (try memory.root(size: size)))
            for index in stride(from: 0, to: size, by: 5) {
                let proof = try await log.inclusionProof(index: index, size: size)
                #expect(proof == (try memory.inclusionProof(index: index, size: size)))
                #expect(MerkleProof.verifyInclusion(leafHash: MerkleHash.leaf(leaves[Int(index)]), index: index, size: size, proof: proof, root: root))
            }
            let consistency = try await log.consistencyProof(from: size, to: 100)
            #expect(MerkleProof.verifyConsistency(oldSize: size, newSize: 100, oldRoot: root, newRoot: try await log.root(), proof: consistency))
        }
        await #expect(throws: RelayError.self) { try await log.leaf(at: 100) }
        await #expect(throws: FormatError.self) { try await log.inclusionProof(index: 100, size: 100) }
    }

    @Test(arguments: EngineUnderTest.available)
    func aFailedTransactionAppendsNothing(engine: EngineUnderTest) async throws {
        let directory = try makeTemporaryDirectory("relay-log")
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try await engine.database(in: directory)
        let log = LogStore(database: database)
        try await log.append(Array("first".utf8))
        struct Abort: Error {}
        await #expect(throws: Abort.self) {
            try await database.write { db in
                _ = try LogStore.append(Array("second".utf8), time: 0, in: db)
                throw Abort()
            }
        }
        #expect(try await log.size() == 1)
        #expect(try await log.root() == MerkleTree(leafHashes: [MerkleHash.leaf(Array("first".utf8))]).root())
    }
}
