import Foundation
import SecmailFormat

/// A deposit whose envelope is complete (a small one in memory, a larger one in an fsynced
/// file), waiting to be committed.
struct PendingDeposit: Sendable {
    /// Where the envelope's bytes are until the commit.
    enum Envelope: Sendable {
        /// Stored in the `envelopes` row itself.
        case inline([UInt8])
        /// A staged, fsynced file: renamed to `envelopeID` in the envelopes directory when
        /// committed (SQLite), or copied into the database's chunks (PostgreSQL).
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
    let receivedAt: Int64
}

/// How a group of deposits commits (`GroupCommit` batches them), all in one transaction, each
/// deposit checked and inserted in its own savepoint. Where the database is SQLite, large
/// envelopes' files are first renamed into place and their directory synced once; on
/// PostgreSQL their bytes are copied into the database within the transaction. Every deposit
/// is answered only after the transaction naming it (and holding its bytes, or after its file
/// is in place and the directory synced) has committed (docs/DURABILITY.md).
enum DepositCommit {
    /// One transaction for `deposits`. Returns each deposit's outcome; a staged file is gone
    /// afterwards unless it became a committed envelope's file.
    static func commitGroup(_ deposits: [PendingDeposit], database: RelayDatabase, directory: URL,
                            quota: Int, senderShare: Int) async -> [Result<Void, Error>] {
        let keepsFiles = database.kind == .sqlite
        let targets = deposits.map { directory.appendingPathComponent($0.envelopeID) }
        let outcomes: [RelayError?]
        do {
            // Renames, the directory sync and chunk copies run on the engine's threads, inside
            // the transaction, so blocking file system calls never hold a request task's thread.
            outcomes = try await database.write { db in
                var outcomes = keepsFiles ? try placeFiles(deposits, at: targets, in: directory)
                                          : Array(repeating: nil, count: deposits.count)
                for index in deposits.indices where outcomes[index] == nil {
                    do {
                        try db.inSavepoint {
                            try insert(deposits[index], quota: quota, senderShare: senderShare, in: db)
                            if !keepsFiles, case .file(let staged) = deposits[index].envelope {
                                try EnvelopeChunks.store(staged, as: deposits[index].envelopeID, in: db)
                            }
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
        for index in deposits.indices where outcomes[index] != nil || !keepsFiles {
            guard case .file(let staged) = deposits[index].envelope else { continue }
            if outcomes[index] != nil { try? FileManager.default.removeItem(at: targets[index]) }
            try? FileManager.default.removeItem(at: staged)
        }
        return outcomes.map { refusal in refusal.map { .failure($0) } ?? .success(()) }
    }

    /// Renames each file-backed deposit's staged file to its envelope id and syncs `directory`
    /// once; returns a refusal for each file that could not be moved.
    private static func placeFiles(_ deposits: [PendingDeposit], at targets: [URL], in directory: URL) throws -> [RelayError?] {
        let outcomes: [RelayError?] = deposits.indices.map { index in
            guard case .file(let staged) = deposits[index].envelope else { return nil }
            do {
                try AtomicRename.replace(targets[index], with: staged)
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
        return outcomes
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

    /// Refuses message `id` for `recipient` when it was accepted for them before (P4: a message id
    /// is accepted once per recipient, even after the message was deleted).
    static func refuseIfAccepted(_ id: MessageID, for recipient: String, _ db: any StorageTransaction) throws {
        if try db.fetchOne(Int.self, "SELECT 1 FROM accepted_messages WHERE recipient = ? AND message_id = ?", [recipient, Data(id.bytes)]) != nil {
            throw RelayError(.conflict, "message \(id) was already delivered to \(recipient); a message id is accepted once")
        }
    }

    /// Checks one deposit against the mailboxes (room, and the sender's share) and inserts its rows.
    private static func insert(_ deposit: PendingDeposit, quota: Int, senderShare: Int, in db: any StorageTransaction) throws {
        let messageID = Data(deposit.messageID.bytes)
        for name in deposit.recipients {
            let fingerprints = try db.fetchAll(Data.self, "SELECT fingerprint FROM identities WHERE name = ?", [name])
            guard !fingerprints.isEmpty else { throw MailboxStore.notRegistered(name) }
            guard fingerprints.contains(where: { (try? Fingerprint(bytes: Array($0))).map(deposit.fingerprints.contains) == true }) else {
                throw RelayError(.invalidRequest, "the envelope is not encrypted to any key of \(name)")
            }
            try refuseIfAccepted(deposit.messageID, for: name, db)
            try checkRoom(for: deposit.size, in: name, from: deposit.sender, quota: quota, senderShare: senderShare, db)
        }
        let inline: Data? = if case .inline(let bytes) = deposit.envelope { Data(bytes) } else { nil }
        try db.execute("""
            INSERT INTO envelopes (envelope_id, message_id, sender, size, received_at, inline_data) VALUES (?, ?, ?, ?, ?, ?)
            """, [deposit.envelopeID, messageID, deposit.sender, deposit.size, deposit.receivedAt, inline])
        for name in deposit.recipients {
            try db.execute("INSERT INTO deliveries (recipient, message_id, envelope_id) VALUES (?, ?, ?)", [name, messageID, deposit.envelopeID])
            try db.execute("INSERT INTO accepted_messages (recipient, message_id) VALUES (?, ?)", [name, messageID])
            try db.execute("""
                INSERT INTO mailbox_usage (recipient, bytes) VALUES (?, ?)
                ON CONFLICT (recipient) DO UPDATE SET bytes = mailbox_usage.bytes + excluded.bytes
                """, [name, deposit.size])
            try db.execute("""
                INSERT INTO sender_usage (recipient, sender, bytes) VALUES (?, ?, ?)
                ON CONFLICT (recipient, sender) DO UPDATE SET bytes = sender_usage.bytes + excluded.bytes
                """, [name, deposit.sender, deposit.size])
        }
    }
}
