import FoundationEssentials
import Glibc
import SecmailAPI
import SecmailCrypto
import SecmailFormat

/// Mail through one `RelayClient`: `send` (verified recipients, one multi-recipient envelope,
/// deposit), `inbox`, and `read` (fetch, verify with the verified sender key, decrypt, keep a
/// local copy, and only then delete it on the relay).
///
///     $SECMAIL_HOME/sent/ID.sm        what this user sent, as sealed
///     $SECMAIL_HOME/received/ID.sm    every message read (also the record of ids seen, P4)
///     $SECMAIL_HOME/received/ID.sender  the sender's bundle that verified it, to read it again
///     $SECMAIL_HOME/mail/ID/          its attachments, unless the reader chose another folder
public struct MailClient {
    public let relay: RelayClient
    public var home: SecmailHome { relay.home }
    /// How far ahead a message may be dated (and after its key was replaced), and from what age
    /// it is flagged.
    public var timeWindow = EnvelopeTimeWindow.standard

    public init(relay: RelayClient) {
        self.relay = relay
    }

    var sentDirectory: URL { KeptMail(home: home).sentDirectory }
    var receivedDirectory: URL { KeptMail(home: home).receivedDirectory }

    public struct Sent: Sendable {
        public let messageID: MessageID
        public let size: UInt64
        public let recipients: [IdentityBundle]
        /// Why the copy to read again could not be kept in sent/ (the message went all the same).
        public let keepingFailure: String?
    }

    /// The cheap checks before a message is composed: the relay answers and takes this many
    /// recipients, and every recipient is registered, with a key verified as `lookup` verifies it
    /// (log, pins, rotations). The pins and the advanced log view are saved only once every
    /// recipient passed: a send refused for one name pins no other one unseen.
    public func verifiedRecipients(_ names: [IdentityName]) async throws -> [DirectoryClient.Contact] {
        let limits = try await relay.info().limits
        guard names.count <= limits.maximumRecipients else {
            throw ClientError(.limitExceeded, "the relay at \(relay.address) takes at most \(limits.maximumRecipients) recipients per message, not \(names.count)")
        }
        let directory = DirectoryClient(relay: relay)
        var contacts: [DirectoryClient.Contact] = []
        for name in names { contacts.append(try await directory.verifiedContact(name, pinning: false)) }
        for contact in contacts { try directory.savePin(contact) }
        try await relay.saveLogView()
        return contacts
    }

    /// Refuses, before anything is sealed, a message whose known part alone (`bytes`: its text and
    /// the attachments that are not images) is over the relay's envelope limit.
    public func checkSize(atLeast bytes: UInt64) async throws {
        let limit = try await relay.info().limits.maximumEnvelopeSize
        guard bytes <= UInt64(limit) else {
            throw ClientError(.limitExceeded, "the message is at least \(bytes) bytes; the relay at \(relay.address) accepts envelopes of at most \(limit) bytes")
        }
    }

    /// Refuses, before anything is sealed, a message that this computer's clock would date
    /// outside what the relay accepts (against the relay's clock as its `Date` header showed it):
    /// the relay would refuse it only after the upload. Only clear cases: a message the relay
    /// might take (the header has whole seconds) is left for the relay to judge.
    public func checkClock() async throws {
        let limits = try await relay.info().limits
        guard let offset = relay.clockOffset else { return }
        let ahead = Int64(limits.maximumClockSkewSeconds ?? Int(EnvelopeTimeWindow.standard.futureSkew))
        let behind = Int64(limits.maximumEnvelopeAgeSeconds ?? Int(EnvelopeTimeWindow.standard.maximumAge))
        let advice = "set this computer's clock right (for instance with `timedatectl set-ntp true`); nothing was sent"
        if offset > ahead + Self.clockTolerance {
            throw ClientError(.clockSkewed, "this computer's clock is \(EnvelopeTimeWindow.describe(offset)) ahead of the relay at \(relay.address), which takes messages dated at most \(EnvelopeTimeWindow.describe(ahead)) ahead of its own: \(advice)")
        }
        if -offset > behind + Self.clockTolerance {
            throw ClientError(.clockSkewed, "this computer's clock is \(EnvelopeTimeWindow.describe(-offset)) behind the relay at \(relay.address), which takes messages dated at most \(EnvelopeTimeWindow.describe(behind)) before its own time: \(advice)")
        }
    }

