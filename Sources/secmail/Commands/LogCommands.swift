import ArgumentParser
import FoundationEssentials
import Glibc
import SecmailClient
import SecmailCommandLine
import SecmailCrypto
import SecmailFormat

// The commands that watch the relay's transparency log, and following a relay's new log.

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Check the relay's log for key entries under your name that you did not make.",
        discussion: """
            Replays the log entries added since the last audit: they must produce the root of the \
            relay's signed checkpoint, and the name map they imply must be the one every entry \
            commits. Every entry for your name is compared with your keystore, and the map must hold \
            your latest key as current. Exits 2, naming each entry, if one was not made by you.
            """)

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @OptionGroup var homeOptions: HomeOptions

    func run() async throws {
        let progress = Terminal.ProgressLine("auditing", unit: .entries)
        let home = try homeOptions.secmailHome
        let report = try await withRelay(home) {
            try await DirectoryClient(relay: $0).audit(Keystore(home: home), progress: progress.update)
        }
        progress.finish()
        let foreign = report.foreignEntries
        if json {
            try Terminal.output(jsonText([
                "treeSize": report.treeSize, "entriesRead": report.entriesRead,
                "ownEntries": report.ownEntries.map(Self.describeJSON),
                "foreignEntries": foreign.map(Self.describeJSON),
            ]))
        } else {
            Terminal.info("Audited \(report.entriesRead) new log entries (log size \(report.treeSize)); every name map root follows from the log.")
            for entry in report.ownEntries where entry.isMine {
                Terminal.info("  ok  \(Self.describe(entry))")
            }
        }
        guard foreign.isEmpty else {
            throw CLIFailure(.verificationFailed, (["\(foreign.count) log \(foreign.count == 1 ? "entry" : "entries") for your name \(foreign.count == 1 ? "was" : "were") NOT made by you (keys not in your keystore):"]
                + foreign.map { "  \(Self.describe($0))" }
                + ["Your name may be hijacked on this relay: tell your contacts to compare fingerprints with you in person."]).joined(separator: "\n"))
        }
    }

    static func describe(_ audited: DirectoryClient.AuditedEntry) -> String {
        let entry = audited.entry
        let time = HumanTime.describe(entry.time)
        return "log entry #\(audited.logIndex): \(entry.kind == .registration ? "registration" : "rotation") of \(entry.bundle.name), key version \(entry.bundle.keyVersion), fingerprint \(entry.bundle.fingerprint.grouped), logged \(time)"
    }

    static func describeJSON(_ audited: DirectoryClient.AuditedEntry) -> [String: Any] {
        ["logIndex": audited.logIndex, "kind": audited.entry.kind == .registration ? "registration" : "rotation",
         "keyVersion": audited.entry.bundle.keyVersion, "fingerprint": audited.entry.bundle.fingerprint.hex, "time": audited.entry.time]
    }
}

