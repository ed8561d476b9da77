import ArgumentParser
import Foundation
import SecmailClient
import SecmailCrypto

/// Where the client's state lives.
struct HomeOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("State directory (default: $SECMAIL_HOME, else ~/.secmail).", valueName: "dir"))
    var home: String?

    var secmailHome: SecmailHome {
        if let home { return SecmailHome(url: URL(fileURLWithPath: home, isDirectory: true)) }
        return SecmailHome.resolve()
    }
}

/// How the passphrase is obtained.
struct PassphraseOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Read the passphrase from the first line of this file.", valueName: "file"))
    var passphraseFile: String?

    /// The passphrase from --passphrase-file, $SECMAIL_PASSPHRASE, or the terminal.
    func passphrase(prompt: String, confirm: Bool = false) throws -> Passphrase {
        if let passphraseFile {
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: passphraseFile))
            } catch {
                throw CLIFailure(.failure, "cannot read the passphrase file \(passphraseFile): \(error.localizedDescription)")
            }
            let firstLine = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first ?? ""
            return try Passphrase(String(firstLine).trimmingCharacters(in: CharacterSet(charactersIn: "\r")))
        }
        if let fromEnvironment = ProcessInfo.processInfo.environment["SECMAIL_PASSPHRASE"] {
            return try Passphrase(fromEnvironment)
        }
        return try Passphrase.prompt(prompt, confirm: confirm)
    }

    /// The passphrase of `keystore`'s identity (prompting with its name).
    func passphrase(for keystore: Keystore) throws -> Passphrase {
        try passphrase(prompt: "Passphrase for \(try keystore.currentBundle().name): ")
    }
}

/// What a message holds, for `seal` and `send`.
struct ComposeOptions: ParsableArguments {
    @Option(name: [.customShort("m"), .long], help: "The message text.")
    var message: String?

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("A file to attach; repeat for several.", valueName: "file"))
    var attach: [String] = []

    @Flag(name: .long, help: "Send images as optimised PNG even when the metadata-stripped JPEG is smaller.")
    var alwaysPNG = false

    /// The attachment files, checked cheaply (no image work yet).
    func checkedAttachments() throws -> [WireAttachments.Checked] {
        try attach.map(WireAttachments.check)
    }

    /// The attachments as they go on the wire (images in their smaller lossless form).
    func preparedAttachments(_ checked: [WireAttachments.Checked]) throws -> [WireAttachments.Prepared] {
        try checked.map { try WireAttachments.prepare($0, alwaysPNG: alwaysPNG) }
    }

    /// Bytes the envelope will hold at least: the text and every attachment that is not an image
    /// (images may shrink on the wire).
    func knownSize(_ checked: [WireAttachments.Checked]) -> UInt64 {
        UInt64((message ?? "").utf8.count) + checked.filter { !$0.isImage }.reduce(0) { $0 + $1.plain.info.length }
    }
}