    /// Seconds of clock difference that a relay's `Date` header cannot tell apart from none.
    static let clockTolerance: Int64 = 2

    /// Seals one envelope to every recipient (verified by `verifiedRecipients`), checks its size
    /// against the relay's limit before sending a byte, signs in and deposits it.
    public func send(to recipients: [IdentityBundle], text: String, attachments: [OutgoingAttachment], sender: SenderIdentity,
                     sealProgress: EnvelopeSealer.Progress? = nil,
                     uploadProgress: (@Sendable (UInt64, UInt64) -> Void)? = nil) async throws -> Sent {
        try FileSystem.createPrivateDirectory(sentDirectory)
        TemporaryFiles.sweep(sentDirectory, prefixes: ["sending"])
        let staging = TemporaryFiles.path(in: sentDirectory, prefix: "sending")
        defer { TemporaryFiles.remove(staging) }
        let sealed: SealedEnvelope
        do {
            let file = try PositionalFile(creatingAtPath: staging.path, permissions: 0o600)
            let sink = FileSink(file: file)
            // The latest checkpoint this client verified (the recipients' lookups advanced it):
            // readers compare it with theirs to detect a split view.
            sealed = try EnvelopeSealer().seal(text: text, attachments: attachments, from: sender, to: recipients,
                                               keepingCopyFor: sender.bundle, senderCheckpoint: relay.settings?.checkpoint,
                                               into: sink, progress: sealProgress)
            try sink.synchronize()
        } catch let error as FormatError where error.code == .io {
            throw ClientError(.io, error.reason)
        }
        let limit = try await relay.info().limits.maximumEnvelopeSize
        guard sealed.byteCount <= UInt64(limit) else {
            throw ClientError(.limitExceeded, "the sealed message is \(sealed.byteCount) bytes; the relay at \(relay.address) accepts envelopes of at most \(limit) bytes, so nothing was sent")
        }
        let token = try await relay.token(for: sender)
        let messageID = sealed.header.messageID
        // Named in the request, the id lets the relay refuse a repeat before its body.
        let query = recipients.map { (Endpoint.Query.recipient, $0.name.value) } + [(Endpoint.Query.messageID, messageID.hex)]
        var request = RelayRequest(.POST, Endpoint.deposit.path(query: query), body: .file(staging), bearer: token)
        request.uploadProgress = uploadProgress
        // The relay accepts a message id once per recipient: sent again after a broken
        // connection, the envelope cannot arrive twice.
        request.relayCarriesOutOnce = true
        let mayHaveArrived = Self.mayHaveArrived(at: recipients.map(\.name))
        let response: RelayResponse
        do {
            response = try await relay.send(request)
        } catch let error as ClientError where error.code == .outcomeUnknown {
            throw ClientError(.outcomeUnknown, "message \(messageID) went out, but \(error.reason); \(mayHaveArrived)")
        }
        try checkDeposited(response, messageID: messageID, recipients: recipients, mayHaveArrived: mayHaveArrived)
        // The relay holds it now; keep the sealed copy, which the sender can read again, as the
        // record of what was sent. A failure here does not unsend it: it is said.
        var keepingFailure: String?
        do {
            try KeptMail(home: home).keepSentCopy(staging, id: messageID, key: sealed.sentCopyKey)
        } catch {
            keepingFailure = (error as? ClientError)?.reason ?? (error as? FormatError)?.reason ?? "\(error)"
        }
        return Sent(messageID: messageID, size: sealed.byteCount, recipients: recipients, keepingFailure: keepingFailure)
    }