struct MonitorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor",
        abstract: "Check the relay's whole log and name map; anyone can, no identity needed.",
        discussion: """
            Replays the log from where the last run stopped ($SECMAIL_HOME/monitor.state) to the \
            relay's signed checkpoint: every registration must be of a new name, every rotation must \
            continue the version before it, every name map root an entry commits must be the one the \
            log implies, and the entries must produce the checkpoint's root. Exits 2 naming the first \
            entry that does not follow. Without a pinned relay, give --relay and --tls-pin or --ca (and \
            --log-key, as `secmail relay` prints them) for the first run. When the monitored relay has \
            moved (a new host name or port), give its new address with --relay: it is followed if it \
            presents the pinned keys and its log extends the last checkpoint seen.
            """)

    @Option(name: .long, help: ArgumentHelp("The relay to monitor on first use, e.g. https://localhost:8443.", valueName: "url"))
    var relay: String?

    @OptionGroup var firstContactOptions: FirstContactOptions

    @Flag(name: .long, help: "Follow the new log of the monitored relay (restored from a backup; secmail relay new-log): pin the log key given with --log-key, then replay the new log from its start.")
    var newLog = false

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @OptionGroup var homeOptions: HomeOptions

    func validate() throws {
        if newLog { try validateNewLog(firstContactOptions) }
    }

    func run() async throws {
        let home = try homeOptions.secmailHome
        let address = try relay.map { relay in
            guard let url = URL(string: relay), url.scheme == "https", url.host != nil else {
                throw CLIFailure(.failure, "--relay takes https://HOST:PORT, not \(relay)")
            }
            return url
        }
        var pinned = try? RelaySettings.load(from: home)
        if newLog, let newLogKey = firstContactOptions.logKey {
            guard let followed = pinned, let pinnedURL = URL(string: followed.url) else {
                throw CLIFailure(.failure, "--new-log follows the new log of the relay this home monitors, and it monitors none yet: run without --new-log")
            }
            let keystore = Keystore(home: home)
            try await followNewLog(newLogKey, of: followed, at: address ?? pinnedURL, holding: keystore.hasIdentity ? try keystore.currentBundle() : nil,
                                   invite: nil, in: home)
            pinned = try RelaySettings.load(from: home)
        }
        let (client, firstContact, move) = try connection(to: address, pinned: pinned, in: home)
        let progress = Terminal.ProgressLine("monitoring", unit: .entries)
        let report: DirectoryClient.MonitorReport
        do {
            report = try await withRelay(home, client: client) { relay in
                if let firstContact { try await DirectoryClient(relay: relay).pinRelay(firstContact) }
                return try await DirectoryClient(relay: relay).monitor(progress: progress.update)
            }
        } catch let error as ClientError where error.code == .pinMismatch {
            guard let move else { throw error }
            throw CLIFailure(.failure, "the relay at \(move.to) is not the one this home monitors (\(move.from)): it presents another TLS key; use another SECMAIL_HOME to monitor it")
        }
        progress.finish()
        if let move {
            Terminal.info("The relay this home monitors answers at \(move.to) with its pinned TLS key and log key, and its log extends the last checkpoint seen: this home now monitors that address (it was \(move.from)).")
        }
        if json {
            try Terminal.output(jsonText(["treeSize": report.treeSize, "entriesRead": report.entriesRead, "names": report.names,
                                          "mapRoot": hexEncoded(report.mapRoot)]))
        } else {
            Terminal.info("Checked \(report.entriesRead) new log entries (log size \(report.treeSize), \(report.names) names): every entry and name map root follows from the log.")
        }
    }
}

extension MonitorCommand {
    /// The relay to replay: the pinned one; the pinned one at the new `address` (`move` says
    /// from where); or, in a home that monitors none yet, the one at `address` trusted as the
    /// first-contact options say.
    private func connection(to address: URL?, pinned: RelaySettings?, in home: SecmailHome) throws
        -> (client: RelayClient, firstContact: FirstContact?, move: (from: String, to: String)?) {
        switch (address, pinned) {
        case let (address?, pinned?) where pinned.url != address.absoluteString:
            return (try movedRelay(pinned, to: address, in: home), nil, (pinned.url, address.absoluteString))
        case (let address?, nil):
            let contact = try firstContactOptions.firstContact
            return (try RelayClient(home: home, firstContact: address, trusting: contact), contact, nil)
        case (nil, nil) where !Keystore(home: home).hasIdentity:
            throw CLIFailure(.failure, "this home monitors no relay yet; give the first one with: secmail monitor --relay https://HOST:PORT --tls-pin sha256/… (or --ca CA.pem) [--log-key KEY], as the relay prints them")
        default:
            return (try RelayClient(home: home), nil, nil)
        }
    }

