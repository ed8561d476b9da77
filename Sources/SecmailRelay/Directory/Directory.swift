import Foundation
import SecmailCrypto
import SecmailFormat

/// The key directory: every key version of every name, each one also a leaf of the
/// transparency log and an update of the name map, written in the same transaction. Concurrent
/// registrations and rotations share group commits (`GroupCommit`), one savepoint each.
public struct Directory: Sendable {
    /// The relay's database, which the log, sign-in and the mailboxes share.
    public let database: RelayDatabase
    let clock: @Sendable () -> Int64
    /// Committed log nodes that proofs read again and again.
    let nodeCache: LogNodeCache
    /// The latest tree's root, last leaf and its inclusion proof, which every lookup carries.
    private let heads = TreeHeadCache()
    /// Name map nodes of the latest tree, which every lookup's map proof reads.
    private let mapNodes = MapNodeCache()
    /// Parsed bundles by their bytes: parsing a bundle's keys (OpenSSL's decoders) was a large
    /// share of a lookup's CPU, and the same few bundles are served again and again.
    private let bundles = BundleCache()
    /// When true, registration needs an invite code from `createInvite()`.
    public let requiresInvite: Bool
    /// When true, a key another name uses is accepted (load tests register thousands of names
    /// with a few key pairs: RSA-3072 key generation takes half a second). Off in service.
    public let sharesKeys: Bool
    /// Registrations and rotations waiting for, or in, a group commit.
    private let writes: GroupCommit<Write, UInt64>
    /// The sessions the `Authenticator` keeps; a rotation ends its name's sessions there too.
    private let sessions: SessionCache?

    /// One registration or rotation, checked outside the transaction as far as it can be.
    enum Write: Sendable {
        /// `readerFeatures`: what the registering client reads (checked by the caller), stored
        /// with the registration.
        case register(IdentityBundle, inviteCode: String?, readerFeatures: [String]?, time: Int64)
        /// `replacing` is the version the continuity signature was verified against.
        case rotate(IdentityBundle, replacing: IdentityBundle, time: Int64)
    }

    public init(database: RelayDatabase, requiresInvite: Bool = false, sharesKeys: Bool = false, nodeCache: LogNodeCache = LogNodeCache(),
                sessions: SessionCache? = nil, clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) {
        self.database = database
        self.sessions = sessions
        self.requiresInvite = requiresInvite
        self.sharesKeys = sharesKeys
        let rules = WriteRules(requiresInvite: requiresInvite, sharesKeys: sharesKeys)
        writes = GroupCommit { batch in await Self.commit(batch, database: database, rules: rules) }
        self.nodeCache = nodeCache
        self.clock = clock
    }

    /// A key version with where it sits in the log, and the proof that it is there.
    public struct Entry: Sendable {
        public let bundle: IdentityBundle
        /// The log leaf (a `DirectoryEntry`) that records this version; its hash is what the
        /// inclusion proof proves.
        public let leafData: [UInt8]
        public let logIndex: UInt64
        /// The log size the proof is for.
        public let treeSize: UInt64
        public let rootHash: [UInt8]
        public let inclusionProof: [[UInt8]]
    }

    /// What the name map of the tree of `treeSize` leaves holds for one name, with the proof: the
    /// tree's last leaf (which commits the map root) and its inclusion proof, then the map path.
    public struct MapEvidence: Sendable {
        public let treeSize: UInt64
        public let rootHash: [UInt8]
        /// Leaf `treeSize - 1` (nil for the empty log, whose map is empty).
        public let headLeaf: [UInt8]?
        public let headInclusionProof: [[UInt8]]
        public let mapProof: NameMapProof
    }

    /// A lookup's answer: the current version and the map proof that it is the current one, or the
    /// map proof that the name is not registered.
    public enum Lookup: Sendable {
        /// `readerFeatures`: what the name's client declared it reads, nil when it never did.
        case found(Entry, MapEvidence, readerFeatures: [String]?)
        case absent(MapEvidence)

        /// The current version, when the name is registered.
        public var entry: Entry? {
            if case .found(let entry, _, _) = self { return entry }
            return nil
        }

        public var evidence: MapEvidence {
            switch self {
            case .found(_, let evidence, _), .absent(let evidence): evidence
            }
        }
    }

    /// How many writes each recent group commit carried (tests and diagnostics).
    public func recentCommitGroupSizes() async -> [Int] {
        await writes.recentGroupSizes
    }

