import ArgumentParser
import FoundationEssentials
import Glibc
import SecmailClient
import SecmailCommandLine
import SecmailCrypto
import SecmailFormat
import SecmailImages

struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send a signed, encrypted message through your relay to registered users.",
        discussion: """
            Every recipient's key is looked up and verified as `secmail lookup` does (log, pins, \
            rotations); one envelope is sealed to all of them and deposited. Images travel in their \
            smaller lossless form (see `secmail image optimize`). Prints the message id.
            """)

    @Argument(help: "Recipient names.", completion: HomeOptions.contactNames)
    var names: [String]

    @OptionGroup var compose: ComposeOptions

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @OptionGroup var homeOptions: HomeOptions
    @OptionGroup var passphraseOptions: PassphraseOptions

    func validate() throws {
        guard !names.isEmpty else { throw ValidationError("name at least one recipient") }
    }

    /// The recipients named, each once. A file named where a recipient belongs (`secmail send bob
    /// photo.jpg`, as scp and mail(1) take files) is pointed to --attach when no name can be it.
    private func recipientNames() throws -> [IdentityName] {
        var recipients: [IdentityName] = []
        for name in names {
            let parsed: IdentityName
            do {
                parsed = try IdentityName(name)
            } catch let error as FormatError {
                throw CLIFailure(.failure, Self.isFile(name) ? Self.attachHint(name) : error.reason)
            }
            if !recipients.contains(parsed) { recipients.append(parsed) }
        }
        return recipients
    }

    private static func isFile(_ path: String) -> Bool {
        var isDirectory = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory
    }

    private static func attachHint(_ file: String) -> String {
        "\(TerminalText.shellWord(file)) is a file here: to send it, attach it with --attach \(TerminalText.shellWord(file))"
    }

    func run() async throws {
        let recipients = try recipientNames()
        try await MessageDelivery(compose: compose, json: json, homeOptions: homeOptions, passphraseOptions: passphraseOptions)
            .send(to: recipients) { error in
                // The name as typed: a file "Notes.txt" is named as such, not as "notes.txt".
                guard let file = names.first(where: { (try? IdentityName($0))?.value == error.subject }), Self.isFile(file) else { return error }
                return ClientError(.notRegistered, error.reason + "; " + Self.attachHint(file))
            }
    }
}

struct ReplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reply",
        abstract: "Send a message to the sender of a message you read (with --all, to its other recipients too).",
        discussion: """
            The message is one kept here (`secmail kept` lists them): one you read, whose sender \
            the reply goes to, or one you sent, whose recipients it goes to again. --all adds the \
            other recipients of a message you read whose keys are your pinned contacts'; the \
            envelope names recipients by key alone, so any other is left out, and said so. \
            Otherwise the reply is sent as `secmail send` sends.
            """)

    @Argument(help: ArgumentHelp("The message's id, or its first 4 or more digits.", valueName: "id"), completion: HomeOptions.keptMessageIDs)
    var id: String

    @Flag(name: .long, help: "Reply to every recipient of the message this home can name, not only its sender.")
    var all = false

    @OptionGroup var compose: ComposeOptions

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @OptionGroup var homeOptions: HomeOptions
    @OptionGroup var passphraseOptions: PassphraseOptions

    func run() async throws {
        let kept = KeptMail(home: try homeOptions.secmailHome)
        let typed = try TypedMessageID(id)
        guard let messageID = typed.keptCopy(in: kept) ?? typed.matchingKeptCopy(in: kept) else {
            var many = 0
            if case .prefix(let prefix) = typed { many = kept.keptIDs(startingWith: prefix).count }
            throw CLIFailure(.failure, many > 1
                ? "\(id) starts the ids of \(many) messages kept here; give more of its digits (see `secmail kept`)"
                : "no message \(id) is kept here to reply to: read it first (`secmail read \(id)`), or see `secmail kept`")
        }
        guard let (names, leftOut) = try kept.replyRecipients(to: messageID, all: all) else {
            throw CLIFailure(.failure, "no message \(id) is kept here to reply to: read it first (`secmail read \(id)`)")
        }
        guard !names.isEmpty else {
            throw CLIFailure(.failure, "message \(messageID) went to no one but you that this home can name: there is no one to reply to")
        }
        if leftOut > 0 {
            Terminal.info("\(counted(leftOut, "recipient", "recipients")) of message \(messageID) \(leftOut == 1 ? "is" : "are") not among your contacts and \(leftOut == 1 ? "is" : "are") left out of the reply.")
        }
        try await MessageDelivery(compose: compose, json: json, homeOptions: homeOptions, passphraseOptions: passphraseOptions).send(to: names)
    }
}

