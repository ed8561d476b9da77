import ArgumentParser
import Foundation
import SecmailClient
import SecmailCrypto
import SecmailFormat

struct SealCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seal",
        abstract: "Encrypt and sign a message for one or more recipients, into a file.",
        discussion: "Recipients are given by their exported identity files (secmail export).")

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("A recipient's identity file; repeat for several.", valueName: "bundle"))
    var to: [String] = []

    @Option(name: [.customShort("m"), .long], help: "The message text.")
    var message: String?

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("A file to attach; repeat for several.", valueName: "file"))
    var attach: [String] = []

    @Option(name: .shortAndLong, help: ArgumentHelp("Where to write the envelope (must not exist).", valueName: "file"))
    var output: String

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @OptionGroup var homeOptions: HomeOptions
    @OptionGroup var passphraseOptions: PassphraseOptions

    func validate() throws {
        guard !to.isEmpty else { throw ValidationError("name at least one recipient with --to BUNDLE") }
    }

    func run() async throws {
        try await reportingFailures {
            let recipients = try to.map(loadBundle)
            let attachments = try attach.map { path in try userInput { try OutgoingAttachment(file: URL(fileURLWithPath: path)) } }
            let outputURL = URL(fileURLWithPath: output)
            guard !FileManager.default.fileExists(atPath: outputURL.path) else {
                throw CLIFailure(.failure, "\(output) exists already; choose another output file")
            }
            let keystore = Keystore(home: homeOptions.secmailHome)
            let sender = try keystore.unlockSender(
                passphrase: passphraseOptions.passphrase(prompt: "Passphrase for \(try keystore.currentBundle().name): "))

            let progress = Terminal.ProgressLine("sealing")
            let sealed = try AtomicFile.write(to: outputURL) { sink in
                try EnvelopeSealer().seal(
                    text: message ?? "", attachments: attachments, from: sender, to: recipients,
                    into: sink, progress: progress.update)
            }
            progress.finish()
            let recipientNames = recipients.map(\.name.value).joined(separator: ", ")
            if json {
                let result: [String: Any] = [
                    "id": sealed.header.messageID.hex, "file": output, "bytes": sealed.byteCount,
                    "recipients": recipients.map { ["name": $0.name.value, "fingerprint": $0.fingerprint.hex] },
                ]
                try Terminal.output(jsonText(result))
            } else {
                Terminal.info("Sealed message \(sealed.header.messageID) for \(recipientNames): \(formatBytes(sealed.byteCount)) written to \(output)")
                Terminal.output(sealed.header.messageID.hex + "\n")
            }
        }
    }
}

/// Reads an identity bundle file (armored or binary).
func loadBundle(_ path: String) throws -> IdentityBundle {
    let data: Data
    do {
        data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
        throw CLIFailure(.failure, "cannot read identity file \(path): \(error.localizedDescription)")
    }
    do {
        return try IdentityBundle(armoredOrBinary: Array(data))
    } catch let error as FormatError {
        throw FormatError(error.code, "\(path) is not a valid identity: \(error.reason)")
    }
}

func jsonText(_ object: Any) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self) + "\n"
}

/// Writes a file through a temporary sibling that is renamed into place only on success, so a
/// failed or interrupted write never leaves a partial file under the final name.
enum AtomicFile {
    static func write<R>(to url: URL, _ body: (ByteSink) throws -> R) throws -> R {
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).partial-\(UUID().uuidString)")
        let file = try PositionalFile(creatingAtPath: temporary.path, permissions: 0o600)
        var moved = false
        defer { if !moved { try? FileManager.default.removeItem(at: temporary) } }
        let sink = FileSink(file: file)
        let result = try body(sink)
        try sink.synchronize()
        do {
            try FileManager.default.moveItem(at: temporary, to: url)
        } catch {
            throw CLIFailure(.failure, "cannot create \(url.path): \(error.localizedDescription)")
        }
        moved = true
        return result
    }
}
