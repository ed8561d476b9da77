import ArgumentParser
import Foundation
import SecmailClient
import SecmailCrypto
import SecmailFormat

struct RegisterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "register",
        abstract: "Register your identity on a relay (creating it first if needed) and pin the relay.",
        discussion: """
            On this first contact the relay is trusted through --tls-pin (its TLS key), --ca (a CA \
            its certificate chains to) or both, as `secmail relay` prints them when it starts; with \
            --log-key its log key must also be the one given. Its TLS key and its log key are then \
            pinned in $SECMAIL_HOME/relay.json, and every later contact must match them. When the \
            relay this home uses has moved (a new host name or port), give its new address: it is \
            followed if it presents the pinned keys and its log holds your current key, and nothing \
            is registered again.
            """)

    @Argument(help: "Your name: 1-64 characters from a-z, 0-9, '.', '_', '-'.")
    var name: String

    @Option(name: .long, help: ArgumentHelp("The relay, e.g. https://localhost:8443.", valueName: "url"))
    var relay: String

    @OptionGroup var firstContactOptions: FirstContactOptions

    @Option(name: .long, help: ArgumentHelp("Invite code, if the relay requires one.", valueName: "code"))
    var invite: String?

    @Flag(name: .long, help: "Register on another relay than the one this home uses (its pins are replaced; mail waiting there is left behind).")
    var switchRelay = false

    @Flag(name: .long, help: "Follow the new log of the relay this home uses (its operator restored it from a backup and ran secmail relay new-log): pin the log key given with --log-key; contact pins stay.")
    var newLog = false

    @OptionGroup var homeOptions: HomeOptions
    @OptionGroup var passphraseOptions: PassphraseOptions

    func validate() throws {
        if newLog { try validateNewLog(firstContactOptions) }
    }

    func run() async throws {
        let identityName = try userInput { try IdentityName(name) }
        guard let url = URL(string: relay), url.scheme == "https", url.host != nil else {
            throw CLIFailure(.failure, "--relay takes https://HOST:PORT, not \(relay)")
        }
        let keystore = try Keystore(home: homeOptions.secmailHome)
        if keystore.hasIdentity, let pinned = try? RelaySettings.load(from: keystore.home) {
            let bundle = try keystore.currentBundle()
            if let newLogKey = firstContactOptions.logKey, newLog {
                try await followNewLog(newLogKey, of: pinned, at: url, holding: bundle, invite: invite, in: keystore.home,
                                       passphraseOptions: passphraseOptions)
                return
            }
            if pinned.url == url.absoluteString || pinned.url == relay {
                try await withRelay(keystore.home) { try await DirectoryClient(relay: $0).confirmRegistration(holding: bundle) }
                Terminal.info("\(bundle.name) is already registered on \(pinned.url) (key version \(bundle.keyVersion), \(bundle.fingerprint.grouped)), as its log shows; nothing to do.")
                return
            }
            if try await followedMove(of: pinned, to: url, holding: bundle, in: keystore.home) {
                Terminal.info("The relay this home uses answers at \(url.absoluteString) with its pinned TLS key and log key, and its log holds \(bundle.name)'s key version \(bundle.keyVersion): this home now uses that address (it was \(pinned.url)); nothing was registered again.")
                return
            }
            guard switchRelay else {
                throw CLIFailure(.failure, "this home is registered on \(pinned.url); registering on \(relay) replaces its pins, and mail waiting on \(pinned.url) can no longer be read from this home (read it first with `secmail inbox` and `secmail read`). Add --switch-relay to go ahead")
            }
        }
        guard !newLog else {
            throw CLIFailure(.failure, "--new-log follows the new log of the relay this home is registered on, and this home is registered nowhere yet: register without --new-log")
        }
        if keystore.hasIdentity, try keystore.currentBundle().keyVersion > 1 {
            throw CLIFailure(.failure, "this identity is at key version \(try keystore.currentBundle().keyVersion); a relay registers version 1 only, so it cannot be registered anew: use another SECMAIL_HOME for a new identity")
        }
        let contact = try firstContactOptions.firstContact
        let relay = try RelayClient(home: keystore.home, firstContact: url, trusting: contact)
        let (settings, bundle, created) = try await withRelay(keystore.home, client: relay) { relay in
            // The relay answers and is the one the user means, and the name is free (or
            // already ours), before any key is made.
            try await DirectoryClient(relay: relay).pinRelay(contact)
            let existing = keystore.hasIdentity ? try keystore.currentBundle() : nil
            if let existing, existing.name != identityName {
                throw CLIFailure(.failure, "this home's identity is \(existing.name), not \(identityName); use another SECMAIL_HOME for a second identity")
            }
            if existing == nil, try await relay.isRegistered(identityName) {
                throw ClientError(.nameTaken, "the name \(identityName) is already registered on the relay at \(relay.address); choose another name")
            }
            if invite == nil, try await relay.info().invitesRequired == true {
                throw CLIFailure(.failure, "the relay at \(relay.address) registers only with an invite code: ask its operator for one (secmail relay invite), then give it with --invite CODE")
            }
            let bundle = try existing ?? InitCommand.createIdentity(identityName, typed: name, in: keystore, passphraseOptions: passphraseOptions)
            do {
                return (try await DirectoryClient(relay: relay).register(bundle, invite: invite), bundle, existing == nil)
            } catch let error as ClientError where existing == nil && [.nameTaken, .relayRefused, .rateLimited].contains(error.code) {
                // The relay answered no (a look-alike of a registered name, a reserved name, a
                // wrong invite, too many registrations): the keys just made are registered
                // nowhere, and kept they would tie this home to a name it cannot have. A lost
                // answer is another code: kept then.
                try keystore.discardUnregisteredIdentity(bundle)
                throw ClientError(error.code, "\(error.reason). The keys made for \(identityName) were registered nowhere and are discarded; this home can register another name")
            }
        }
        Terminal.info("Registered \(bundle.name) on \(settings.url)")
        // A new identity's fingerprint was shown as it was made.
        if !created { Terminal.info("Your fingerprint: \(bundle.fingerprint.grouped)") }
        Terminal.info("Pinned relay TLS key sha256/\(settings.relayKeyPin) and log key \(settings.logVerifierKey)")
    }

    /// Whether `url` is the relay pinned in `home` at a new address (a new host name or port),
    /// which relay.json then takes. False when it is another relay: the pins given on the command
    /// line are not the pinned ones, or it presents another TLS key.
    private func followedMove(of pinned: RelaySettings, to url: URL, holding bundle: IdentityBundle, in home: SecmailHome) async throws -> Bool {
        if let given = try? firstContactOptions.firstContact,
           given.relayKeyPin.map({ $0.hex != pinned.relayKeyPin }) == true || given.logVerifierKey.map({ $0 != pinned.logVerifierKey }) == true {
            return false
        }
        do {
            try await withRelay(home, client: try RelayClient(home: home, at: url)) {
                try await DirectoryClient(relay: $0).confirmRegistration(holding: bundle)
            }
            return true
        } catch let error as ClientError where error.code == .pinMismatch {
            return false
        }
    }
}

