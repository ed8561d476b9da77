import FoundationEssentials
import Glibc

/// How an attachment's bytes are stored inside the payload.
public enum AttachmentEncoding: UInt8, Sendable {
    /// The bytes as they are.
    case identity = 0
    /// `u64` length of the file ‖ a raw DEFLATE stream (RFC 1951) that gives exactly that many
    /// bytes. Sent only to readers that declared `ReaderFeature.deflate`.
    case deflate = 1
}

/// What a reader's client can open beyond the base format, declared to its relay and shown in
/// lookups (docs/PROTOCOL.md, "Reader features"), so that senders use it for that reader only:
/// older readers never see an encoding they cannot open.
public enum ReaderFeature: String, Sendable, CaseIterable {
    /// Attachments in encoding 1 (DEFLATE).
    case deflate
    /// Images as JPEG XL (image/jxl): a JPEG recompressed losslessly, or pixels coded losslessly.
    case jxl
    /// JPEG XL pixel images with a rendering box (colour profile, sRGB intent, gamma,
    /// chromaticities, orientation) that the reader's PNG carries on (docs/PROTOCOL.md).
    case jxlRendering = "jxl-rendering"

    /// Everything this client reads, in the order it declares them.
    public static let supported: [ReaderFeature] = allCases
}

/// An attachment as the payload describes it.
public struct AttachmentInfo: Sendable, Equatable {
    /// A bare file name: no directory parts, no control characters.
    public let name: String
    /// A media type such as "image/png".
    public let mediaType: String
    public let encoding: AttachmentEncoding
    /// Length in bytes as stored.
    public let length: UInt64

    public init(name: String, mediaType: String, encoding: AttachmentEncoding = .identity, length: UInt64) throws {
        try MessageContent.validate(fileName: name)
        try MessageContent.validate(mediaType: mediaType)
        self.name = name
        self.mediaType = mediaType
        self.encoding = encoding
        self.length = length
    }
}

/// An attachment to seal: its description and where its bytes come from.
public struct OutgoingAttachment: Sendable {
    public enum Source: Sendable {
        case file(URL)
        case bytes([UInt8])
    }

    public let info: AttachmentInfo
    public let source: Source

    /// An attachment read from `url`, named after the file unless `name` is given; the media
    /// type is detected from the first bytes unless given.
    public init(file url: URL, name: String? = nil, mediaType: String? = nil) throws {
        let status: FileStatus
        do {
            status = try FileStatus(path: url.path, followingLinks: true)
        } catch let error as FormatError {
            throw FormatError(.io, "cannot read attachment \(error.reason)")
        }
        guard status.kind == .regular else {
            if status.kind == .directory {
                throw FormatError(.io, "attachment \(url.path) is a folder: attach the files in it one by one, or an archive of it (made with tar or zip)")
            }
            throw FormatError(.io, "attachment \(url.path) is not a regular file")
        }
        let size = status.size
        let prefix: [UInt8]
        do {
            prefix = try NamedFile.prefix(of: url.path, count: 16)
        } catch {
            throw FormatError(.io, "cannot read attachment \(url.path): \(error)")
        }
        // A file under /proc or /sys says it is empty (or 4096 bytes) whatever it holds; sealed
        // by its size, it would arrive empty or cut off without a word.
        guard UInt64(prefix.count) <= size else {
            throw FormatError(.io, "attachment \(url.path) holds more than the \(size) bytes its size says (a file under /proc or /sys?); copy it to a regular file and attach that")
        }
        do {
            info = try AttachmentInfo(
                name: name ?? url.lastPathComponent,
                mediaType: mediaType ?? MediaType.detect(prefix: prefix),
                length: size)
        } catch let error as FormatError {
            // Among several attachments, say which one.
            throw FormatError(error.code, "attachment \(url.path): \(error.reason)")
        }
        source = .file(url)
    }

    /// An attachment held in memory, stored in `encoding` (`bytes` already so encoded; the media
    /// type is then that of the file the encoding gives back).
    public init(name: String, mediaType: String? = nil, encoding: AttachmentEncoding = .identity, bytes: [UInt8]) throws {
        info = try AttachmentInfo(name: name, mediaType: mediaType ?? MediaType.detect(prefix: Array(bytes.prefix(16))),
                                  encoding: encoding, length: UInt64(bytes.count))
        source = .bytes(bytes)
    }
}

/// Media types recognised by their magic bytes (never by file extension).
public enum MediaType {
    public static func detect(prefix: [UInt8]) -> String {
        if prefix.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return "image/png" }
        if prefix.starts(with: [0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if prefix.starts(with: Array("GIF8".utf8)) { return "image/gif" }
        if prefix.starts(with: Array("%PDF-".utf8)) { return "application/pdf" }
        return "application/octet-stream"
    }
}

/// The plaintext payload layout (docs/PROTOCOL.md, "Payload plaintext"):
/// u32 text length, UTF-8 text, u16 attachment count, then per attachment a header
/// (u16-prefixed name, u8-prefixed media type, u8 encoding, u64 length) and its bytes.
public enum MessageContent {
    public static let maximumTextLength = 16 << 20
    public static let maximumAttachments = 1000
    static let maximumNameLength = 255
    static let maximumMediaTypeLength = 127

    static func validate(fileName name: String) throws {
        let bytes = Array(name.utf8)
        guard (1...maximumNameLength).contains(bytes.count) else {
            throw FormatError(.invalidField, "an attachment name must be 1 to \(maximumNameLength) bytes")
        }
        guard name != ".", name != ".." else {
            throw FormatError(.invalidField, "an attachment may not be named . or ..")
        }
        guard !name.unicodeScalars.contains(where: { $0 == "/" || $0 == "\\" || isControlOrFormat($0) }) else {
            throw FormatError(.invalidField, "an attachment name contains a path separator, or a control or format character (such as a bidi override)")
        }
    }

    /// Unicode Cc (C0, DEL, C1) and Cf (bidi overrides and isolates, zero-width characters, …),
    /// and line and paragraph separators: a name holding one can hide its real extension
    /// ("invoice\u{202E}gnp.exe") or rewrite the terminal it is shown on.
    public static func isControlOrFormat(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator: true
        default: false
        }
    }

    static func validate(mediaType: String) throws {
        let bytes = Array(mediaType.utf8)
        guard (1...maximumMediaTypeLength).contains(bytes.count),
              bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }), bytes.contains(UInt8(ascii: "/")) else {
            throw FormatError(.invalidField, "\"\(mediaType)\" is not a media type")
        }
    }

    static func encodeHeader(of info: AttachmentInfo) -> [UInt8] {
        var writer = ByteWriter()
        writer.append(u16Prefixed: Array(info.name.utf8))
        writer.append(u8Prefixed: Array(info.mediaType.utf8))
        writer.append(info.encoding.rawValue)
        writer.append(info.length)
        return writer.bytes
    }

    /// Total plaintext length of a message.
    static func plaintextLength(textByteCount: Int, attachments: [AttachmentInfo]) -> UInt64 {
        var total = UInt64(4 + textByteCount + 2)
        for info in attachments {
            total += UInt64(encodeHeader(of: info).count) + info.length
        }
        return total
    }
}