/// One message sent through the relay to named recipients, as `send` and `reply` send it.
struct MessageDelivery {
    let compose: ComposeOptions
    let json: Bool
    let homeOptions: HomeOptions
    let passphraseOptions: PassphraseOptions

    /// Looks up and verifies `recipients`, seals one envelope to all of them and deposits it.
    /// `unregistered` may put a recipient the relay does not know in other words.
    func send(to recipients: [IdentityName], unregistered: (ClientError) -> ClientError = { $0 }) async throws {
        // Cheap checks first (the names were checked): files, identity, relay, recipients, size;
        // then the passphrase; then image work and sealing.
        let checked = try compose.checkedAttachments()
        if checked.contains(where: \.isImage) { ImagePipeline.loadLibrariesInBackground() }
        let text = try compose.text()
        let keystore = try Keystore(home: homeOptions.secmailHome)
        _ = try keystore.currentBundle()
        let (sent, prepared) = try await withRelay(keystore.home) { relay in
            let mail = MailClient(relay: relay)
            let contacts: [DirectoryClient.Contact]
            do {
                contacts = try await mail.verifiedRecipients(recipients)
            } catch let error as ClientError where error.code == .notRegistered {
                throw unregistered(error)
            }
            // Pinned now, whatever happens next (a wrong passphrase, a relay gone): said now.
            for contact in contacts { Terminal.pinNote(contact) }
            try await mail.checkSize(atLeast: ComposeOptions.knownSize(text: text, checked))
            try await mail.checkClock()
            let sender = try passphraseOptions.sender(keystore)
            // Compressed files and JPEG XL images only when every recipient's client reads them.
            let readable = DirectoryClient.Contact.commonReaderFeatures(contacts)
            let prepared = try compose.preparedAttachments(checked, readable: readable)
            let sealing = Terminal.ProgressLine("sealing"), uploading = Terminal.ProgressLine("sending")
            // A deposit cut short is dropped by the relay; once all of it went out, the relay may
            // have taken it whatever happens here.
            Interruption.wouldLeave("nothing was sent, and nothing half-written was kept")
            let mayHaveArrived = MailClient.mayHaveArrived(at: contacts.map(\.bundle.name))
            let sent = try await mail.send(
                to: contacts.map(\.bundle), text: text, attachments: prepared.map(\.attachment), sender: sender,
                sealProgress: sealing.update, uploadProgress: { done, total in
                    uploading.update(done, total)
                    if done == total {
                        Interruption.wouldLeave("the whole message had gone to the relay: \(mayHaveArrived)")
                    }
                })
            sealing.finish()
            uploading.finish()
            return (sent, prepared)
        }
        if let failure = sent.keepingFailure {
            Terminal.info("The message went, but no copy of it is kept for you to read again: \(failure)")
        }
        if json {
            var result: [String: Any] = [
                "id": sent.messageID.hex, "bytes": sent.size, "images": prepared.compactMap(\.imageReport),
                "compressed": prepared.compactMap(\.compressionReport),
                "recipients": sent.recipients.map { ["name": $0.name.value, "fingerprint": $0.fingerprint.hex, "keyVersion": $0.keyVersion] },
            ]
            if let failure = sent.keepingFailure { result["keepingError"] = failure }
            try Terminal.output(jsonText(result))
        } else {
            for line in prepared.compactMap(\.summary) { Terminal.info(line) }
            for bundle in sent.recipients {
                Terminal.info("To \(bundle.name) (key version \(bundle.keyVersion), \(bundle.fingerprint.grouped))")
            }
            Terminal.info("Sent message \(sent.messageID): \(formatBytes(sent.size))")
            Terminal.output(sent.messageID.hex + "\n")
        }
    }
}

