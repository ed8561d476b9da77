import ArgumentParser
import FoundationEssentials
import Glibc
import SecmailClient
import SecmailCommandLine
import SecmailCrypto
import SecmailFormat

/// Where the client's state lives.
struct HomeOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("State directory (default: $SECMAIL_HOME, else ~/.secmail).", valueName: "dir"))
    var home: String?

    func validate() throws {
        // An empty path names the current folder, which would be taken for a secmail home.
        if home?.isEmpty == true { throw ValidationError("--home is empty: give a folder, or leave it out for $SECMAIL_HOME or ~/.secmail") }
    }

    /// The home these options name, refused when it is open to others (`SecmailHome.checkPrivate`).
    var secmailHome: SecmailHome {
        get throws {
            let resolved = named
            try resolved.checkPrivate()
            return resolved
        }
    }

    /// The home for a command that creates an identity (`init`, `register`): as `secmailHome`,
    /// but an empty folder made beforehand (`mkdir`, 755) is made private first, and said so.
    var homeForNewIdentity: SecmailHome {
        get throws {
            let resolved = named
            if let was = try resolved.makePrivateIfEmpty() {
                Terminal.info("Made \(resolved.url.path) private (permissions 700; it was \(String(was, radix: 8))): whoever may enter a secmail home sees your contacts and mail")
            }
            try resolved.checkPrivate()
            return resolved
        }
    }

    private var named: SecmailHome {
        home.map { SecmailHome(url: URL(fileURLWithPath: $0, isDirectory: true)) } ?? SecmailHome.resolve()
    }

    /// Shell completion of a contact's name (`secmail send b<Tab>`): the pinned contacts of the
    /// home that the words typed so far name with --home, else the default one.
    static let contactNames = CompletionKind.custom { words, _, prefix in
        ContactPins(home: completionHome(words)).names().map(\.value).filter { $0.hasPrefix(prefix) }
    }

    /// Shell completion of the id of a message kept in the home (`secmail reply 9f<Tab>`).
    static let keptMessageIDs = CompletionKind.custom { words, _, prefix in
        KeptMail(home: completionHome(words)).keptIDs(startingWith: prefix).map(\.hex).sorted()
    }

    /// The home the words typed so far name with --home, else the default one.
    private static func completionHome(_ words: [String]) -> SecmailHome {
        let given = words.firstIndex(of: "--home").flatMap { words.indices.contains($0 + 1) ? words[$0 + 1] : nil }
        return given.map { SecmailHome(url: URL(fileURLWithPath: $0, isDirectory: true)) } ?? SecmailHome.resolve()
    }
}

/// How a relay contacted for the first time is trusted (`register`, a first `monitor`): what
/// `secmail relay` prints when it starts.
struct FirstContactOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("CA certificate file the relay's certificate must chain to.", valueName: "file"))
    var ca: String?

    @Option(name: .long, help: ArgumentHelp("The relay's TLS key pin as the relay prints it (sha256/ and 64 hex digits); with it, --ca is not needed.", valueName: "pin"))
    var tlsPin: String?

    @Option(name: .long, help: ArgumentHelp("The log key as the relay prints it; the relay must serve exactly this one.", valueName: "key"))
    var logKey: String?

    var firstContact: FirstContact {
        get throws { try FirstContact(caFile: ca, relayKeyPin: tlsPin, logVerifierKey: logKey) }
    }
}

