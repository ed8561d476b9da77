import ArgumentParser
import Foundation
import SecmailClient
import SecmailFormat

struct RegisterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "register",
        abstract: "Register your identity on a relay (creating it first if needed) and pin the relay.",
        discussion: """
            The relay's certificate is checked against --ca on this first contact; its TLS key and its \
            log key are then pinned in $SECMAIL_HOME/relay.json, and every later contact must match them.
            """)

    @Argument(help: "Your name: 1-64 characters from a-z, 0-9, '.', '_', '-'.")
    var name: String

    @Option(name: .long, help: ArgumentHelp("The relay, e.g. https://localhost:8443.", valueName: "url"))
    var relay: String

    @Option(name: .long, help: ArgumentHelp("CA certificate file the relay's certificate must chain to.", valueName: "file"))
    var ca: String

    @Option(name: .long, help: ArgumentHelp("Invite code, if the relay requires one.", valueName: "code"))
    var invite: String?

    @OptionGroup var homeOptions: HomeOptions
    @OptionGroup var passphraseOptions: PassphraseOptions

    func run() async throws {
        try await reportingFailures {
            let identityName = try userInput { try IdentityName(name) }
            guard let url = URL(string: relay), url.scheme == "https", url.host != nil else {
                throw CLIFailure(.failure, "--relay takes https://HOST:PORT, not \(relay)")
            }
            let keystore = Keystore(home: homeOptions.secmailHome)
            let bundle: IdentityBundle
            if keystore.hasIdentity {
                bundle = try keystore.currentBundle()
                guard bundle.name == identityName else {
                    throw CLIFailure(.failure, "this home's identity is \(bundle.name), not \(identityName); use another SECMAIL_HOME for a second identity")
                }
            } else {
                bundle = try InitCommand.createIdentity(identityName, in: keystore, passphraseOptions: passphraseOptions)
            }
            let settings = try await DirectoryClient(home: keystore.home).register(bundle, relay: url, caFile: ca, invite: invite)
            Terminal.info("Registered \(bundle.name) on \(settings.url)")
            Terminal.info("Your fingerprint: \(bundle.fingerprint.grouped)")
            Terminal.info("Pinned relay TLS key sha256/\(settings.relayKeyPin) and log key \(settings.logVerifierKey)")
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

    @Argument(help: "The contact's name.")
    var name: String

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @OptionGroup var homeOptions: HomeOptions

    func run() async throws {
        try await reportingFailures {
            let identityName = try userInput { try IdentityName(name) }
            let contact = try await DirectoryClient(home: homeOptions.secmailHome).lookup(identityName)
            let bundle = contact.bundle
            if json {
                try Terminal.output(jsonText([
                    "name": bundle.name.value, "fingerprint": bundle.fingerprint.hex, "keyVersion": bundle.keyVersion,
                    "pinned": contact.isNewPin ? "new" : "unchanged",
                ]))
            } else {
                Terminal.output("\(bundle.name)  key version \(bundle.keyVersion)\n\(bundle.fingerprint.grouped)\n")
                Terminal.info(contact.isNewPin
                    ? "Pinned \(bundle.name)'s key on first use; compare the fingerprint above with \(bundle.name) aloud."
                    : "Matches the key pinned earlier.")
            }
        }
    }
}
