/// The right edge of an append-only Merkle tree: the hashes of its largest complete subtrees
/// (one per set bit of the size, largest first). That is all it takes to compute the root and to
/// keep appending, so a client can follow a log of any length in O(log n) space: after the
/// entries it has walked, the root it computes must equal the root the log signed.
public struct MerkleFrontier: MerkleNodeSource, Sendable, Equatable {
    /// Number of leaves appended so far.
    public private(set) var size: UInt64
    /// Subtree hashes, largest (leftmost) first; `hashes.count == size.nonzeroBitCount`.
    public private(set) var hashes: [[UInt8]]

    /// The frontier of the empty tree.
    public init() {
        size = 0
        hashes = []
    }

    /// A stored frontier; checked for shape, not content (its root is what gets verified).
    public init(size: UInt64, hashes: [[UInt8]]) throws {
        guard hashes.count == size.nonzeroBitCount, hashes.allSatisfy({ $0.count == 32 }) else {
            throw FormatError(.invalidField, "a Merkle frontier of \(size) leaves holds \(size.nonzeroBitCount) hashes of 32 bytes")
        }
        self.size = size
        self.hashes = hashes
    }

    /// Serves the frontier's own subtrees: at each level whose bit is set in `size`, the last
    /// complete subtree of that level.
    public func node(level: Int, index: UInt64) throws -> [UInt8] {
        guard level < 64, size >> UInt64(level) & 1 == 1, index == (size >> UInt64(level)) - 1 else {
            throw FormatError(.invalidField, "a Merkle frontier holds no node at level \(level), index \(index)")
        }
        // Position = how many larger subtrees come before this one.
        return hashes[(size >> UInt64(level + 1)).nonzeroBitCount]
    }

    /// Appends a leaf hash (see `MerkleHash.leaf`).
    public mutating func append(leafHash: [UInt8]) {
        guard let completed = try? MerkleComputation(source: self, size: size).nodesCompleted(byAppending: leafHash),
              let top = completed.last else {
            preconditionFailure("appending to a Merkle frontier reads only the frontier's own nodes")
        }
        // Subtrees below the new top merged into it; those above it stay.
        hashes = Array(hashes.prefix((size >> UInt64(top.level + 1)).nonzeroBitCount)) + [top.hash]
        size += 1
    }

    /// The root hash of the `size` leaves appended.
    public var root: [UInt8] {
        guard let root = try? MerkleComputation(source: self, size: size).root() else {
            preconditionFailure("a root reads only the frontier's own nodes")
        }
        return root
    }
}
