/// Where a Merkle tree's stored hashes come from: memory (`MerkleTree`) or the relay's database.
///
/// `node(level: k, index: i)` is the hash of the complete, aligned subtree over leaves
/// i·2^k ..< (i+1)·2^k; level 0 holds the leaf hashes. An append-only log stores every such node
/// once it is complete, so no leaf is ever rehashed.
public protocol MerkleNodeSource {
    func node(level: Int, index: UInt64) throws -> [UInt8]
}

/// RFC 6962 computations over stored complete subtrees: any historical root, inclusion proof or
/// consistency proof in O(log² n) node reads.
public struct MerkleComputation<Source: MerkleNodeSource> {
    public let source: Source
    /// Number of leaves the source holds.
    public let size: UInt64

    public init(source: Source, size: UInt64) {
        self.source = source
        self.size = size
    }

    /// The root of the first `size` leaves (any size up to the current one).
    public func root(size: UInt64? = nil) throws -> [UInt8] {
        let size = size ?? self.size
        try check(size <= self.size, "a root of \(size) leaves was asked of a tree of \(self.size)")
        return size == 0 ? MerkleHash.emptyRoot : try hash(start: 0, count: size)
    }

    /// The audit path for leaf `index` in the tree of the first `size` leaves (RFC 9162 2.1.3.1).
    public func inclusionProof(index: UInt64, size: UInt64) throws -> [[UInt8]] {
        try check(size <= self.size && index < size, "no leaf \(index) in a tree of \(size) leaves (the log has \(self.size))")
        return try path(index: index, start: 0, count: size)
    }

    /// The proof that the tree of `oldSize` leaves is a prefix of the tree of `newSize` leaves
    /// (RFC 9162 2.1.4.1). Empty when the sizes are equal.
    public func consistencyProof(from oldSize: UInt64, to newSize: UInt64) throws -> [[UInt8]] {
        try check(0 < oldSize && oldSize <= newSize && newSize <= self.size,
                  "no consistency proof from \(oldSize) to \(newSize) leaves (the log has \(self.size))")
        guard oldSize < newSize else { return [] }
        return try subproof(oldSize: oldSize, start: 0, count: newSize, isComplete: true)
    }

    /// The nodes that become complete when the leaf `leafHash` is appended at index `size`:
    /// the leaf itself, then each parent up the right edge. Store all of them.
    public func nodesCompleted(byAppending leafHash: [UInt8]) throws -> [(level: Int, index: UInt64, hash: [UInt8])] {
        precondition(leafHash.count == 32, "a leaf hash is 32 bytes")
        var completed = [(level: 0, index: size, hash: leafHash)]
        var level = 0, index = size, hash = leafHash
        // Each time a level gains a right child, the completed parent moves up a level.
        while index & 1 == 1 {
            hash = MerkleHash.node(try source.node(level: level, index: index - 1), hash)
            level += 1
            index >>= 1
            completed.append((level, index, hash))
        }
        return completed
    }

    // MARK: RFC 6962 recursions over a range [start, start + count)

    /// MTH of the range: a stored complete subtree when aligned, else split at the largest
    /// power of two below `count`.
    private func hash(start: UInt64, count: UInt64) throws -> [UInt8] {
        if count & (count - 1) == 0, start % count == 0 {
            let level = count.trailingZeroBitCount
            return try source.node(level: level, index: start >> UInt64(level))
        }
        let k = MerkleHash.split(count)
        return MerkleHash.node(try hash(start: start, count: k), try hash(start: start + k, count: count - k))
    }

    private func path(index: UInt64, start: UInt64, count: UInt64) throws -> [[UInt8]] {
        guard count > 1 else { return [] }
        let k = MerkleHash.split(count)
        if index < k {
            return try path(index: index, start: start, count: k) + [hash(start: start + k, count: count - k)]
        }
        return try path(index: index - k, start: start + k, count: count - k) + [hash(start: start, count: k)]
    }

    /// SUBPROOF(m, D[n], b) of RFC 6962 section 2.1.2, for the range.
    private func subproof(oldSize m: UInt64, start: UInt64, count n: UInt64, isComplete b: Bool) throws -> [[UInt8]] {
        if m == n { return b ? [] : [try hash(start: start, count: n)] }
        let k = MerkleHash.split(n)
        if m <= k {
            return try subproof(oldSize: m, start: start, count: k, isComplete: b) + [hash(start: start + k, count: n - k)]
        }
        return try subproof(oldSize: m - k, start: start + k, count: n - k, isComplete: false) + [hash(start: start, count: k)]
    }

    private func check(_ condition: Bool, _ reason: @autoclosure () -> String) throws {
        guard condition else { throw FormatError(.invalidField, reason()) }
    }
}

/// An append-only Merkle tree held in memory.
public struct MerkleTree: MerkleNodeSource, Sendable {
    /// `levels[k][i]` is the hash of leaves i·2^k ..< (i+1)·2^k.
    public private(set) var levels: [[[UInt8]]] = [[]]

    public init() {}

    /// A tree holding `leafHashes` in order.
    public init(leafHashes: [[UInt8]]) {
        for hash in leafHashes { append(leafHash: hash) }
    }

    /// Number of leaves.
    public var size: UInt64 { UInt64(levels[0].count) }

    public func node(level: Int, index: UInt64) throws -> [UInt8] {
        guard level < levels.count, index < UInt64(levels[level].count) else {
            throw FormatError(.invalidField, "no stored Merkle node at level \(level), index \(index)")
        }
        return levels[level][Int(index)]
    }

    /// Appends a leaf hash (see `MerkleHash.leaf`) and returns its index.
    @discardableResult
    public mutating func append(leafHash: [UInt8]) -> UInt64 {
        // Appending only reads nodes this tree already holds.
        guard let completed = try? computation.nodesCompleted(byAppending: leafHash) else {
            preconditionFailure("an in-memory Merkle tree is missing one of its own nodes")
        }
        for (level, _, hash) in completed {
            if levels.count == level { levels.append([]) }
            levels[level].append(hash)
        }
        return size - 1
    }

    private var computation: MerkleComputation<MerkleTree> { MerkleComputation(source: self, size: size) }

    public func root(size: UInt64? = nil) throws -> [UInt8] { try computation.root(size: size) }

    public func inclusionProof(index: UInt64, size: UInt64) throws -> [[UInt8]] {
        try computation.inclusionProof(index: index, size: size)
    }

    public func consistencyProof(from oldSize: UInt64, to newSize: UInt64) throws -> [[UInt8]] {
        try computation.consistencyProof(from: oldSize, to: newSize)
    }
}
