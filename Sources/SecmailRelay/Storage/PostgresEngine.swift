import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// PostgreSQL (through PostgresNIO) shared by any number of relay processes. Every write
/// transaction first takes one transaction-scoped advisory lock, so the writes of all relays
/// run one at a time exactly as SQLite's single writer runs them: the log stays one linear
/// sequence, and quota, replay and sign-in checks see every earlier commit. Reads run
/// concurrently on REPEATABLE READ snapshots (a log size and its nodes from one moment).
///
/// Transactions run on threads of the engine's own (`connections` of them, one connection each),
/// which wait for PostgresNIO's answers as GRDB's queues wait for SQLite (an OperationQueue,
/// which runs on Dispatch's shared workers, ran only four at once on two cores):
/// the log and map algorithms compute over one synchronous node source on both engines, and no
/// request task's thread ever waits. A connection that fails is replaced on its next use, so a
/// restarted server is used again as soon as it is back.
final class PostgresEngine: StorageEngine {
    let address: PostgresAddress
    private let slots: ConnectionSlots
    private let threads: NIOThreadPool
    /// The `pg_advisory_xact_lock` key every write takes ("secmail" in ASCII).
    static let writeLockKey: Int64 = 0x7365_636D_6169_6C
    static let historyTable = """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, applied_at BIGINT NOT NULL)
        """

    /// Connects to the database `address` names and checks that its commits are durable;
    /// `RelayDatabase` migrates it.
    init(address: PostgresAddress, connections: Int = 8) throws {
        self.address = address
        slots = ConnectionSlots(address: address, count: connections)
        threads = NIOThreadPool(numberOfThreads: connections)
        threads.start()
        do {
            try assertDurableCommits()
        } catch {
            close()
            throw error
        }
    }

    /// Refuses a server that could acknowledge a commit before it is on disk.
    private func assertDurableCommits() throws {
        let (fsync, synchronousCommit) = try read { db in
            (try db.fetchOne(String.self, "SELECT current_setting('fsync')"),
             try db.fetchOne(String.self, "SELECT current_setting('synchronous_commit')"))
        }
        guard fsync == "on", synchronousCommit != "off" else {
            throw RelayError(.storage, "the PostgreSQL server at \(address) runs with fsync=\(fsync ?? "?") and synchronous_commit=\(synchronousCommit ?? "?"): commits could be acknowledged before they are on disk; set both to on")
        }
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        try await offloaded { try self.write(body) }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        try await offloaded { try self.read(body) }
    }

    func write<T>(_ body: (any StorageTransaction) throws -> T) throws -> T {
        try transaction(begin: "BEGIN; SELECT pg_advisory_xact_lock(\(Self.writeLockKey))", kind: "write", body)
    }

    func read<T>(_ body: (any StorageTransaction) throws -> T) throws -> T {
        try transaction(begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", kind: "read", body)
    }

    func close() {
        slots.closeAll()
        try? threads.syncShutdownGracefully()
    }

    private func offloaded<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            threads.submit { state in
                switch state {
                case .active: continuation.resume(with: Result { try work() })
                case .cancelled: continuation.resume(throwing: RelayError(.storage, "the relay's database connections are closed"))
                }
            }
        }
    }

    private func transaction<T>(begin: String, kind: String, _ body: (any StorageTransaction) throws -> T) throws -> T {
        let slot = slots.take()
        defer { slots.give(back: slot) }
        do {
            let connection = try slots.connection(in: slot)
            let transaction = PostgresTransaction(connection: connection)
            try transaction.executeScript(begin)
            do {
                let result = try body(transaction)
                try transaction.executeScript("COMMIT")
                return result
            } catch {
                try? transaction.executeScript("ROLLBACK")
                throw error
            }
        } catch where PostgresTransaction.isDatabaseError(error) {
            if !PostgresTransaction.leavesConnectionUsable(error) { slots.discard(slot) }
            throw RelayError(PostgresTransaction.meansDiskFull(error) ? .storageFull : .storage, "a database \(kind) failed",
                             databaseMessage: PostgresTransaction.message(of: error, address: address))
        }
    }
}

/// `count` connections, each used by one transaction at a time, opened on first use and again
/// after a failure.
final class ConnectionSlots: @unchecked Sendable {
    // @unchecked: `connections` and `free` are guarded by `lock`; `available` counts `free`.
    private let lock = NSLock()
    private var connections: [GuardedConnection?]
    private var free: [Int]
    private let available: DispatchSemaphore
    private let address: PostgresAddress

    init(address: PostgresAddress, count: Int) {
        self.address = address
        connections = Array(repeating: nil, count: count)
        free = Array(0..<count)
        available = DispatchSemaphore(value: count)
    }

    /// A free slot, waiting (on the engine's threads only) until one is.
    func take() -> Int {
        available.wait()
        return lock.withLock { free.removeLast() }
    }

    func give(back slot: Int) {
        lock.withLock { free.append(slot) }
        available.signal()
    }

    /// The open connection of `slot`, connecting it when it has none or its last one closed.
    func connection(in slot: Int) throws -> GuardedConnection {
        if let connection = lock.withLock({ connections[slot] }), !connection.isClosed { return connection }
        let connection: GuardedConnection
        do {
            connection = try GuardedConnection.open(address, id: slot)
        } catch {
            throw RelayError(.storage, "cannot reach the PostgreSQL database \(address)", databaseMessage: PostgresTransaction.message(of: error, address: address))
        }
        lock.withLock { connections[slot] = connection }
        return connection
    }

    /// Forgets `slot`'s connection after a failure; the next use opens a new one.
    func discard(_ slot: Int) {
        let old = lock.withLock { () -> GuardedConnection? in
            defer { connections[slot] = nil }
            return connections[slot]
        }
        old?.close()
    }

    // PostgresNIO requires every connection to be closed before it is released.
    deinit {
        closeAll()
    }

    func closeAll() {
        let all = lock.withLock { () -> [GuardedConnection] in
            defer { connections = connections.map { _ in nil } }
            return connections.compactMap { $0 }
        }
        for connection in all { connection.close() }
    }
}
