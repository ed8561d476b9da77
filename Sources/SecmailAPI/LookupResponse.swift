/// `GET /v1/directory/{name}`: the current key version of a name, its log leaf, the proof that
/// the leaf is in the log under a signed checkpoint, and the name map proof that it is the
/// current version.
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
    /// The map proof that this is the name's latest version in the tree of `treeSize` leaves.
    public let map: NameMapEvidence
    /// What the name's client declared it can read (`PUT /v1/features`): absent when it never
    /// declared (an older client). A hint from the relay, outside the log's proofs.
    public let readerFeatures: [String]?

    public init(name: String, keyVersion: UInt32, fingerprint: String, bundle: String, leaf: String,
                logIndex: UInt64, treeSize: UInt64, inclusionProof: [String], checkpoint: String, map: NameMapEvidence,
                readerFeatures: [String]? = nil) {
        self.name = name
        self.keyVersion = keyVersion
        self.fingerprint = fingerprint
        self.bundle = bundle
        self.leaf = leaf
        self.logIndex = logIndex
        self.treeSize = treeSize
        self.inclusionProof = inclusionProof
        self.checkpoint = checkpoint
        self.map = map
        self.readerFeatures = readerFeatures
    }
}

/// `PUT /v1/features` (signed in): what the caller's client can read beyond the base format
/// (docs/PROTOCOL.md, "Reader features"), replacing what it declared before. The answer repeats
/// the stored list.
public struct ReaderFeaturesBody: Codable, Sendable, Equatable {
    /// At most 16 names of 1 to 32 characters `a-z 0-9 -`; unknown names are kept (newer clients).
    public let features: [String]

    public init(features: [String]) {
        self.features = features
    }

    public static let maximumCount = 16
    public static let maximumLength = 32

    /// At most `maximumCount` distinct names of 1 to `maximumLength` characters `a-z 0-9 -`.
    public static func isWellFormed(_ features: [String]) -> Bool {
        features.count <= maximumCount && Set(features).count == features.count && features.allSatisfy { feature in
            (1...maximumLength).contains(feature.utf8.count)
                && feature.utf8.allSatisfy { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "-") }
        }
    }

    public static let malformedReason = "features are at most \(maximumCount) distinct names of 1 to \(maximumLength) characters a-z, 0-9 and -"
}

/// What the name map of a signed tree holds for one name: the tree's last leaf, which commits the
/// map root (docs/PROTOCOL.md, "Name map"), its inclusion proof, and the map path for the name.
public struct NameMapEvidence: Codable, Sendable {
    /// Base64 of leaf `treeSize - 1`; absent for the empty log (whose map is empty).
    public let headLeaf: String?
    /// Base64 node hashes proving `headLeaf` is leaf `treeSize - 1` of the tree.
    public let headInclusionProof: [String]
    /// Base64 of the binary name map proof (docs/PROTOCOL.md, "Name map proof").
    public let mapProof: String

    public init(headLeaf: String?, headInclusionProof: [String], mapProof: String) {
        self.headLeaf = headLeaf
        self.headInclusionProof = headInclusionProof
        self.mapProof = mapProof
    }
}

/// The `404` of `GET /v1/directory/{name}` for a name no one registered: an `ErrorResponse`
/// (`notFound`) that also carries the map proof of the name's absence under a signed checkpoint.
public struct NotRegisteredResponse: Codable, Sendable {
    public let error: String
    public let reason: String
    public let name: String
    public let treeSize: UInt64
    /// The signed checkpoint (C2SP signed note) for `treeSize`.
    public let checkpoint: String
    public let map: NameMapEvidence

    public init(reason: String, name: String, treeSize: UInt64, checkpoint: String, map: NameMapEvidence) {
        error = ErrorCode.notFound.rawValue
        self.reason = reason
        self.name = name
        self.treeSize = treeSize
        self.checkpoint = checkpoint
        self.map = map
    }
}

/// `POST /v1/directory/register` and `POST /v1/directory/rotate`: a key bundle to log.
public struct BundleRequest: Codable, Sendable {
    /// Base64 of the canonical identity bundle.
    public let bundle: String
    /// An invite code (32 hex digits), where the relay requires one to register.
    public let invite: String?
    /// Registration only: what the registering client reads, stored as `PUT /v1/features` would
    /// store it (`ReaderFeaturesBody`), so that the first message to a new name can use it.
    public let readerFeatures: [String]?

    public init(bundle: String, invite: String? = nil, readerFeatures: [String]? = nil) {
        self.bundle = bundle
        self.invite = invite
        self.readerFeatures = readerFeatures
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
