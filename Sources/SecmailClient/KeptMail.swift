import FoundationEssentials
import Glibc
import SecmailFormat

/// The envelopes a home keeps: every message sent (sent/ID.sm with the content key wrapped for
/// the sender, ID.key) and read (received/ID.sm with the sender's bundle, ID.sender), so that
/// mail can be read again. `prune` removes old ones. A pruned
/// received message leaves a tombstone (received/ID.pruned), because received/ is also the record
/// of the message ids already read (P4): a relay that serves a pruned message again is still
/// refused.
public struct KeptMail: Sendable {
    public let home: SecmailHome

    public init(home: SecmailHome) {
        self.home = home
    }

    var sentDirectory: URL { home.url.appendingPathComponent("sent", isDirectory: true) }
    var receivedDirectory: URL { home.url.appendingPathComponent("received", isDirectory: true) }

    /// The tombstone of a received message whose kept copy was pruned.
    func tombstone(_ id: MessageID) -> URL {
        receivedDirectory.appendingPathComponent("\(id.hex).pruned")
    }

    /// The kept copy of received message `id`.
    func receivedCopy(_ id: MessageID) -> URL {
        receivedDirectory.appendingPathComponent("\(id.hex).sm")
    }

    /// The kept copy of sent message `id`.
    func sentCopy(_ id: MessageID) -> URL {
        sentDirectory.appendingPathComponent("\(id.hex).sm")
    }

    /// The key that opens the kept copy of sent message `id` for the sender (`SentCopyKey`).
    func sentCopyKeyFile(_ id: MessageID) -> URL {
        sentDirectory.appendingPathComponent("\(id.hex).key")
    }

    /// Whether this home sent message `id` and kept its copy and the key to it.
    public func hasSentCopy(of id: MessageID) -> Bool {
        FileManager.default.fileExists(atPath: sentCopy(id).path) && FileManager.default.fileExists(atPath: sentCopyKeyFile(id).path)
    }

    /// The key to the kept copy of message `id`, when this home sent it and kept both; an error
    /// when the key file cannot be read, does not parse or names another message.
    public func sentCopyKey(for id: MessageID) throws -> SentCopyKey? {
        guard hasSentCopy(of: id) else { return nil }
        let file = sentCopyKeyFile(id)
        let key: SentCopyKey
        do {
            key = try SentCopyKey(encoded: FileSystem.read(file))
        } catch let error as FormatError {
            throw ClientError(.verificationFailed, "the key to your kept copy of message \(id) (\(file.path)) is damaged: \(error.reason)")
        }
        guard key.messageID == id else {
            throw ClientError(.verificationFailed, "the key to your kept copy of message \(id) (\(file.path)) is the key to message \(key.messageID)")
        }
        return key
    }

    /// The header of the kept copy of sent message `id` when there is no key to it (it was sent
    /// by a secmail that kept none).
    func sentCopyWithoutKey(_ id: MessageID) -> EnvelopeHeader? {
        guard !FileManager.default.fileExists(atPath: sentCopyKeyFile(id).path) else { return nil }
        return header(of: sentCopy(id))
    }

    /// Keeps the sealed copy of message `id`, just sent (`staging`, synced), as sent/ID.sm, with
    /// the key that lets the sender read it (ID.key) written and synced first.
    func keepSentCopy(_ staging: URL, id: MessageID, key: SentCopyKey?) throws {
        if let key {
            try FileSystem.placeDurably(key.encoded, at: sentCopyKeyFile(id), temporaryPrefix: "sending")
        }
        try AtomicRename.replace(sentCopy(id), with: staging)
        TemporaryFiles.release(staging)
        try FileSystem.synchronize(sentDirectory)
    }

    /// The ids of the messages sent whose copies this home can read again, starting with
    /// `prefix` (hex digits, any case).
    public func sentIDs(startingWith prefix: String) -> [MessageID] {
        let prefix = prefix.lowercased()
        return copies(in: sentDirectory).map(\.id).filter { $0.hex.hasPrefix(prefix) && hasSentCopy(of: $0) }
    }

