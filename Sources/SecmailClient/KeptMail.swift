import Foundation
import SecmailFormat

/// The envelopes a home keeps: every message sent (sent/ID.sm) and read (received/ID.sm with the
/// sender's bundle, ID.sender), so that mail can be read again. `prune` removes old ones. A pruned
/// received message leaves a tombstone (received/ID.pruned), because received/ is also the record
/// of the message ids already read (P4): a relay that serves a pruned message again is still
/// refused.
public struct KeptMail: Sendable {
    public let home: SecmailHome

    public init(home: SecmailHome) {
        self.home = home
    }

    var sentDirectory: URL { home.url.appendingPathComponent("sent", isDirectory: true) }
    var receivedDirectory: URL { home.url.appendingPathComponent("received", isDirectory: true) }

    /// The tombstone of a received message whose kept copy was pruned.
    func tombstone(_ id: MessageID) -> URL {
        receivedDirectory.appendingPathComponent("\(id.hex).pruned")
    }

    /// The kept copy of received message `id`.
    func receivedCopy(_ id: MessageID) -> URL {
        receivedDirectory.appendingPathComponent("\(id.hex).sm")
    }

    /// Whether message `id` was read and its copy is kept (`secmail read` opens it again).
    public func hasReceivedCopy(of id: MessageID) -> Bool {
        FileManager.default.fileExists(atPath: receivedCopy(id).path)
    }

    /// The ids of the messages read whose copies are kept (`secmail read` opens them again).
    public func readIDs() -> [MessageID] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: receivedDirectory.path)) ?? []
        return files.compactMap { $0.hasSuffix(".sm") ? try? MessageID(hex: String($0.dropLast(3))) : nil }
    }

    /// The ids of the messages read and kept that start with `prefix` (hex digits, any case).
    public func readIDs(startingWith prefix: String) -> [MessageID] {
        let prefix = prefix.lowercased()
        return readIDs().filter { $0.hex.hasPrefix(prefix) }
    }

    /// Whether message `id` was read and its kept copy pruned since.
    public func wasPruned(_ id: MessageID) -> Bool {
        FileManager.default.fileExists(atPath: tombstone(id).path)
    }

    public struct Pruned: Sendable {
        public var sent = 0
        public var received = 0
        public var bytes: UInt64 = 0
    }

    /// Removes the kept envelopes stored more than `age` seconds before `now` (by the time they
    /// were stored); with `dryRun`, only counts them.
    public func prune(olderThan age: TimeInterval, now: Date = Date(), dryRun: Bool = false) throws -> Pruned {
        let cutoff = now.addingTimeInterval(-age)
        var pruned = Pruned()
        for (_, url, size) in try envelopes(in: sentDirectory, storedBefore: cutoff) {
            pruned.sent += 1
            pruned.bytes += size
            if !dryRun { try remove(url) }
        }
        var tombstoned = false
        for (id, url, size) in try envelopes(in: receivedDirectory, storedBefore: cutoff) {
            pruned.received += 1
            pruned.bytes += size
            guard !dryRun else { continue }
            // The tombstone first, durably: a crash in between must not forget that the id was read.
            try FileSystem.createDurableFile(tombstone(id), bytes: Array("\(Int64(now.timeIntervalSince1970))\n".utf8), permissions: 0o600)
            tombstoned = true
            try remove(url)
            try? FileManager.default.removeItem(at: receivedDirectory.appendingPathComponent("\(id.hex).sender"))
        }
        if tombstoned { try FileSystem.synchronize(receivedDirectory) }
        return pruned
    }

    private func envelopes(in directory: URL, storedBefore cutoff: Date) throws -> [(MessageID, URL, UInt64)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.sorted().compactMap { name in
            guard name.hasSuffix(".sm"), let id = try? MessageID(hex: String(name.dropLast(3))) else { return nil }
            let url = directory.appendingPathComponent(name)
            guard let status = try? FileStatus(path: url.path), Double(status.modified) < cutoff.timeIntervalSince1970 else { return nil }
            return (id, url, status.size)
        }
    }

    private func remove(_ url: URL) throws {
        do {
            try FileManager.default.removeItem(at: url)
        } catch {
            throw ClientError(.io, "cannot remove \(url.path): \(error.localizedDescription)")
        }
    }
}