    /// The relay's answer to a deposit: 201, or a refusal said for what it means. One deposit
    /// names every recipient, so a refusal reached none of them; but a deposit offered again
    /// because the first answer was lost went through when the repeat is refused as a message id
    /// accepted already (checked before the mailboxes' room), and may have when refused otherwise.
    private func checkDeposited(_ response: RelayResponse, messageID: MessageID, recipients: [IdentityBundle],
                                mayHaveArrived: String) throws {
        guard response.status != 201 else { return }
        let refusal = ClientError.refusal(response, relay: relay.address, notFound: .notRegistered)
        if response.answersARepeat {
            let body = try? JSONDecoder().decode(ErrorResponse.self, from: Data(response.body))
            guard body?.code == .conflict else {
                throw ClientError(.outcomeUnknown, "message \(messageID) went out, but the connection to the relay at \(relay.address) broke before its answer, and offered again, \(refusal.reason); \(mayHaveArrived)")
            }
            return
        }
        let advice = recipients.count > 1 && refusal.code == .limitExceeded
            ? ": a message reaches all its recipients or none, so send it to the others without the one named" : ""
        throw ClientError(refusal.code, "\(refusal.reason); nothing was sent\(advice)")
    }

    /// What to tell the sender of a message that went out whole to the relay, whose answer never
    /// came: the relay may have taken it.
    public static func mayHaveArrived(at recipients: [IdentityName]) -> String {
        "it may have reached \(recipients.map(\.value).joined(separator: ", ")) all the same, so a new `secmail send` would be a second message"
    }

    /// The messages waiting in this user's mailbox, every page of them.
    public func inbox(_ identity: SenderIdentity) async throws -> Inbox {
        let token = try await relay.token(for: identity)
        try await declareReaderFeatures(token: token)
        var messages: [MailboxListResponse.Message] = [], usage: MailboxListResponse.Usage?
        try await forEachMailboxPage(token: token) { page in
            messages += page.messages
            usage = usage ?? page.usage
            return true
        }
        return Inbox(messages: messages, usage: usage)
    }

    /// A mailbox as listed: its messages, oldest first, and how full it is (nil from a relay
    /// that does not say).
    public struct Inbox: Sendable {
        public let messages: [MailboxListResponse.Message]
        public let usage: MailboxListResponse.Usage?

        /// The share of the quota in use, from 0; nil when the relay did not say.
        public var fullness: Double? {
            usage.map { Double($0.bytes) / Double(max($0.quota, 1)) }
        }
    }

    /// Tells the relay what this client reads beyond the base format (`ReaderFeature`), so that
    /// senders use it for this user, when the relay does not hold this client's list yet
    /// (`DeclaredReaderFeatures`: registration declares it; a reader that upgraded, or registered
    /// with an older client, declares at its next `inbox` or `read`).
    func declareReaderFeatures(token: String) async throws {
        let declaration = DeclaredReaderFeatures(home: home, relayAddress: relay.address)
        if declaration.isCurrent { return }
        let response = try await relay.send(try RelayRequest(.PUT, Endpoint.readerFeatures.path(),
                                                             json: ReaderFeaturesBody(features: declaration.features), bearer: token))
        switch response.status {
        case 200: try declaration.remember()
        case 404: return  // a relay from before the route: senders then use the base format only
        default: throw ClientError.refusal(response, relay: relay.address, notFound: .notRegistered)
        }
    }

    /// Hands the mailbox's pages to `body`, oldest first, until it returns false or the last page.
    private func forEachMailboxPage(token: String, _ body: (MailboxListResponse) throws -> Bool) async throws {
        var cursor: String?
        repeat {
            let query = cursor.map { [(Endpoint.Query.after, $0)] } ?? []
            let page = try await relay.call(RelayRequest(.GET, Endpoint.mailbox.path(query: query), bearer: token), as: MailboxListResponse.self)
            guard page.next != cursor || page.next == nil else {
                throw ClientError(.malformedAnswer, "the relay at \(relay.address) answered the same mailbox page twice")
            }
            guard try body(page) else { return }
            cursor = page.next
        } while cursor != nil
    }

