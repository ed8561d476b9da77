/// `GET /v1/log/entries?start=S&end=E`: the leaves S ..< S + count.
public struct LogEntriesResponse: Codable, Sendable {
    public let start: UInt64
    /// Base64 of each leaf's data, in log order.
    public let leaves: [String]
    /// Most leaves one request returns.
    public static let pageLimit: UInt64 = 1000

    public init(start: UInt64, leaves: [String]) {
        self.start = start
        self.leaves = leaves
    }
}

/// `GET /v1/log/consistency?from=M&to=N`: the RFC 9162 proof that the tree of N leaves extends
/// the tree of M (base64 hashes; empty when M = N).
public struct ConsistencyResponse: Codable, Sendable {
    public let from: UInt64
    public let to: UInt64
    public let proof: [String]

    public init(from: UInt64, to: UInt64, proof: [String]) {
        self.from = from
        self.to = to
        self.proof = proof
    }
}
