import Foundation
import GRDB
import SecmailCrypto
import SecmailFormat

/// Mailboxes (P4, P8, P9): envelopes stored once as files in `envelopes/` beside the database,
/// delivery rows putting them in recipients' mailboxes. A deposit is written and fsynced, moved
/// into place, and only then committed in one transaction with its deliveries; until that commit
/// nothing of it is listed, and files no committed row names are removed when a relay starts
/// serving (`removeOrphans`), never by administrative commands that open the store beside it.
public struct MailboxStore: Sendable {
    let database: RelayDatabase
    public let directory: URL
    /// Largest envelope accepted.
    public let maximumEnvelopeSize: Int
    /// Most bytes one mailbox may hold.
    public let mailboxQuota: Int
    let clock: @Sendable () -> Int64

    public init(database: RelayDatabase, directory: URL, maximumEnvelopeSize: Int = 256 << 20, mailboxQuota: Int = 1 << 30,
                clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) throws {
        self.database = database
        self.directory = directory
        self.maximumEnvelopeSize = maximumEnvelopeSize
        self.mailboxQuota = mailboxQuota
        self.clock = clock
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

    /// Checks that every recipient is registered, before any body is read.
    public func checkRecipients(_ names: [IdentityName]) throws {
        try database.read { db in
            for name in names where try Int.fetchOne(db, sql: "SELECT 1 FROM identities WHERE name = ? LIMIT 1", arguments: [name.value]) == nil {
                throw RelayError(.notFound, "no one is registered as \(name) on this relay")
            }
        }
    }

    /// A new file for an incoming envelope (0600); `deposit` moves it into place or it is removed.
    public func incomingFile() -> URL {
        directory.appendingPathComponent(".incoming-\(UUID().uuidString)")
    }

    /// Stores the envelope in `file` (complete and fsynced) for `recipients`, deposited by
    /// `depositor`. Checks: a well-formed envelope of exactly its declared size, sent in the
    /// depositor's name, encrypted to a key of every recipient, a message id not accepted for
    /// any of them before, and room in every mailbox. Returns the message id.
    public func deposit(file: URL, sha256: [UInt8], recipients: [IdentityName], depositor: IdentityName) throws -> MessageID {
        var keepFile = false
        defer { if !keepFile { try? FileManager.default.removeItem(at: file) } }
        let source = try FileEnvelopeSource(url: file)
        let size = Int(source.byteCount)
        let header = try EnvelopeOpener.readHeader(source)
        try Self.checkSize(header: header, source: source)
        guard header.senderName == depositor else {
            throw RelayError(.forbidden, "the envelope is signed in the name of \(header.senderName), but the token belongs to \(depositor)")
        }
        let envelopeID = hexEncoded(try SystemRandom().bytes(count: 16))
        let target = directory.appendingPathComponent(envelopeID)
        return try database.write { db in
            let listed = Set(header.recipients.map(\.fingerprint))
            for name in recipients {
                let fingerprints = try Data.fetchAll(db, sql: "SELECT fingerprint FROM identities WHERE name = ?", arguments: [name.value])
                guard fingerprints.contains(where: { (try? Fingerprint(bytes: Array($0))).map(listed.contains) == true }) else {
                    throw RelayError(.invalidRequest, "the envelope is not encrypted to any key of \(name)")
                }
                if try Int.fetchOne(db, sql: "SELECT 1 FROM accepted_messages WHERE recipient = ? AND message_id = ?",
                                    arguments: [name.value, Data(header.messageID.bytes)]) != nil {
                    throw RelayError(.conflict, "message \(header.messageID) was already delivered to \(name); a message id is accepted once")
                }
                let used = try Int.fetchOne(db, sql: """
                    SELECT COALESCE(SUM(e.size), 0) FROM deliveries d JOIN envelopes e ON e.envelope_id = d.envelope_id WHERE d.recipient = ?
                    """, arguments: [name.value]) ?? 0
                guard used + size <= mailboxQuota else {
                    throw RelayError(.quotaExceeded, "the mailbox of \(name) is full (\(used) of \(mailboxQuota) bytes used)")
                }
            }
            try db.execute(sql: "INSERT INTO envelopes (envelope_id, message_id, sender, size, sha256, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [envelopeID, Data(header.messageID.bytes), header.senderName.value, size, Data(sha256), clock()])
            for name in recipients {
                try db.execute(sql: "INSERT INTO deliveries (recipient, message_id, envelope_id) VALUES (?, ?, ?)",
                               arguments: [name.value, Data(header.messageID.bytes), envelopeID])
                try db.execute(sql: "INSERT INTO accepted_messages (recipient, message_id) VALUES (?, ?)",
                               arguments: [name.value, Data(header.messageID.bytes)])
            }
            // The file is in place (and its directory entry durable) before the rows commit; a
            // crash in between leaves an orphan file that start-up removes, never a listed gap.
            do {
                try AtomicRename.replace(target, with: file)
            } catch {
                throw RelayError(.storage, "cannot move the envelope into place: \(error)")
            }
            keepFile = true
            do {
                try PositionalFile(readingAtPath: directory.path).synchronize()
            } catch {
                try? FileManager.default.removeItem(at: target)
                throw RelayError(.storage, "cannot flush \(directory.path)")
            }
            return header.messageID
        }
    }

    /// The messages in `owner`'s mailbox, oldest first.
    public func list(_ owner: IdentityName) throws -> [Listing] {
        try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT d.message_id, e.sender, e.size, e.received_at FROM deliveries d JOIN envelopes e ON e.envelope_id = d.envelope_id
                WHERE d.recipient = ? ORDER BY e.received_at, e.envelope_id
                """, arguments: [owner.value]).map { row in
                Listing(messageID: try MessageID(bytes: Array(row["message_id"] as Data)), sender: row["sender"],
                        size: row["size"], receivedAt: row["received_at"])
            }
        }
    }

    /// The stored file of message `id` in `owner`'s mailbox, and its size.
    public func envelopeFile(_ owner: IdentityName, _ id: MessageID) throws -> (url: URL, size: Int) {
        try database.read { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT e.envelope_id, e.size FROM deliveries d JOIN envelopes e ON e.envelope_id = d.envelope_id
                WHERE d.recipient = ? AND d.message_id = ?
                """, arguments: [owner.value, Data(id.bytes)]) else {
                throw RelayError(.notFound, "no message \(id) in the mailbox of \(owner)")
            }
            return (directory.appendingPathComponent(row["envelope_id"] as String), row["size"])
        }
    }