    /// The message whose id starts with `prefix` (hex digits, as `git` takes a commit's first
    /// digits): among those waiting in the mailbox, and with `includingRead` those read before
    /// or sent, and kept. Exactly one must match.
    public func message(startingWith prefix: String, identity: SenderIdentity, includingRead: Bool) async throws -> MessageID {
        let prefix = prefix.lowercased()
        let waiting = try await inbox(identity).messages.compactMap { try? MessageID(hex: $0.id) }.filter { $0.hex.hasPrefix(prefix) }
        let read = includingRead ? KeptMail(home: home).keptIDs(startingWith: prefix) : []
        let matches = Set(waiting + read)
        guard matches.count == 1, let match = matches.first else {
            guard matches.isEmpty else {
                let listed = matches.map(\.hex).sorted()
                throw ClientError(.invalidInput, "\(prefix) starts \(matches.count) message ids (\(listed.prefix(4).joined(separator: ", "))\(listed.count > 4 ? ", …" : "")); give more of the id")
            }
            throw ClientError(.noSuchMessage, "no message \(includingRead ? "waiting, read before or sent" : "waiting") has an id starting with \(prefix) (see `secmail inbox`)")
        }
        return match
    }

    /// Deletes message `id` from this user's mailbox on the relay (the owner's explicit choice:
    /// unlike `read`, nothing is kept).
    public func delete(_ id: MessageID, identity: SenderIdentity) async throws {
        let token = try await relay.token(for: identity)
        try await relay.expect(204, RelayRequest(.DELETE, Endpoint.deleteMessage.path(id.hex), bearer: token), notFound: .relayRefused)
    }

    /// What `purgeUnverifiable` did.
    public struct Purge: Sendable {
        /// Deleted: not an envelope, signed by no key the log records for the named sender, or
        /// from a name no one registered.
        public let deleted: [MessageID]
        /// Kept: they verify.
        public let kept: Int
        /// Kept, but not verified now, and why (a changed contact key is the user's to decide).
        public let undecided: [(id: String, reason: String)]
    }

    /// Deletes, without decrypting anything, every message in this user's mailbox that cannot be
    /// what it claims: one that does not parse, is signed by no key the log records for its named
    /// sender, or names a sender no one registered. A message whose sender's key fails this
    /// client's own checks (a changed pin) is kept and reported. Transport failures stop it.
    public func purgeUnverifiable(_ identity: SenderIdentity) async throws -> Purge {
        let token = try await relay.token(for: identity)
        try FileSystem.createPrivateDirectory(receivedDirectory)
        var deleted: [MessageID] = [], kept = 0, undecided: [(String, String)] = []
        for message in try await inbox(identity).messages {
            guard let id = try? MessageID(hex: message.id) else {
                undecided.append((message.id, "the relay lists it under a malformed id"))
                continue
            }
            let file = TemporaryFiles.path(in: receivedDirectory, prefix: "checking")
            defer { TemporaryFiles.remove(file) }
            var fetch = RelayRequest(.GET, Endpoint.fetchMessage.path(id.hex), bearer: token)
            fetch.saveBodyTo = file
            fetch.savedBodyIsScratch = true
            fetch.maximumDownloadSize = UInt64(max(message.size, 0))
            fetch.timeout = .seconds(600)
            try await relay.expect(200, fetch, notFound: .relayRefused)
            do {
                let source = try FileEnvelopeSource(url: file)
                let header = try EnvelopeOpener.readHeader(source)
                guard header.messageID == id else { throw FormatError(.invalidField, "it carries another message id") }
                try EnvelopeOpener.verifySignature(source, sender: try await senderBundle(for: header).0)
                kept += 1
                continue
            } catch is FormatError {
                // Not an envelope, or not signed by the key the log records: junk.
            } catch let error as ClientError where error.code == .notRegistered {
                // Claims a sender no one registered: junk.
            } catch let error as ClientError where error.isVerificationFailure {
                undecided.append((message.id, error.reason))
                continue
            }
            try await relay.expect(204, RelayRequest(.DELETE, Endpoint.deleteMessage.path(id.hex), bearer: token), notFound: .relayRefused)
            deleted.append(id)
        }
        try await relay.saveLogView()
        return Purge(deleted: deleted, kept: kept, undecided: undecided)
    }

    public struct Read: Sendable {
        public let message: OpenedMessage
        public let sender: IdentityBundle
        public let saved: [SavedAttachment]
        /// About the message as a whole (read before, signed long ago, a copy left on the relay);
        /// each saved file has its own.
        public var notes: [String]
        /// The message was read before: this is its kept copy, opened with the sender key that
        /// verified it then; the relay was not asked for it.
        public let readBefore: Bool
        /// For a message this home sent (its kept copy, opened with the key kept for the sender):
        /// the names it went to.
        public var sentTo: [IdentityName]? = nil
        /// Why the attachments could not be saved (none was); the text is good all the same.
        public let saveFailure: ClientError?
        /// The sender as this read verified them: whether their key was pinned now for the first
        /// time or followed through a rotation. Nil for a kept copy (nothing was looked up).
        public let senderContact: DirectoryClient.Contact?
    }

