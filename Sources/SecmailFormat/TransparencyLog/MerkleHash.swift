import SecmailCrypto

/// RFC 6962 / RFC 9162 section 2.1.1 hashing: leaves and interior nodes are domain-separated by
/// a 0x00 or 0x01 prefix, so a leaf can never be passed off as a node.
public enum MerkleHash {
    /// Hash of a leaf's data: SHA-256(0x00 || data).
    public static func leaf(_ data: [UInt8]) -> [UInt8] {
        SHA256.hash([0x00] + data)
    }

    /// Hash of an interior node: SHA-256(0x01 || left || right).
    public static func node(_ left: [UInt8], _ right: [UInt8]) -> [UInt8] {
        SHA256.hash([0x01] + left + right)
    }

    /// The root of the empty tree: SHA-256 of the empty string.
    public static let emptyRoot = SHA256.hash([UInt8]())

    /// The largest power of two smaller than `n` (n > 1): where RFC 6962 splits a tree of n leaves.
    static func split(_ n: UInt64) -> UInt64 {
        precondition(n > 1, "only trees of two or more leaves split")
        var k: UInt64 = 1
        while k << 1 < n { k <<= 1 }
        return k
    }
}
