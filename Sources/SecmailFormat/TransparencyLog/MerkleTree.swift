/// An append-only Merkle tree (RFC 6962) that keeps the hash of every complete, aligned subtree,
/// so any historical root, inclusion proof or consistency proof costs O(log² n) hash operations
/// and no leaf is ever rehashed.
///
/// `levels[0]` holds the leaf hashes; `levels[k][i]` the hash of leaves i·2^k ..< (i+1)·2^k.
public struct MerkleTree: Sendable {
    public private(set) var levels: [[[UInt8]]] = [[]]

    public init() {}

    /// A tree holding `leafHashes` in order.
    public init(leafHashes: [[UInt8]]) {
        for hash in leafHashes { append(leafHash: hash) }
    }

    /// Number of leaves.
    public var size: UInt64 { UInt64(levels[0].count) }

    /// Appends a leaf hash (see `MerkleHash.leaf`) and returns its index.
    @discardableResult
    public mutating func append(leafHash: [UInt8]) -> UInt64 {
        precondition(leafHash.count == 32, "a leaf hash is 32 bytes")
        levels[0].append(leafHash)
        var level = 0
        // Each time a level gains a right child, the completed parent moves up a level.
        while levels[level].count % 2 == 0 {
            let count = levels[level].count
            let parent = MerkleHash.node(levels[level][count - 2], levels[level][count - 1])
            if levels.count == level + 1 { levels.append([]) }
            levels[level + 1].append(parent)
            level += 1
        }
        return size - 1
    }

    /// The root of the first `size` leaves (any size up to the current one).
    public func root(size: UInt64? = nil) throws -> [UInt8] {
        let size = size ?? self.size
        try check(size <= self.size, "a root of \(size) leaves was asked of a tree of \(self.size)")
        return size == 0 ? MerkleHash.emptyRoot : hash(start: 0, count: size)
    }

    /// The audit path for leaf `index` in the tree of the first `size` leaves (RFC 9162 2.1.3.1).
    public func inclusionProof(index: UInt64, size: UInt64) throws -> [[UInt8]] {
        try check(size <= self.size && index < size, "no leaf \(index) in a tree of \(size) leaves (the log has \(self.size))")
        return path(index: index, start: 0, count: size)
    }

    /// The proof that the tree of `oldSize` leaves is a prefix of the tree of `newSize` leaves
    /// (RFC 9162 2.1.4.1). Empty when the sizes are equal.
    public func consistencyProof(from oldSize: UInt64, to newSize: UInt64) throws -> [[UInt8]] {
        try check(0 < oldSize && oldSize <= newSize && newSize <= self.size,
                  "no consistency proof from \(oldSize) to \(newSize) leaves (the log has \(self.size))")
        guard oldSize < newSize else { return [] }
        return subproof(oldSize: oldSize, start: 0, count: newSize, isComplete: true)
    }

    // MARK: RFC 6962 recursions over a range [start, start + count)

    /// MTH of the range: a stored complete subtree when aligned, else split at the largest
    /// power of two below `count`.
    private func hash(start: UInt64, count: UInt64) -> [UInt8] {
        if count & (count - 1) == 0, start % count == 0 {
            let level = count.trailingZeroBitCount
            return levels[level][Int(start >> UInt64(level))]
        }
        let k = MerkleHash.split(count)
        return MerkleHash.node(hash(start: start, count: k), hash(start: start + k, count: count - k))
    }

    private func path(index: UInt64, start: UInt64, count: UInt64) -> [[UInt8]] {
        guard count > 1 else { return [] }
        let k = MerkleHash.split(count)
        if index < k {
            return path(index: index, start: start, count: k) + [hash(start: start + k, count: count - k)]
        }
        return path(index: index - k, start: start + k, count: count - k) + [hash(start: start, count: k)]
    }

    /// SUBPROOF(m, D[n], b) of RFC 6962 section 2.1.2, for the range.
    private func subproof(oldSize m: UInt64, start: UInt64, count n: UInt64, isComplete b: Bool) -> [[UInt8]] {
        if m == n { return b ? [] : [hash(start: start, count: n)] }
        let k = MerkleHash.split(n)
        if m <= k {
            return subproof(oldSize: m, start: start, count: k, isComplete: b) + [hash(start: start + k, count: n - k)]
        }
        return subproof(oldSize: m - k, start: start + k, count: n - k, isComplete: false) + [hash(start: start, count: k)]
    }

    private func check(_ condition: Bool, _ reason: @autoclosure () -> String) throws {
        guard condition else { throw FormatError(.invalidField, reason()) }
    }
}