struct LookupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lookup",
        abstract: "Look up a contact's key on your relay, verify it against the transparency log, and pin it.",
        discussion: """
            The answer must come from the pinned relay key, be proven in the log under a checkpoint \
            signed by the pinned log key, extend the last checkpoint you saw, and match the contact's \
            pinned key if there is one. A changed key is a hard stop (exit 2).
            """)

    @Argument(help: "The contact's name.", completion: HomeOptions.contactNames)
    var name: String

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @OptionGroup var homeOptions: HomeOptions

    func run() async throws {
        let identityName = try userInput { try IdentityName(name) }
        let contact = try await withRelay(homeOptions.secmailHome) { try await DirectoryClient(relay: $0).lookup(identityName) }
        let bundle = contact.bundle
        if json {
            let pin = switch contact.pin {
            case .new: "new"
            case .unchanged: "unchanged"
            case .rotated: "rotated"
            }
            var fields: [String: Any] = [
                "name": bundle.name.value, "fingerprint": bundle.fingerprint.hex, "keyVersion": bundle.keyVersion, "pinned": pin,
            ]
            if case .rotated(let from) = contact.pin { fields["rotatedFrom"] = from }
            try Terminal.output(jsonText(fields))
        } else {
            Terminal.output("\(bundle.name)  key version \(bundle.keyVersion)\n\(bundle.fingerprint.grouped)\n")
            if contact.pin == .unchanged {
                Terminal.info("Matches the key pinned earlier.")
            } else {
                Terminal.pinNote(contact)
            }
        }
    }
}

struct TrustCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust",
        abstract: "Pin a contact's current key after comparing its fingerprint out of band.",
        discussion: """
            Records that you compared the fingerprint (`contacts` shows it), and is the explicit override after `lookup` stopped on a changed key. The key the relay serves must still pass every log check and have exactly the fingerprint you give (64 hex digits; spaces and colons are ignored).
            """)

    @Argument(help: "The contact's name.", completion: HomeOptions.contactNames)
    var name: String

    @Option(name: .long, help: ArgumentHelp("The fingerprint you compared with the contact.", valueName: "hex"))
    var fingerprint: String

    @OptionGroup var homeOptions: HomeOptions

    func run() async throws {
        let identityName = try userInput { try IdentityName(name) }
        let expected = try userInput { try Fingerprint(hex: fingerprint) }
        let result = try await withRelay(homeOptions.secmailHome) {
            try await DirectoryClient(relay: $0).trust(identityName, fingerprint: expected)
        }
        if let replaced = result.replaced, replaced != result.bundle {
            Terminal.info("Replaced the pin of \(identityName) (version \(replaced.keyVersion), \(replaced.fingerprint.grouped)).")
        }
        Terminal.info("Pinned \(identityName) key version \(result.bundle.keyVersion): \(result.bundle.fingerprint.grouped)")
    }
}

