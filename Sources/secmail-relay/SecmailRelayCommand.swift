import ArgumentParser
import SecmailAPI
import SecmailCommandLine
import SecmailFormat

@main
struct SecmailRelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secmail-relay",
        abstract: RelayProgramAbstract.relay,
        discussion: """
            `secmail relay …` runs this program with the same arguments, and `secmail demo` runs \
            `secmail-relay demo`: the relay is a program of its own so that the client's commands \
            start without it.

            Exit codes: 0 success; 1 error; 64 usage error; 130 interrupted (Ctrl-C).
            """,
        version: RelayInfo.currentVersion,
        subcommands: [RelayServeCommand.self, RelayStatusCommand.self, RelayInviteCommand.self, RelayBackupCommand.self, RelayNewLogCommand.self, DemoCommand.self],
        defaultSubcommand: RelayServeCommand.self)

    /// The relay keeps streaming buffers for reuse (bounded) and stops gracefully on SIGINT and
    /// SIGTERM by itself; its other commands, and the demo, are short and interruptible as the
    /// client's are.
    static func main() async {
        await CommandLineProgram.run(SecmailRelayCommand.self) { command in
            if command is RelayServeCommand {
                ProcessMemory.keepStreamingBuffersForReuse()
            } else {
                Interruption.install()
                ProcessMemory.keepFreedMemoryForReuse()
            }
        }
    }
}
