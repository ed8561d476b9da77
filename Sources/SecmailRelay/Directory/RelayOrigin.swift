import Foundation
import SecmailFormat

/// The log's origin: the name in every checkpoint and the log key's name, which clients pin. It is
/// chosen at the first start (and fixed from the log's first entry) and kept in the data
/// directory's `origin` file, so restarting with another `--listen` address changes nothing that
/// clients check.
enum RelayOrigin {
    /// The persisted origin; on first start, `requested` (from `--origin`) or `defaultOrigin()`.
    /// A log created before origins were persisted keeps `legacyOrigin`, the one it was signed
    /// with (then always `<listen host>/secmail`). A request for another origin than the persisted
    /// one is refused once the log has an entry (every client pinned the log under its origin);
    /// before that, on a relay of its own database, nothing was signed for anyone to pin, so a first
    /// start that failed (say, on a port in use) does not fix the origin it was given.
    static func resolve(in dataDirectory: URL, requested: String?, database: RelayDatabase, legacyOrigin: String,
                        defaultOrigin: () -> String) throws -> String {
        let file = dataDirectory.appendingPathComponent("origin")
        let logExists = try database.read { db in try LogStore.currentSize(db) > 0 }
        if let origin = try stored(in: dataDirectory) {
            guard let requested, requested != origin else { return origin }
            guard !logExists, database.kind != .postgres else {
                throw RelayError(.invalidRequest, """
                    this relay's log origin is "\(origin)" (chosen at its first start, kept in \(file.path)); \
                    it cannot become "\(requested)": \(logExists ? "every client pinned the log under its origin" : "the relays sharing \(database.location) sign under it"). \
                    Start without --origin, or use a new data directory for a new log
                    """)
            }
            try validate(requested, source: "--origin")
            try store(requested, in: file)
            return requested
        }
        let origin = requested ?? (logExists ? legacyOrigin : defaultOrigin())
        try validate(origin, source: requested == nil ? "the default origin" : "--origin")
        try store(origin, in: file)
        return origin
    }

    /// The origin kept in `dataDirectory`'s `origin` file, checked; nil when there is no file.
    static func stored(in dataDirectory: URL) throws -> String? {
        let file = dataDirectory.appendingPathComponent("origin")
        guard let stored = FileManager.default.contents(atPath: file.path) else { return nil }
        let origin = String(decoding: stored, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        try validate(origin, source: file.path)
        return origin
    }

    /// Writes `origin` to `file` through a synced temporary renamed over it: a crash leaves the old
    /// origin or the new one, never an empty file that a restart would take for no origin at all.
    private static func store(_ origin: String, in file: URL) throws {
        let staged = file.deletingLastPathComponent().appendingPathComponent(".origin.new")
        try DataDirectoryFile.writeSynced(Array((origin + "\n").utf8), to: staged)
        do {
            try AtomicRename.replace(file, with: staged)
            try PositionalFile(readingAtPath: file.deletingLastPathComponent().path).synchronize()
        } catch let error as FormatError {
            throw RelayError(.storage, error.reason)
        }
    }

    /// A C2SP origin that is also a valid note key name: printable ASCII without spaces or '+'.
    static func validate(_ origin: String, source: String) throws {
        guard !origin.isEmpty, origin.utf8.count <= 255,
              origin.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != "+" }) else {
            throw RelayError(.invalidRequest, "\(source): a log origin is 1 to 255 printable ASCII characters without spaces or '+', e.g. relay.example.org/secmail")
        }
    }
}
