import ArgumentParser
import Foundation
import SecmailClient
import SecmailCrypto
import SecmailFormat

struct OpenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "open",
        abstract: "Verify an envelope, then decrypt it: print the text and save the attachments.",
        discussion: """
            Nothing is printed or written unless the whole envelope verifies: the sender's \
            signature over the header and every ciphertext byte is checked before any decryption, \
            and attachments appear in the output directory only after every chunk decrypted.
            """)

    @Argument(help: ArgumentHelp("The envelope file.", valueName: "envelope"))
    var input: String

    @Option(name: .long, help: ArgumentHelp("The sender's identity file.", valueName: "bundle"))
    var from: String

    @Option(name: .long, help: ArgumentHelp("Directory for the attachments (created if missing).", valueName: "dir"))
    var out: String = "."

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @OptionGroup var homeOptions: HomeOptions
    @OptionGroup var passphraseOptions: PassphraseOptions

    func run() async throws {
        try await reportingFailures {
            let sender = try loadBundle(from)
            let source = try FileEnvelopeSource(url: URL(fileURLWithPath: input))
            let keystore = Keystore(home: homeOptions.secmailHome)
            let keys = try keystore.unlockRecipientKeys(
                passphrase: passphraseOptions.passphrase(for: keystore))

            let verifying = Terminal.ProgressLine("verifying")
            let verified = try EnvelopeOpener.verify(source, sender: sender, keys: keys, progress: verifying.update)
            verifying.finish()
            let directory = try AttachmentDirectory(outputDirectory: URL(fileURLWithPath: out, isDirectory: true))
            let decrypting = Terminal.ProgressLine("decrypting")
            let message: OpenedMessage
            do {
                message = try verified.decrypt(into: directory, progress: decrypting.update)
            } catch {
                directory.abort()
                throw error
            }
            decrypting.finish()
            let saved = try directory.commit()
            let header = message.header
            if json {
                let result: [String: Any] = [
                    "id": header.messageID.hex, "from": header.senderName.value,
                    "fingerprint": header.senderFingerprint.hex, "time": header.time,
                    "text": message.text, "files": saved.map(\.path),
                ]
                try Terminal.output(jsonText(result))
            } else {
                let time = Date(timeIntervalSince1970: TimeInterval(header.time))
                Terminal.info("Verified: signed by \(header.senderName) (\(header.senderFingerprint.grouped)) at \(time)")
                Terminal.output(message.text.hasSuffix("\n") || message.text.isEmpty ? message.text : message.text + "\n")
                for (info, url) in zip(message.attachments, saved) {
                    Terminal.info("Saved \(info.name) (\(info.mediaType), \(formatBytes(info.length))) to \(url.path)")
                }
                for note in directory.notes { Terminal.info(note) }
            }
        }
    }
}
