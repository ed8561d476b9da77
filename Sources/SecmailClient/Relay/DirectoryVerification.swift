import FoundationEssentials
import Glibc
import SecmailAPI
import SecmailFormat

/// A directory lookup that passed every check.
public struct VerifiedLookup: Sendable {
    public let bundle: IdentityBundle
    public let logIndex: UInt64
    /// The checkpoint the inclusion was proven against (store it: the next contact must extend it).
    public let checkpoint: Checkpoint
    public let checkpointNote: String
    /// What the name's client declared it reads, as the relay reports it (not covered by the
    /// proofs: a relay that lies can only make a message larger, or unreadable, which it can
    /// do anyway by not delivering it). Names this client does not know are left out.
    public let readerFeatures: Set<ReaderFeature>
}

/// One key version of a name as the log records it.
public struct LoggedKeyVersion: Sendable {
    public let bundle: IdentityBundle
    /// When the relay logged it (the log entry's time), seconds since 1970.
    public let loggedAt: Int64
}

/// The client's checks of what a relay says about keys (P5, P6). Pure: no I/O.
public enum DirectoryVerification {
    /// Verifies a lookup answer for `name`:
    /// the bundle parses and its self-signature holds; it is `name`'s; the checkpoint is signed by
    /// the pinned log key; the log leaf records exactly this bundle; the inclusion proof leads
    /// from that leaf to the checkpoint's root; and the name map that the tree commits holds
    /// exactly this version as `name`'s current one (`verifyMap`).
    public static func verifyLookup(_ body: [UInt8], name: IdentityName, logVerifier: NoteVerifier) throws -> VerifiedLookup {
        let response: LookupResponse
        do {
            response = try JSONDecoder().decode(LookupResponse.self, from: Data(body))
        } catch {
            throw ClientError(.verificationFailed, "the relay's lookup answer is not the expected JSON")
        }
        let bundle = try verified("bundle") { try IdentityBundle(encoded: decode(response.bundle)) }
        guard bundle.name == name else {
            throw ClientError(.verificationFailed, "asked for \(name), the relay answered with \(bundle.name)'s key")
        }
        let checkpoint = try signedCheckpoint(response.checkpoint, size: response.treeSize, logVerifier: logVerifier)
        let leafData = try decode(response.leaf)
        let entry = try verified("log entry") { try DirectoryEntry(encoded: leafData) }
        guard entry.bundle == bundle else {
            throw ClientError(.verificationFailed, "the relay's log entry for \(name) records a different key than the one it served: the directory was altered")
        }
        let proof = try response.inclusionProof.map(decode)
        guard MerkleProof.verifyInclusion(leafHash: MerkleHash.leaf(leafData), index: response.logIndex, size: checkpoint.size,
                                          proof: proof, root: checkpoint.rootHash) else {
            throw ClientError(.verificationFailed, "the inclusion proof for \(name)'s key does not lead to the signed log root: the key is not (provably) in the log")
        }
        try verifyMap(response.map, name: name, checkpoint: checkpoint,
                      holds: NameMapValue(keyVersion: bundle.keyVersion, logIndex: response.logIndex, fingerprint: bundle.fingerprint))
        return VerifiedLookup(bundle: bundle, logIndex: response.logIndex, checkpoint: checkpoint, checkpointNote: response.checkpoint,
                              readerFeatures: Set((response.readerFeatures ?? []).compactMap(ReaderFeature.init(rawValue:))))
    }

    /// Verifies a `404` for `name`: the checkpoint is signed by the pinned log key, and the name
    /// map it commits holds nothing for `name`. Returns the checkpoint (it advances the view).
    public static func verifyAbsence(_ body: [UInt8], name: IdentityName, logVerifier: NoteVerifier) throws -> (checkpoint: Checkpoint, note: String) {
        let response: NotRegisteredResponse
        do {
            response = try JSONDecoder().decode(NotRegisteredResponse.self, from: Data(body))
        } catch {
            throw ClientError(.verificationFailed, "the relay says \(name) is not registered but sends no proof of it: it may be hiding a registered name")
        }
        guard response.name == name.value else {
            throw ClientError(.verificationFailed, "asked for \(name), the relay proved the absence of \(response.name)")
        }
        let checkpoint = try signedCheckpoint(response.checkpoint, size: response.treeSize, logVerifier: logVerifier)
        try verifyMap(response.map, name: name, checkpoint: checkpoint, holds: nil)
        return (checkpoint, response.checkpoint)
    }