    /// The folder a message's attachments go to unless the reader names one.
    public func defaultOutputDirectory(for id: MessageID) -> URL {
        home.url.appendingPathComponent("mail", isDirectory: true).appendingPathComponent(id.hex, isDirectory: true)
    }

    /// Fetches message `id` (no more bytes than the mailbox lists for it), verifies it with the
    /// sender's verified key (the key version that signed it, proven in the log), decrypts it into
    /// `outputDirectory` (default `defaultOutputDirectory(for:)`), keeps the envelope and the
    /// sender's bundle under received/, and only then deletes it from the relay. The relay's copy
    /// of a message already read is never fetched again (P4): its kept copy is opened instead, with
    /// the sender key that verified it. A message dated more than the allowed skew ahead of this
    /// clock is refused, and the checkpoint the sender signed with it must be consistent with this
    /// client's view of the log (split-view detection); nothing is written unless everything
    /// verified. Attachments that cannot be saved do not lose the message: it is kept, its text
    /// returned, and `saveFailure` says why (it can be read again into another folder). Nor does a
    /// failed delete on the relay: a note says so, and when the relay lists a message read before
    /// (`listedSize`, the size the caller's mailbox listing gave it: its delete failed then, or
    /// the relay serves it again), that copy is deleted now. Without `listedSize`, the mailbox
    /// is listed to learn it.
    public func read(_ id: MessageID, identity: SenderIdentity, keyring: RecipientKeyring, into outputDirectory: URL? = nil,
                     listedSize: UInt64? = nil, keepJPEG: Bool = false, progress: EnvelopeSealer.Progress? = nil,
                     downloadProgress: (@Sendable (UInt64, UInt64) -> Void)? = nil,
                     converting: ImageConversionObserver? = nil) async throws -> Read {
        try FileSystem.createPrivateDirectory(receivedDirectory)
        TemporaryFiles.sweep(receivedDirectory, prefixes: ["fetching", "checking"])
        let output = outputDirectory ?? defaultOutputDirectory(for: id)
        let kept = KeptMail(home: home)
        let stored = kept.receivedCopy(id)
        if kept.hasReceivedCopy(of: id) {
            var read = try readKeptCopy(id, keyring: keyring, into: output, keepJPEG: keepJPEG, progress: progress, converting: converting)
            if listedSize != nil {
                let note = await deleteRelayCopy(of: id, token: try await relay.token(for: identity))
                read.notes.append(note ?? "its copy left on the relay is deleted now")
            }
            return read
        }
        // A message sent from this home opens from its kept copy; one sent to oneself as well
        // is read from the relay like any other.
        if let sentCopyKey = try kept.sentCopyKey(for: id), !sentCopyKey.recipientNames.contains(identity.bundle.name) {
            return try readSentCopy(id, key: sentCopyKey, keyring: keyring, into: output, keepJPEG: keepJPEG,
                                    progress: progress, converting: converting)
        }
        if let header = kept.sentCopyWithoutKey(id), !header.recipients.contains(where: { keyring.fingerprints.contains($0.fingerprint) }) {
            throw ClientError(.noSuchMessage, "message \(id) is one you sent before secmail kept you the key to your own copy (\(kept.sentCopy(id).path)); only its recipients can open it")
        }
        if kept.wasPruned(id) {
            throw ClientError(.noSuchMessage, "message \(id) was read before and its kept copy pruned (`secmail prune`); it is not fetched from the relay again (a replay is refused)")
        }
        let token = try await relay.token(for: identity)
        try await declareReaderFeatures(token: token)
        let download = TemporaryFiles.path(in: receivedDirectory, prefix: "fetching")
        defer { TemporaryFiles.remove(download) }
        let source: FileEnvelopeSource, header: EnvelopeHeader
        do {
            (source, header) = try await fetch(id, into: download, token: token, listedSize: listedSize, progress: downloadProgress)
        } catch let error as ClientError where error.code == .noSuchMessage && kept.hasReceivedCopy(of: id) {
            // Another command of this home read it since the check above (two `read --all` at
            // once): it was kept before the relay's copy went, so it opens from that copy.
            return try readKeptCopy(id, keyring: keyring, into: output, keepJPEG: keepJPEG, progress: progress, converting: converting)
        }
        let (sender, senderContact) = try await senderBundle(for: header)
        let verified = try EnvelopeOpener.verify(source, sender: sender, keys: keyring.keys(for: source, from: sender), progress: progress)
        let now = Int64(Date().timeIntervalSince1970)
        if let refusal = timeWindow.readerRefusal(signedAt: header.time, now: now) {
            // A reader whose clock is slow sees honest mail from the future: said when it is so.
            let slowClock = relay.clockOffset.flatMap { $0 < -60 ? "; this computer's clock is \(EnvelopeTimeWindow.describe(-$0)) behind the relay's, so check it first" : nil } ?? ""
            throw ClientError(.verificationFailed, "message \(id) is \(refusal)\(slowClock)")
        }
        try await relay.compareView(withSenderCheckpoint: header.senderCheckpoint, sender: header.senderName, messageID: id)
        // A sender is pinned for a message that verified, not for one that merely named her.
        try DirectoryClient(relay: relay).savePin(senderContact)
        try await relay.saveLogView()
        let opened = try AttachmentDirectory.decrypt(verified, into: output, keepJPEG: keepJPEG, progress: progress, converting: converting)
        try keep(download, as: stored, sender: sender, id: id)
        var notes = [timeWindow.readerNote(signedAt: header.time, now: now)].compactMap { $0 }
        // Stored and verified locally: now the relay's copy may go (P9).
        if let note = await deleteRelayCopy(of: id, token: token) { notes.append(note) }
        return Read(message: opened.message, sender: sender, saved: opened.saved, notes: notes, readBefore: false,
                    saveFailure: opened.saveFailure, senderContact: senderContact)
    }

