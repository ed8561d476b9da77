import ArgumentParser
import FoundationEssentials
import Glibc
import SecmailClient
import SecmailCommandLine
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

    @Argument(help: ArgumentHelp("The envelope file (or a pipe: /dev/stdin, <(…)).", valueName: "envelope"))
    var input: String

    @Option(name: .long, help: ArgumentHelp("The sender: a pinned contact's name or an identity file (default: your own key, or the sender's among your pinned contacts).", valueName: "name|file"))
    var from: String?

    @OptionGroup var outputOptions: MessageOutputOptions

    @OptionGroup var homeOptions: HomeOptions
    @OptionGroup var passphraseOptions: PassphraseOptions

    func run() async throws {
        let keystore = try Keystore(home: homeOptions.secmailHome)
        let envelope = try EnvelopeInput(path: nonEmptyArgument(input, "the envelope file"), home: keystore.home.url)
        let source = envelope.source
        let given = try from.map { try contactOrFile($0, option: "--from", pins: ContactPins(home: keystore.home)) }
        let header = try EnvelopeOpener.readHeader(source)
        let sender = try given ?? knownSender(of: header, in: keystore)
        // A copy of a message this home sent opens with the content key kept for the sender.
        let sentCopyKey = try KeptMail(home: keystore.home).sentCopyKey(for: header.messageID)
        // A message that is not for this identity, or not from `sender`, is said so before any
        // passphrase is asked; and the passphrase unlocks only the key versions it is sealed to.
        let listed = try EnvelopeOpener.readerKeys(in: source, sender: sender, among: keystore.recipientFingerprints(),
                                                   sentCopyKey: sentCopyKey)
        let keys = try passphraseOptions.recipientKeys(keystore, only: Set(listed))

        let verifying = Terminal.ProgressLine("verifying")
        let verified = try EnvelopeOpener.verify(source, sender: sender, keys: keys, sentCopyKey: sentCopyKey, progress: verifying.update)
        verifying.finish()
        // As `read` does (P4): mail from the future is refused, old mail noted.
        let now = Int64(Date().timeIntervalSince1970), window = EnvelopeTimeWindow.standard
        if let refusal = window.readerRefusal(signedAt: verified.header.time, now: now) {
            throw CLIFailure(.verificationFailed, "message \(verified.header.messageID) is \(refusal); if this computer's clock is behind, set it right and open it again")
        }
        let output = outputOptions.folder
            ?? keystore.home.url.appendingPathComponent("mail/\(verified.header.messageID.hex)", isDirectory: true)
        let decrypting = Terminal.ProgressLine("decrypting")
        let opened = try AttachmentDirectory.decrypt(verified, into: output, keepJPEG: outputOptions.asSent, progress: decrypting.update,
                                                     converting: Terminal.imageConversionStatus)
        decrypting.finish()
        let shown = ShownMessage(header: opened.message.header, keyVersion: nil, text: opened.message.text,
                                 saved: opened.saved, notes: [window.readerNote(signedAt: verified.header.time, now: now)].compactMap { $0 },
                                 recipients: try? MessageRecipients(of: opened.message.header, keystore: keystore))
        try outputOptions.print(shown)
        if let failure = opened.saveFailure {
            throw CLIFailure(.failure, "\(failure.reason); give --out another folder to save them")
        }
    }

    /// Without --from: the key the envelope names, if it is the one pinned for its sender (as
    /// `lookup`, `send` or `read` pinned it) or one of this home's own key versions (a note sealed
    /// to oneself). Anything else needs the bundle given. The own bundles (each read and its
    /// self-signature checked) are looked at only when the pin does not answer.
    private func knownSender(of header: EnvelopeHeader, in keystore: Keystore) throws -> IdentityBundle {
        let pinned = try ContactPins(home: keystore.home).pinned(header.senderName)
        if let pinned, pinned.fingerprint == header.senderFingerprint { return pinned }
        if let own = try? keystore.allBundles().first(where: { $0.fingerprint == header.senderFingerprint }) {
            return own
        }
        guard let pinned else {
            throw CLIFailure(.failure, "\(header.senderName) is not among your pinned contacts: give their identity file with --from, or pin their key first (secmail lookup \(header.senderName))")
        }
        let signedWith = "the envelope is signed with a key of \(header.senderName) (\(header.senderFingerprint.grouped)) other than the pinned one (key version \(pinned.keyVersion), \(pinned.fingerprint.grouped))"
        if pinned.continuity?.previousFingerprint == header.senderFingerprint {
            // A retired key: only the relay's log says when it was replaced, after which it signs
            // nothing (`read` checks that); offline, the user must vouch for the file.
            throw CLIFailure(.failure, "\(signedWith): the one it replaced. To open it anyway, give the identity file of that key with --from")
        }
        throw CLIFailure(.failure, "\(signedWith): if \(header.senderName) has rotated keys since, `secmail lookup \(header.senderName)` follows the signed rotation; otherwise give the identity file it was signed with, with --from")
    }
}