/// How the passphrase is obtained: --passphrase-file, else $SECMAIL_PASSPHRASE, else the terminal.
/// At the terminal a person gets three tries, a sentence for what was wrong (empty, too short, the
/// two entries differ, wrong), and Ctrl-C ends the command at once (exit 130, echo restored).
struct PassphraseOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Read the passphrase from the first line of this file (readable by you alone) or pipe.", valueName: "file"))
    var passphraseFile: String?

    @Flag(name: .long, help: "Ask for the passphrase even when the key agent (secmail unlock) holds the keys.")
    var noAgent = false

    func validate() throws {
        if passphraseFile?.isEmpty == true { throw ValidationError("--passphrase-file is empty: give the file, or leave it out to be asked") }
    }

    static let tries = 3

    /// The current identity for signing: the key agent's when it holds the current key version,
    /// else unlocked here with the passphrase.
    func sender(_ keystore: Keystore) throws -> SenderIdentity {
        if let (agent, status) = try agentStatus(keystore) {
            if let sender = try agent.sender(from: keystore, status: status) { return sender }
            noteStaleAgent()
        }
        return try unlock(keystore, agentCouldHelp: !noAgent) { try keystore.unlockSender(passphrase: $0) }
    }

    /// Every key version's encryption key, for opening mail: the agent's, else unlocked here.
    /// With `only`, just those key versions (the passphrase unlocks no others).
    func recipientKeys(_ keystore: Keystore, only wanted: Set<Fingerprint>? = nil) throws -> [RecipientKey] {
        if let (agent, status) = try agentStatus(keystore) {
            if let keys = try agent.recipientKeys(from: keystore, status: status, only: wanted) { return keys }
            noteStaleAgent()
        }
        return try unlock(keystore, agentCouldHelp: !noAgent) { try keystore.unlockRecipientKeys(passphrase: $0, only: wanted) }
    }

    /// Both, with at most one passphrase prompt: the agent's keys, or the sender and the
    /// current version's key unlocked now and older versions when a message needs them.
    func senderAndKeyring(_ keystore: Keystore) throws -> (SenderIdentity, RecipientKeyring) {
        if let (agent, status) = try agentStatus(keystore) {
            if let sender = try agent.sender(from: keystore, status: status),
               let keys = try agent.recipientKeys(from: keystore, status: status) {
                return (sender, RecipientKeyring(keys))
            }
            noteStaleAgent()
        }
        return try unlock(keystore, agentCouldHelp: !noAgent) { try keystore.unlockSenderAndKeyring(passphrase: $0) }
    }

    /// Whether the next command of this home would ask for the passphrase at the terminal although
    /// the key agent could spare it: none is given (file or environment), --no-agent is not set, and
    /// no agent holds the keys.
    func nextCommandWouldAsk(_ keystore: Keystore) -> Bool {
        guard passphraseFile == nil, ProcessEnvironment.value("SECMAIL_PASSPHRASE") == nil, !noAgent else { return false }
        return (try? agentStatus(keystore)) == nil
    }

    /// The running agent of this home and what it holds, unless --no-agent.
    private func agentStatus(_ keystore: Keystore) throws -> (AgentClient, AgentStatus)? {
        guard !noAgent else { return nil }
        let agent = AgentClient(home: keystore.home)
        guard let status = try agent.status(), status.name != nil else { return nil }
        return (agent, status)
    }

    /// An unlocked agent without the keys a command needs holds keys from before a rotation.
    private func noteStaleAgent() {
        Terminal.info("The key agent holds keys from before your last rotation; run `secmail unlock` to give it the current ones.")
    }

    /// The passphrase given without a prompt (file or environment), if any.
    func givenPassphrase() throws -> Passphrase? {
        if let passphraseFile {
            return try Self.passphrase(inFile: passphraseFile)
        }
        if let fromEnvironment = ProcessEnvironment.value("SECMAIL_PASSPHRASE") {
            return try Passphrase(fromEnvironment)
        }
        return nil
    }

    /// The first line of `path` (a file readable by its owner alone, or a pipe), as a passphrase.
    static func passphrase(inFile path: String) throws -> Passphrase {
        var firstLine: [UInt8]
        do {
            firstLine = try NamedFile.firstLineOfSecret(at: path)
        } catch let error as FormatError {
            throw CLIFailure(.failure, "cannot use the passphrase file \(path): \(error.reason)")
        }
        defer { SecretBytes.wipe(&firstLine) }
        guard !firstLine.isEmpty, String(validating: firstLine, as: UTF8.self) != nil else {
            throw CLIFailure(.failure, "the first line of the passphrase file \(path) is empty or not UTF-8 text")
        }
        return try Passphrase(utf8Bytes: firstLine)
    }

    /// A new passphrase: `given` (a file or the environment), else typed twice at the terminal;
    /// at least `minimumLength` characters. `withoutTerminal` says how to give it otherwise.
    func newPassphrase(for name: String, minimumLength: Int, given: Passphrase?,
                       withoutTerminal: String = Self.withoutTerminal) throws -> Passphrase {
        if let given {
            guard given.characterCount >= minimumLength else {
                throw CLIFailure(.failure, "the passphrase must have at least \(minimumLength) characters")
            }
            return given
        }
        for _ in 1...Self.tries {
            guard let first = try typed("New passphrase for \(name): ", withoutTerminal: withoutTerminal) else { continue }
            guard first.characterCount >= minimumLength else {
                Terminal.info("That passphrase is too short: use at least \(minimumLength) characters (a few words are easy to remember).")
                continue
            }
            guard let second = try typed("Repeat the passphrase: ", withoutTerminal: withoutTerminal) else { continue }
            guard first.bytesEqual(second) else {
                Terminal.info("The two entries differ; again.")
                continue
            }
            return first
        }
        throw CLIFailure(.failure, "no passphrase was chosen after \(Self.tries) tries")
    }

    /// Runs `body` with the passphrase of `keystore`'s identity; at the terminal, a wrong one is
    /// asked for again, up to three tries in all. `agentCouldHelp`: the key agent would have
    /// served this command had it held the keys, so with no terminal `secmail unlock` is named
    /// as a way out too.
    func unlock<T>(_ keystore: Keystore, agentCouldHelp: Bool = false, _ body: (Passphrase) throws -> T) throws -> T {
        if let given = try givenPassphrase() { return try body(given) }
        let name = try keystore.currentBundle().name
        let withoutTerminal = agentCouldHelp ? "give --passphrase-file, set SECMAIL_PASSPHRASE, or run `secmail unlock` once first"
                                             : Self.withoutTerminal
        for attempt in 1...Self.tries {
            guard let passphrase = try typed("Passphrase for \(name): ", withoutTerminal: withoutTerminal) else { continue }
            do {
                return try body(passphrase)
            } catch let error as CryptoError where error.code == .wrongPassphrase && attempt < Self.tries {
                Terminal.info("Wrong passphrase; try again.")
            }
        }
        throw CryptoError(.wrongPassphrase, "no correct passphrase after \(Self.tries) tries")
    }

    /// What to do where there is no terminal to ask at.
    static let withoutTerminal = "give --passphrase-file or set SECMAIL_PASSPHRASE"

    /// One entry at the terminal; nil (after saying why) when it is empty or not text. With no
    /// terminal, fails saying `withoutTerminal`.
    private func typed(_ prompt: String, withoutTerminal: String = Self.withoutTerminal) throws -> Passphrase? {
        let bytes: [UInt8]?
        do {
            bytes = try TerminalInput.readSecret(prompt: prompt, maximumByteCount: Passphrase.maximumByteCount)
        } catch let error as FormatError {
            throw CLIFailure(.failure, "\(error.reason); \(withoutTerminal)")
        }
        guard var bytes else { throw CLIFailure(.interrupted, "no passphrase entered (end of input)") }
        defer { SecretBytes.wipe(&bytes) }
        guard !bytes.isEmpty else {
            Terminal.info("The passphrase is empty; type it (Ctrl-C to stop).")
            return nil
        }
        guard bytes.count <= Passphrase.maximumByteCount, String(validating: bytes, as: UTF8.self) != nil else {
            Terminal.info("That is not a passphrase (over \(Passphrase.maximumByteCount) bytes, or not UTF-8 text); again.")
            return nil
        }
        return try Passphrase(utf8Bytes: bytes)
    }
}

