import Foundation
import GRDB
import SecmailFormat

/// The name map's interior nodes in `map_nodes`, read and written within one transaction.
public struct DatabaseMapNodes: NameMapNodeStore {
    let db: Database

    public init(db: Database) {
        self.db = db
    }

    // Cached statements: a map update or proof runs these once per level (about 20 times), and
    // preparing them anew each time cost more than the rest of the work.
    public func node(depth: Int, prefix: [UInt8]) throws -> NameMapNode? {
        let statement = try db.cachedStatement(sql: "SELECT node FROM map_nodes WHERE depth = ? AND prefix = ?")
        guard let data = try Data.fetchOne(statement, arguments: [depth, Data(prefix)]) else { return nil }
        do {
            return try NameMapNode(encoded: Array(data))
        } catch {
            throw RelayError(.storage, "the name map's node at depth \(depth) is damaged")
        }
    }

    public func setNode(_ node: NameMapNode, depth: Int, prefix: [UInt8]) throws {
        try db.cachedStatement(sql: """
            INSERT INTO map_nodes (depth, prefix, node) VALUES (?, ?, ?)
            ON CONFLICT (depth, prefix) DO UPDATE SET node = excluded.node
            """).execute(arguments: [depth, Data(prefix), Data(node.encoded)])
    }
}
