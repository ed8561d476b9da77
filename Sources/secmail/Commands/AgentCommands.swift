import ArgumentParser
import Dispatch
import FoundationEssentials
import Glibc
import SecmailClient
import SecmailCommandLine
import SecmailFormat

/// How long the agent keeps keys without use: `90s`, `15m`, `2h`, or plain minutes.
struct IdleTimeout {
    let seconds: Int

    static let standard = IdleTimeout(seconds: 15 * 60)

    private init(seconds: Int) { self.seconds = seconds }

    /// The `transform` of the `--idle-timeout` options: a failed parse says why.
    static func parse(_ argument: String) throws -> IdleTimeout {
        IdleTimeout(seconds: try DurationArgument.seconds(argument, plainUnit: "m", maximum: 7 * 86_400))
    }
}

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the key agent in the foreground (secmail unlock starts it in the background).",
        discussion: """
            The agent holds your unlocked private keys in memory only and signs and decrypts content \
            keys for your own commands over $SECMAIL_HOME/agent.sock (mode 0600; connections from \
            other users are refused). It starts empty: `secmail unlock` gives it the keys. It forgets \
            them and stops after the idle timeout, at `secmail lock`, or on SIGINT, SIGTERM or SIGHUP. \
            It signs messages and sign-in answers only; rotating keys still asks for the passphrase.
            """)

    @Option(name: .long, help: ArgumentHelp("Stop after this long without use (90s, 15m, 2h; default 15m).", valueName: "duration"), transform: IdleTimeout.parse)
    var idleTimeout: IdleTimeout = .standard

    @OptionGroup var homeOptions: HomeOptions

    func run() async throws {
        let home = try homeOptions.secmailHome
        let agent = KeyAgent(home: home, idleTimeout: TimeInterval(idleTimeout.seconds)) { line in
            StandardStreams.writeError("secmail agent[\(getpid())]: \(TerminalText.neutralised(line))\n")
        }
        var signalSources: [DispatchSourceSignal] = []
        defer { signalSources.forEach { $0.cancel() } }
        try agent.run { listener in
            for signalNumber in [SIGINT, SIGTERM, SIGHUP] {
                signal(signalNumber, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
                source.setEventHandler { [weak listener] in listener?.wake() }
                source.resume()
                signalSources.append(source)
            }
        }
    }
}

struct UnlockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unlock",
        abstract: "Unlock your keys once into the key agent, so that commands stop asking for the passphrase.",
        discussion: """
            Starts the agent for this home if it is not running (in the background, detached from \
            the terminal) and hands it the passphrase; the agent unlocks every key version and keeps \
            the keys in memory only. Commands use it when it runs (--no-agent asks anyway). Run \
            again after `secmail rotate` on another terminal, or to restart the idle timer.
            """)

    @Option(name: .long, help: ArgumentHelp("When starting the agent: forget the keys after this long without use (90s, 15m, 2h; default 15m).", valueName: "duration"), transform: IdleTimeout.parse)
    var idleTimeout: IdleTimeout = .standard

    @OptionGroup var homeOptions: HomeOptions
    @OptionGroup var passphraseOptions: PassphraseOptions

    func run() async throws {
        let keystore = try Keystore(home: homeOptions.secmailHome)
        let bundle = try keystore.currentBundle()
        let agent = AgentClient(home: keystore.home)
        if let status = try agent.status(), status.holds(.signing, for: bundle.fingerprint) {
            Terminal.info("The key agent (process \(status.processID)) already holds \(bundle.name)'s keys; it forgets them after \(IdleTimeout.minutes(status.secondsLeft)) without use, or at `secmail lock`.")
            return
        }
        var started = false
        do {
            let status = try passphraseOptions.unlock(keystore) { passphrase in
                if try agent.status() == nil {
                    try Self.startAgent(for: keystore.home, idleTimeout: idleTimeout)
                    started = true
                }
                return try agent.load(passphrase)
            }
            Terminal.info("Unlocked \(bundle.name)'s keys (\(counted(status.keys.count { $0.role == .encryption }, "key version", "key versions"))) into the key agent (process \(status.processID)); it forgets them after \(IdleTimeout.minutes(status.secondsLeft)) without use, or at `secmail lock`.")
        } catch {
            if started { _ = try? agent.lock() }
            throw error
        }
    }

    /// Starts `secmail agent` for `home` in its own session and waits until it answers.
    static func startAgent(for home: SecmailHome, idleTimeout: IdleTimeout) throws {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let logPath = home.url.appendingPathComponent("agent.log").path
        _ = try KeyHolderProcess.spawnDetached(
            executable: executable,
            arguments: ["agent", "--home", home.url.path, "--idle-timeout", "\(idleTimeout.seconds)s"],
            errorLog: logPath)
        let agent = AgentClient(home: home)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if try agent.status() != nil { return }
            usleep(20_000)
        }
        throw CLIFailure(.failure, "the key agent did not start within 10 s; see \(logPath)")
    }
}

struct LockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lock",
        abstract: "Make the key agent forget your keys and stop.")

    @OptionGroup var homeOptions: HomeOptions

    func run() async throws {
        let home = try homeOptions.secmailHome
        if try AgentClient(home: home).lock() {
            Terminal.info("The key agent forgot the keys and stopped.")
        } else if let stopped = try KeyAgent.stopUnreachable(in: home) {
            Terminal.info("The key agent (process \(stopped)) no longer answered on its socket; it was told to forget the keys and stop.")
        } else {
            Terminal.info("No key agent runs for \(home.url.path).")
        }
    }
}

extension IdleTimeout {
    /// "14 min" for a person.
    static func minutes(_ seconds: UInt32) -> String {
        seconds >= 120 ? "\((seconds + 59) / 60) min" : "\(seconds) s"
    }
}