/// What a message holds, for `seal` and `send`.
struct ComposeOptions: ParsableArguments {
    @Option(name: [.customShort("m"), .long], help: "The message text (default: standard input, when it is not a terminal).")
    var message: String?

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("A file to attach; repeat for several. Images travel in their smallest lossless form, their metadata removed.", valueName: "file"))
    var attach: [String] = []

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("A file to attach exactly as it is, even an image (no conversion; its metadata stays): for an image the pipeline cannot use (CMYK, damaged, too large); repeat for several.", valueName: "file"))
    var attachAsIs: [String] = []

    @Flag(name: .long, help: "Send images as optimised PNG even when the metadata-stripped JPEG is smaller.")
    var alwaysPNG = false

    /// The attachment files, checked cheaply (no image work yet): those of --attach, then those
    /// of --attach-as-is. A file given more than once (by the same or another path to it) is sent
    /// once, as it was first given.
    func checkedAttachments() throws -> [WireAttachments.Checked] {
        var seen = Set<String>()
        var files: [(path: String, asIs: Bool)] = []
        for (path, asIs) in attach.map({ ($0, false) }) + attachAsIs.map({ ($0, true) }) {
            let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path
            if seen.insert(resolved).inserted {
                files.append((path, asIs))
            } else {
                Terminal.info("\(path) is attached more than once; it is sent once.")
            }
        }
        // Said before any file is looked at, let alone an image optimised.
        guard files.count <= MessageContent.maximumAttachments else {
            throw CLIFailure(.failure, "at most \(MessageContent.maximumAttachments) attachments fit in one message, and \(files.count) are given")
        }
        return try files.map { try WireAttachments.check(path: $0.path, asIs: $0.asIs) }
    }

    /// The attachments as they go on the wire (images in their smallest lossless form, other
    /// files compressed), using what every recipient reads (`readable`).
    func preparedAttachments(_ checked: [WireAttachments.Checked], readable: Set<ReaderFeature>) throws -> [WireAttachments.Prepared] {
        try checked.map { try WireAttachments.prepare($0, alwaysPNG: alwaysPNG, readable: readable) }
    }

    /// The text: -m, else standard input when something is piped in (`echo hi | secmail send
    /// bob`), else none. A message with neither text nor attachment is refused: it would say
    /// nothing, and is more likely a forgotten -m or an empty pipe.
    func text() throws -> String {
        let text = try givenText()
        guard !text.isEmpty || !attach.isEmpty || !attachAsIs.isEmpty else {
            throw CLIFailure(.failure, "nothing to send: give the text with -m TEXT or on standard input, or attach a file with --attach FILE")
        }
        return text
    }

    private func givenText() throws -> String {
        if let message { return message }
        guard isatty(STDIN_FILENO) == 0 else { return "" }
        // At most one byte past the limit is read: a larger input is refused without being held.
        let limit = MessageContent.maximumTextLength
        let bytes = try NamedFile.standardInput(upTo: limit + 1)
        guard bytes.count <= limit else {
            throw CLIFailure(.failure, "the message text on standard input is over \(limit >> 20) MiB; attach it as a file instead")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw CLIFailure(.failure, "the message text on standard input is not UTF-8")
        }
        return text
    }

    /// Bytes the envelope will hold at least: the text and every attachment that is not an image
    /// (images may shrink on the wire).
    static func knownSize(text: String, _ checked: [WireAttachments.Checked]) -> UInt64 {
        UInt64(text.utf8.count) + checked.filter { !$0.isImage }.reduce(0) { $0 + $1.plain.info.length }
    }
}

/// Where `read` and `open` save a message's attachments and how they print it.
struct MessageOutputOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Folder for the attachments (created if missing; default $SECMAIL_HOME/mail/ID).", valueName: "dir"))
    var out: String?

    @Flag(name: .long, help: "Keep JPEG images as they travelled instead of converting them to PNG.")
    var asSent = false

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @Flag(name: .long, help: "Print the message text exactly as sent (for scripts; control characters included).")
    var raw = false

    func validate() throws {
        if out?.isEmpty == true { throw ValidationError("--out is empty: give a folder, or leave it out for $SECMAIL_HOME/mail/ID") }
    }

    /// The folder --out names, if any.
    var folder: URL? { out.map { URL(fileURLWithPath: $0, isDirectory: true) } }

    /// The message for people (its text neutralised unless --raw), or as JSON.
    func print(_ shown: ShownMessage) throws {
        if json {
            try Terminal.output(jsonText(shown.json))
        } else {
            shown.show(raw: raw)
        }
    }
}
