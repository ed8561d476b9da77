import ArgumentParser
import FoundationEssentials
import Glibc
import SecmailClient
import SecmailCommandLine
import SecmailCrypto

struct PassphraseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passphrase",
        abstract: "Change the passphrase that encrypts your private keys.",
        discussion: """
            Asks for the current passphrase, then for the new one twice (or reads them from \
            --passphrase-file and --new-passphrase-file). Every key version's two private keys are \
            encrypted anew, all of them written before any is replaced: an interrupted change leaves \
            every key under the old passphrase, or, once committed, is finished by the next command. \
            Copies of the home made before (a backup) still open with the old passphrase. A running \
            key agent keeps the keys it holds.
            """)

    @Option(name: .long, help: ArgumentHelp("Read the new passphrase from the first line of this file (readable by you alone) or pipe.", valueName: "file"))
    var newPassphraseFile: String?

    @OptionGroup var homeOptions: HomeOptions
    @OptionGroup var passphraseOptions: PassphraseOptions

    func run() async throws {
        let keystore = try Keystore(home: homeOptions.secmailHome)
        let bundle = try keystore.currentBundle()
        // The current passphrase is checked (on the current signing key) before the new one is
        // asked for: nothing is typed twice in vain.
        let old = try passphraseOptions.unlock(keystore) { passphrase in
            _ = try keystore.unlockSender(passphrase: passphrase)
            return passphrase
        }
        let new = try passphraseOptions.newPassphrase(for: bundle.name.value, minimumLength: InitCommand.minimumPassphraseLength,
                                                      given: newPassphraseFile.map(PassphraseOptions.passphrase(inFile:)),
                                                      withoutTerminal: "give the new one with --new-passphrase-file")
        guard !new.bytesEqual(old) else {
            throw CLIFailure(.failure, "the new passphrase is the one in use; nothing changed")
        }
        let count = try keystore.changePassphrase(from: old, to: new)
        Terminal.info("Changed the passphrase of \(bundle.name): \(counted(count, "private key", "private keys")) in \(keystore.home.url.appendingPathComponent("identity").path) encrypted anew.")
    }
}