    /// Registers key version 1 of a new name (first come, first served). Returns its log index.
    @discardableResult
    public func register(_ bundle: IdentityBundle, inviteCode: String? = nil, readerFeatures: [String]? = nil) async throws -> UInt64 {
        guard bundle.keyVersion == 1, bundle.continuity == nil else {
            throw RelayError(.invalidRequest, "a registration carries key version 1 without continuity; use rotation for later versions")
        }
        guard !bundle.name.isReserved else {
            throw RelayError(.invalidRequest, "the name \(bundle.name) is reserved (or looks like a reserved name); choose another")
        }
        return try await writes.submit(.register(bundle, inviteCode: inviteCode, readerFeatures: readerFeatures, time: clock()))
    }

    /// Records a new key version of an existing name: it must carry a continuity signature by
    /// the current version's signing key and increase the key version by exactly one. The
    /// signature is checked outside the write transaction, which then only confirms that the
    /// current version is still the one checked.
    @discardableResult
    public func rotate(to bundle: IdentityBundle) async throws -> UInt64 {
        let now = clock()
        let name = bundle.name
        guard let current = try await database.read({ db in try Self.latest(name: name.value, db) }) else {
            throw RelayError(.notFound, "the name \(name) is not registered on this relay")
        }
        guard bundle.keyVersion == current.keyVersion + 1 else {
            throw RelayError(.invalidRequest, "the next key version of \(name) is \(current.keyVersion + 1), not \(bundle.keyVersion)")
        }
        do {
            try bundle.verifyContinuity(from: current)
        } catch let error as FormatError {
            throw RelayError(.invalidRequest, "rotation refused: \(error.reason)")
        }
        let index = try await writes.submit(.rotate(bundle, replacing: current, time: now))
        sessions?.end(sessionsOf: name)
        return index
    }

    /// What a write must satisfy beyond its own content.
    struct WriteRules: Sendable {
        let requiresInvite: Bool
        let sharesKeys: Bool
    }

    /// One transaction for `batch`, each write in its own savepoint: a registration only of a
    /// free name that looks like no registered one (and, where required, with an unused invite),
    /// a rotation only if the version it replaces is still the current one; either only with
    /// keys no other name uses. Returns each write's log index or refusal.
    private static func commit(_ batch: [Write], database: RelayDatabase, rules: WriteRules) async -> [Result<UInt64, Error>] {
        do {
            return try await database.write { db in
                batch.map { write in
                    Result {
                        var index: UInt64 = 0
                        try db.inSavepoint {
                            index = try apply(write, rules: rules, in: db)
                        }
                        return index
                    }
                }
            }
        } catch {
            return Array(repeating: .failure(error), count: batch.count)
        }
    }

    private static func apply(_ write: Write, rules: WriteRules, in db: any StorageTransaction) throws -> UInt64 {
        switch write {
        case .register(let bundle, let inviteCode, let readerFeatures, let time):
            guard try latest(name: bundle.name.value, db) == nil else {
                throw RelayError(.nameTaken, "the name \(bundle.name) is already registered on this relay")
            }
            if let similar = try db.fetchOne(String.self, "SELECT name FROM name_skeletons WHERE skeleton = ?", [bundle.name.skeleton]) {
                throw RelayError(.nameTaken, "the name \(bundle.name) looks too much like \(similar), which is registered on this relay; choose another")
            }
            try db.execute("INSERT INTO name_skeletons (skeleton, name) VALUES (?, ?)", [bundle.name.skeleton, bundle.name.value])
            try claimKeys(of: bundle, sharesKeys: rules.sharesKeys, in: db)
            if rules.requiresInvite {
                guard let inviteCode, let codeHash = inviteHash(inviteCode) else {
                    throw RelayError(.inviteRequired, "this relay requires an invite code to register")
                }
                let claimed = try db.execute("UPDATE invites SET used_by = ? WHERE code_hash = ? AND used_by IS NULL",
                                             [bundle.name.value, Data(codeHash)])
                guard claimed == 1 else {
                    throw RelayError(.inviteRequired, "the invite code is unknown or already used")
                }
            }
            let index = try insert(.registration, bundle, time: time, in: db)
            if let readerFeatures { try storeReaderFeatures(readerFeatures, for: bundle.name, time: time, in: db) }
            return index
        case .rotate(let bundle, let current, let time):
            guard try latest(name: bundle.name.value, db) == current else {
                throw RelayError(.conflict, "the keys of \(bundle.name) changed while this rotation was checked; look them up and try again")
            }
            try claimKeys(of: bundle, sharesKeys: rules.sharesKeys, in: db)
            // Tokens signed in with the replaced key end with it (P8).
            try db.execute("DELETE FROM sessions WHERE name = ?", [bundle.name.value])
            return try insert(.rotation, bundle, time: time, in: db)
        }
    }

