import Foundation
import SecmailFormat
import SecmailTLS

/// What an operator asks of a relay's data while it serves (`secmail relay status`): its log,
/// who is registered, the mail waiting and the room left, read from one consistent snapshot of
/// the database (`ServedRelayData`: nothing is written or created).
public struct RelayStatus: Sendable {
    /// Whether a relay serves this data directory now (holds its `relay.lock`), and its process id.
    public let serving: (running: Bool, process: Int32?)
    /// The log's origin and the log key in verifier-key form, as clients pin them.
    public let origin: String
    public let logVerifierKey: String
    /// The SQLite file, or the PostgreSQL server and database (never a password).
    public let databaseLocation: String
    /// The SQLite files' bytes (database and write-ahead log); nil on PostgreSQL.
    public let databaseBytes: UInt64?
    /// Bytes free for the relay on the data directory's file system.
    public let availableBytes: UInt64?
    public let logEntries: UInt64
    /// When the newest log entry was added (seconds since the epoch).
    public let lastLogEntryAt: Int64?
    /// Registered names, and their key versions (one more per rotation).
    public let names: Int
    public let keyVersions: Int
    /// Messages stored (one envelope however many recipients) and their bytes.
    public let messages: Int
    public let messageBytes: UInt64
    /// Messages waiting in mailboxes (one per recipient who has not read it), and in how many.
    public let waiting: Int
    public let mailboxesHoldingMail: Int
    /// When the oldest message still stored arrived.
    public let oldestMessageAt: Int64?
    /// The mailbox holding the most bytes.
    public let fullestMailbox: (name: String, bytes: UInt64)?
    public let unusedInvites: Int
    /// Sign-ins whose tokens have not expired.
    public let activeSessions: Int
    /// The certificate looked at (the one given, else the development certificate in `tls/`), the
    /// SHA-256 of its public key as clients pin it (`--tls-pin sha256/HEX`), and when it ends.
    public let certificate: (file: String, keyPin: String, notAfter: Int64)?

    /// Reads the status of the relay whose data directory and database `data` names, with
    /// `certificateFile` (default: the development certificate in its `tls/`, if any).
    public static func read(_ data: ServedRelayData, certificateFile: URL? = nil) throws -> RelayStatus {
        let development = DevelopmentCertificates.files(in: data.directory.appendingPathComponent("tls", isDirectory: true)).certificateChain
        let served = certificateFile ?? (FileManager.default.fileExists(atPath: development.path) ? development : nil)
        let certificate = try served.map { file in
            do {
                return (file.path, "sha256/" + hexEncoded(try DevelopmentCertificates.publicKeyPin(certificateFile: file)),
                        try DevelopmentCertificates.validity(certificateFile: file).notAfter)
            } catch let error as TLSError {
                throw RelayError(.invalidRequest, error.reason)
            }
        }
        let database = data.database
        let sqliteFile = database.kind == .sqlite ? database.location : nil
        let now = Int64(Date().timeIntervalSince1970)
        let serving = try relayServing(data.directory)
        return try database.read { db in
            let fullest = try db.fetchRow("SELECT recipient, bytes FROM mailbox_usage WHERE bytes > 0 ORDER BY bytes DESC, recipient LIMIT 1")
            return RelayStatus(
                serving: serving,
                origin: data.origin,
                logVerifierKey: try data.logVerifierKey,
                databaseLocation: database.location,
                databaseBytes: sqliteFile.map { file in ["", "-wal"].map { fileSize(URL(fileURLWithPath: file + $0)) }.reduce(0, +) },
                availableBytes: (try? FileManager.default.attributesOfFileSystem(forPath: data.directory.path))?[.systemFreeSize] as? UInt64,
                logEntries: try LogStore.currentSize(db),
                lastLogEntryAt: try db.fetchOne(Int64.self, "SELECT MAX(added_at) FROM log_leaves"),
                names: try count(db, "SELECT COUNT(DISTINCT name) FROM identities"),
                keyVersions: try count(db, "SELECT COUNT(*) FROM identities"),
                messages: try count(db, "SELECT COUNT(*) FROM envelopes"),
                // PostgreSQL sums BIGINTs as NUMERIC.
                messageBytes: UInt64(try db.fetchOne(Int64.self, "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM envelopes") ?? 0),
                waiting: try count(db, "SELECT COUNT(*) FROM deliveries"),
                mailboxesHoldingMail: try count(db, "SELECT COUNT(DISTINCT recipient) FROM deliveries"),
                oldestMessageAt: try db.fetchOne(Int64.self, "SELECT MIN(received_at) FROM envelopes"),
                fullestMailbox: try fullest.map { (try $0.get("recipient"), UInt64(try $0.get("bytes") as Int64)) },
                unusedInvites: try count(db, "SELECT COUNT(*) FROM invites WHERE used_by IS NULL"),
                activeSessions: try count(db, "SELECT COUNT(*) FROM sessions WHERE expires_at > ?", [now]),
                certificate: certificate)
        }
    }

    private static func count(_ db: any StorageTransaction, _ sql: String, _ arguments: [any StorageArgument] = []) throws -> Int {
        Int(try db.fetchOne(Int64.self, sql, arguments) ?? 0)
    }

    private static func fileSize(_ url: URL) -> UInt64 {
        ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.uint64Value ?? 0
    }
}

extension RelayStatus {
    /// Whether a relay holds the data directory's `relay.lock` (`PreparedRelay.run`).
    static func relayServing(_ directory: URL) throws -> (running: Bool, process: Int32?) {
        do {
            let state = try ExclusiveFileLock.holder(of: directory.appendingPathComponent("relay.lock").path)
            return (state.held, state.holder)
        } catch let error as FormatError {
            throw RelayError(.storage, error.reason)
        }
    }
}
