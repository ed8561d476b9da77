import ArgumentParser
import FoundationEssentials
import Glibc
import SecmailClient
import SecmailCommandLine
import SecmailCrypto
import SecmailFormat
import SecmailImages

struct SealCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seal",
        abstract: "Encrypt and sign a message for one or more recipients, into a file.",
        discussion: """
            Each recipient is a pinned contact, by name (the key `lookup`, `send` or `read` verified \
            against the relay's log and pinned; see `secmail contacts`), or an identity file \
            (`secmail export`). A name that is also a file here holding another key is refused: \
            give ./NAME for the file.
            """)

    @Option(name: .long, parsing: .singleValue,
            help: ArgumentHelp("A recipient: a pinned contact's name or an identity file; repeat for several.", valueName: "name|file"))
    var to: [String] = []

    @OptionGroup var compose: ComposeOptions

    @Option(name: .shortAndLong, help: ArgumentHelp("Where to write the envelope (must not exist); - for standard output.", valueName: "file"))
    var output: String

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @OptionGroup var homeOptions: HomeOptions
    @OptionGroup var passphraseOptions: PassphraseOptions

    func validate() throws {
        guard !to.isEmpty else { throw ValidationError("name at least one recipient with --to NAME (a pinned contact) or --to FILE (an identity file)") }
        if writesToStandardOutput, json {
            throw ValidationError("-o - puts the envelope on standard output, where --json would go too; give -o FILE with --json")
        }
    }

    private var writesToStandardOutput: Bool { output == "-" }


    func run() async throws {
        let pins = ContactPins(home: try homeOptions.secmailHome)
        let recipients = try to.map { try contactOrFile($0, option: "--to", pins: pins) }
        let checked = try compose.checkedAttachments()
        let text = try compose.text()
        let outputURL: URL?
        if writesToStandardOutput {
            guard !StandardStreams.isStandardOutputTerminal else {
                throw CLIFailure(.failure, "standard output is a terminal, and an envelope is binary: redirect it (> FILE, | COMMAND) or give -o FILE")
            }
            outputURL = nil
        } else {
            outputURL = try AtomicFile.checkCanCreate(output)
        }
        let keystore = try Keystore(home: homeOptions.secmailHome)
        // The passphrase before the image work, so nobody types into seconds of silence.
        let sender = try passphraseOptions.sender(keystore)
        // Compressed files and JPEG XL only through a relay, to readers that declared them.
        let prepared = try compose.preparedAttachments(checked, readable: [])
        let attachments = prepared.map(\.attachment)

        let progress = Terminal.ProgressLine("sealing")
        func seal(into sink: ByteSink) throws -> SealedEnvelope {
            try EnvelopeSealer().seal(text: text, attachments: attachments, from: sender, to: recipients, into: sink, progress: progress.update)
        }
        let sealed = try outputURL.map { try AtomicFile.write(to: $0, seal) } ?? seal(into: StandardOutputSink())
        progress.finish()
        let recipientNames = recipients.map(\.name.value).joined(separator: ", ")
        if json {
            let result: [String: Any] = [
                "id": sealed.header.messageID.hex, "file": output, "bytes": sealed.byteCount,
                "recipients": recipients.map { ["name": $0.name.value, "fingerprint": $0.fingerprint.hex] },
                "images": prepared.compactMap(\.imageReport),
            ]
            try Terminal.output(jsonText(result))
        } else {
            for line in prepared.compactMap(\.summary) { Terminal.info(line) }
            let destination = writesToStandardOutput ? "standard output" : output
            Terminal.info("Sealed message \(sealed.header.messageID) for \(recipientNames): \(formatBytes(sealed.byteCount)) written to \(destination)")
            // Standard output holds the envelope alone.
            if !writesToStandardOutput { Terminal.output(sealed.header.messageID.hex + "\n") }
        }
    }
}

/// The key `value` names, as `seal --to` and `open --from` take it: the pinned contact's when it
/// is a pinned contact's name, else the identity file at that path. A name that is also a file
/// here holding another key is refused rather than guessed at.
func contactOrFile(_ value: String, option: String, pins: ContactPins) throws -> IdentityBundle {
    _ = try nonEmptyArgument(value, option, expected: "a pinned contact's name or an identity file")
    let name = try? IdentityName(value)
    var isFolder = false
    let isFile = FileManager.default.fileExists(atPath: value, isDirectory: &isFolder) && !isFolder
    guard let name, let pinned = try pins.pinned(name) else {
        if let name, !isFile, !FileManager.default.fileExists(atPath: value) {
            throw CLIFailure(.failure, "\(name) is not among your pinned contacts, and there is no identity file \(value) here: pin \(name)'s key with `secmail lookup \(name)`, or give the file \(name)'s `secmail export` wrote\(pins.suggestion(for: name))")
        }
        return try loadBundle(value)
    }
    guard isFile else { return pinned }
    let file = try loadBundle(value)
    guard file == pinned else {
        throw CLIFailure(.failure, "\(option) \(value) names your pinned contact \(name) and also the file \(value) here, which holds another key (\(file.fingerprint.grouped)): give ./\(value) for the file's key, or move the file away for the contact's")
    }
    return pinned
}