    /// Binds `bundle`'s signing and encryption keys to its name. A key that another name uses is
    /// refused: one key pair behind many names makes registration spam free after the first key
    /// generation, and lets one holder speak as several people; a name may keep its own key
    /// across versions.
    private static func claimKeys(of bundle: IdentityBundle, sharesKeys: Bool, in db: any StorageTransaction) throws {
        for keyHash in try keyOwnerHashes(of: bundle) {
            if let owner = try db.fetchOne(String.self, "SELECT name FROM key_owners WHERE key_hash = ?", [keyHash]) {
                guard owner == bundle.name.value || sharesKeys else {
                    throw RelayError(.conflict, "a key of this bundle already belongs to \(owner) on this relay; every name needs keys of its own")
                }
                continue
            }
            try db.execute("INSERT INTO key_owners (key_hash, name) VALUES (?, ?)", [keyHash, bundle.name.value])
        }
    }

    /// What `key_owners` records each of `bundle`'s keys under: SHA-256 of its SubjectPublicKeyInfo.
    private static func keyOwnerHashes(of bundle: IdentityBundle) throws -> [Data] {
        try [bundle.signingKey, bundle.encryptionKey].map { Data(SHA256.hash(try $0.derRepresentation)) }
    }

    /// The current key version of `name` with its inclusion proof and the map proof that it is
    /// the current one, or the map proof that `name` is not registered; all in the current log,
    /// read in one transaction.
    public func lookup(_ name: IdentityName) async throws -> Lookup {
        let cache = nodeCache
        let heads = heads, mapNodes = mapNodes, bundles = bundles
        return try await database.read { db in
            let size = try LogStore.currentSize(db)
            let computation = MerkleComputation(source: DatabaseNodes(db: db, cache: cache), size: size)
            let head = try heads.head(size: size) {
                // The log is append-only, so a size names one tree: computed once per size.
                let headLeaf = size > 0 ? try Self.leafData(at: size - 1, db) : nil
                let headProof = size > 0 ? try computation.inclusionProof(index: size - 1, size: size) : []
                return TreeHead(size: size, root: try computation.root(), leaf: headLeaf, inclusionProof: headProof)
            }
            let root = head.root
            let map = NameMap(store: DatabaseMapNodes(db: db, cache: mapNodes, treeSize: size))
            let evidence = MapEvidence(treeSize: size, rootHash: root, headLeaf: head.leaf, headInclusionProof: head.inclusionProof,
                                       mapProof: try map.proof(for: NameMapKey.of(name)))
            guard let row = try db.fetchRow("""
                SELECT bundle, log_index FROM identities WHERE name = ? ORDER BY key_version DESC LIMIT 1
                """, [name.value]) else {
                return .absent(evidence)
            }
            let index = UInt64(try row.get("log_index") as Int64)
            let bundle = try bundles.bundle(encoded: try row.get("bundle"))
            let entry = Entry(bundle: bundle, leafData: try Self.leafData(at: index, db), logIndex: index, treeSize: size, rootHash: root,
                              inclusionProof: try computation.inclusionProof(index: index, size: size))
            let features = try db.fetchOne(String.self, "SELECT features FROM reader_features WHERE name = ?", [name.value])
            return .found(entry, evidence, readerFeatures: features.map { $0.split(separator: ",").map(String.init) })
        }
    }

    /// Replaces what `name`'s client declared it reads (names already checked by the caller).
    public func setReaderFeatures(_ features: [String], for name: IdentityName) async throws {
        let time = clock()
        try await database.write { db in try Self.storeReaderFeatures(features, for: name, time: time, in: db) }
    }

    private static func storeReaderFeatures(_ features: [String], for name: IdentityName, time: Int64, in db: any StorageTransaction) throws {
        try db.execute("""
            INSERT INTO reader_features (name, features, updated_at) VALUES (?, ?, ?)
            ON CONFLICT (name) DO UPDATE SET features = excluded.features, updated_at = excluded.updated_at
            """, [name.value, features.joined(separator: ","), time])
    }

