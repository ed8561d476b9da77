import ArgumentParser
import SecmailAPI
import SecmailCrypto
import SecmailFormat

@main
struct SecmailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secmail",
        abstract: "End-to-end encrypted, signed mail.",
        discussion: """
            Identities live in $SECMAIL_HOME (default ~/.secmail). Private keys come from the key \
            agent when `secmail unlock` gave it them; otherwise the passphrase comes from \
            --passphrase-file, else $SECMAIL_PASSPHRASE, else a prompt on the terminal (three \
            tries; Ctrl-C stops at once).

            Exit codes: 0 success; 1 error (input, file or system); 2 verification failed \
            (changed, truncated, forged or malformed data); 3 wrong key (not a recipient, or \
            signed by someone other than the given sender); 4 wrong passphrase; 5 unsupported \
            format version or suite; 64 usage error; 130 interrupted (Ctrl-C).
            """,
        version: RelayInfo.currentVersion,
        subcommands: [
            InitCommand.self, WhoAmICommand.self, UnlockCommand.self, LockCommand.self, AgentCommand.self, ExportCommand.self, SealCommand.self, OpenCommand.self,
            RegisterCommand.self, LookupCommand.self, SendCommand.self, InboxCommand.self, ReadCommand.self, DeleteCommand.self, PruneCommand.self, TrustCommand.self, ContactsCommand.self, RotateCommand.self, AuditCommand.self, MonitorCommand.self,
            ImageCommand.self, RelayCommand.self, DemoCommand.self,
        ]
    )

    /// Parses and runs the command, with OpenSSL warming up on the other core meanwhile; client
    /// commands get `Interruption`'s handling of Ctrl-C (the relay and the key agent shut down
    /// gracefully on their own) and an allocator that keeps freed memory for reuse.
    static func main() async {
        CryptoWarmUp.begin()
        do {
            var command = try parseAsRoot()
            if !(command is RelayServeCommand || command is AgentCommand) {
                Interruption.install()
                ProcessMemory.keepFreedMemoryForReuse()
            }
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
