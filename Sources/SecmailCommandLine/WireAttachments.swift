import FoundationEssentials
import SecmailClient
import SecmailFormat
import SecmailImages


/// Attachments as they go on the wire: images in their smaller lossless form (DESIGN section 6),
/// every other file as it is.
package enum WireAttachments {
    package struct Prepared {
        package let attachment: OutgoingAttachment
        /// A line for people about what became of the file (image form, compression).
        package let summary: String?
        package let imageReport: [String: Any]?
        package let compressionReport: [String: Any]?
    }

    /// An attachment file checked cheaply (it exists, its size, whether it is an image), before
    /// any image work.
    package struct Checked {
        package let path: String
        package let plain: OutgoingAttachment
        package let isImage: Bool
    }

    /// `asIs`: the file travels as it is even if it is an image (--attach-as-is).
    package static func check(path: String, asIs: Bool) throws -> Checked {
        let url = URL(fileURLWithPath: try nonEmptyArgument(path, "an --attach path"))
        let plain = try userInput { try OutgoingAttachment(file: url) }
        guard !asIs else { return Checked(path: path, plain: plain, isImage: false) }
        let prefix = try? NamedFile.prefix(of: path, count: 8)
        return Checked(path: path, plain: plain, isImage: prefix.map { ImageFormat.detect($0) != nil } ?? false)
    }

    /// The attachment as it goes on the wire: an image in its smallest lossless form (JPEG XL
    /// among them when every recipient reads it); anything else compressed when every recipient
    /// reads encoding 1 and that saves 5%, or as it is. `readable`: the reader features every
    /// recipient declared.
    package static func prepare(_ checked: Checked, alwaysPNG: Bool, readable: Set<ReaderFeature>) throws -> Prepared {
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
    package var sizes: String {
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
    package var report: [String: Any] {
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
    package static func compressed(_ checked: Checked) throws -> Prepared {
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
