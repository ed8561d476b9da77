import ArgumentParser
import FoundationEssentials
import Glibc
import SecmailAPI
import SecmailClient
import SecmailCommandLine
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

    /// Client commands get `Interruption`'s handling of Ctrl-C and an allocator that keeps freed
    /// memory for reuse; the key agent keeps glibc's defaults and shuts down on its own; the
    /// relay's program, which `relay` and `demo` start in this process's place, sets up its own.
    static func main() async {
        await CommandLineProgram.run(SecmailCommand.self) { command in
            guard !(command is AgentCommand), !(command is RelayProgramCommand) else { return }
            Interruption.install()
            ProcessMemory.keepFreedMemoryForReuse()
        }
    }
}
