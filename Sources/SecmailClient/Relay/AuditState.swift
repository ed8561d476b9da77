import Foundation
import SecmailFormat

/// How far `secmail audit` has read the log ($SECMAIL_HOME/audit.json): the frontier of the
/// audited prefix, from which the next audit continues.
struct AuditState {
    var frontier: MerkleFrontier

    private struct Stored: Codable {
        let treeSize: UInt64
        /// Base64 subtree hashes of the audited prefix, largest first (MerkleFrontier).
        let frontier: [String]
    }

    static func url(in home: SecmailHome) -> URL { home.url.appendingPathComponent("audit.json") }

    static func load(from home: SecmailHome) throws -> AuditState {
        let url = url(in: home)
        guard FileManager.default.fileExists(atPath: url.path) else { return AuditState(frontier: MerkleFrontier()) }
        do {
            let stored = try JSONDecoder().decode(Stored.self, from: Data(FileSystem.read(url)))
            let hashes = try stored.frontier.map { encoded in
                guard let data = Data(base64Encoded: encoded) else { throw FormatError(.invalidField, "invalid base64") }
                return Array(data)
            }
            return AuditState(frontier: try MerkleFrontier(size: stored.treeSize, hashes: hashes))
        } catch {
            throw ClientError(.corruptState, "\(url.path) is damaged (\(error)); remove it to audit the whole log again")
        }
    }

    func save(to home: SecmailHome) throws {
        let stored = Stored(treeSize: frontier.size, frontier: frontier.hashes.map { Data($0).base64EncodedString() })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileSystem.replaceFile(Self.url(in: home), bytes: Array(try encoder.encode(stored)), permissions: 0o600)
    }
}