struct InboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inbox",
        abstract: "List the messages waiting for you on your relay.")

    @Flag(name: .long, help: "Print a JSON array of {id, from, time, size, readBefore, contact} on standard output.")
    var json = false

    @Flag(name: .long, help: """
        First delete every message that cannot be what it claims (not an envelope, not signed by a \
        key the log records for its sender, or from an unregistered name), without decrypting anything.
        """)
    var purgeUnverifiable = false

    @OptionGroup var homeOptions: HomeOptions
    @OptionGroup var passphraseOptions: PassphraseOptions

    /// From this share of the quota on, `inbox` says how full the mailbox is.
    static let fullnessWarning = 0.8

    func run() async throws {
        let keystore = try Keystore(home: homeOptions.secmailHome)
        _ = try keystore.currentBundle()
        let inbox = try await withRelay(keystore.home) { relay in
            _ = try await relay.info()
            let identity = try passphraseOptions.sender(keystore)
            let mail = MailClient(relay: relay)
            if purgeUnverifiable {
                let purge = try await mail.purgeUnverifiable(identity)
                Terminal.info("Deleted \(counted(purge.deleted.count, "unverifiable message", "unverifiable messages")); \(purge.kept) verified.")
                for (id, reason) in purge.undecided { Terminal.info("Kept \(id), not verified: \(reason)") }
            }
            return try await mail.inbox(identity)
        }
        let messages = inbox.messages
        // Senders are refused once the mailbox is full, and only its owner can make room.
        if let usage = inbox.usage, let fullness = inbox.fullness, fullness >= Self.fullnessWarning {
            Terminal.info("Your mailbox on the relay is \(Int(fullness * 100))% full (\(formatBytes(UInt64(max(usage.bytes, 0)))) of \(formatBytes(UInt64(max(usage.quota, 0))))): messages that would not fit are refused to their senders. Read or delete messages to make room.")
        }
        // Listed again after an earlier read kept it (its delete on the relay failed, or the relay
        // serves it again): `read` opens the kept copy, and `read --all` deletes the relay's.
        let kept = KeptMail(home: keystore.home)
        let readBefore = Set(messages.map(\.id).filter { id in (try? MessageID(hex: id)).map(kept.hasReceivedCopy) ?? false })
        // Mail from someone whose key is not pinned here stands out before it is read.
        let contacts = Set(ContactPins(home: keystore.home).names().map(\.value))
        if json {
            try Terminal.output(jsonText(messages.map {
                ["id": $0.id, "from": $0.from, "time": $0.time, "size": $0.size, "readBefore": readBefore.contains($0.id),
                 "contact": contacts.contains($0.from)] as [String: Any]
            }))
        } else if messages.isEmpty {
            Terminal.info("No messages.")
            if Terminal.stderrIsTerminal, !kept.keptIDs(startingWith: "").isEmpty {
                Terminal.info("`secmail kept` lists the mail you sent and read; `secmail read ID` shows one again.")
            }
        } else {
            for message in messages {
                // The id and sender are the relay's words: shown neutralised.
                let line = "\(message.id)  \(message.from)  \(HumanTime.describe(Int64(message.time)))  \(formatBytes(UInt64(message.size)))"
                let mark = readBefore.contains(message.id) ? "  (read before)" : contacts.contains(message.from) ? "" : "  (not among your contacts)"
                Terminal.output(TerminalText.neutralised(line) + mark + "\n")
            }
            if !readBefore.isEmpty {
                Terminal.info("A message read before is opened from its kept copy; `secmail read --all` deletes the relay's copy.")
            }
            if Terminal.stderrIsTerminal {
                Terminal.info("Read one with `secmail read ID` (its first 4 or more digits will do).")
                // inbox then read is where a person types the passphrase twice in a row.
                if passphraseOptions.nextCommandWouldAsk(keystore) {
                    Terminal.info("Run `secmail unlock` first, and commands stop asking for the passphrase until \(IdleTimeout.minutes(UInt32(IdleTimeout.standard.seconds))) without use.")
                }
            }
        }
    }
}

struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete messages from your mailbox on the relay without reading them.",
        discussion: "For junk and for messages you do not want: nothing is fetched or kept. Ids come from `secmail inbox`.")

    @Argument(help: "The ids of the messages to delete (or the first 4 or more digits of each).")
    var ids: [String]

    @OptionGroup var homeOptions: HomeOptions
    @OptionGroup var passphraseOptions: PassphraseOptions

    func validate() throws {
        guard !ids.isEmpty else { throw ValidationError("name at least one message id") }
    }

    func run() async throws {
        let typed = try ids.map(TypedMessageID.init)
        let keystore = try Keystore(home: homeOptions.secmailHome)
        _ = try keystore.currentBundle()
        try await withRelay(keystore.home) { relay in
            _ = try await relay.info()
            let identity = try passphraseOptions.sender(keystore)
            let mail = MailClient(relay: relay)
            for typedID in typed {
                let id = try await typedID.resolved(by: mail, identity: identity, includingRead: false)
                try await mail.delete(id, identity: identity)
                Terminal.info("Deleted \(id).")
            }
        }
    }
}

struct ReadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Fetch, verify and decrypt a message; save its attachments; then remove it from the relay.",
        discussion: """
            The sender's signature is checked with the sender's key as verified in the log before \
            anything is decrypted; attachments appear only once everything verified, all together \
            or none, in $SECMAIL_HOME/mail/ID unless --out names a folder (images as PNG). The \
            envelope is kept in $SECMAIL_HOME/received, and only then deleted on the relay. A \
            message read before is opened again from that copy, with the sender key that verified \
            it then; the relay is not asked for it again (given its whole id, it need not be \
            reachable). So is a message you sent, from its copy in $SECMAIL_HOME/sent.
            """)

    @Argument(help: "The message id (from `secmail inbox`, or one you sent), or its first 4 or more digits.")
    var id: String?

    @Flag(name: .long, help: "Read every waiting message, oldest first; one that fails is said and stays on the relay.")
    var all = false

    @OptionGroup var outputOptions: MessageOutputOptions

    @OptionGroup var homeOptions: HomeOptions
    @OptionGroup var passphraseOptions: PassphraseOptions

    func validate() throws {
        if all, id != nil { throw ValidationError("give a message id or --all, not both") }
        if !all, id == nil { throw ValidationError("name the message to read (an id from `secmail inbox`, or its first digits), or give --all") }
    }

    func run() async throws {
        let typedID = try id.map(TypedMessageID.init)
        let keystore = try Keystore(home: homeOptions.secmailHome)
        _ = try keystore.currentBundle()
        // Its images are converted to PNG, and may have travelled as JPEG XL: the image
        // libraries and libjxl load while the message downloads.
        ImagePipeline.loadLibrariesInBackground()
        var results: [[String: Any]] = []
        var failures: [Error] = []
        try await withRelay(keystore.home) { relay in
            // A message read before opens from its kept copy, and the relay is not asked for it
            // again: it need not even be reachable (on a train, say).
            let kept = KeptMail(home: keystore.home)
            let keptCopy = typedID?.keptCopy(in: kept)
            if keptCopy == nil { try await Self.checkReachable(relay, for: typedID, kept: kept) }
            let (identity, keyring) = try passphraseOptions.senderAndKeyring(keystore)
            let mail = MailClient(relay: relay)
            let messages = try await Self.messagesToRead(keptCopy: keptCopy, typedID: typedID, mail: mail, identity: identity)
            if messages.isEmpty, !outputOptions.json { Terminal.info("No messages.") }
            // Messages read and kept so far (one that failed to verify is neither).
            var readAndKept = 0
            for (index, (messageID, listedSize)) in messages.enumerated() {
                if index > 0, !outputOptions.json { Terminal.info("") }
                // A message is saved whole or not at all, and kept before the relay's copy goes.
                let before = readAndKept == 0 ? "" : "the \(counted(readAndKept, "message", "messages")) shown above were read and kept, "
                Interruption.wouldLeave(all ? "\(before)nothing half-saved was left; `secmail read --all` goes on from where this stopped"
                                            : "nothing half-saved was left; `secmail read \(messageID.hex)` shows the message")
                do {
                    let (result, saveFailure) = try await readAndShow(messageID, listedSize: listedSize, mail: mail,
                                                                      identity: identity, keyring: keyring)
                    readAndKept += 1
                    results.append(result)
                    if let saveFailure {
                        if all { Terminal.error(Self.naming(messageID, saveFailure.description)) }
                        failures.append(saveFailure)
                    }
                } catch {
                    // One message that fails (tampered, not verifiable) does not keep the others.
                    guard all else { throw error }
                    let reason = classify(error).1
                    Terminal.error(Self.naming(messageID, reason))
                    results.append(["id": messageID.hex, "error": reason])
                    failures.append(error)
                }
            }
        }
        if outputOptions.json {
            try Terminal.output(jsonText(all ? results as Any : results.first ?? [:]))
        }
        if let first = failures.first {
            guard all else { throw first }
            throw CLIFailure(classify(first).0, "\(counted(failures.count, "message", "messages")) of \(results.count) could not be read or saved, as said above")
        }
    }

    /// The relay answers; when it is out of reach and the digits typed name a kept copy, the
    /// error says which whole id opens it without the relay (a prefix might also match unread
    /// mail there, so only a whole id skips the relay).
    static func checkReachable(_ relay: RelayClient, for typedID: TypedMessageID?, kept: KeptMail) async throws {
        do {
            _ = try await relay.info()
        } catch let error as ClientError where error.code == .relayUnreachable {
            guard let readBefore = typedID?.matchingKeptCopy(in: kept) else { throw error }
            throw ClientError(.relayUnreachable, "\(error.reason); message \(readBefore.hex) is kept here, and `secmail read \(readBefore.hex)` opens its copy without the relay")
        }
    }

    /// The messages to read, each with its size when this command listed the mailbox (--all):
    /// that size bounds its download and is not asked for again.
    static func messagesToRead(keptCopy: MessageID?, typedID: TypedMessageID?, mail: MailClient,
                               identity: SenderIdentity) async throws -> [(id: MessageID, listedSize: UInt64?)] {
        if let keptCopy { return [(keptCopy, nil)] }
        if let typedID { return [(try await typedID.resolved(by: mail, identity: identity, includingRead: true), nil)] }
        return try await mail.inbox(identity).messages.compactMap { listed in
            (try? MessageID(hex: listed.id)).map { ($0, UInt64(max(listed.size, 0))) }
        }
    }

    /// `reason`, said of message `id` (most reasons name it already).
    static func naming(_ id: MessageID, _ reason: String) -> String {
        reason.contains(id.hex) ? reason : "message \(id): \(reason)"
    }

    /// Reads one message and shows it (for people at once; for --json, the object returned), with
    /// the failure to report when its attachments could not be saved (the message is kept).
    /// `listedSize`: the size the mailbox listing gave it, when this command listed it.
    private func readAndShow(_ messageID: MessageID, listedSize: UInt64?, mail: MailClient, identity: SenderIdentity,
                             keyring: RecipientKeyring) async throws -> (json: [String: Any], saveFailure: CLIFailure?) {
        let downloading = Terminal.ProgressLine("downloading"), progress = Terminal.ProgressLine("verifying and decrypting")
        let read = try await mail.read(
            messageID, identity: identity, keyring: keyring, into: outputOptions.folder, listedSize: listedSize, keepJPEG: outputOptions.asSent,
            progress: progress.update, downloadProgress: { done, total in downloading.update(done, total) },
            converting: Terminal.imageConversionStatus)
        downloading.finish()
        progress.finish()
        if let contact = read.senderContact { Terminal.pinNote(contact) }
        // A copy of what this home sent says its recipients in a note, by the names it was sent to.
        let recipients = read.sentTo == nil ? try? MessageRecipients(of: read.message.header, keystore: Keystore(home: mail.home)) : nil
        let shown = ShownMessage(header: read.message.header, keyVersion: read.sender.keyVersion, text: read.message.text,
                                 saved: read.saved, notes: read.notes, recipients: recipients)
        var result = shown.json
        result["readBefore"] = read.readBefore
        if let sentTo = read.sentTo { result["to"] = sentTo.map(\.value) }
        if let failure = read.saveFailure { result["saveError"] = failure.reason }
        if !outputOptions.json { shown.show(raw: outputOptions.raw) }
        let saveFailure = read.saveFailure.map {
            CLIFailure(.failure, "\($0.reason). The message is kept: `secmail read \(messageID.hex) --out DIR` saves them elsewhere")
        }
        return (result, saveFailure)
    }
}

struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Remove the kept copies of mail sent and read more than a given time ago.",
        discussion: """
            Kept copies (sent/ and received/ in the home) let `secmail read ID` show a message again. \
            A pruned message read before cannot be read again, and the relay's copy is still refused \
            (a tombstone keeps its id). Saved attachments (mail/ID/ or where --out put them) are \
            yours and not touched.
            """)

    /// An age as typed: 30d, 12h, 4w; a plain number is in days. A failed parse says why.
    static func parseAge(_ argument: String) throws -> Int {
        try DurationArgument.seconds(argument, plainUnit: "d", maximum: 100 * 365 * 86_400)
    }

    @Option(name: .customLong("older-than"), help: ArgumentHelp("Prune what was stored longer ago than this (30d, 12h, 4w; plain days).", valueName: "age"),
            transform: parseAge)
    var olderThanSeconds: Int

    @Flag(name: .long, help: "Only say what would be removed.")
    var dryRun = false

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @OptionGroup var homeOptions: HomeOptions

    func run() async throws {
        let keystore = try Keystore(home: homeOptions.secmailHome)
        _ = try keystore.currentBundle()
        let pruned = try KeptMail(home: keystore.home).prune(olderThan: TimeInterval(olderThanSeconds), dryRun: dryRun)
        if json {
            try Terminal.output(jsonText(["sent": pruned.sent, "received": pruned.received, "bytes": pruned.bytes, "dryRun": dryRun]))
        } else if pruned.sent + pruned.received == 0 {
            Terminal.info("No kept copy here was stored more than \(DurationArgument.spelled(olderThanSeconds)) ago: nothing to remove.")
        } else {
            let verb = dryRun ? "Would remove" : "Removed"
            Terminal.info("\(verb) the kept copies of \(pruned.sent) sent and \(pruned.received) read message(s), \(formatBytes(pruned.bytes)).")
        }
    }
}

