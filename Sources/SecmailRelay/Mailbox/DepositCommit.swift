import Foundation
import SecmailFormat

/// A deposit whose envelope is complete (a small one in memory, a larger one in an fsynced
/// file), waiting to be committed.
struct PendingDeposit: Sendable {
    /// Where the envelope's bytes are until the commit.
    enum Envelope: Sendable {
        /// Stored in the `envelopes` row itself.
        case inline([UInt8])
        /// An fsynced file, renamed to `envelopeID` in the envelopes directory when committed.
        case file(URL)
    }

    let envelope: Envelope
    let envelopeID: String
    let messageID: MessageID
    let sender: String
    /// The recipient key fingerprints the envelope's header lists.
    let fingerprints: Set<Fingerprint>
    let recipients: [String]
    let size: Int
    let sha256: [UInt8]
    let receivedAt: Int64
}

/// How a group of deposits commits (`GroupCommit` batches them): the files renamed into place
/// and their directory synced once, then each deposit checked and inserted in its own savepoint,
/// all in one transaction. Every deposit is answered only after the transaction naming it (and,
/// for a small envelope, holding its bytes) has committed, and a file-backed one only after its
/// file is renamed into place and the directory is synced (docs/DURABILITY.md).
enum DepositCommit {
    /// One transaction for `deposits`: rename each file into place, sync the directory once (when
    /// there are files), then check and insert each deposit in a savepoint. Returns each
    /// deposit's outcome (a refused one's file is gone).
    static func commitGroup(_ deposits: [PendingDeposit], database: RelayDatabase, directory: URL,
                            quota: Int, senderShare: Int) async -> [Result<Void, Error>] {
        let targets = deposits.map { directory.appendingPathComponent($0.envelopeID) }
        let outcomes: [RelayError?]
        do {
            // The renames and the directory sync run on the writer's queue, inside the transaction,
            // so the blocking file system calls never hold a request task's thread.
            outcomes = try await database.write { db in
                var outcomes: [RelayError?] = deposits.indices.map { index in
                    guard case .file(let incoming) = deposits[index].envelope else { return nil }
                    do {
                        try AtomicRename.replace(targets[index], with: incoming)
                        return nil
                    } catch {
                        return RelayError(.storage, "cannot move the envelope into place: \(error)")
                    }
                }
                if deposits.contains(where: { if case .file = $0.envelope { true } else { false } }) {
                    do {
                        try PositionalFile(readingAtPath: directory.path).synchronize()
                    } catch {
                        throw RelayError(.storage, "cannot flush \(directory.path): \(error)")
                    }
                }
                for index in deposits.indices where outcomes[index] == nil {
                    do {
                        try db.inSavepoint {
                            try insert(deposits[index], quota: quota, senderShare: senderShare, in: db)
                        }
                    } catch let refusal as RelayError {
                        outcomes[index] = refusal
                    }
                }
                return outcomes
            }
        } catch {
            let failure = (error as? RelayError) ?? RelayError(.storage, "the deposit could not be committed: \(error)")
            outcomes = Array(repeating: failure, count: deposits.count)
        }
        for index in deposits.indices where outcomes[index] != nil {
            guard case .file(let incoming) = deposits[index].envelope else { continue }
            try? FileManager.default.removeItem(at: targets[index])
            try? FileManager.default.removeItem(at: incoming)
        }
        return outcomes.map { refusal in refusal.map { .failure($0) } ?? .success(()) }
    }

    /// Refuses `size` more bytes from `sender` in `recipient`'s mailbox when it would not fit the
    /// quota or the sender's share of it. Checked before a deposit's body is read, and again in
    /// the transaction that stores it.
    static func checkRoom(for size: Int, in recipient: String, from sender: String, quota: Int, senderShare: Int, _ db: any StorageTransaction) throws {
        let used = try db.fetchOne(Int.self, "SELECT bytes FROM mailbox_usage WHERE recipient = ?", [recipient]) ?? 0
        guard used + size <= quota else {
            throw RelayError(.quotaExceeded, "the mailbox of \(recipient) is full (\(used) of \(quota) bytes used)")
        }
        let fromSender = try db.fetchOne(Int.self, "SELECT bytes FROM sender_usage WHERE recipient = ? AND sender = ?", [recipient, sender]) ?? 0
        guard fromSender + size <= senderShare else {
            throw RelayError(.quotaExceeded, "\(sender) already holds \(fromSender) bytes in the mailbox of \(recipient); one sender may hold at most \(senderShare)")
        }
    }

    /// Checks one deposit against the mailboxes (room, and the sender's share) and inserts its rows.
    private static func insert(_ deposit: PendingDeposit, quota: Int, senderShare: Int, in db: any StorageTransaction) throws {
        let messageID = Data(deposit.messageID.bytes)
        for name in deposit.recipients {
            let fingerprints = try db.fetchAll(Data.self, "SELECT fingerprint FROM identities WHERE name = ?", [name])
            guard fingerprints.contains(where: { (try? Fingerprint(bytes: Array($0))).map(deposit.fingerprints.contains) == true }) else {
                throw RelayError(.invalidRequest, "the envelope is not encrypted to any key of \(name)")
            }
            if try db.fetchOne(Int.self, "SELECT 1 FROM accepted_messages WHERE recipient = ? AND message_id = ?", [name, messageID]) != nil {
                throw RelayError(.conflict, "message \(deposit.messageID) was already delivered to \(name); a message id is accepted once")
            }
            try checkRoom(for: deposit.size, in: name, from: deposit.sender, quota: quota, senderShare: senderShare, db)
        }
        let inline: Data? = if case .inline(let bytes) = deposit.envelope { Data(bytes) } else { nil }
        try db.execute("""
            INSERT INTO envelopes (envelope_id, message_id, sender, size, sha256, received_at, inline_data) VALUES (?, ?, ?, ?, ?, ?, ?)
            """, [deposit.envelopeID, messageID, deposit.sender, deposit.size, Data(deposit.sha256), deposit.receivedAt, inline])
        for name in deposit.recipients {
            try db.execute("INSERT INTO deliveries (recipient, message_id, envelope_id) VALUES (?, ?, ?)", [name, messageID, deposit.envelopeID])
            try db.execute("INSERT INTO accepted_messages (recipient, message_id) VALUES (?, ?)", [name, messageID])
            try db.execute("""
                INSERT INTO mailbox_usage (recipient, bytes) VALUES (?, ?)
                ON CONFLICT (recipient) DO UPDATE SET bytes = bytes + excluded.bytes
                """, [name, deposit.size])
            try db.execute("""
                INSERT INTO sender_usage (recipient, sender, bytes) VALUES (?, ?, ?)
                ON CONFLICT (recipient, sender) DO UPDATE SET bytes = bytes + excluded.bytes
                """, [name, deposit.sender, deposit.size])
        }
    }
}