struct ContactsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contacts",
        abstract: "List the contacts whose keys you have pinned, and whether you compared each fingerprint.")

    @Flag(name: .long, help: "Print the list as JSON on standard output.")
    var json = false

    @OptionGroup var homeOptions: HomeOptions

    func run() async throws {
        let pins = try ContactPins(home: homeOptions.secmailHome)
        let contacts = try pins.all()
        if json {
            try Terminal.output(jsonText(contacts.map { contact in
                var entry: [String: Any] = ["name": contact.name.value, "keyVersion": contact.keyVersion, "fingerprint": contact.fingerprint.hex]
                switch pins.trust(of: contact) {
                case .firstUse: entry["trust"] = "firstUse"
                case .compared: entry["trust"] = "compared"
                case .comparedBeforeRotation(let version):
                    entry["trust"] = "comparedBeforeRotation"
                    entry["comparedKeyVersion"] = version
                }
                return entry
            }))
        } else if contacts.isEmpty {
            Terminal.info("No pinned contacts yet; pin one with: secmail lookup NAME")
        } else {
            // Names padded to the longest, so that the columns line up.
            let width = contacts.map(\.name.value.count).max() ?? 0
            for contact in contacts {
                let trust = switch pins.trust(of: contact) {
                case .firstUse: "first use, not compared (compare, then: secmail trust \(contact.name) --fingerprint HEX)"
                case .compared: "compared"
                case .comparedBeforeRotation(let version): "compared at key version \(version), then signed rotations"
                }
                let name = contact.name.value.padding(toLength: width, withPad: " ", startingAt: 0)
                Terminal.output("\(name)  key version \(contact.keyVersion)  \(contact.fingerprint.grouped)  \(trust)\n")
            }
        }
    }
}

struct RotateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Replace your keys with new ones, signed by the current ones and logged by the relay.",
        discussion: """
            Contacts accept the new keys because the current signing key signs them (continuity) and the relay's log records them. Earlier private keys stay in your keystore, so earlier mail stays readable. An interrupted rotation is resumed by running it again.
            """)

    @OptionGroup var homeOptions: HomeOptions
    @OptionGroup var passphraseOptions: PassphraseOptions

    func run() async throws {
        let home = try homeOptions.secmailHome
        let keystore = Keystore(home: home)
        let before = try keystore.currentBundle()
        let rotated = try await withRelay(home) { relay in
            _ = try await relay.info()
            let passphrase = try passphraseOptions.unlock(keystore) { passphrase in
                _ = try keystore.unlockSender(passphrase: passphrase)
                return passphrase
            }
            Terminal.info("Generating new RSA-3072 signing and encryption keys…")
            let rotated = try await DirectoryClient(relay: relay).rotate(keystore, passphrase: passphrase)
            // A running agent gets the new keys at once, so the next command does not fall back to prompting.
            let agent = AgentClient(home: home)
            if try agent.status()?.name != nil {
                _ = try agent.load(passphrase)
                Terminal.info("The key agent now holds the new keys too.")
            }
            return rotated
        }
        Terminal.info("Rotated \(rotated.name) from key version \(before.keyVersion) to \(rotated.keyVersion); the relay logged it.")
        Terminal.info("New fingerprint: \(rotated.fingerprint.grouped)")
    }
}

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
            let name = (try? keystore.currentBundle().name.value) ?? "NAME"
            throw CLIFailure(.failure, "this home uses the relay at \(pinned.url): if it moved to \(address.absoluteString), follow it with `secmail register \(name) --relay \(address.absoluteString)`; to monitor another relay, use another SECMAIL_HOME")
        }
        if let given = try? firstContactOptions.firstContact,
           given.relayKeyPin.map({ $0.hex != pinned.relayKeyPin }) == true || given.logVerifierKey.map({ $0 != pinned.logVerifierKey }) == true {
            throw CLIFailure(.failure, "this home monitors \(pinned.url), whose pinned keys are not the ones given for \(address.absoluteString); use another SECMAIL_HOME to monitor another relay")
        }
        return try RelayClient(home: home, at: address)
    }
}

extension Terminal {
    /// Says so when a lookup pinned a new contact or followed a contact's rotation.
    static func pinNote(_ contact: DirectoryClient.Contact) {
        let bundle = contact.bundle
        switch contact.pin {
        case .new:
            info("Pinned \(bundle.name)'s key on first use (\(bundle.fingerprint.grouped)); compare the fingerprint with \(bundle.name) aloud.")
        case .unchanged:
            break
        case .rotated(let from):
            info("\(bundle.name) rotated keys from version \(from) to \(bundle.keyVersion): the new key is signed by the pinned one and logged. Pin updated.")
        }
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