    /// The ids of the messages read or sent whose copies `secmail read` opens, starting with
    /// `prefix` (hex digits, any case); a message sent to oneself and read is named once.
    public func keptIDs(startingWith prefix: String) -> [MessageID] {
        Array(Set(readIDs(startingWith: prefix) + sentIDs(startingWith: prefix)))
    }

    /// Whom a reply to message `id` goes to, from its kept copy: for a message read, its sender,
    /// and with `all` its other recipients this home can name (this home left out); for a message
    /// sent from here, its recipients again (this home left out). `leftOut` counts the
    /// recipients a reply to all cannot name (their keys are no pinned contact's). Nil when no
    /// copy of `id` that `read` opens is kept here.
    public func replyRecipients(to id: MessageID, all: Bool) throws -> (names: [IdentityName], leftOut: Int)? {
        let keystore = Keystore(home: home)
        let own = try keystore.currentBundle().name
        func others(_ names: [IdentityName]) -> [IdentityName] {
            names.reduce(into: []) { kept, name in if name != own, !kept.contains(name) { kept.append(name) } }
        }
        if hasReceivedCopy(of: id), let header = header(of: receivedCopy(id)) {
            guard all else { return ([header.senderName], 0) }
            let recipients = try MessageRecipients(of: header, keystore: keystore)
            // The sender first, even when it is this home (a note to oneself and others).
            let rest = others(recipients.contacts).filter { $0 != header.senderName }
            return ([header.senderName] + rest, recipients.unnamed)
        }
        if let key = try sentCopyKey(for: id) { return (others(key.recipientNames), 0) }
        return nil
    }

    /// Whether message `id` was read and its copy is kept (`secmail read` opens it again).
    public func hasReceivedCopy(of id: MessageID) -> Bool {
        FileManager.default.fileExists(atPath: receivedCopy(id).path)
    }

    /// The ids of the messages read whose copies are kept (`secmail read` opens them again).
    public func readIDs() -> [MessageID] {
        copies(in: receivedDirectory).map(\.id)
    }

    /// The ids of the messages read and kept that start with `prefix` (hex digits, any case).
    public func readIDs(startingWith prefix: String) -> [MessageID] {
        let prefix = prefix.lowercased()
        return readIDs().filter { $0.hex.hasPrefix(prefix) }
    }

    /// Whether message `id` was read and its kept copy pruned since.
    public func wasPruned(_ id: MessageID) -> Bool {
        FileManager.default.fileExists(atPath: tombstone(id).path)
    }

    /// One kept copy, as its header and key file tell (both written or verified by this home).
    public struct Entry: Sendable {
        public let id: MessageID
        /// Sent from this home (sent/), or read here (received/).
        public let wasSent: Bool
        /// Who signed it (this home's name, for a message sent).
        public let sender: IdentityName
        /// Whom it went to by name: a message sent, as its key file names them; one read (or one
        /// sent whose key file is missing), as far as this home can tell (`MessageRecipients`:
        /// this home first, then pinned contacts).
        public let recipients: [IdentityName]
        /// The recipients besides `recipients` (keys this home cannot name).
        public let unnamedRecipients: Int
        /// When it was signed.
        public let time: Int64
        public let size: UInt64
        /// Whether `secmail read ID` opens it: a copy sent before secmail kept the sender a key
        /// to it cannot be, unless the sender was among its recipients.
        public let opens: Bool
    }

