import Foundation
import SecmailFormat

/// The transparency log in the relay database: leaves in order, and the hash of every complete
/// subtree (`log_nodes`), so roots and proofs for any size are read, never recomputed from all
/// leaves. Appends happen inside the caller's write transaction, so a registration and its log
/// leaf commit together or not at all.
public struct LogStore: Sendable {
    let database: RelayDatabase
    /// Committed nodes that proofs read again and again (shared with `Directory`).
    public let nodeCache: LogNodeCache

    public init(database: RelayDatabase, nodeCache: LogNodeCache = LogNodeCache()) {
        self.database = database
        self.nodeCache = nodeCache
    }

    /// Appends `leafData` in the transaction `db`; returns its index.
    public static func append(_ leafData: [UInt8], time: Int64, in db: any StorageTransaction) throws -> UInt64 {
        let size = try currentSize(db)
        let computation = MerkleComputation(source: DatabaseNodes(db: db), size: size)
        for node in try computation.nodesCompleted(byAppending: MerkleHash.leaf(leafData)) {
            try db.execute("INSERT INTO log_nodes (level, node_index, hash) VALUES (?, ?, ?)", [node.level, Int64(node.index), Data(node.hash)])
        }
        try db.execute("INSERT INTO log_leaves (leaf_index, leaf_data, added_at) VALUES (?, ?, ?)", [Int64(size), Data(leafData), time])
        return size
    }

    /// Appends one leaf in its own transaction.
    @discardableResult
    public func append(_ leafData: [UInt8], time: Int64 = Int64(Date().timeIntervalSince1970)) async throws -> UInt64 {
        try await database.write { db in try Self.append(leafData, time: time, in: db) }
    }

    /// Number of leaves.
    public func size() async throws -> UInt64 {
        try await database.read { db in try Self.currentSize(db) }
    }

    /// The data of leaf `index`.
    public func leaf(at index: UInt64) async throws -> [UInt8] {
        try await database.read { db in
            guard let data = try db.logLeafData(at: index) else {
                throw RelayError(.notFound, "the log has no leaf \(index)")
            }
            return Array(data)
        }
    }

    /// The data of leaves `start ..< end` (clipped to the log's size), in order.
    public func leaves(start: UInt64, end: UInt64) async throws -> [[UInt8]] {
        try await database.read { db in
            try db.fetchAll(Data.self, "SELECT leaf_data FROM log_leaves WHERE leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index", [Int64(clamping: start), Int64(clamping: end)]).map { Array($0) }
        }
    }

    /// The current size and root, read together.
    public func head() async throws -> (size: UInt64, rootHash: [UInt8]) {
        try await withComputation { ($0.size, try $0.root()) }
    }

    /// The root of the first `size` leaves (the current size when nil).
    public func root(size: UInt64? = nil) async throws -> [UInt8] {
        try await withComputation { try $0.root(size: size) }
    }

    public func inclusionProof(index: UInt64, size: UInt64) async throws -> [[UInt8]] {
        try await withComputation { try $0.inclusionProof(index: index, size: size) }
    }

    public func consistencyProof(from oldSize: UInt64, to newSize: UInt64) async throws -> [[UInt8]] {
        try await withComputation { try $0.consistencyProof(from: oldSize, to: newSize) }
    }

    private func withComputation<T: Sendable>(_ body: @escaping @Sendable (MerkleComputation<DatabaseNodes>) throws -> T) async throws -> T {
        let cache = nodeCache
        return try await database.read { db in
            try body(MerkleComputation(source: DatabaseNodes(db: db, cache: cache), size: Self.currentSize(db)))
        }
    }

    /// Leaves are numbered 0 ..< size without gaps, so the size is the largest index plus one:
    /// a single b-tree lookup, where COUNT(*) would scan every row.
    public static func currentSize(_ db: any StorageTransaction) throws -> UInt64 {
        UInt64(try db.fetchOne(Int64.self, "SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM log_leaves") ?? 0)
    }
}

/// Merkle nodes read from `log_nodes` within one transaction; through `cache` when the
/// transaction only reads committed data (a write transaction may roll back what it read).
struct DatabaseNodes: MerkleNodeSource {
    let db: any StorageTransaction
    var cache: LogNodeCache?

    func node(level: Int, index: UInt64) throws -> [UInt8] {
        if let hash = cache?.node(level: level, index: index) { return hash }
        guard let hash = try db.fetchOne(Data.self, "SELECT hash FROM log_nodes WHERE level = ? AND node_index = ?", [level, Int64(index)]) else {
            throw RelayError(.storage, "the log is missing its node at level \(level), index \(index): the database is damaged")
        }
        cache?.keep(Array(hash), level: level, index: index)
        return Array(hash)
    }
}

/// Committed log nodes in memory. A node, once committed, never changes (it hashes a complete
/// subtree of an append-only log), so a cached node is never stale. Bounded: when full it starts
/// again empty, and the hot nodes (the upper levels every proof reads) come back first.
public final class LogNodeCache: Sendable {
    private struct Key: Hashable {
        let level: Int
        let index: UInt64
    }

    private let nodes: BoundedCache<Key, [UInt8]>

    /// At most `capacity` nodes (about 100 bytes each).
    public init(capacity: Int = 200_000) {
        nodes = BoundedCache(capacity: capacity)
    }

    func node(level: Int, index: UInt64) -> [UInt8]? {
        nodes[Key(level: level, index: index)]
    }

    func keep(_ hash: [UInt8], level: Int, index: UInt64) {
        nodes.keep(hash, for: Key(level: level, index: index))
    }
}