    /// Checks what the name map of the signed tree `checkpoint` holds for `name`: `value`, or
    /// nothing when nil. The map root is the one the tree's last leaf commits (the leaf must be
    /// proven as leaf size − 1 of that tree); the empty log's map is the empty map.
    public static func verifyMap(_ evidence: NameMapEvidence, name: IdentityName, checkpoint: Checkpoint, holds value: NameMapValue?) throws {
        let mapRoot: [UInt8]
        if checkpoint.size == 0 {
            guard evidence.headLeaf == nil else {
                throw ClientError(.verificationFailed, "the relay's map proof names a last log entry of an empty log")
            }
            mapRoot = NameMapKey.emptyRoot
        } else {
            guard let encodedHead = evidence.headLeaf else {
                throw ClientError(.verificationFailed, "the relay's map proof lacks the log entry that commits the map")
            }
            let headLeaf = try decode(encodedHead)
            guard MerkleProof.verifyInclusion(leafHash: MerkleHash.leaf(headLeaf), index: checkpoint.size - 1, size: checkpoint.size,
                                              proof: try evidence.headInclusionProof.map(decode), root: checkpoint.rootHash) else {
                throw ClientError(.verificationFailed, "the log entry that should commit the name map is not the last entry of the signed log")
            }
            guard let root = try verified("last log entry", { try LogLeaf.committedMapRoot(of: headLeaf) }) else {
                throw ClientError(.verificationFailed, "the relay's log commits no name map, so it cannot prove which key of \(name) is current (is the relay older than this client?)")
            }
            mapRoot = root
        }
        let proof: NameMapProof
        do {
            proof = try NameMapProof(encoded: decode(evidence.mapProof), foundValueHash: value?.hash)
        } catch let error as FormatError {
            throw ClientError(.verificationFailed, value == nil
                ? "the relay says \(name) is not registered, but its own name map proof says otherwise: the relay may be hiding a registered name"
                : "the relay's name map proof for \(name) is malformed: \(error.reason)")
        }
        let key = NameMapKey.of(name)
        if let value {
            guard !proof.provesAbsence, proof.root(for: key) == mapRoot else {
                throw ClientError(.verificationFailed, "the relay served \(name)'s key version \(value.keyVersion), but the signed name map does not hold it as \(name)'s current key: the relay may be hiding a newer key (a rotation)")
            }
        } else {
            guard proof.provesAbsence, proof.root(for: key) == mapRoot else {
                throw ClientError(.verificationFailed, "the relay says \(name) is not registered, but its signed name map does not prove it: the relay may be hiding a registered name")
            }
        }
    }

    /// Opens a checkpoint note with the pinned log key; it must be this log's (another origin is a
    /// new log, `ClientError.newLog`) and, when `size` is given, of that many leaves (the size a
    /// proof came with).
    static func signedCheckpoint(_ note: String, size: UInt64? = nil, logVerifier: NoteVerifier) throws -> Checkpoint {
        let origin = note.prefix { $0 != "\n" }
        guard origin == logVerifier.name || origin.isEmpty else {
            throw ClientError.newLog(String(origin), pinned: logVerifier.name)
        }
        let text = try verified("checkpoint") { try SignedNote.open(note, verifier: logVerifier) }
        let checkpoint = try verified("checkpoint") { try Checkpoint(text: text) }
        guard size.map({ checkpoint.size == $0 }) ?? true else {
            throw ClientError(.verificationFailed, "the checkpoint is for another size than the proof")
        }
        return checkpoint
    }

