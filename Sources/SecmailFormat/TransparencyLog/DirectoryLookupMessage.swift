/// The JSON a relay returns for `GET /v1/directory/{name}` (docs/API.md), shared by the relay
/// (which encodes it) and the client (which decodes and verifies it), so the two cannot drift.
public struct DirectoryLookupMessage: Codable, Sendable {
    public let name: String
    public let keyVersion: UInt32
    public let fingerprint: String
    /// Base64 of the canonical identity bundle.
    public let bundle: String
    /// Base64 of the log leaf (a `DirectoryEntry`) recording this version.
    public let leaf: String
    public let logIndex: UInt64
    public let treeSize: UInt64
    /// Base64 node hashes, leaf to root.
    public let inclusionProof: [String]
    /// The signed checkpoint (C2SP signed note) for `treeSize`.
    public let checkpoint: String

    public init(name: String, keyVersion: UInt32, fingerprint: String, bundle: String, leaf: String,
                logIndex: UInt64, treeSize: UInt64, inclusionProof: [String], checkpoint: String) {
        self.name = name
        self.keyVersion = keyVersion
        self.fingerprint = fingerprint
        self.bundle = bundle
        self.leaf = leaf
        self.logIndex = logIndex
        self.treeSize = treeSize
        self.inclusionProof = inclusionProof
        self.checkpoint = checkpoint
    }
}
