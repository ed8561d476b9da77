import ArgumentParser
import Glibc
import SecmailClient
import SecmailCrypto
import SecmailFormat

/// What `secmail` and `secmail-relay` share from start to exit: parsing, with OpenSSL warming up
/// on the other core meanwhile; usage errors as ArgumentParser reports them (exit 64), with
/// misspelled commands named; whatever a command throws reported in one place, as one line and an
/// exit status that says what went wrong (`ExitStatus`); a reader of standard output that left
/// early, or a result that did not reach it, ending the program as coreutils do.
package enum CommandLineProgram {
    /// Parses the arguments as commands of `root`, lets `prepare` set up the process for the
    /// command found (signal handling, the allocator), runs it, and exits.
    package static func run(_ root: ParsableCommand.Type, prepare: @Sendable (ParsableCommand) -> Void) async -> Never {
        ProcessMemory.mapProgramDataBeforeThreadsStart()
        CryptoWarmUp.begin()
        var command: ParsableCommand
        do {
            command = try root.parseAsRoot()
        } catch {
            root.exit(withError: misspelledCommand(root: root).map { ValidationError($0) } ?? error)
        }
        prepare(command)
        do {
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let exitCode as ExitCode {
            root.exit(withError: exitCode)
        } catch let request where root.exitCode(for: request).isSuccess {
            // `help` and `--help` run ArgumentParser's own help command, which ends by throwing
            // its request for the text.
            root.exit(withError: request)
        } catch {
            Interruption.waitIfInterrupted()
            endIfOutputReaderLeft()
            let (status, message) = classify(error)
            Terminal.error(message)
            root.exit(withError: ExitCode(status.rawValue))
        }
        endIfOutputReaderLeft()
        // As coreutils do: a result that did not reach a full disk or a closed descriptor fails the command.
        if let failure = StandardStreams.outputFailure {
            Terminal.error("cannot write to standard output: \(failure)")
            root.exit(withError: ExitCode(ExitStatus.failure.rawValue))
        }
        root.exit()
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
    /// `secmail-relay bakcup`), the usage error that names it: ArgumentParser suggests near
    /// options, not commands ("2 unexpected arguments").
    package static func misspelledCommand(root: ParsableCommand.Type, _ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> String? {
        var command = root
        var path = [root.configuration.commandName ?? ""]
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

/// What `secmail relay` and `secmail demo` are, in the words both programs' help shows.
package enum RelayProgramAbstract {
    package static let relay = "Run a relay: the key directory with its transparency log, and the mailboxes, over TLS 1.3."
    package static let demo = "Show secmail end to end: an embedded relay, two users, a message with an image, a key rotation, tampering refused."
}
