import Foundation
import GRDB
import SecmailFormat

/// An online backup of a relay's data directory, taken while the relay may be serving: a data
/// directory that a relay serves once its log was given a new key (`NewLog`, docs/DEPLOY.md).
public enum RelayBackup {
    /// The file that marks a data directory as a backup. A relay refuses to serve it until
    /// `NewLog.start` (which removes it): serving the restored log with the key that went on
    /// signing the original would show clients a log that went back.
    public static let markName = "backup-of"

    /// What a backup holds.
    public struct Summary: Sendable {
        public let identities: Int
        public let logLeaves: Int
        public let messages: Int
        /// Envelopes stored as files (larger ones), copied beside the database.
        public let envelopeFiles: Int
        public let envelopeBytes: Int64
        /// Messages the snapshot held whose envelope was deleted before its file was copied: the
        /// backup does not hold them either (they were deleted by their recipient meanwhile).
        public let deletedDuringBackup: Int
    }

    /// Where a backup is, for a progress display: the database snapshot has begun (one step, so
    /// that the serving relay's commits cannot restart it: no progress of its own), or so many of
    /// the envelope files' bytes are copied.
    public enum Progress: Sendable {
        case database
        case envelopeFiles(copied: UInt64, total: UInt64)
    }

    /// Backs `data` up into `destination`, which must not exist: the database as one consistent
    /// snapshot (SQLite's online backup, which the serving relay's commits do not disturb), then
    /// the envelope files that snapshot names, the log key, the origin and the development TLS
    /// files, each written and synced; the copy is checked with `PRAGMA integrity_check`.
    /// Secrets are in it (the log key, the TLS key): it is made its owner's alone. The backup is
    /// made in a hidden directory beside `destination` and renamed to it only once complete, so
    /// a directory by that name is always a whole backup; a failed one leaves nothing.
    public static func make(from data: URL, to destination: URL, progress: (Progress) -> Void = { _ in }) async throws -> Summary {
        let fileManager = FileManager.default
        guard fileManager.fileExists(atPath: data.appendingPathComponent("relay.sqlite").path) else {
            throw RelayError(.storage, "\(data.path) holds no relay database (relay.sqlite)")
        }
        guard !fileManager.fileExists(atPath: destination.path) else {
            throw RelayError(.storage, "\(destination.path) exists already; a backup goes into a new directory")
        }
        ExclusiveFileLock.restrictNewFilesToOwner()
        let parent = destination.deletingLastPathComponent()
        let working = parent.appendingPathComponent(".\(destination.lastPathComponent).incomplete-\(UUID().uuidString)", isDirectory: true)
        do {
            let summary = try await fill(working, from: data, progress: progress)
            do {
                try fileManager.moveItem(at: working, to: destination)
            } catch {
                throw RelayError(.storage, "cannot rename the finished backup to \(destination.path): \(error.localizedDescription)")
            }
            try synchronize(parent)
            return summary
        } catch {
            try? fileManager.removeItem(at: working)
            throw error
        }
    }

    /// Writes a whole backup of `data` into the new directory `destination`.
    private static func fill(_ destination: URL, from data: URL, progress: (Progress) -> Void) async throws -> Summary {
        let envelopes = destination.appendingPathComponent("envelopes", isDirectory: true)
        do {
            try FileManager.default.createDirectory(at: envelopes, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: destination.path)
        } catch {
            throw RelayError(.storage, "cannot create \(destination.path): \(error.localizedDescription)")
        }
        let backupDatabase = destination.appendingPathComponent("relay.sqlite")
        progress(.database)
        try snapshotDatabase(data.appendingPathComponent("relay.sqlite"), to: backupDatabase)
        try copyKeysAndCertificates(from: data, to: destination)
        let database = try RelayDatabase(path: backupDatabase.path)
        let copied = try await copyEnvelopeFiles(listedIn: database, from: data.appendingPathComponent("envelopes", isDirectory: true), to: envelopes,
                                                 progress: progress)
        let deleted = try await deleteMessages(of: copied.vanished, in: database, envelopes: envelopes)
        let counts = try await checkedCounts(database)
        let mark = "a backup of \(data.path), taken \(HumanTime.describe(Int64(Date().timeIntervalSince1970))) with \(counts.leaves) log entries\n"
        guard FileManager.default.createFile(atPath: destination.appendingPathComponent(markName).path, contents: Data(mark.utf8)) else {
            throw RelayError(.storage, "cannot write \(destination.appendingPathComponent(markName).path)")
        }
        for directory in [envelopes, destination.appendingPathComponent("tls", isDirectory: true), destination]
        where FileManager.default.fileExists(atPath: directory.path) {
            try synchronize(directory)
        }
        return Summary(identities: counts.identities, logLeaves: counts.leaves, messages: counts.messages,
                       envelopeFiles: copied.files, envelopeBytes: copied.bytes, deletedDuringBackup: deleted)
    }

