import ArgumentParser
import FoundationEssentials
import Glibc
import SecmailClient
import SecmailCommandLine

struct WhoAmICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whoami",
        abstract: "Show your identity: name, key version, fingerprint, relay and home.",
        discussion: """
            Read your fingerprint to a contact who compares it with what `secmail lookup` shows them. \
            The relay's TLS key pin and log key, as pinned when you registered, can be compared with \
            what the relay's operator publishes (`secmail relay` prints both). Nothing is unlocked.
            """)

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @OptionGroup var homeOptions: HomeOptions

    func run() async throws {
        let home = try homeOptions.secmailHome
        let bundle = try Keystore(home: home).currentBundle()
        let relay = try? RelaySettings.load(from: home)
        let agent = (try? AgentClient(home: home).status()).flatMap { $0 }
        let agentHoldsKeys = agent?.holds(.signing, for: bundle.fingerprint) ?? false
        if json {
            var result: [String: Any] = ["name": bundle.name.value, "keyVersion": bundle.keyVersion, "fingerprint": bundle.fingerprint.hex,
                                         "home": home.url.path, "agentUnlocked": agentHoldsKeys]
            if let relay {
                result["relay"] = relay.url
                result["relayKeyPin"] = "sha256/" + relay.relayKeyPin
                result["logKey"] = relay.logVerifierKey
            }
            try Terminal.output(jsonText(result))
        } else {
            Terminal.output("""
                \(bundle.name)  key version \(bundle.keyVersion)
                fingerprint  \(bundle.fingerprint.grouped)
                relay        \(relay.map { "\($0.url)\n  TLS key    sha256/\($0.relayKeyPin)\n  log key    \($0.logVerifierKey)" } ?? "none (secmail register NAME --relay URL)")
                home         \(home.url.path)
                key agent    \(agent.map { agentHoldsKeys ? "unlocked (process \($0.processID), \(IdleTimeout.minutes($0.secondsLeft)) left)" : "running without the current keys (secmail unlock)" } ?? "not running (secmail unlock starts it)")

                """)
        }
    }
}
