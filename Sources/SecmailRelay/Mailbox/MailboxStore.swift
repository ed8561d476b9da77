import Foundation
import SecmailCrypto
import SecmailFormat

/// Mailboxes (P4, P8, P9): each envelope stored once — a small one (up to `inlineLimit`) in its
/// database row, a larger one as a file in `envelopes/` beside an SQLite database, or in 1 MiB
/// chunks in a PostgreSQL one (`EnvelopeChunks`) — with delivery rows putting it in recipients'
/// mailboxes. A large envelope is staged in a file of `directory`, fsynced, and then moved into
/// place (its directory fsynced) or copied into the database, in one transaction with its
/// deliveries; until that commit nothing of it is listed, and files no committed row names are
/// removed when a relay starts serving (`removeOrphans`), never by administrative commands that
/// open the store beside it. Deposits that arrive together share the directory sync and the
/// commit (`GroupCommit`, `DepositCommit`).
public struct MailboxStore: Sendable {
    let database: RelayDatabase
    public let directory: URL
    /// Largest envelope accepted.
    public let maximumEnvelopeSize: Int
    /// Largest envelope kept in the database instead of a file of its own.
    public static let inlineLimit = 64 * 1024
    /// Most bytes one mailbox may hold.
    public let mailboxQuota: Int
    /// Most bytes one sender's messages may take of one mailbox (a share of the quota), so that
    /// no one sender can fill a mailbox and lock everyone else out.
    public let senderShare: Int
    /// The signed times a deposit may carry.
    public let timeWindow: EnvelopeTimeWindow
    let clock: @Sendable () -> Int64
    private let group: GroupCommit<PendingDeposit, Void>
    /// Parsed bundles of logged key versions, by name and fingerprint. A logged key version never
    /// changes or goes (the log is append-only and rows are never rewritten), so a cached one is
    /// never stale; parsing its keys (OpenSSL's decoders) cost more than the rest of checking a
    /// small deposit.
    private let signers = BoundedCache<SignerKey, IdentityBundle>(capacity: 10_000)

    private struct SignerKey: Hashable, Sendable {
        let name: String
        let fingerprint: [UInt8]
    }