/// Reads an identity bundle file (armored or binary).
func loadBundle(_ path: String) throws -> IdentityBundle {
    let bytes: [UInt8]
    do {
        // Far more than any identity bundle (two RSA-3072 keys armored: about 2 KiB).
        bytes = try NamedFile.contents(of: path, maximumByteCount: 64 << 10)
    } catch let error as FormatError {
        throw CLIFailure(.failure, "cannot read identity file \(path): \(error.reason)")
    }
    do {
        return try IdentityBundle(armoredOrBinary: bytes)
    } catch let error as FormatError {
        throw FormatError(error.code, "\(path) is not a valid identity: \(error.reason)")
    }
}

/// Writes a file through a temporary sibling that is renamed into place only on success, so a
/// failed or interrupted write never leaves a partial file under the final name (nor destroys the
/// file it replaces); the file and then its folder are synced before the command reports it
/// written.
enum AtomicFile {
    /// What may be at the output's name when the new file is moved there.
    enum Placement {
        /// Nothing: a file created there meanwhile stays, and the write fails.
        case newName
        /// A file the caller checked may be replaced (an earlier export), which the new one
        /// takes the place of in one step.
        case replacingCheckedFile
    }

    /// The output file as typed, checked before any work it would waste (the passphrase, image
    /// work, sealing): it must not exist (not even as a link to nothing), and its folder must
    /// exist and be writable.
    static func checkCanCreate(_ output: String) throws -> URL {
        let url = URL(fileURLWithPath: try nonEmptyArgument(output, "the output file (-o)"))
        guard (try? FileStatus(path: url.path)) == nil else {
            throw CLIFailure(.failure, "\(output) exists already; choose another output file")
        }
        try checkFolder(of: output)
        return url
    }

    /// The output's folder must exist and be writable (where the temporary file goes).
    static func checkFolder(of output: String) throws {
        _ = try nonEmptyArgument(output, "the output file (-o)")
        let folder = URL(fileURLWithPath: output).deletingLastPathComponent().path
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory else {
            throw CLIFailure(.failure, "cannot write \(output): there is no folder \(folder)")
        }
        guard FileManager.default.isWritableFile(atPath: folder) else {
            throw CLIFailure(.failure, "cannot write \(output): the folder \(folder) is not writable for you")
        }
    }

    /// Writes what `body` puts in the sink to `url`, created with `permissions` (less the umask).
    static func write<R>(to url: URL, permissions: UInt32 = 0o600, placement: Placement = .newName,
                         _ body: (ByteSink) throws -> R) throws -> R {
        // A registered temporary: removed on failure, on Ctrl-C, or (after a crash) by a later run.
        TemporaryFiles.sweep(url.deletingLastPathComponent(), prefixes: ["secmail-partial"])
        let temporary = TemporaryFiles.path(in: url.deletingLastPathComponent(), prefix: "secmail-partial")
        let file = try PositionalFile(creatingAtPath: temporary.path, permissions: permissions)
        var moved = false
        defer { if moved { TemporaryFiles.release(temporary) } else { TemporaryFiles.remove(temporary) } }
        let sink = FileSink(file: file)
        let result = try body(sink)
        try sink.synchronize()
        switch placement {
        case .newName:
            // Checked before any work (`checkCanCreate`), the name may still be taken meanwhile:
            // then that file stays as it is.
            guard try AtomicRename.moveWithoutReplacing(temporary, to: url) else {
                throw CLIFailure(.failure, "\(url.path) was created by something else meanwhile; it is left as it is: choose another output file")
            }
        case .replacingCheckedFile:
            try AtomicRename.replace(url, with: temporary)
        }
        moved = true
        // The new name is durable only once the folder is synced: until the filesystem commits
        // the rename by itself (ext4: within 5 s), a crash would leave the finished file under its
        // temporary name, which the next run sweeps away. 0.2 ms of a 1 MiB `seal`.
        do {
            try PositionalFile(readingAtPath: url.deletingLastPathComponent().path).synchronize()
        } catch let error as FormatError {
            throw CLIFailure(.failure, "\(url.path) was written but may not survive a crash: \(error.reason)")
        }
        return result
    }
}
