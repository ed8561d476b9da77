import Foundation
import SecmailCrypto
import SecmailFormat

/// Signs checkpoints of the log with the relay's Ed25519 log key (C2SP signed-note format), once
/// per tree: the signed note of the latest tree is kept and served again (Ed25519 signatures are
/// deterministic, so this changes no byte).
public struct CheckpointSigner: Sendable {
    /// The log's origin line and note key name, e.g. "localhost:8443/secmail".
    public let origin: String
    let key: Ed25519PrivateKey
    private let latest = SignedCheckpointCache()

    public init(origin: String, key: Ed25519PrivateKey) {
        self.origin = origin
        self.key = key
    }

    /// The verifier that clients pin on first contact.
    public var verifier: NoteVerifier {
        get throws { try NoteVerifier(name: origin, publicKey: key.publicKey) }
    }

    /// A signed checkpoint for a log of `size` leaves with `rootHash`.
    public func sign(size: UInt64, rootHash: [UInt8]) throws -> String {
        if let note = latest.note(size: size, rootHash: rootHash) { return note }
        let checkpoint = try Checkpoint(origin: origin, size: size, rootHash: rootHash)
        let note = try SignedNote.sign(checkpoint.text, name: origin, key: key)
        latest.keep(note, size: size, rootHash: rootHash)
        return note
    }
}

/// The signed note of the largest tree signed so far.
final class SignedCheckpointCache: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var entry: (size: UInt64, rootHash: [UInt8], note: String)?

    func note(size: UInt64, rootHash: [UInt8]) -> String? {
        lock.withLock {
            guard let entry, entry.size == size, entry.rootHash == rootHash else { return nil }
            return entry.note
        }
    }

    func keep(_ note: String, size: UInt64, rootHash: [UInt8]) {
        lock.withLock {
            if entry.map({ $0.size <= size }) ?? true { entry = (size, rootHash, note) }
        }
    }
}
