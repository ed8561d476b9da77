import Foundation
import GRDB
import SecmailFormat

/// The name map's interior nodes in `map_nodes`, read and written within one transaction.
public struct DatabaseMapNodes: NameMapNodeStore {
    let db: Database

    public init(db: Database) {
        self.db = db
    }

    public func node(depth: Int, prefix: [UInt8]) throws -> NameMapNode? {
        guard let data = try Data.fetchOne(db, sql: "SELECT node FROM map_nodes WHERE depth = ? AND prefix = ?",
                                           arguments: [depth, Data(prefix)]) else { return nil }
        do {
            return try NameMapNode(encoded: Array(data))
        } catch {
            throw RelayError(.storage, "the name map's node at depth \(depth) is damaged")
        }
    }

    public func setNode(_ node: NameMapNode, depth: Int, prefix: [UInt8]) throws {
        try db.execute(sql: """
            INSERT INTO map_nodes (depth, prefix, node) VALUES (?, ?, ?)
            ON CONFLICT (depth, prefix) DO UPDATE SET node = excluded.node
            """, arguments: [depth, Data(prefix), Data(node.encoded)])
    }
}
