import Foundation
import SecmailCrypto

/// A relay's data directory as the tools beside a serving relay see it (`relay status`, `relay
/// invite`): refused unless a relay made it, nothing created in it, and its database opened
/// without migrating, since a relay of an older version may be serving it.
public struct ServedRelayData: Sendable {
    public let directory: URL
    /// The log's origin and its key, as the relay signs with them.
    public let origin: String
    let logKey: Ed25519PrivateKey
    public let database: RelayDatabase

    /// The data directory `directory`, with its database: PostgreSQL at `postgres` when given,
    /// else SQLite in the directory.
    public init(directory: URL, postgres: PostgresAddress?) throws {
        guard let logKey = try PreparedRelay.loadLogKey(at: directory.appendingPathComponent("log-key.ed25519")) else {
            throw RelayError(.invalidRequest, "\(directory.path) is not a relay's data directory (it holds no log key): give the --data the relay serves; a relay makes its directory when it first starts")
        }
        guard let origin = try RelayOrigin.stored(in: directory) else {
            throw RelayError(.invalidRequest, "\(directory.path) holds no origin file: no relay has served from it yet (a relay records its log origin there when it starts)")
        }
        let sqliteFile = directory.appendingPathComponent("relay.sqlite")
        if postgres == nil, !FileManager.default.fileExists(atPath: sqliteFile.path) {
            throw RelayError(.invalidRequest, "\(directory.path) holds no relay.sqlite: its relay keeps its database elsewhere (give --database)")
        }
        self.directory = directory
        self.logKey = logKey
        self.origin = origin
        database = try postgres.map { try RelayDatabase(postgres: $0, migrating: false) } ?? RelayDatabase(path: sqliteFile.path, migrating: false)
    }

    /// The log key in verifier-key form, as clients pin it.
    public var logVerifierKey: String {
        get throws { try CheckpointSigner(origin: origin, key: logKey).verifier.verifierKey }
    }
}
