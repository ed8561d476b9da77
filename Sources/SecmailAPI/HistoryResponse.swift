/// `GET /v1/directory/{name}/history`: every key
/// version of a name, each with the log leaf that records it and its inclusion proof, all against
/// one signed checkpoint, so a client can verify a whole rotation chain.
public struct HistoryResponse: Codable, Sendable {
    public struct Version: Codable, Sendable {
        public let keyVersion: UInt32
        public let fingerprint: String
        /// Base64 of the canonical identity bundle.
        public let bundle: String
        /// Base64 of the log leaf (a `DirectoryEntry`).
        public let leaf: String
        public let logIndex: UInt64
        /// Base64 node hashes, leaf to root, in the tree of `treeSize` leaves.
        public let inclusionProof: [String]

        public init(keyVersion: UInt32, fingerprint: String, bundle: String, leaf: String, logIndex: UInt64, inclusionProof: [String]) {
            self.keyVersion = keyVersion
            self.fingerprint = fingerprint
            self.bundle = bundle
            self.leaf = leaf
            self.logIndex = logIndex
            self.inclusionProof = inclusionProof
        }
    }

    public let name: String
    public let treeSize: UInt64
    /// The signed checkpoint (C2SP signed note) for `treeSize`.
    public let checkpoint: String
    /// Oldest first.
    public let versions: [Version]

    public init(name: String, treeSize: UInt64, checkpoint: String, versions: [Version]) {
        self.name = name
        self.treeSize = treeSize
        self.checkpoint = checkpoint
        self.versions = versions
    }
}