/// A message id as typed: all 32 hex digits, or (as git takes a commit's) the first 4 or more,
/// which the mailbox (and for `read` the messages read before) must match exactly once.
enum TypedMessageID {
    case full(MessageID)
    case prefix(String)

    init(_ text: String) throws {
        if let id = try? MessageID(hex: text) {
            self = .full(id)
            return
        }
        let digits = 2 * MessageID.byteCount
        guard (4..<digits).contains(text.count), hexDecoded(text.count.isMultiple(of: 2) ? text : text + "0") != nil else {
            throw CLIFailure(.failure, "\(text) is not a message id: give its \(digits) hex digits, or its first 4 or more (see `secmail inbox`)")
        }
        self = .prefix(text)
    }

    /// The id when it names, in full, a message read before or sent from this home (its kept
    /// copy is in received/ or sent/).
    func keptCopy(in kept: KeptMail) -> MessageID? {
        guard case .full(let id) = self, kept.hasReceivedCopy(of: id) || kept.hasSentCopy(of: id) else { return nil }
        return id
    }

    /// The one message read before or sent whose id starts with these digits, if exactly one does.
    func matchingKeptCopy(in kept: KeptMail) -> MessageID? {
        guard case .prefix(let prefix) = self else { return nil }
        let matches = kept.keptIDs(startingWith: prefix)
        return matches.count == 1 ? matches[0] : nil
    }

    /// The id; a prefix is looked up (a mailbox listing, so after sign-in).
    func resolved(by mail: MailClient, identity: SenderIdentity, includingRead: Bool) async throws -> MessageID {
        switch self {
        case .full(let id): id
        case .prefix(let prefix): try await mail.message(startingWith: prefix, identity: identity, includingRead: includingRead)
        }
    }
}