    private static func leafData(at index: UInt64, _ db: any StorageTransaction) throws -> [UInt8] {
        guard let leaf = try db.logLeafData(at: index) else {
            throw RelayError(.storage, "the log has no leaf \(index): the database is damaged")
        }
        return Array(leaf)
    }

    /// Every key version of `name` logged within the first `treeSize` leaves (the whole log when
    /// nil), oldest first, each with its inclusion proof in the tree of that size.
    public func history(_ name: IdentityName, treeSize: UInt64? = nil) async throws -> [Entry] {
        let cache = nodeCache, bundles = bundles
        return try await database.read { db in
            let currentSize = try LogStore.currentSize(db)
            let size = treeSize ?? currentSize
            guard size <= currentSize else {
                throw RelayError(.invalidRequest, "the log has \(currentSize) entries, not \(size)")
            }
            let rows = try db.fetchRows("""
                SELECT i.bundle, i.log_index, l.leaf_data FROM identities i JOIN log_leaves l ON l.leaf_index = i.log_index
                WHERE i.name = ? AND i.log_index < ? ORDER BY i.key_version
                """, [name.value, Int64(size)])
            guard !rows.isEmpty else {
                throw RelayError(.notFound, "no one is registered as \(name) on this relay")
            }
            let computation = MerkleComputation(source: DatabaseNodes(db: db, cache: cache), size: currentSize)
            let root = try computation.root(size: size)
            return try rows.map { row in
                let index = UInt64(try row.get("log_index") as Int64)
                return Entry(bundle: try bundles.bundle(encoded: try row.get("bundle")), leafData: Array(try row.get("leaf_data") as Data),
                             logIndex: index, treeSize: size, rootHash: root,
                             inclusionProof: try computation.inclusionProof(index: index, size: size))
            }
        }
    }

    /// Creates a single-use invite code; only its SHA-256 is stored.
    public func createInvite() throws -> String {
        let code = hexEncoded(try SystemRandom().bytes(count: 16))
        guard let codeHash = Self.inviteHash(code) else { preconditionFailure("a fresh invite code is well formed") }
        try database.write { db in
            try db.execute("INSERT INTO invites (code_hash, created_at) VALUES (?, ?)", [Data(codeHash), clock()])
        }
        return code
    }

    // MARK: Rows

    /// Sets the name map to `bundle`, then appends the log leaf recording it with the map's new
    /// root, and its row: one transaction, so the log, the map and the directory move together.
    private static func insert(_ kind: DirectoryEntry.Kind, _ bundle: IdentityBundle, time: Int64, in db: any StorageTransaction) throws -> UInt64 {
        let index = try LogStore.currentSize(db)
        var map = NameMap(store: DatabaseMapNodes(db: db))
        let value = NameMapValue(keyVersion: bundle.keyVersion, logIndex: index, fingerprint: bundle.fingerprint)
        let entry = try DirectoryEntry(kind: kind, time: time, bundle: bundle, mapRoot: try map.set(NameMapKey.of(bundle.name), valueHash: value.hash))
        guard try LogStore.append(entry.encoded, time: entry.time, in: db) == index else {
            preconditionFailure("the log grew inside this write transaction")
        }
        try db.execute("""
            INSERT INTO identities (name, key_version, bundle, fingerprint, log_index, created_at) VALUES (?, ?, ?, ?, ?, ?)
            """, [bundle.name.value, Int64(bundle.keyVersion), Data(bundle.encoded),
                             Data(bundle.fingerprint.bytes), Int64(index), entry.time])
        return index
    }

