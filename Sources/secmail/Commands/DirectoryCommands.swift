import ArgumentParser
import FoundationEssentials
import Glibc
import SecmailClient
import SecmailCommandLine
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
        let keystore = try Keystore(home: homeOptions.homeForNewIdentity)
        if keystore.hasIdentity, let pinned = try? RelaySettings.load(from: keystore.home),
           try await handledRegisteredHome(keystore, pinned: pinned, relayURL: url) {
            return
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

    /// For a home registered on the relay `pinned`: follows its new log (--new-log), confirms a
    /// registration made before, or follows the relay to `url`, its new address — true when one of
    /// these was done; false when the registration is to go ahead on another relay
    /// (--switch-relay), refused without that flag.
    private func handledRegisteredHome(_ keystore: Keystore, pinned: RelaySettings, relayURL url: URL) async throws -> Bool {
        let bundle = try keystore.currentBundle()
        if let newLogKey = firstContactOptions.logKey, newLog {
            try await followNewLog(newLogKey, of: pinned, at: url, holding: bundle, invite: invite, in: keystore.home,
                                   passphraseOptions: passphraseOptions)
            return true
        }
        if pinned.url == url.absoluteString || pinned.url == relay {
            try await withRelay(keystore.home) { try await DirectoryClient(relay: $0).confirmRegistration(holding: bundle) }
            Terminal.info("\(bundle.name) is already registered on \(pinned.url) (key version \(bundle.keyVersion), \(bundle.fingerprint.grouped)), as its log shows; nothing to do.")
            return true
        }
        if try await followedMove(of: pinned, to: url, holding: bundle, in: keystore.home) {
            Terminal.info("The relay this home uses answers at \(url.absoluteString) with its pinned TLS key and log key, and its log holds \(bundle.name)'s key version \(bundle.keyVersion): this home now uses that address (it was \(pinned.url)); nothing was registered again.")
            return true
        }
        guard switchRelay else {
            throw CLIFailure(.failure, "this home is registered on \(pinned.url); registering on \(relay) replaces its pins, and mail waiting on \(pinned.url) can no longer be read from this home (read it first with `secmail inbox` and `secmail read`). Add --switch-relay to go ahead")
        }
        return false
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
        abstract: "Look up contacts' keys on your relay, verify them against the transparency log, and pin them.",
        discussion: """
            Each answer must come from the pinned relay key, be proven in the log under a checkpoint \
            signed by the pinned log key, extend the last checkpoint you saw, and match the contact's \
            pinned key if there is one. A changed key is a hard stop (exit 2). With several names, \
            nothing is pinned unless every one of them passed; --json then prints an array. --all \
            looks up every pinned contact again (following their rotations), as `secmail audit` \
            does for your own name.
            """)

    @Argument(help: ArgumentHelp("The contact's name; several look up several contacts.", valueName: "name"),
              completion: HomeOptions.contactNames)
    var names: [String] = []

    @Flag(name: .long, help: "Look up every pinned contact (see `secmail contacts`).")
    var all = false

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @OptionGroup var homeOptions: HomeOptions

    func validate() throws {
        if all, !names.isEmpty { throw ValidationError("give names or --all, not both") }
        if !all, names.isEmpty { throw ValidationError("give the name of the contact to look up (or several), or --all for every pinned contact") }
    }

    func run() async throws {
        let home = try homeOptions.secmailHome
        // Every name is checked before the relay is asked; one given twice is looked up once.
        var identityNames: [IdentityName] = []
        if all {
            let own = Keystore(home: home).ownName
            identityNames = ContactPins(home: home).names().filter { $0 != own }
            guard !identityNames.isEmpty else {
                if json { try Terminal.output(jsonText([Any]())) } else { Terminal.info("No pinned contacts yet; pin one with: secmail lookup NAME") }
                return
            }
        }
        for name in names {
            let identityName = try userInput { try IdentityName(name) }
            if !identityNames.contains(identityName) { identityNames.append(identityName) }
        }
        let contacts = try await withRelay(home) { try await DirectoryClient(relay: $0).lookup(identityNames) }
        if json {
            let objects = contacts.map(Self.jsonObject)
            try Terminal.output(jsonText(objects.count == 1 && !all ? objects[0] : objects))
            return
        }
        for contact in contacts {
            let bundle = contact.bundle
            Terminal.output("\(bundle.name)  key version \(bundle.keyVersion)\n\(bundle.fingerprint.grouped)\n")
            if contact.pin == .unchanged {
                Terminal.info("Matches the key pinned earlier.")
            } else {
                Terminal.pinNote(contact)
            }
        }
    }

    private static func jsonObject(_ contact: DirectoryClient.Contact) -> [String: Any] {
        let bundle = contact.bundle
        let pin = switch contact.pin {
        case .new: "new"
        case .unchanged: "unchanged"
        case .rotated: "rotated"
        }
        var fields: [String: Any] = [
            "name": bundle.name.value, "fingerprint": bundle.fingerprint.hex, "keyVersion": bundle.keyVersion, "pinned": pin,
        ]
        if case .rotated(let from) = contact.pin { fields["rotatedFrom"] = from }
        return fields
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
        abstract: "List the contacts whose keys you have pinned, and whether you compared each fingerprint.",
        discussion: """
            --forget removes a contact's pin (and the record that you compared it): the next \
            `lookup`, `send` or `read` of that name pins the key the relay's log shows then, on \
            first use. Mail kept from them still opens with the key that verified it.
            """)

    @Flag(name: .long, help: "Print the list as JSON on standard output.")
    var json = false

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("Remove this contact's pin; repeat for several.", valueName: "name"),
            completion: HomeOptions.contactNames)
    var forget: [String] = []

    @OptionGroup var homeOptions: HomeOptions

    func run() async throws {
        let pins = try ContactPins(home: homeOptions.secmailHome)
        if !forget.isEmpty {
            try forgetPins(pins)
            return
        }
        let contacts = try pins.all()
        // One's own key is pinned at registration (so that mail to oneself verifies): listed as
        // such, not as a contact whose fingerprint someone compared.
        let own = Keystore(home: pins.home).ownName
        if json {
            try Terminal.output(jsonText(contacts.map { contact in
                var entry: [String: Any] = ["name": contact.name.value, "keyVersion": contact.keyVersion, "fingerprint": contact.fingerprint.hex]
                switch pins.trust(of: contact) {
                case _ where contact.name == own: entry["trust"] = "own"
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
                case _ where contact.name == own: "your own key"
                case .firstUse: "first use, not compared (compare, then: secmail trust \(contact.name) --fingerprint HEX)"
                case .compared: "compared"
                case .comparedBeforeRotation(let version): "compared at key version \(version), then signed rotations"
                }
                let name = leftAligned(contact.name.value, width: width)
                Terminal.output("\(name)  key version \(contact.keyVersion)  \(contact.fingerprint.grouped)  \(trust)\n")
            }
        }
    }
}

extension ContactsCommand {
    /// Removes the pins `--forget` names, after checking every name: one's own key, or a name not
    /// pinned, removes nothing.
    private func forgetPins(_ pins: ContactPins) throws {
        let own = Keystore(home: pins.home).ownName
        var names: [IdentityName] = []
        for text in forget {
            let name = try userInput { try IdentityName(text) }
            guard name != own else {
                throw CLIFailure(.failure, "\(name) is you: your own key stays pinned (mail you send yourself verifies with it); nothing was removed")
            }
            guard try pins.pinned(name) != nil else {
                throw CLIFailure(.failure, "\(name) is not among your pinned contacts, so nothing was removed\(pins.suggestion(for: name))")
            }
            if !names.contains(name) { names.append(name) }
        }
        for name in names {
            guard let forgotten = try pins.forget(name) else { continue }
            Terminal.info("Forgot the pin of \(name) (key version \(forgotten.keyVersion), \(forgotten.fingerprint.grouped)); the next lookup, send or read of \(name) pins the key the log shows then, on first use.")
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