    /// Deletes the relay's copy of message `id`, read and kept here. The message is read whatever
    /// happens to that request: a failure is a note to show (nil when deleted, or gone already,
    /// as when another command of this home read it at the same time), never an error.
    private func deleteRelayCopy(of id: MessageID, token: String) async -> String? {
        do {
            try await relay.expect(204, RelayRequest(.DELETE, Endpoint.deleteMessage.path(id.hex), bearer: token), notFound: .noSuchMessage)
        } catch let error as ClientError where error.code != .noSuchMessage {
            return "its copy on the relay is not deleted yet; `secmail delete \(id.hex)` or `secmail read --all` deletes it (this time: \(error.reason))"
        } catch {}
        return nil
    }

    /// Downloads message `id` into `download`, no more bytes than the mailbox lists for it, and
    /// reads its header, which must name `id`. Nothing is verified yet.
    private func fetch(_ id: MessageID, into download: URL, token: String, listedSize: UInt64?,
                       progress: (@Sendable (UInt64, UInt64) -> Void)?) async throws -> (FileEnvelopeSource, EnvelopeHeader) {
        var fetch = RelayRequest(.GET, Endpoint.fetchMessage.path(id.hex), bearer: token)
        fetch.saveBodyTo = download
        fetch.timeout = .seconds(600)
        fetch.downloadProgress = progress
        if let listedSize {
            fetch.maximumDownloadSize = listedSize
        } else {
            fetch.maximumDownloadSize = try await self.listedSize(of: id, token: token)
        }
        try await relay.expect(200, fetch, notFound: .noSuchMessage)
        let source: FileEnvelopeSource
        let header: EnvelopeHeader
        do {
            source = try FileEnvelopeSource(url: download)
            header = try EnvelopeOpener.readHeader(source)
        } catch let error as FormatError {
            throw ClientError(.verificationFailed, "message \(id) from the relay is not a valid envelope: \(error.reason)")
        }
        guard header.messageID == id else {
            throw ClientError(.verificationFailed, "the relay served message \(header.messageID) when asked for \(id)")
        }
        return (source, header)
    }