    /// Removes message `id` from `owner`'s mailbox; the envelope file goes with its last delivery.
    public func delete(_ owner: IdentityName, _ id: MessageID) throws {
        let orphaned: String? = try database.write { db in
            guard let envelopeID = try String.fetchOne(db, sql: "SELECT envelope_id FROM deliveries WHERE recipient = ? AND message_id = ?",
                                                       arguments: [owner.value, Data(id.bytes)]) else {
                throw RelayError(.notFound, "no message \(id) in the mailbox of \(owner)")
            }
            try db.execute(sql: "DELETE FROM deliveries WHERE recipient = ? AND message_id = ?", arguments: [owner.value, Data(id.bytes)])
            guard try Int.fetchOne(db, sql: "SELECT 1 FROM deliveries WHERE envelope_id = ? LIMIT 1", arguments: [envelopeID]) == nil else { return nil }
            try db.execute(sql: "DELETE FROM envelopes WHERE envelope_id = ?", arguments: [envelopeID])
            return envelopeID
        }
        if let orphaned { try? FileManager.default.removeItem(at: directory.appendingPathComponent(orphaned)) }
    }

    /// The envelope's declared layout must account for every byte: header, ciphertext, a
    /// length-prefixed signature, nothing more.
    static func checkSize(header: EnvelopeHeader, source: FileEnvelopeSource) throws {
        let trailer = UInt64(header.encoded.count) + header.ciphertextLength
        let field = try source.read(at: trailer, count: 2)
        guard field.count == 2, source.byteCount == trailer + 2 + (UInt64(field[0]) << 8 | UInt64(field[1])) else {
            throw RelayError(.invalidRequest, "the envelope is truncated or has trailing bytes (\(source.byteCount) bytes)")
        }
    }

    /// Removes files no committed envelope row names (deposits interrupted by a crash). Only the
    /// relay about to serve may call this: while another process deposits, a file between its
    /// rename and its commit looks exactly like an orphan.
    public func removeOrphans() throws {
        let known = Set(try database.read { db in try String.fetchAll(db, sql: "SELECT envelope_id FROM envelopes") })
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for file in files where !known.contains(file) {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(file))
        }
    }
}
