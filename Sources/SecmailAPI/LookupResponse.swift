/// `GET /v1/directory/{name}`: the current key version of a name, its log leaf, and the proof
/// that the leaf is in the log under a signed checkpoint.
public struct LookupResponse: Codable, Sendable {
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

/// `POST /v1/directory/register` and `POST /v1/directory/rotate`: a key bundle to log.
public struct BundleRequest: Codable, Sendable {
    /// Base64 of the canonical identity bundle.
    public let bundle: String
    /// An invite code (32 hex digits), where the relay requires one to register.
    public let invite: String?

    public init(bundle: String, invite: String? = nil) {
        self.bundle = bundle
        self.invite = invite
    }
}

/// A registration (`201`) or rotation (`200`) the log recorded.
public struct RegisteredResponse: Codable, Sendable {
    public let name: String
    public let keyVersion: UInt32
    /// Hex SHA-256 of the canonical bundle.
    public let fingerprint: String
    public let logIndex: UInt64

    public init(name: String, keyVersion: UInt32, fingerprint: String, logIndex: UInt64) {
        self.name = name
        self.keyVersion = keyVersion
        self.fingerprint = fingerprint
        self.logIndex = logIndex
    }
}