    /// Names registered before look-alikes (V006) or shared keys (V007) were refused get their
    /// skeletons and key owners, once: the first start after each migration finds its table empty
    /// (every later write records its own; the first of two existing look-alikes keeps the
    /// skeleton, the first name logged with a key keeps the key). Runs at start-up, where anything
    /// more than a few index probes would cost every start a scan of the directory.
    public func backfillRegistrationIndexes() throws {
        try database.write { db in
            guard try db.fetchOne(Bool.self, "SELECT EXISTS (SELECT 1 FROM identities)") == true else { return }
            if try db.fetchOne(Bool.self, "SELECT EXISTS (SELECT 1 FROM name_skeletons)") != true {
                let names = try db.fetchAll(String.self, "SELECT name FROM identities WHERE key_version = 1 ORDER BY log_index")
                for name in names {
                    try db.execute("INSERT INTO name_skeletons (skeleton, name) VALUES (?, ?) ON CONFLICT DO NOTHING", [try IdentityName(name).skeleton, name])
                }
            }
            if try db.fetchOne(Bool.self, "SELECT EXISTS (SELECT 1 FROM key_owners)") != true {
                for data in try db.fetchAll(Data.self, "SELECT bundle FROM identities ORDER BY log_index") {
                    let bundle = try IdentityBundle(encoded: Array(data))
                    for keyHash in try Self.keyOwnerHashes(of: bundle) {
                        try db.execute("INSERT INTO key_owners (key_hash, name) VALUES (?, ?) ON CONFLICT DO NOTHING", [keyHash, bundle.name.value])
                    }
                }
            }
        }
    }

    /// A log written before the name map (its last leaf commits no map root) gets the map of its
    /// names and one `MapHead` leaf committing it, so lookups can prove it. Runs at start-up;
    /// returns true when it wrote one.
    @discardableResult
    public func commitMapIfMissing() throws -> Bool {
        let now = clock()
        return try database.write { db in
            let size = try LogStore.currentSize(db)
            guard size > 0 else { return false }
            let last: LogLeaf
            do { last = try LogLeaf(encoded: Self.leafData(at: size - 1, db)) } catch let error as FormatError {
                throw RelayError(.storage, "the log's last leaf does not parse (\(error.reason)): the database is damaged")
            }
            guard last.mapRoot == nil else { return false }
            try db.execute("DELETE FROM map_nodes")
            var map = NameMap(store: DatabaseMapNodes(db: db))
            let rows = try db.fetchRows("""
                SELECT name, key_version, fingerprint, log_index FROM identities i
                WHERE key_version = (SELECT MAX(key_version) FROM identities WHERE name = i.name)
                """)
            for row in rows {
                let value = NameMapValue(keyVersion: UInt32(try row.get("key_version") as Int64), logIndex: UInt64(try row.get("log_index") as Int64),
                                         fingerprint: try Fingerprint(bytes: Array(try row.get("fingerprint") as Data)))
                try map.set(NameMapKey.of(try IdentityName(try row.get("name") as String)), valueHash: value.hash)
            }
            let head = try MapHead(time: now, mapRoot: try map.root())
            _ = try LogStore.append(head.encoded, time: now, in: db)
            return true
        }
    }

    private static func latest(name: String, _ db: any StorageTransaction) throws -> IdentityBundle? {
        try db.latestBundleEncoding(of: name)
            .map { try IdentityBundle(encoded: Array($0)) }
    }

    private static func inviteHash(_ code: String) -> [UInt8]? {
        let trimmed = code.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        guard trimmed.count == 32, hexDecoded(trimmed) != nil else { return nil }
        return SHA256.hash(Array(trimmed.utf8))
    }
}

/// A tree's root with its last leaf and that leaf's inclusion proof.
struct TreeHead: Sendable {
    let size: UInt64
    let root: [UInt8]
    let leaf: [UInt8]?
    let inclusionProof: [[UInt8]]
}

/// The head of the largest tree computed so far. Only what a read transaction computed from
/// committed data is kept, and a size names exactly one tree of an append-only log.
final class TreeHeadCache: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var latest: TreeHead?

    func head(size: UInt64, compute: () throws -> TreeHead) throws -> TreeHead {
        if let cached = lock.withLock({ latest }), cached.size == size { return cached }
        let head = try compute()
        lock.withLock { if (latest?.size ?? 0) <= size { latest = head } }
        return head
    }
}

/// Parsed bundles, by the SHA-256 of their encoding: a memo of `IdentityBundle(encoded:)`, so a
/// bundle is parsed once however often it is served, and whatever bytes the database holds are
/// what is served.
final class BundleCache: Sendable {
    private let parsed = BoundedCache<[UInt8], IdentityBundle>(capacity: 10_000)

    func bundle(encoded: Data) throws -> IdentityBundle {
        let bytes = Array(encoded)
        let digest = SHA256.hash(bytes)
        if let known = parsed[digest] { return known }
        let bundle = try IdentityBundle(encoded: bytes)
        parsed.keep(bundle, for: digest)
        return bundle
    }
}
