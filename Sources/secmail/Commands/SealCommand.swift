import ArgumentParser
import FoundationEssentials
import Glibc
import SecmailClient
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

/// Attachments as they go on the wire: images in their smaller lossless form (DESIGN section 6),
/// every other file as it is.
enum WireAttachments {
    struct Prepared {
        let attachment: OutgoingAttachment
        /// A line for people about what became of the file (image form, compression).
        let summary: String?
        let imageReport: [String: Any]?
        let compressionReport: [String: Any]?
    }

    /// An attachment file checked cheaply (it exists, its size, whether it is an image), before
    /// any image work.
    struct Checked {
        let path: String
        let plain: OutgoingAttachment
        let isImage: Bool
    }

    /// `asIs`: the file travels as it is even if it is an image (--attach-as-is).
    static func check(path: String, asIs: Bool) throws -> Checked {
        let url = URL(fileURLWithPath: path)
        let plain = try userInput { try OutgoingAttachment(file: url) }
        guard !asIs else { return Checked(path: path, plain: plain, isImage: false) }
        let prefix = try? NamedFile.prefix(of: path, count: 8)
        return Checked(path: path, plain: plain, isImage: prefix.map { ImageFormat.detect($0) != nil } ?? false)
    }

    /// The attachment as it goes on the wire: an image in its smallest lossless form (JPEG XL
    /// among them when every recipient reads it); anything else compressed when every recipient
    /// reads encoding 1 and that saves 5%, or as it is. `readable`: the reader features every
    /// recipient declared.
    static func prepare(_ checked: Checked, alwaysPNG: Bool, readable: Set<ReaderFeature>) throws -> Prepared {
        guard checked.isImage else {
            guard readable.contains(.deflate), checked.plain.info.length <= UInt64(AttachmentCompression.maximumFileSize) else {
                return Prepared(attachment: checked.plain, summary: nil, imageReport: nil, compressionReport: nil)
            }
            return try compressed(checked)
        }
        let path = checked.path, url = URL(fileURLWithPath: path)
        let bytes: [UInt8]
        do { bytes = Array(try Data(contentsOf: url)) } catch {
            throw CLIFailure(.failure, "cannot read attachment \(path): \(String(describing: error))")
        }
        let wire: WireImage
        do {
            wire = try Terminal.withStatus("preparing \(TerminalText.neutralised(url.lastPathComponent))") {
                try ImagePipeline().wireForm(of: bytes, alwaysPNG: alwaysPNG, allowJXL: readable.contains(.jxl),
                                             allowJXLRendering: readable.contains(.jxlRendering))
            }
        } catch let error as ImageError {
            throw CLIFailure(.failure, "\(path) looks like an image but cannot be used: \(error.reason). To send it unchanged, its metadata included, attach it with --attach-as-is")
        }
        let name = url.lastPathComponent
        // The new extension may be longer than the old (a 255-byte name without one): the stem
        // gives way, as it does for names saved on the reader's side.
        let wireName = SavedFileName.compose(stem: SavedFileName.split(name).stem, counter: nil, ext: String(wire.format.fileExtension.dropFirst()))
        let attachment = try userInput { try OutgoingAttachment(name: wireName, mediaType: wire.format.mediaType, bytes: wire.bytes) }
        let sending = wire.animationFrames == nil ? "sending the \(wire.format.displayName) (the reader gets a PNG)" : "the reader gets every frame"
        let summary = "\(name) (\(wire.width)x\(wire.height), \(formatBytes(UInt64(wire.originalSize)))): \(wire.sizes); \(sending)"
        var report = wire.report
        report["file"] = path
        return Prepared(attachment: attachment, summary: summary, imageReport: report, compressionReport: nil)
    }
}

extension WireImage {
    /// Every form's size, for people: "optimised PNG 1.2 MiB, metadata-stripped JPEG 300.1 KiB"
    /// ("fast PNG" where it lost by too much to be worth the search).
    var sizes: String {
        if let frames = animationFrames, let png = pngSize {
            return "animated PNG (\(frames) frames) \(formatBytes(UInt64(png))) with its metadata removed; its frames travel as they are"
        }
        var sizes = pngSize.map { "\(pngIsFast ? "fast" : "optimised") PNG \(formatBytes(UInt64($0)))" }
            ?? "PNG not made (estimated \(formatBytes(UInt64(pngEstimate ?? 0))))"
        if let jpeg = jpegSize { sizes += ", metadata-stripped JPEG \(formatBytes(UInt64(jpeg)))" }
        if let jxl = jxlSize { sizes += ", JPEG XL \(formatBytes(UInt64(jxl)))" }
        if let reason = jxlNotMade { sizes += ", JPEG XL not made (\(reason))" }
        return sizes
    }

