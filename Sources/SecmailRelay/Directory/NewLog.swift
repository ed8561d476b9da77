import Foundation
import SecmailCrypto
import SecmailFormat

/// A new log over the directory's entries, for a relay restored from a backup.
///
/// Clients refuse a log that goes back: after a restore, every client that saw a checkpoint newer
/// than the backup would stop at "it was rolled back", and the log key would have signed two trees
/// of one size that disagree (what a fork looks like). A restored relay therefore signs from then
/// on with a new log key under a new origin: the same leaves, a log no client has seen, which each
/// user follows deliberately (`secmail register NAME --new-log --log-key KEY`); the old key is kept
/// aside and signs nothing more. Envelopes sealed before carry checkpoints of the old origin, which
/// readers do not compare with the new log.
public enum NewLog {
    public struct Started: Sendable {
        public let previousOrigin: String
        public let origin: String
        /// The new log key in verifier-key form, for clients to pin.
        public let logVerifierKey: String
        /// Where the old log key now is.
        public let retiredKey: URL
        /// Entries the new log starts with (those of the restored directory).
        public let size: UInt64
    }

    /// Gives the log of the relay in `data` (SQLite there, or the PostgreSQL database `postgres`) a
    /// new key and the origin `requested` (default: `successor(of:)` the current one). The relay
    /// must be stopped (its `relay.lock` is taken). Ends the data directory's backup mark.
    public static func start(in data: URL, postgres: PostgresAddress?, origin requested: String?) throws -> Started {
        let originFile = data.appendingPathComponent("origin"), keyFile = data.appendingPathComponent("log-key.ed25519")
        guard let previousOrigin = try RelayOrigin.stored(in: data), FileManager.default.fileExists(atPath: keyFile.path) else {
            throw RelayError(.invalidRequest, "\(data.path) holds no relay log yet (no origin and log-key.ed25519): a relay starts its first log itself")
        }
        let (lock, holder) = try ExclusiveFileLock.acquire(data.appendingPathComponent("relay.lock").path, waitingUpTo: .milliseconds(500))
        guard let lock else {
            throw RelayError(.storage, "a relay\(holder.map { " (process \($0))" } ?? "") is serving \(data.path); stop it first")
        }
        defer { withExtendedLifetime(lock) {} }
        ExclusiveFileLock.restrictNewFilesToOwner()
        let origin = requested ?? successor(of: previousOrigin)
        try RelayOrigin.validate(origin, source: requested == nil ? "the next origin" : "--origin")
        guard origin != previousOrigin else {
            throw RelayError(.invalidRequest, "the new log needs another origin than \"\(previousOrigin)\": clients tell logs apart by it")
        }
        let signer = CheckpointSigner(origin: origin, key: try Ed25519PrivateKey.generate())
        let verifierKey = try signer.verifier.verifierKey
        let database = try postgres.map { try RelayDatabase(postgres: $0) } ?? RelayDatabase(path: data.appendingPathComponent("relay.sqlite").path)
        let size = try database.read { db in try LogStore.currentSize(db) }

        // Staged first, so that a failure before the renames leaves the old log as it was; and the
        // directory marked until both files are in place, so that no relay serves half of the change.
        let mark = data.appendingPathComponent(RelayBackup.markName)
        if !FileManager.default.fileExists(atPath: mark.path) {
            try DataDirectoryFile.writeSynced(Array("a data directory whose log secmail relay new-log was changing when it stopped\n".utf8), to: mark)
        }
        let stagedKey = data.appendingPathComponent(".log-key.ed25519.new"), stagedOrigin = data.appendingPathComponent(".origin.new")
        try DataDirectoryFile.writeSynced(try signer.key.seed, to: stagedKey)
        try DataDirectoryFile.writeSynced(Array((origin + "\n").utf8), to: stagedOrigin)
        let retiredKey = data.appendingPathComponent("log-key.ed25519.retired-\(Int64(Date().timeIntervalSince1970))")
        do {
            // A link, not a move: at every instant log-key.ed25519 exists (a relay started on a
            // directory without it would make a key of its own under the old origin).
            try FileManager.default.linkItem(at: keyFile, to: retiredKey)
        } catch {
            throw RelayError(.storage, "cannot keep the old log key as \(retiredKey.path): \(error.localizedDescription)")
        }
        // Then the shared database, which refuses every relay still holding the old key.
        if postgres != nil {
            try database.write { db in
                try db.execute("UPDATE log_signer SET origin = ?, verifier_key = ?", [origin, verifierKey])
            }
        }
        do {
            try AtomicRename.replace(keyFile, with: stagedKey)
            try AtomicRename.replace(originFile, with: stagedOrigin)
            try PositionalFile(readingAtPath: data.path).synchronize()
            try FileManager.default.removeItem(at: mark)
            try PositionalFile(readingAtPath: data.path).synchronize()
        } catch let error as FormatError {
            throw RelayError(.storage, error.reason)
        } catch {
            throw RelayError(.storage, "cannot remove \(mark.path) (\(error.localizedDescription)): remove it before starting the relay")
        }
        return Started(previousOrigin: previousOrigin, origin: origin, logVerifierKey: verifierKey, retiredKey: retiredKey, size: size)
    }

    /// The origin after `origin`: its last path element counted up when it is a number
    /// (`relay.example.org/secmail/2` → `/3`), else `/2` appended.
    static func successor(of origin: String) -> String {
        if let slash = origin.lastIndex(of: "/"), let number = Int(origin[origin.index(after: slash)...]), number >= 1 {
            return "\(origin[..<slash])/\(number + 1)"
        }
        return origin + "/2"
    }
}