    public init(database: RelayDatabase, directory: URL, maximumEnvelopeSize: Int = 256 << 20, mailboxQuota: Int = 1 << 30,
                senderShare: Double = 0.25, timeWindow: EnvelopeTimeWindow = .standard, clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) throws {
        self.database = database
        self.directory = directory
        self.maximumEnvelopeSize = maximumEnvelopeSize
        self.mailboxQuota = mailboxQuota
        let senderShare = max(Int(Double(mailboxQuota) * senderShare), min(maximumEnvelopeSize, mailboxQuota))
        self.senderShare = senderShare
        self.timeWindow = timeWindow
        self.clock = clock
        group = GroupCommit { deposits in
            await DepositCommit.commitGroup(deposits, database: database, directory: directory, quota: mailboxQuota, senderShare: senderShare)
        }
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw RelayError(.storage, "cannot create \(directory.path): \(error.localizedDescription)")
        }
    }

    /// One message in a mailbox listing.
    public struct Listing: Sendable, Equatable {
        public let messageID: MessageID
        /// The sender the envelope names (the relay checked it against the depositor's token;
        /// the reader verifies the signature).
        public let sender: String
        public let size: Int
        public let receivedAt: Int64
    }

    /// A new file for an incoming envelope (0600); `deposit` moves it into place or it is removed.
    public func incomingFile() -> URL {
        directory.appendingPathComponent(".incoming-\(UUID().uuidString)")
    }

    /// Stores the envelope in `file` (complete and fsynced) for `recipients`, deposited by
    /// `depositor` (see `deposit(_:source:payloadDigest:recipients:depositor:)`). `payloadDigest`, taken as its
    /// bytes arrived (`IncomingEnvelopeFile`), spares the signature check a second read of the file.
    public func deposit(file: URL, payloadDigest: EnvelopePayloadDigester.Digest? = nil, recipients: [IdentityName],
                        depositor: IdentityName, claimed: MessageID? = nil) async throws -> MessageID {
        let source: FileEnvelopeSource
        do {
            source = try FileEnvelopeSource(url: file)
        } catch {
            try? FileManager.default.removeItem(at: file)
            throw error
        }
        return try await deposit(.file(file), source: source, payloadDigest: payloadDigest, recipients: recipients,
                                 depositor: depositor, claimed: claimed)
    }

    /// Stores a small envelope (at most `inlineLimit` bytes) held in memory, in its database row.
    public func deposit(bytes: [UInt8], recipients: [IdentityName], depositor: IdentityName, claimed: MessageID? = nil) async throws -> MessageID {
        precondition(bytes.count <= Self.inlineLimit, "an envelope of \(bytes.count) bytes goes to a file")
        return try await deposit(.inline(bytes), source: MemoryEnvelopeSource(bytes), payloadDigest: nil,
                                 recipients: recipients, depositor: depositor, claimed: claimed)
    }

    /// Checks: a well-formed envelope of exactly its declared size, sent in the depositor's name,
    /// carrying the message id its request named (`claimed`, if any), signed at a time within the
    /// window, encrypted to a key of every recipient, a message id not accepted for any of them
    /// before, and room in every mailbox. Returns the message id once the deposit is durable.
    private func deposit(_ envelope: PendingDeposit.Envelope, source: EnvelopeSource,
                         payloadDigest: EnvelopePayloadDigester.Digest?, recipients: [IdentityName],
                         depositor: IdentityName, claimed: MessageID?) async throws -> MessageID {
        let header: EnvelopeHeader
        do {
            header = try Self.parseHeader(source)
            guard header.senderName == depositor else {
                throw RelayError(.forbidden, "the envelope is signed in the name of \(header.senderName), but the token belongs to \(depositor)")
            }
            if let claimed, claimed != header.messageID {
                throw RelayError(.invalidRequest, "the envelope carries message id \(header.messageID), not the \(claimed) its request names")
            }
            if let refusal = timeWindow.refusal(signedAt: header.time, now: clock()) {
                throw RelayError(.invalidRequest, refusal)
            }
            // Junk is refused here, not left for the recipient: the envelope must be signed by a
            // key version the log records for the depositor (issue 12, mailbox floods).
            let signer = try await loggedBundle(of: depositor, fingerprint: header.senderFingerprint)
            let handOver = HandOver(source: source)
            let verify: @Sendable () throws -> Void = {
                do {
                    try EnvelopeOpener.verifySignature(handOver.source, sender: signer, payloadDigest: payloadDigest)
                } catch let error as FormatError {
                    throw RelayError(.invalidRequest, "refused: \(error.reason)")
                }
            }
            // An envelope in memory is at most 64 KiB: hashing it and one RSA verification take
            // ~0.1 ms, less than two hops to another thread and back cost a relay under load.
            if case .inline = envelope { try verify() } else { try await Self.offloaded(verify) }
        } catch {
            if case .file(let url) = envelope { try? FileManager.default.removeItem(at: url) }
            throw error
        }
        let pending = PendingDeposit(envelope: envelope, envelopeID: try Self.newEnvelopeID(),
                                     messageID: header.messageID, sender: header.senderName.value,
                                     fingerprints: Set(header.recipients.map(\.fingerprint)),
                                     recipients: recipients.map(\.value), size: Int(source.byteCount),
                                     receivedAt: clock())
        try await group.submit(pending)
        return header.messageID
    }

    /// How many deposits each recent commit carried, and how many wait for the next one.
    public func commitGroups() async -> (recentSizes: [Int], waiting: Int) {
        (await group.recentGroupSizes, await group.waitingCount)
    }

    /// Up to `limit` messages of `owner`'s mailbox, oldest first, after the one `cursor` names
    /// (from the start when nil), the cursor of the last one listed when more may follow, and the
    /// bytes the mailbox holds (read in the same snapshot). A cursor is "<received time>.<envelope
    /// id>": the listing's order, stable as messages are added and deleted.
    public func list(_ owner: IdentityName, after cursor: String? = nil, limit: Int = 1000) async throws -> (messages: [Listing], next: String?, usedBytes: Int) {
        var position: (time: Int64, envelope: String) = (Int64.min, "")
        if let cursor {
            let parts = cursor.split(separator: ".", maxSplits: 1)
            guard parts.count == 2, let time = Int64(parts[0]), parts[1].count == 32, hexDecoded(parts[1]) != nil else {
                throw RelayError(.invalidRequest, "not a mailbox cursor: \(cursor)")
            }
            position = (time, String(parts[1]))
        }
        let (rows, used) = try await database.read { [position] db in
            let rows = try db.fetchRows("""
                SELECT d.message_id, e.sender, e.size, e.received_at, e.envelope_id FROM deliveries d
                JOIN envelopes e ON e.envelope_id = d.envelope_id
                WHERE d.recipient = ? AND (e.received_at, e.envelope_id) > (?, ?)
                ORDER BY e.received_at, e.envelope_id LIMIT ?
                """, [owner.value, position.time, position.envelope, limit + 1]).map { row in
                (Listing(messageID: try MessageID(bytes: Array(try row.get("message_id") as Data)), sender: try row.get("sender"),
                         size: try row.get("size"), receivedAt: try row.get("received_at")), try row.get("envelope_id") as String)
            }
            return (rows, try db.fetchOne(Int.self, "SELECT bytes FROM mailbox_usage WHERE recipient = ?", [owner.value]) ?? 0)
        }
        let page = rows.prefix(limit)
        let next = rows.count > limit ? page.last.map { "\($0.0.receivedAt).\($0.1)" } : nil
        return (page.map(\.0), next, used)
    }

    /// A new envelope id: 32 hex digits, the time in microseconds (8 bytes, big-endian) then 8
    /// random bytes. Ids that grow with time land at the right edge of the indexes that hold
    /// them (the envelopes' key, deliveries by envelope) instead of on a random page each, so a
    /// deposit dirties fewer pages for the WAL and the checkpoint to write; the random half keeps
    /// ids of the same microsecond (and of relays sharing one database) apart.
    static func newEnvelopeID(now: Date = Date()) throws -> String {
        let microseconds = UInt64(max(0, now.timeIntervalSince1970 * 1_000_000))
        let time = (0..<8).reversed().map { UInt8(truncatingIfNeeded: microseconds >> ($0 * 8)) }
        return hexEncoded(time + (try SystemRandom().bytes(count: 8)))
    }

    /// Where a stored envelope's bytes are.
    public enum StoredEnvelope: Sendable {
        case inline([UInt8])
        case file(URL, size: Int)
        /// In the database, `count` chunks read one at a time with `chunk(_:of:)`.
        case chunks(envelopeID: String, size: Int, count: Int)
    }

    /// The stored envelope of message `id` in `owner`'s mailbox.
    public func storedEnvelope(_ owner: IdentityName, _ id: MessageID) async throws -> StoredEnvelope {
        let directory = directory, keepsFiles = keepsFiles
        return try await database.read { db in
            guard let row = try db.fetchRow("""
                SELECT e.envelope_id, e.size, e.inline_data FROM deliveries d JOIN envelopes e ON e.envelope_id = d.envelope_id
                WHERE d.recipient = ? AND d.message_id = ?
                """, [owner.value, Data(id.bytes)]) else {
                throw RelayError(.notFound, "no message \(id) in the mailbox of \(owner)")
            }
            if let inline = try row.get("inline_data") as Data? { return .inline(Array(inline)) }
            let envelopeID: String = try row.get("envelope_id"), size: Int = try row.get("size")
            guard keepsFiles else { return .chunks(envelopeID: envelopeID, size: size, count: EnvelopeChunks.count(forEnvelopeOf: size)) }
            return .file(directory.appendingPathComponent(envelopeID), size: size)
        }
    }

    /// Chunk `index` of a stored envelope in the database; not found once the message is deleted.
    public func chunk(_ index: Int, of envelopeID: String) async throws -> [UInt8] {
        guard let chunk = try await database.read({ db in try EnvelopeChunks.chunk(index, of: envelopeID, in: db) }) else {
            throw RelayError(.notFound, "the message was deleted while it was being fetched")
        }
        return chunk
    }

    /// Whether large envelopes are files in `directory` (SQLite) rather than database chunks.
    private var keepsFiles: Bool { database.kind == .sqlite }

    /// Removes message `id` from `owner`'s mailbox; the envelope file goes with its last delivery.
    public func delete(_ owner: IdentityName, _ id: MessageID) async throws {
        let orphaned: String? = try await database.write { db in
            guard let envelopeID = try db.fetchOne(String.self, "SELECT envelope_id FROM deliveries WHERE recipient = ? AND message_id = ?", [owner.value, Data(id.bytes)]) else {
                throw RelayError(.notFound, "no message \(id) in the mailbox of \(owner)")
            }
            try db.execute("DELETE FROM deliveries WHERE recipient = ? AND message_id = ?", [owner.value, Data(id.bytes)])
            try db.execute("""
                UPDATE mailbox_usage SET bytes = bytes - (SELECT size FROM envelopes WHERE envelope_id = ?) WHERE recipient = ?
                """, [envelopeID, owner.value])
            try db.execute("""
                UPDATE sender_usage SET bytes = bytes - (SELECT size FROM envelopes WHERE envelope_id = ?)
                WHERE recipient = ? AND sender = (SELECT sender FROM envelopes WHERE envelope_id = ?)
                """, [envelopeID, owner.value, envelopeID])
            guard try db.fetchOne(Int.self, "SELECT 1 FROM deliveries WHERE envelope_id = ? LIMIT 1", [envelopeID]) == nil else { return nil }
            try db.execute("DELETE FROM envelopes WHERE envelope_id = ?", [envelopeID])
            return envelopeID
        }
        if let orphaned { try? FileManager.default.removeItem(at: directory.appendingPathComponent(orphaned)) }
    }

    private static func parseHeader(_ source: EnvelopeSource) throws -> EnvelopeHeader {
        do {
            return try EnvelopeOpener.readHeader(source)
        } catch let error as FormatError {
            throw RelayError(.invalidRequest, "the envelope's header does not parse: \(error.reason)")
        }
    }

    /// The key version of `name` with `fingerprint`, as logged.
    private func loggedBundle(of name: IdentityName, fingerprint: Fingerprint) async throws -> IdentityBundle {
        let key = SignerKey(name: name.value, fingerprint: fingerprint.bytes)
        if let known = signers[key] { return known }
        guard let data = try await database.read({ db in
            try db.fetchOne(Data.self, "SELECT bundle FROM identities WHERE name = ? AND fingerprint = ?", [name.value, Data(fingerprint.bytes)])
        }) else {
            throw RelayError(.invalidRequest, "the envelope is signed with key \(fingerprint.grouped), which is not a logged key of \(name)")
        }
        let bundle = try IdentityBundle(encoded: Array(data))
        signers.keep(bundle, for: key)
        return bundle
    }

    /// An envelope source handed to `offloaded` work: used there alone while the request waits.
    private struct HandOver: @unchecked Sendable {
        let source: EnvelopeSource
    }

    /// Runs `work` (reading and hashing a whole envelope) off the request tasks' threads.
    private static func offloaded(_ work: @escaping @Sendable () throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Refuses, before a byte of the body is read, a deposit of `size` bytes to a name no one
    /// registered, of a message id (`claimed`, when the request names it) accepted for a recipient
    /// before, or that would not fit every recipient's mailbox, or `depositor`'s share of it
    /// (within `db`, the read transaction that also checked the depositor's token). The id comes
    /// before the room: a repeated deposit is told it arrived, not that the mailbox it filled is full.
    func admit(_ size: Int, to recipients: [IdentityName], from depositor: IdentityName, claimed: MessageID?,
               in db: any StorageTransaction) throws {
        for name in recipients where try !db.isRegistered(name.value) {
            throw Self.notRegistered(name.value)
        }
        if let claimed {
            for name in recipients { try DepositCommit.refuseIfAccepted(claimed, for: name.value, db) }
        }
        for name in recipients {
            try DepositCommit.checkRoom(for: size, in: name.value, from: depositor.value, quota: mailboxQuota, senderShare: senderShare, db)
        }
    }

    /// The refusal of a deposit for a name no one registered (before its body is read, or in its commit).
    static func notRegistered(_ name: String) -> RelayError {
        RelayError(.notFound, "no one is registered as \(name) on this relay")
    }

    /// Removes files no committed envelope row names (deposits interrupted by a crash; with
    /// PostgreSQL, every file: they are this relay's staged uploads). Only the relay about to
    /// serve may call this: while another process deposits, a file between its rename and its
    /// commit looks exactly like an orphan.
    public func removeOrphans() throws {
        let known = keepsFiles ? Set(try database.read { db in try db.fetchAll(String.self, "SELECT envelope_id FROM envelopes") }) : []
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for file in files where !known.contains(file) {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(file))
        }
    }
}
