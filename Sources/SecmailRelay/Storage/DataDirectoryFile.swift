import Foundation
import SecmailFormat

/// Small files of the relay's data directory (origin, log key, marks), written whole.
enum DataDirectoryFile {
    /// Writes `bytes` to a new file at `url` (0600, replacing one left there) and syncs it; the
    /// caller renames it into place.
    static func writeSynced(_ bytes: [UInt8], to url: URL) throws {
        do {
            try? FileManager.default.removeItem(at: url)
            let file = try PositionalFile(creatingAtPath: url.path, permissions: 0o600)
            try file.write(bytes[...])
            try file.synchronize()
        } catch let error as FormatError {
            throw RelayError(.storage, error.reason)
        }
    }
}