    /// A consistent copy of the live database, through SQLite's online backup.
    private static func snapshotDatabase(_ source: URL, to copy: URL) throws {
        do {
            var configuration = Configuration()
            configuration.readonly = true
            configuration.busyMode = .timeout(5)
            let live = try DatabasePool(path: source.path, configuration: configuration)
            let snapshot = try DatabaseQueue(path: copy.path)
            try live.backup(to: snapshot)
            try snapshot.close()
            try live.close()
        } catch let error as DatabaseError {
            throw RelayError(.storage, "the database backup failed", databaseMessage: error.message)
        }
    }

    /// The log key, the origin and the TLS certificate and key, each synced.
    private static func copyKeysAndCertificates(from data: URL, to destination: URL) throws {
        let fileManager = FileManager.default
        for name in ["log-key.ed25519", "origin"] where fileManager.fileExists(atPath: data.appendingPathComponent(name).path) {
            try copySynced(data.appendingPathComponent(name), to: destination.appendingPathComponent(name))
        }
        let tls = data.appendingPathComponent("tls", isDirectory: true)
        if let files = try? fileManager.contentsOfDirectory(atPath: tls.path) {
            let target = destination.appendingPathComponent("tls", isDirectory: true)
            try fileManager.createDirectory(at: target, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            for file in files { try copySynced(tls.appendingPathComponent(file), to: target.appendingPathComponent(file)) }
        }
    }

    /// Copies the envelope files the snapshot lists; returns how many and their bytes, and the
    /// ids whose files were gone (deleted since the snapshot).
    private static func copyEnvelopeFiles(listedIn database: RelayDatabase, from live: URL, to envelopes: URL,
                                          progress: (Progress) -> Void) async throws -> (files: Int, bytes: Int64, vanished: [String]) {
        let fileBacked = try await database.read { db in
            try db.fetchRows("SELECT envelope_id, size FROM envelopes WHERE inline_data IS NULL")
                .map { (try $0.get("envelope_id") as String, try $0.get("size") as Int64) }
        }
        let total = UInt64(fileBacked.reduce(0) { $0 + max($1.1, 0) })
        var vanished: [String] = []
        var bytes: Int64 = 0
        // Copied or found gone: what the progress counts.
        var done: UInt64 = 0
        progress(.envelopeFiles(copied: 0, total: total))
        for (envelopeID, size) in fileBacked {
            defer {
                done += UInt64(max(size, 0))
                progress(.envelopeFiles(copied: done, total: total))
            }
            let original = live.appendingPathComponent(envelopeID)
            guard FileManager.default.fileExists(atPath: original.path) else {
                vanished.append(envelopeID)
                continue
            }
            try copySynced(original, to: envelopes.appendingPathComponent(envelopeID))
            bytes += size
        }
        return (fileBacked.count - vanished.count, bytes, vanished)
    }

    /// A file gone since the snapshot belonged to messages deleted since: they go from the
    /// backup the way the relay deletes them. Returns how many.
    private static func deleteMessages(of vanished: [String], in database: RelayDatabase, envelopes: URL) async throws -> Int {
        let mailboxes = try MailboxStore(database: database, directory: envelopes)
        var deleted = 0
        for envelopeID in vanished {
            let deliveries = try await database.read { db in
                try db.fetchRows("SELECT recipient, message_id FROM deliveries WHERE envelope_id = ?", [envelopeID])
                    .map { (try $0.get("recipient") as String, Array(try $0.get("message_id") as Data)) }
            }
            for (recipient, messageID) in deliveries {
                try await mailboxes.delete(try IdentityName(recipient), try MessageID(bytes: messageID))
                deleted += 1
            }
        }
        return deleted
    }

    /// The backup's counts, once SQLite's integrity check passed.
    private static func checkedCounts(_ database: RelayDatabase) async throws -> (identities: Int, leaves: Int, messages: Int) {
        try await database.read { db in
            let check = try db.fetchAll(String.self, "PRAGMA integrity_check")
            guard check == ["ok"] else {
                throw RelayError(.storage, "the backup's database fails its integrity check: \(check.prefix(3).joined(separator: "; "))")
            }
            return (try db.fetchOne(Int.self, "SELECT count(DISTINCT name) FROM identities") ?? 0,
                    try db.fetchOne(Int.self, "SELECT count(*) FROM log_leaves") ?? 0,
                    try db.fetchOne(Int.self, "SELECT count(*) FROM deliveries") ?? 0)
        }
    }

    /// Copies `source` to `target` and syncs it to disk before returning.
    private static func copySynced(_ source: URL, to target: URL) throws {
        do {
            try FileManager.default.copyItem(at: source, to: target)
        } catch {
            throw RelayError(.storage, "cannot copy \(source.path) to \(target.path): \(error.localizedDescription)")
        }
        try synchronize(target)
    }

    /// Syncs a file, or a directory's entries, to disk.
    private static func synchronize(_ url: URL) throws {
        do {
            try PositionalFile(readingAtPath: url.path).synchronize()
        } catch let error as FormatError {
            throw RelayError(.storage, error.reason)
        }
    }
}