    /// Keeps a verified download as `stored`, with the sender key that verified it: the sender
    /// key first, then the envelope (whose presence marks the message read), each synced before
    /// its rename and the renames synced too. The download is synced only now: the kernel began
    /// writing it as it arrived (PositionalFile), and wrote most of the rest while it was
    /// checked and decrypted.
    private func keep(_ download: URL, as stored: URL, sender: IdentityBundle, id: MessageID) throws {
        do {
            try FileSystem.synchronize(download)
            try FileSystem.placeDurably(sender.encoded, at: senderFile(id), temporaryPrefix: "fetching")
            try AtomicRename.replace(stored, with: download)
        } catch let error as FormatError {
            throw ClientError(.io, error.reason)
        }
        TemporaryFiles.release(download)
        try FileSystem.synchronize(receivedDirectory)
    }

    func senderFile(_ id: MessageID) -> URL {
        receivedDirectory.appendingPathComponent("\(id.hex).sender")
    }

    /// The size the mailbox lists for `id` (pages through the listing until it is found).
    private func listedSize(of id: MessageID, token: String) async throws -> UInt64 {
        var size: UInt64?
        try await forEachMailboxPage(token: token) { page in
            size = page.messages.first(where: { $0.id == id.hex }).map { UInt64(max($0.size, 0)) }
            return size == nil
        }
        if let size { return size }
        throw ClientError(.noSuchMessage, "there is no message \(id) in your mailbox on \(relay.address) (see `secmail inbox`)")
    }

    /// The sender's bundle for the key version that signed `header`: the current one (verified
    /// like `lookup`, against the pins; the caller saves the pin change once the message verified)
    /// or, for mail signed before a rotation, the logged earlier version with that fingerprint,
    /// provided the message is not dated after that version was replaced (beyond the allowed
    /// skew): a retired key, perhaps stolen, signs nothing new. The sender's lookup (and history)
    /// from an earlier message of this command serves, unless it lists no such key: then the
    /// sender is looked up again, since they may have rotated meanwhile.
    private func senderBundle(for header: EnvelopeHeader) async throws -> (IdentityBundle, DirectoryClient.Contact) {
        func lookUp(reusing: Bool) async throws -> DirectoryClient.Contact {
            let contact = try await DirectoryClient(relay: relay).verifiedContact(header.senderName, pinning: false, reusingLookup: reusing)
            try await relay.saveLogView()
            return contact
        }
        let lookedUpBefore = relay.latestLookups[header.senderName] != nil
        var contact = try await lookUp(reusing: true)
        var version = try await keyVersion(signing: header, among: contact)
        if version == nil, lookedUpBefore {
            contact = try await lookUp(reusing: false)
            version = try await keyVersion(signing: header, among: contact)
        }
        guard let version else {
            throw ClientError(.verificationFailed, "the message claims to be signed by \(header.senderName) with key \(header.senderFingerprint.grouped), which the log does not list for \(header.senderName)")
        }
        return (version, contact)
    }

    /// The version of `contact`'s keys that signed `header`, from the lookup or else the history
    /// proven in the same tree; nil when the log lists no such key.
    private func keyVersion(signing header: EnvelopeHeader, among contact: DirectoryClient.Contact) async throws -> IdentityBundle? {
        if contact.bundle.fingerprint == header.senderFingerprint { return contact.bundle }
        let history = try await relay.verifiedHistory(header.senderName, at: contact.lookup)
        guard let index = history.firstIndex(where: { $0.bundle.fingerprint == header.senderFingerprint }) else { return nil }
        let version = history[index].bundle
        if index + 1 < history.count {
            let replacedAt = history[index + 1].loggedAt
            guard header.time <= replacedAt + timeWindow.futureSkew else {
                throw ClientError(.verificationFailed, "message \(header.messageID) is signed with \(header.senderName)'s key version "
                    + "\(version.keyVersion), which was replaced by version \(history[index + 1].bundle.keyVersion) "
                    + "\(EnvelopeTimeWindow.describe(header.time - replacedAt)) before the message's date: a retired key signs nothing new "
                    + "(it may have been stolen). Refused")
            }
        }
        return version
    }
}
