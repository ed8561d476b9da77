import Foundation

/// The log's origin: the name in every checkpoint and the log key's name, which clients pin. It is
/// chosen once, at the first start, and kept in the data directory's `origin` file, so restarting
/// with another `--listen` address changes nothing that clients check.
enum RelayOrigin {
    /// The persisted origin; on first start, `requested` (from `--origin`) or `defaultOrigin()`.
    /// A log created before origins were persisted keeps `legacyOrigin`, the one it was signed
    /// with (then always `<listen host>/secmail`). A request for another origin than the persisted one is
    /// refused: it would make every client refuse the log.
    static func resolve(in dataDirectory: URL, requested: String?, database: RelayDatabase, legacyOrigin: String,
                        defaultOrigin: () -> String) throws -> String {
        let file = dataDirectory.appendingPathComponent("origin")
        if let stored = FileManager.default.contents(atPath: file.path) {
            let origin = String(decoding: stored, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            try validate(origin, source: file.path)
            if let requested, requested != origin {
                throw RelayError(.invalidRequest, """
                    this relay's log origin is "\(origin)" (chosen at its first start, kept in \(file.path)); \
                    it cannot become "\(requested)": every client pinned the log under its origin. Start without --origin, \
                    or use a new data directory for a new log
                    """)
            }
            return origin
        }
        let logExists = try database.read { db in try LogStore.currentSize(db) > 0 }
        let origin = requested ?? (logExists ? legacyOrigin : defaultOrigin())
        try validate(origin, source: requested == nil ? "the default origin" : "--origin")
        guard FileManager.default.createFile(atPath: file.path, contents: Data((origin + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw RelayError(.storage, "cannot write \(file.path)")
        }
        return origin
    }

    /// A C2SP origin that is also a valid note key name: printable ASCII without spaces or '+'.
    static func validate(_ origin: String, source: String) throws {
        guard !origin.isEmpty, origin.utf8.count <= 255,
              origin.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != "+" }) else {
            throw RelayError(.invalidRequest, "\(source): a log origin is 1 to 255 printable ASCII characters without spaces or '+', e.g. relay.example.org/secmail")
        }
    }
}
