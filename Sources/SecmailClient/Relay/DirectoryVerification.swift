import Foundation
import SecmailAPI
import SecmailFormat

/// A directory lookup that passed every check.
public struct VerifiedLookup: Sendable {
    public let bundle: IdentityBundle
    public let logIndex: UInt64
    /// The checkpoint the inclusion was proven against (store it: the next contact must extend it).
    public let checkpoint: Checkpoint
    public let checkpointNote: String
}

/// The client's checks of what a relay says about keys (P5, P6). Pure: no I/O.
public enum DirectoryVerification {
    /// Verifies a lookup answer for `name`:
    /// the bundle parses and its self-signature holds; it is `name`'s; the checkpoint is signed by
    /// the pinned log key; the log leaf records exactly this bundle; the inclusion proof leads
    /// from that leaf to the checkpoint's root.
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
        let checkpointText = try verified("checkpoint") { try SignedNote.open(response.checkpoint, verifier: logVerifier) }
        let checkpoint = try verified("checkpoint") { try Checkpoint(text: checkpointText) }
        guard checkpoint.origin == logVerifier.name, checkpoint.size == response.treeSize else {
            throw ClientError(.verificationFailed, "the checkpoint is for another log or another size than the proof")
        }
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
        return VerifiedLookup(bundle: bundle, logIndex: response.logIndex, checkpoint: checkpoint, checkpointNote: response.checkpoint)
    }

    /// Verifies a history answer for `name` against `checkpoint` (the one a lookup just proved the
    /// current version under): the same signed tree; versions 1, 2, … in order, each a valid
    /// bundle of `name` whose log leaf records exactly it and is proven in that tree; version 1
    /// a registration and every later one continuity-signed by the one before. Returns the chain.
    public static func verifyHistory(_ body: [UInt8], name: IdentityName, logVerifier: NoteVerifier,
                                     checkpoint: Checkpoint) throws -> [IdentityBundle] {
        let response: HistoryResponse
        do {
            response = try JSONDecoder().decode(HistoryResponse.self, from: Data(body))
        } catch {
            throw ClientError(.verificationFailed, "the relay's history answer is not the expected JSON")
        }
        let signed = try verified("history checkpoint") { try Checkpoint(text: SignedNote.open(response.checkpoint, verifier: logVerifier)) }
        guard signed.origin == checkpoint.origin, signed.size == checkpoint.size, signed.rootHash == checkpoint.rootHash,
              response.treeSize == checkpoint.size else {
            throw ClientError(.verificationFailed, "the relay proved \(name)'s history in another tree than the lookup: the log was forked")
        }
        var chain: [IdentityBundle] = []
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
                try verified("rotation of \(name) to version \(bundle.keyVersion)") { try bundle.verifyContinuity(from: previous) }
            } else if bundle.continuity != nil {
                throw ClientError(.verificationFailed, "\(name)'s first key version claims to continue an earlier one")
            }
            chain.append(bundle)
        }
        guard !chain.isEmpty else {
            throw ClientError(.verificationFailed, "the relay's history for \(name) is empty")
        }
        return chain
    }

    /// Accepts a contact's key change from `pinned` to `current` only if the verified `history`
    /// holds exactly the pinned bundle and ends with the current one, so an unbroken chain of
    /// continuity signatures, each logged, leads from the key this client trusted to the new one.
    public static func verifyRotation(from pinned: IdentityBundle, to current: IdentityBundle, history: [IdentityBundle]) throws {
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
            throw ClientError(.logInconsistent, "the relay's log went back from \(stored.size) to \(new.size) entries: it was rolled back")
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
