import ArgumentParser
import FoundationEssentials
import Glibc
import SecmailClient
import SecmailCommandLine
import SecmailCrypto
import SecmailFormat

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create your identity: RSA-3072 signing and encryption keys, encrypted with a passphrase.")

    @Argument(help: "Your name: 1-64 characters from a-z, 0-9, '.', '_', '-'.")
    var name: String

    @OptionGroup var homeOptions: HomeOptions
    @OptionGroup var passphraseOptions: PassphraseOptions

    static let minimumPassphraseLength = 8

    func run() async throws {
        let identityName = try userInput { try IdentityName(name) }
        let keystore = try Keystore(home: homeOptions.homeForNewIdentity)
        guard !keystore.hasIdentity else {
            throw CLIFailure(.failure, "\(keystore.home.url.path) already holds an identity (\(try keystore.currentBundle().name)); keys are never overwritten")
        }
        let bundle = try Self.createIdentity(identityName, typed: name, in: keystore, passphraseOptions: passphraseOptions)
        Terminal.info("Share your public identity with: secmail export -o \(bundle.name).id")
    }

    /// Asks for a new passphrase (twice on a terminal), enforces its length, creates the identity;
    /// says so when the name was typed with capitals (names are lower-case).
    static func createIdentity(_ name: IdentityName, typed: String, in keystore: Keystore,
                               passphraseOptions: PassphraseOptions) throws -> IdentityBundle {
        let passphrase = try passphraseOptions.newPassphrase(for: name.value, minimumLength: minimumPassphraseLength,
                                                             given: passphraseOptions.givenPassphrase())
        if typed != name.value { Terminal.info("Names are lower-case: you are \(name).") }
        Terminal.info("Generating two RSA-3072 keys for \(name)...")
        let bundle = try keystore.createIdentity(name: name, passphrase: passphrase)
        Terminal.info("Created identity \(bundle.name) (key version \(bundle.keyVersion)) in \(keystore.home.url.path)")
        Terminal.info("Fingerprint: \(bundle.fingerprint.grouped)")
        return bundle
    }
}

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write your public identity bundle in armored text form.")

    @Option(name: .shortAndLong, help: ArgumentHelp("Write to this file instead of standard output (an earlier export of yours there is replaced; any other file is left alone).", valueName: "file"))
    var output: String?

    @OptionGroup var homeOptions: HomeOptions

    func run() async throws {
        let bundle = try Keystore(home: homeOptions.secmailHome).currentBundle()
        guard let output else {
            Terminal.output(bundle.armored)
            return
        }
        let url = URL(fileURLWithPath: output)
        // The export takes the path's place (a new file renamed over it): given a symbolic link,
        // that replaces the link, not what it names: `-o /dev/stdout` with standard output going
        // to an earlier export would replace /dev/stdout itself (as root), for every process.
        // Refreshing an earlier export (after a rotation, say) is the common case; anything else
        // there is someone's data. Only a regular file is read to tell.
        if let existing = try? FileStatus(path: output) {
            if existing.kind == .symbolicLink {
                throw CLIFailure(.failure, "\(output) is a symbolic link, which the export would replace; give the file it names, or leave out -o for standard output")
            }
            if existing.kind != .regular {
                throw CLIFailure(.failure, "\(output) is not a regular file; without -o the identity goes to standard output")
            }
        }
        if FileManager.default.fileExists(atPath: output), (try? loadBundle(output))?.name != bundle.name {
            throw CLIFailure(.failure, "\(output) exists and is not an earlier export of \(bundle.name)'s identity; choose another file")
        }
        try AtomicFile.checkFolder(of: output)
        // Synced, and its folder too, before it is reported written: the file is what others
        // import, and a crash must not leave it empty. Public, so readable by others (0644 less
        // the umask).
        do {
            try AtomicFile.write(to: url, permissions: 0o644, placement: .replacingCheckedFile) { sink in
                try sink.write(Array(bundle.armored.utf8)[...])
            }
        } catch let error as FormatError {
            throw CLIFailure(.failure, "cannot write \(output): \(error.reason)")
        }
        Terminal.info("Wrote \(bundle.name)'s identity (fingerprint \(bundle.fingerprint.grouped)) to \(output)")
    }
}