    /// Verifies a history answer for `name` against `checkpoint` (the one a lookup just proved the
    /// current version under): the same signed tree; versions 1, 2, … in order, each a valid
    /// bundle of `name` whose log leaf records exactly it and is proven in that tree; version 1
    /// a registration and every later one continuity-signed by the one before. Returns the chain.
    public static func verifyHistory(_ body: [UInt8], name: IdentityName, logVerifier: NoteVerifier,
                                     checkpoint: Checkpoint) throws -> [LoggedKeyVersion] {
        let response: HistoryResponse
        do {
            response = try JSONDecoder().decode(HistoryResponse.self, from: Data(body))
        } catch {
            throw ClientError(.verificationFailed, "the relay's history answer is not the expected JSON")
        }
        let signed = try signedCheckpoint(response.checkpoint, size: response.treeSize, logVerifier: logVerifier)
        guard signed.size == checkpoint.size, signed.rootHash == checkpoint.rootHash else {
            throw ClientError(.verificationFailed, "the relay proved \(name)'s history in another tree than the lookup: the log was forked")
        }
        var chain: [LoggedKeyVersion] = []
        for version in response.versions {
            let bundle = try verified("bundle in the history") { try IdentityBundle(encoded: decode(version.bundle)) }
            guard bundle.name == name, bundle.keyVersion == UInt32(chain.count + 1) else {
                throw ClientError(.verificationFailed, "the relay's history for \(name) holds \(bundle.name) version \(bundle.keyVersion) where version \(chain.count + 1) belongs")
            }
            let leafData = try decode(version.leaf)
            let entry = try verified("log entry in the history") { try DirectoryEntry(encoded: leafData) }
            guard entry.bundle == bundle else {
                throw ClientError(.verificationFailed, "the relay's log entry for \(name) version \(bundle.keyVersion) records a different key than its history")
            }
            guard MerkleProof.verifyInclusion(leafHash: MerkleHash.leaf(leafData), index: version.logIndex, size: checkpoint.size,
                                              proof: try version.inclusionProof.map(decode), root: checkpoint.rootHash) else {
                throw ClientError(.verificationFailed, "\(name)'s key version \(bundle.keyVersion) is not (provably) in the log: its inclusion proof fails")
            }
            if let previous = chain.last {
                try verified("rotation of \(name) to version \(bundle.keyVersion)") { try bundle.verifyContinuity(from: previous.bundle) }
            } else if bundle.continuity != nil {
                throw ClientError(.verificationFailed, "\(name)'s first key version claims to continue an earlier one")
            }
            chain.append(LoggedKeyVersion(bundle: bundle, loggedAt: entry.time))
        }
        guard !chain.isEmpty else {
            throw ClientError(.verificationFailed, "the relay's history for \(name) is empty")
        }
        return chain
    }

    /// Accepts a contact's key change from `pinned` to `current` only if the verified `history`
    /// holds exactly the pinned bundle and ends with the current one, so an unbroken chain of
    /// continuity signatures, each logged, leads from the key this client trusted to the new one.
    public static func verifyRotation(from pinned: IdentityBundle, to current: IdentityBundle, history: [LoggedKeyVersion]) throws {
        let history = history.map(\.bundle)
        let pinnedIndex = Int(pinned.keyVersion) - 1
        guard history.indices.contains(pinnedIndex), history[pinnedIndex] == pinned else {
            throw ClientError(.verificationFailed, ContactPins.keyChanged(pinned: pinned, served: current).reason
                + " (the relay's logged history of \(current.name) does not contain the pinned key, so no continuity signature leads from it)")
        }
        guard history.last == current else {
            throw ClientError(.verificationFailed, "the relay's history of \(current.name) does not end with the key it serves")
        }
    }

    /// Checks that `new` extends `stored` (the last checkpoint this client accepted).
    /// Refuses a smaller log (rollback) and a log whose history differs (fork).
    public static func verifyExtension(of stored: Checkpoint, to new: Checkpoint, proof: [[UInt8]]) throws {
        guard stored.origin == new.origin else {
            throw ClientError(.logInconsistent, "the relay's log changed its origin from \(stored.origin) to \(new.origin)")
        }
        guard new.size >= stored.size else {
            throw ClientError(.logInconsistent, """
                the relay's log went back from \(stored.size) to \(new.size) entries: it was rolled back. Do not trust keys from it, \
                and tell its operator: a relay restored from a backup must start a new log (secmail relay new-log), which you \
                then follow with secmail register --new-log
                """)
        }
        guard MerkleProof.verifyConsistency(oldSize: stored.size, newSize: new.size, oldRoot: stored.rootHash,
                                            newRoot: new.rootHash, proof: proof) else {
            throw ClientError(.logInconsistent, "the relay's log of \(new.size) entries does not extend the one of \(stored.size) entries this client saw before: the log was forked or rewritten")
        }
    }

    static func decode(_ base64: String) throws -> [UInt8] {
        guard let data = Data(base64Encoded: base64) else {
            throw ClientError(.verificationFailed, "the relay's answer holds invalid base64")
        }
        return Array(data)
    }

    private static func verified<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as FormatError {
            throw ClientError(.verificationFailed, "the relay's \(what) failed verification: \(error.reason)")
        }
    }
}
