import Foundation
import SecmailFormat

/// The name map's interior nodes in `map_nodes`, read and written within one transaction; read
/// through `cache` when the transaction only reads committed data of a log of `treeSize` leaves.
public struct DatabaseMapNodes: NameMapNodeStore {
    let db: any StorageTransaction
    var cache: (nodes: MapNodeCache, treeSize: UInt64)?

    public init(db: any StorageTransaction) {
        self.db = db
    }

    init(db: any StorageTransaction, cache: MapNodeCache, treeSize: UInt64) {
        self.db = db
        self.cache = (cache, treeSize)
    }

    public func node(depth: Int, prefix: [UInt8]) throws -> NameMapNode? {
        if let cache, let node = cache.nodes.node(depth: depth, prefix: prefix, treeSize: cache.treeSize) { return node }
        guard let data = try db.fetchOne(Data.self, "SELECT node FROM map_nodes WHERE depth = ? AND prefix = ?", [depth, Data(prefix)]) else {
            return nil
        }
        let node: NameMapNode
        do {
            node = try NameMapNode(encoded: Array(data))
        } catch {
            throw RelayError(.storage, "the name map's node at depth \(depth) is damaged")
        }
        if let cache { cache.nodes.keep(node, depth: depth, prefix: prefix, treeSize: cache.treeSize) }
        return node
    }

    public func setNode(_ node: NameMapNode, depth: Int, prefix: [UInt8]) throws {
        try db.execute("""
            INSERT INTO map_nodes (depth, prefix, node) VALUES (?, ?, ?)
            ON CONFLICT (depth, prefix) DO UPDATE SET node = excluded.node
            """, [depth, Data(prefix), Data(node.encoded)])
    }
}

/// Name map nodes as read at one log size. The map after N leaves is fixed (a function of those
/// leaves), so a node read in a transaction that saw N leaves is valid for every reader that
/// sees N; the cache empties itself when a reader sees another size, or when full.
public final class MapNodeCache: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private struct Address: Hashable {
        let depth: Int
        let prefix: [UInt8]
    }

    private let lock = NSLock()
    private var treeSize: UInt64 = 0
    private var nodes: [Address: NameMapNode] = [:]
    private let capacity: Int

    /// At most `capacity` nodes (about 200 bytes each).
    public init(capacity: Int = 50_000) {
        self.capacity = capacity
    }

    func node(depth: Int, prefix: [UInt8], treeSize: UInt64) -> NameMapNode? {
        lock.withLock { treeSize == self.treeSize ? nodes[Address(depth: depth, prefix: prefix)] : nil }
    }

    func keep(_ node: NameMapNode, depth: Int, prefix: [UInt8], treeSize: UInt64) {
        lock.withLock {
            if treeSize != self.treeSize {
                // Only a newer reader moves the cache on; an older one's nodes are not kept.
                guard treeSize > self.treeSize else { return }
                self.treeSize = treeSize
                nodes.removeAll(keepingCapacity: true)
            }
            if nodes.count >= capacity { nodes.removeAll(keepingCapacity: true) }
            nodes[Address(depth: depth, prefix: prefix)] = node
        }
    }
}