    /// Every kept copy, newest first. A file whose header does not parse is left out.
    public func entries() -> [Entry] {
        func headerAndSize(_ url: URL) -> (EnvelopeHeader, UInt64)? {
            guard let header = header(of: url), let status = try? FileStatus(path: url.path) else { return nil }
            return (header, status.size)
        }
        let keystore = Keystore(home: home)
        let ownKeys = Set((try? keystore.recipientFingerprints()) ?? [])
        // Read once, and only if some message has recipients to name; where they cannot be read
        // (a damaged home), a message's recipients are counted, not named.
        var ownName: Result<IdentityName, any Error>?, pinned: Result<[Fingerprint: IdentityName], any Error>?
        func named(_ header: EnvelopeHeader) -> (names: [IdentityName], unnamed: Int) {
            let recipients = try? MessageRecipients(of: header, ownKeys: ownKeys, ownName: {
                if ownName == nil { ownName = Result { try keystore.currentBundle().name } }
                return try ownName!.get()
            }, pinnedNames: {
                if pinned == nil { pinned = Result { try MessageRecipients.pinnedNames(in: home) } }
                return try pinned!.get()
            })
            return recipients.map { ($0.names, $0.unnamed) } ?? ([], header.recipients.count)
        }
        var entries: [Entry] = []
        for (id, url) in copies(in: sentDirectory) {
            guard let (header, size) = headerAndSize(url) else { continue }
            let key = try? sentCopyKey(for: id)
            let sentToSelf = header.recipients.contains { ownKeys.contains($0.fingerprint) }
            let (names, unnamed) = key.map { ($0.recipientNames, 0) } ?? named(header)
            entries.append(Entry(id: id, wasSent: true, sender: header.senderName, recipients: names, unnamedRecipients: unnamed,
                                 time: header.time, size: size, opens: key != nil || sentToSelf))
        }
        for (id, url) in copies(in: receivedDirectory) {
            guard let (header, size) = headerAndSize(url) else { continue }
            let (names, unnamed) = named(header)
            entries.append(Entry(id: id, wasSent: false, sender: header.senderName, recipients: names, unnamedRecipients: unnamed,
                                 time: header.time, size: size, opens: true))
        }
        return entries.sorted { ($0.time, $0.id.hex) > ($1.time, $1.id.hex) }
    }

    /// The header of the kept envelope at `url`, nil when it cannot be read or does not parse.
    private func header(of url: URL) -> EnvelopeHeader? {
        guard let source = try? FileEnvelopeSource(url: url) else { return nil }
        return try? EnvelopeOpener.readHeader(source)
    }

    /// The kept envelopes (ID.sm) in `directory`.
    private func copies(in directory: URL) -> [(id: MessageID, url: URL)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.compactMap { name in
            guard name.hasSuffix(".sm"), let id = try? MessageID(hex: String(name.dropLast(3))) else { return nil }
            return (id, directory.appendingPathComponent(name))
        }
    }

    public struct Pruned: Sendable {
        public var sent = 0
        public var received = 0
        public var bytes: UInt64 = 0
    }

    /// Removes the kept envelopes stored more than `age` seconds before `now` (by the time they
    /// were stored); with `dryRun`, only counts them.
    public func prune(olderThan age: TimeInterval, now: Date = Date(), dryRun: Bool = false) throws -> Pruned {
        let cutoff = now.addingTimeInterval(-age)
        var pruned = Pruned()
        for (id, url, size) in try envelopes(in: sentDirectory, storedBefore: cutoff) {
            pruned.sent += 1
            pruned.bytes += size
            guard !dryRun else { continue }
            try remove(url)
            try? FileManager.default.removeItem(at: sentCopyKeyFile(id))
        }
        var tombstoned = false
        for (id, url, size) in try envelopes(in: receivedDirectory, storedBefore: cutoff) {
            pruned.received += 1
            pruned.bytes += size
            guard !dryRun else { continue }
            // The tombstone first, durably: a crash in between must not forget that the id was read.
            try FileSystem.createDurableFile(tombstone(id), bytes: Array("\(Int64(now.timeIntervalSince1970))\n".utf8), permissions: 0o600)
            tombstoned = true
            try remove(url)
            try? FileManager.default.removeItem(at: receivedDirectory.appendingPathComponent("\(id.hex).sender"))
        }
        if tombstoned { try FileSystem.synchronize(receivedDirectory) }
        return pruned
    }

    private func envelopes(in directory: URL, storedBefore cutoff: Date) throws -> [(MessageID, URL, UInt64)] {
        copies(in: directory).sorted { $0.id.hex < $1.id.hex }.compactMap { id, url in
            guard let status = try? FileStatus(path: url.path), Double(status.modified) < cutoff.timeIntervalSince1970 else { return nil }
            return (id, url, status.size)
        }
    }

    private func remove(_ url: URL) throws {
        do {
            try FileManager.default.removeItem(at: url)
        } catch {
            throw ClientError(.io, "cannot remove \(url.path): \(String(describing: error))")
        }
    }
}