    /// The monitored relay at a new address (a new host name or port, the same data), trusted by
    /// the pinned TLS key and log key as ever; the replay then checks that its log extends the
    /// last checkpoint seen, and relay.json takes the address. A home with an identity follows
    /// its relay with `register` instead, which also checks that the log holds its key.
    private func movedRelay(_ pinned: RelaySettings, to address: URL, in home: SecmailHome) throws -> RelayClient {
        let keystore = Keystore(home: home)
        if keystore.hasIdentity {
            throw CLIFailure(.failure, "this home uses the relay at \(pinned.url): if it moved to \(address.absoluteString), follow it with `secmail register \(keystore.nameToType) --relay \(address.absoluteString)`; to monitor another relay, use another SECMAIL_HOME")
        }
        if let given = try? firstContactOptions.firstContact,
           given.relayKeyPin.map({ $0.hex != pinned.relayKeyPin }) == true || given.logVerifierKey.map({ $0 != pinned.logVerifierKey }) == true {
            throw CLIFailure(.failure, "this home monitors \(pinned.url), whose pinned keys are not the ones given for \(address.absoluteString); use another SECMAIL_HOME to monitor another relay")
        }
        return try RelayClient(home: home, at: address)
    }
}

/// Follows the new log of the relay pinned in `home` (reached at `url`, its address or a new one)
/// that `newLogKey` signs (`register --new-log`, `monitor --new-log`); its form was checked by
/// the command's validate().
func followNewLog(_ newLogKey: String, of pinned: RelaySettings, at url: URL, holding bundle: IdentityBundle?, invite: String?,
                  in home: SecmailHome, passphraseOptions: PassphraseOptions? = nil) async throws {
    guard newLogKey != pinned.logVerifierKey else {
        throw CLIFailure(.failure, "\(newLogKey) is the log key this home has pinned already: there is no new log to follow")
    }
    // Earlier key versions' signing keys, should the new log lack rotations of this home: the
    // passphrase is asked once, and only then.
    let keystore = Keystore(home: home)
    var passphrase: Passphrase?
    let signer = passphraseOptions.map { options in
        { (version: UInt32) throws -> SenderIdentity in
            if let passphrase { return try keystore.unlockSender(passphrase: passphrase, version: version) }
            return try options.unlock(keystore) { given in
                let signer = try keystore.unlockSender(passphrase: given, version: version)
                passphrase = given
                return signer
            }
        }
    }
    let (outcome, evidence) = try await withRelay(home, client: try RelayClient(home: home, at: url, newLogKey: newLogKey)) {
        try await DirectoryClient(relay: $0).followNewLog(holding: bundle, invite: invite, keystore: keystore, signer: signer)
    }
    let followed = "This home now follows the relay's new log, signed by \(newLogKey)"
    switch (outcome, bundle) {
    case (.found, let bundle?):
        Terminal.info("\(followed); it holds \(bundle.name)'s key version \(bundle.keyVersion).")
    case (.registeredAgain, let bundle?):
        Terminal.info("\(followed). It did not hold \(bundle.name) (registered after the backup the relay was restored from): registered again, with the same keys.")
    case (.rotationsLoggedAgain(let from?), let bundle?):
        Terminal.info("\(followed). It held \(bundle.name)'s key version \(from) (the rotations since were made after the backup the relay was restored from): logged again up to key version \(bundle.keyVersion), with the same keys.")
    case (.rotationsLoggedAgain(nil), let bundle?):
        Terminal.info("\(followed). It did not hold \(bundle.name) (registered and rotated after the backup the relay was restored from): registered again and rotations logged again up to key version \(bundle.keyVersion), with the same keys.")
    default:
        Terminal.info("\(followed).")
    }
    Terminal.info("The old log's last checkpoint, and how far audit and monitor had replayed it, are kept in \(evidence); they replay the new log from its start. Contacts stay pinned: a contact whose key the new log shows otherwise is refused until you compare it (secmail trust).")
}

/// `--new-log` needs `--log-key` alone (the relay's TLS key stays pinned), in the form the relay prints.
func validateNewLog(_ options: FirstContactOptions) throws {
    guard let key = options.logKey else {
        throw ValidationError("--new-log needs --log-key KEY: the new log key, as the relay's operator publishes it")
    }
    guard options.ca == nil, options.tlsPin == nil else {
        throw ValidationError("--new-log keeps the relay's pinned TLS key: give --log-key alone")
    }
    do { try FirstContact.checkLogKeyForm(key) } catch let error as ClientError { throw ValidationError(error.reason) }
}