    /// Every form's size and the one sent, for `--json`.
    var report: [String: Any] {
        var report: [String: Any] = ["width": width, "height": height, "originalBytes": originalSize, "sent": format.rawValue, "sentBytes": bytes.count]
        if let png = pngSize { report["pngBytes"] = png }
        if let estimate = pngEstimate { report["pngEstimatedBytes"] = estimate }
        if let jpeg = jpegSize { report["jpegBytes"] = jpeg }
        if let jxl = jxlSize { report["jxlBytes"] = jxl }
        if let method = jxlMethod { report["jxlMethod"] = method }
        if let reason = jxlNotMade { report["jxlNotMade"] = reason }
        if let frames = animationFrames { report["animationFrames"] = frames }
        return report
    }
}

extension WireAttachments {
    /// A file that is not an image, compressed (encoding 1) when that saves at least 5%.
    static func compressed(_ checked: Checked) throws -> Prepared {
        let bytes: [UInt8]
        do { bytes = Array(try Data(contentsOf: URL(fileURLWithPath: checked.path))) } catch {
            throw CLIFailure(.failure, "cannot read attachment \(checked.path): \(String(describing: error))")
        }
        guard let stored = try AttachmentCompression.compress(bytes) else {
            return Prepared(attachment: checked.plain, summary: nil, imageReport: nil, compressionReport: nil)
        }
        let info = checked.plain.info
        let attachment = try userInput { try OutgoingAttachment(name: info.name, mediaType: info.mediaType, encoding: .deflate, bytes: stored) }
        return Prepared(attachment: attachment,
                        summary: "\(info.name) (\(formatBytes(UInt64(bytes.count)))): compressed to \(formatBytes(UInt64(stored.count)))",
                        imageReport: nil, compressionReport: ["file": checked.path, "originalBytes": bytes.count, "sentBytes": stored.count])
    }
}

/// The key `value` names, as `seal --to` and `open --from` take it: the pinned contact's when it
/// is a pinned contact's name, else the identity file at that path. A name that is also a file
/// here holding another key is refused rather than guessed at.
func contactOrFile(_ value: String, option: String, pins: ContactPins) throws -> IdentityBundle {
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
/// failed or interrupted write never leaves a partial file under the final name.
enum AtomicFile {
    /// The output file as typed, checked before any work it would waste (the passphrase, image
    /// work, sealing): it must not exist (not even as a link to nothing), and its folder must
    /// exist and be writable.
    static func checkCanCreate(_ output: String) throws -> URL {
        let url = URL(fileURLWithPath: output)
        guard (try? FileStatus(path: url.path)) == nil else {
            throw CLIFailure(.failure, "\(output) exists already; choose another output file")
        }
        let folder = url.deletingLastPathComponent().path
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory else {
            throw CLIFailure(.failure, "cannot write \(output): there is no folder \(folder)")
        }
        guard FileManager.default.isWritableFile(atPath: folder) else {
            throw CLIFailure(.failure, "cannot write \(output): the folder \(folder) is not writable for you")
        }
        return url
    }

    static func write<R>(to url: URL, _ body: (ByteSink) throws -> R) throws -> R {
        // A registered temporary: removed on failure, on Ctrl-C, or (after a crash) by a later run.
        TemporaryFiles.sweep(url.deletingLastPathComponent(), prefixes: ["secmail-partial"])
        let temporary = TemporaryFiles.path(in: url.deletingLastPathComponent(), prefix: "secmail-partial")
        let file = try PositionalFile(creatingAtPath: temporary.path, permissions: 0o600)
        var moved = false
        defer { if moved { TemporaryFiles.release(temporary) } else { TemporaryFiles.remove(temporary) } }
        let sink = FileSink(file: file)
        let result = try body(sink)
        try sink.synchronize()
        // Checked before any work (`checkCanCreate`), the name may still be taken meanwhile: then
        // that file stays as it is.
        guard try AtomicRename.moveWithoutReplacing(temporary, to: url) else {
            throw CLIFailure(.failure, "\(url.path) was created by something else meanwhile; it is left as it is: choose another output file")
        }
        moved = true
        return result
    }
}
