import Foundation
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
        let response: DirectoryLookupMessage
        do {
            response = try JSONDecoder().decode(DirectoryLookupMessage.self, from: Data(body))
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

    /// Checks that `new` extends `stored` (the last checkpoint this client accepted).
    /// Refuses a smaller log (rollback) and a log whose history differs (fork).
    public static func verifyExtension(of stored: Checkpoint, to new: Checkpoint, proof: [[UInt8]]) throws {
        guard stored.origin == new.origin else {
            throw ClientError(.verificationFailed, "the relay's log changed its origin from \(stored.origin) to \(new.origin)")
        }
        guard new.size >= stored.size else {
            throw ClientError(.verificationFailed, "the relay's log went back from \(stored.size) to \(new.size) entries: it was rolled back")
        }
        guard MerkleProof.verifyConsistency(oldSize: stored.size, newSize: new.size, oldRoot: stored.rootHash,
                                            newRoot: new.rootHash, proof: proof) else {
            throw ClientError(.verificationFailed, "the relay's log of \(new.size) entries does not extend the one of \(stored.size) entries this client saw before: the log was forked or rewritten")
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
