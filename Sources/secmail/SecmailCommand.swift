import ArgumentParser
import FoundationEssentials
import Glibc
import SecmailAPI
import SecmailClient
import SecmailCrypto
import SecmailFormat

@main
struct SecmailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secmail",
        abstract: "End-to-end encrypted, signed mail.",
        discussion: """
            Identities live in $SECMAIL_HOME (default ~/.secmail), a folder only you may enter \
            (700). Private keys come from the key agent when `secmail unlock` gave it them; \
            otherwise the passphrase comes from \
            --passphrase-file, else $SECMAIL_PASSPHRASE, else a prompt on the terminal (three \
            tries; Ctrl-C stops at once).

            Exit codes: 0 success; 1 error (input, file or system); 2 verification failed \
            (changed, truncated, forged or malformed data); 3 wrong key (not a recipient, or \
            signed by someone other than the given sender); 4 wrong passphrase; 5 unsupported \
            format version or suite; 64 usage error; 130 interrupted (Ctrl-C); 141 the reader \
            of standard output stopped early (as `| head` does).
            """,
        version: RelayInfo.currentVersion,
        subcommands: [
            InitCommand.self, WhoAmICommand.self, PassphraseCommand.self, UnlockCommand.self, LockCommand.self, AgentCommand.self, ExportCommand.self, SealCommand.self, OpenCommand.self,
            RegisterCommand.self, LookupCommand.self, SendCommand.self, ReplyCommand.self, InboxCommand.self, ReadCommand.self, KeptCommand.self, DeleteCommand.self, PruneCommand.self, TrustCommand.self, ContactsCommand.self, RotateCommand.self, AuditCommand.self, MonitorCommand.self,
            ImageCommand.self, RelayCommand.self, DemoCommand.self,
        ]
    )

    /// Parses and runs the command, with OpenSSL warming up on the other core meanwhile; client
    /// commands get `Interruption`'s handling of Ctrl-C (the relay and the key agent shut down
    /// gracefully on their own) and an allocator that keeps freed memory for reuse (the relay a
    /// bounded form of it, the key agent glibc's defaults). Usage errors
    /// are ArgumentParser's to report (exit 64); whatever a command throws is reported here, in
    /// one place, as one line and an exit status that says what went wrong (`ExitStatus`).
    static func main() async {
        CryptoWarmUp.begin()
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: misspelledCommand().map { ValidationError($0) } ?? error)
        }
        if command is RelayServeCommand {
            ProcessMemory.keepStreamingBuffersForReuse()
        } else if !(command is AgentCommand) {
            Interruption.install()
            ProcessMemory.keepFreedMemoryForReuse()
        }
        do {
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let exitCode as ExitCode {
            exit(withError: exitCode)
        } catch let request where exitCode(for: request).isSuccess {
            // `secmail help` and `--help` run ArgumentParser's own help command, which ends by
            // throwing its request for the text.
            exit(withError: request)
        } catch {
            Interruption.waitIfInterrupted()
            endIfOutputReaderLeft()
            let (status, message) = classify(error)
            Terminal.error(message)
            exit(withError: ExitCode(status.rawValue))
        }
        endIfOutputReaderLeft()
        // As coreutils do: a result that did not reach a full disk or a closed descriptor fails the command.
        if let failure = StandardStreams.outputFailure {
            Terminal.error("cannot write to standard output: \(failure)")
            exit(withError: ExitCode(ExitStatus.failure.rawValue))
        }
    }

    /// A reader that stopped early (`| head`) ends the command as it ends `cat`: by the signal a
    /// closed pipe sends, without a word (the shell shows 141), whether the command had finished
    /// or stopped at the write that found the pipe closed (`seal -o -`).
    static func endIfOutputReaderLeft() {
        guard StandardStreams.outputReaderLeft else { return }
        signal(SIGPIPE, SIG_DFL)
        raise(SIGPIPE)
    }

    /// For a word where a command is expected that is none but nearly one (`sned`, `inbx`,
    /// `relay bakcup`), the usage error that names it: ArgumentParser suggests near options, not
    /// commands ("2 unexpected arguments").
    static func misspelledCommand(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> String? {
        var command: ParsableCommand.Type = SecmailCommand.self
        var path = ["secmail"]
        for word in arguments {
            let subcommands = command.configuration.subcommands
            guard !word.hasPrefix("-"), !subcommands.isEmpty else { return nil }
            let names = subcommands.map { $0.configuration.commandName ?? "" } + (path.count == 1 ? ["help"] : [])
            if let index = names.firstIndex(of: word) {
                guard index < subcommands.count else { return nil }
                command = subcommands[index]
                path.append(word)
                continue
            }
            let near = names.map { (name: $0, edits: editDistance(word, $0, swapsCountOnce: true)) }.filter { $0.edits <= min(2, $0.name.count / 2) }
            guard let fewest = near.map(\.edits).min() else { return nil }
            let nearest = near.filter { $0.edits == fewest }.map { "'\($0.name)'" }
            return "'\(word)' is not a \(path.joined(separator: " ")) command. Did you mean \(nearest.joined(separator: " or "))?"
        }
        return nil
    }
}
