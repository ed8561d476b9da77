import FoundationEssentials
import Glibc
import SecmailFormat
import SecmailImages

/// An attachment as it was saved: where, and for an image, what became of it on the way.
public struct SavedAttachment: Sendable {
    public let info: AttachmentInfo
    public let url: URL
    /// How the file differs from what travelled, a phrase that follows its name ("arrived as
    /// JPEG XL; saved as PNG with the same pixels"), or why an image was not converted; nil for
    /// a file saved as it travelled (or inflated back to it).
    public let note: String?

    /// The note as a sentence, or nil.
    public var sentence: String? { note.map { "\(info.name) \($0)" } }
}

/// How many pixels a reader converts to PNG: decoding takes 4 to 8 bytes a pixel, and a second
/// or so per 3 megapixels, so a larger image (or the rest of a message past `perMessage`) is
/// saved as it travelled.
public struct ConversionBudget: Sendable {
    public let perImage: Int
    public let perMessage: Int

    public init(perImage: Int, perMessage: Int) {
        self.perImage = perImage
        self.perMessage = perMessage
    }

    public static let standard = ConversionBudget(perImage: 24_000_000, perMessage: 100_000_000)
}

/// Told that the image attachment `name` starts converting to PNG; the closure it returns is
/// called when that is done (a command shows a status line while a long conversion runs).
public typealias ImageConversionObserver = @Sendable (_ name: String) -> @Sendable () -> Void

/// Writes decrypted attachments into a hidden staging folder inside the output directory and
/// moves them into place only on `commit()`: all of a message's files appear, or none (a move
/// that fails takes back the ones before it). An interrupted open leaves nothing in the output
/// directory (the staging folder is a registered temporary; a crashed run's is swept by the next
/// one). Existing files are never overwritten: a clash gets a " (2)" style suffix, unless the file
/// there is this very attachment (a message read again into the same folder adds no copies).
/// Names are made safe to create where people read mail (`SavedFileName`). Files are created 0600.
///
/// Images reach the reader as PNG (DESIGN section 6): an attachment that travelled as a JPEG or
/// JPEG XL is decoded and saved as NAME.png with the very same pixels (a JPEG XL made from a JPEG
/// gives that JPEG back first, so the pixels are libjpeg-turbo's, as the sender's were), within a
/// budget of pixels; past it, or should the conversion fail, the file is saved as it came, with a
/// note, so nothing received is lost. `keepJPEG` keeps every JPEG as it travelled, and saves a
/// JPEG XL made from a JPEG as that JPEG, bit for bit. A compressed attachment (encoding 1) is
/// inflated to the file its sender attached; one that does not inflate exactly is refused.
public final class AttachmentDirectory: ContentSink {
    public let outputDirectory: URL
    private let staging: URL
    /// The outermost folder this object made for the output directory (it or a parent), which
    /// it takes away again when no file was saved (a message without attachments leaves no
    /// empty mail/ID/ behind); nil when the output directory was there.
    private let createdFolder: URL?
    private let keepJPEG: Bool
    private let converting: ImageConversionObserver?
    private let budget: ConversionBudget
    private var staged: [(info: AttachmentInfo, url: URL)] = []
    private var current: BackgroundWriter?
    private var isFinished = false
    private var pixelsConverted = 0

    public init(outputDirectory: URL, keepJPEG: Bool = false, budget: ConversionBudget = .standard,
                converting: ImageConversionObserver? = nil) throws {
        self.outputDirectory = outputDirectory
        self.keepJPEG = keepJPEG
        self.budget = budget
        self.converting = converting
        createdFolder = try FileSystem.createPrivateDirectory(outputDirectory)
        TemporaryFiles.sweep(outputDirectory, prefixes: ["secmail-staging"])
        staging = TemporaryFiles.path(in: outputDirectory, prefix: "secmail-staging", isDirectory: true)
        try FileSystem.createPrivateDirectory(staging)
    }

    deinit {
        if !isFinished { abort() }
    }

    public func beginAttachment(_ info: AttachmentInfo, index: Int) throws {
        try recordingWriteFailure {
            let url = staging.appendingPathComponent(String(index))
            current = BackgroundWriter(file: try PositionalFile(creatingAtPath: url.path, permissions: 0o600))
            staged.append((info, url))
        }
    }

    public func write(_ bytes: ArraySlice<UInt8>) throws {
        try recordingWriteFailure { try current?.write(bytes) }
    }

    public func endAttachment() throws {
        // Durable before it is moved into place (and, later, before the relay copy is deleted).
        try recordingWriteFailure { try current?.synchronize() }
        current = nil
    }

    /// The first error in writing a staged file (a full disk), which stops a decryption that has
    /// nothing wrong with it.
    private var writeFailure: Error?

    private func recordingWriteFailure(_ body: () throws -> Void) throws {
        do { try body() } catch {
            if writeFailure == nil { writeFailure = error }
            throw error
        }
    }

    /// Moves every staged attachment to its final name and says where each went; on failure none
    /// stays in the output directory.
    public func commit() throws -> [SavedAttachment] {
        var saved: [SavedAttachment] = []
        // Only files this commit moved into place are taken back on failure, never one that was there.
        var moved: [URL] = []
        defer { finish() }
        do {
            for (info, url) in staged {
                let (name, source, note) = convertedImage(info: info, staged: try inflated(info: info, staged: url))
                let (target, existed) = try place(source, as: name)
                saved.append(SavedAttachment(info: info, url: target, note: note))
                if !existed { moved.append(target) }
            }
        } catch {
            for file in moved { try? FileManager.default.removeItem(at: file) }
            throw error
        }
        return saved
    }

    /// Moves a staged file into the output directory under `name` (or a free variant of it), or
    /// finds it there already: a regular file with the same bytes under that name or a variant
    /// of it. `existed` tells which.
    /// Another process saving into the same folder at the same moment (two `read`s of one home)
    /// cannot make a file replace one it saved: the move refuses a name taken meanwhile, and the
    /// file there is compared like any other.
    private func place(_ source: URL, as name: String) throws -> (target: URL, existed: Bool) {
        let (stem, ext) = SavedFileName.split(SavedFileName.safe(name))
        var counter: Int? = nil
        while true {
            let target = outputDirectory.appendingPathComponent(SavedFileName.compose(stem: stem, counter: counter, ext: ext))
            if let status = try? FileStatus(path: target.path) {
                if status.kind == .regular, PositionalFile.sameContent(target.path, source.path) { return (target, true) }
                counter = (counter ?? 1) + 1
                continue
            }
            do {
                if try AtomicRename.moveWithoutReplacing(source, to: target) { return (target, false) }
            } catch {
                throw ClientError(.io, "cannot save \(target.path) (\(error)); no attachment of this message was saved")
            }
        }
    }

    /// The staged file as its sender had it: a compressed attachment (encoding 1) inflated,
    /// bounded by the length it declares; anything else as it came.
    private func inflated(info: AttachmentInfo, staged url: URL) throws -> URL {
        guard info.encoding == .deflate else { return url }
        do {
            return try staged(try AttachmentCompression.decompress(Array(try Data(contentsOf: url))), next: url, extension: "inflated")
        } catch let error as ImageError {
            throw ClientError(.verificationFailed, "\(info.name) cannot be inflated: \(error.reason); no attachment of this message was saved")
        } catch {
            throw ClientError(.io, "cannot save \(info.name): \(error); no attachment of this message was saved")
        }
    }

    /// For a JPEG or JPEG XL image: a staged PNG with the same pixels (or, with `keepJPEG`, the
    /// JPEG a JPEG XL was made from, bit for bit), the name to save it under and a note on what
    /// became of it.
    private func convertedImage(info: AttachmentInfo, staged url: URL) -> (String, URL, note: String?) {
        guard let prefix = try? NamedFile.prefix(of: url.path, count: ImageFormat.signatureLength),
              let format = ImageFormat.detect(prefix), format != .png, !(keepJPEG && format == .jpeg) else {
            return (info.name, url, nil)
        }
        let kind = format.displayName
        let stem = SavedFileName.split(info.name).stem
        let messageFull = "was not converted to PNG: this message's images passed \(budget.perMessage / 1_000_000) megapixels; saved as the \(kind) it travelled as"
        let allowed = min(budget.perImage, budget.perMessage - pixelsConverted)
        guard allowed > 0 else { return (info.name, url, messageFull) }
        let finished = converting?(info.name)
        defer { finished?() }
        do {
            let bytes = Array(try Data(contentsOf: url))
            let pipeline = ImagePipeline(limits: ImageLimits(maxPixels: allowed))
            if keepJPEG, format == .jxl, let jpeg = try pipeline.jpegAsSent(bytes) {
                let restored = try staged(jpeg, next: url, extension: "jpg")
                return (stem + ImageFormat.jpeg.fileExtension, restored, "arrived as JPEG XL; saved as the JPEG it was made from, bit for bit")
            }
            // The PNG is staged while it is checked; a PNG that fails the check throws here, and
            // its staged file goes with the staging folder.
            var converted: URL?
            let png = try pipeline.readerPNG(bytes) { converted = try self.staged($0, next: url, extension: "png") }
            // IHDR: width and height, big-endian, at bytes 16 and 20.
            pixelsConverted += png[16..<20].reduce(0) { $0 << 8 | Int($1) } * png[20..<24].reduce(0) { $0 << 8 | Int($1) }
            guard let converted else { preconditionFailure("readerPNG returned without staging its PNG") }
            return (stem + ImageFormat.png.fileExtension, converted, "arrived as \(kind); saved as PNG with the same pixels")
        } catch let error as ImageError where error.code == .tooLarge {
            return (info.name, url, allowed < budget.perImage
                ? messageFull : "is larger than \(budget.perImage / 1_000_000) megapixels; saved as the \(kind) it travelled as")
        } catch {
            return (info.name, url, "could not be converted to PNG (\(error)); saved as received")
        }
    }

    /// Writes `bytes` durably beside the staged file `url`, with `extension`.
    private func staged(_ bytes: [UInt8], next url: URL, extension: String) throws -> URL {
        let target = url.appendingPathExtension(`extension`)
        let file = try PositionalFile(creatingAtPath: target.path, permissions: 0o600)
        try file.write(bytes[...])
        try file.synchronize()
        return target
    }

    /// A verified message, decrypted, with what became of its attachments.
    public struct Decrypted: Sendable {
        public let message: OpenedMessage
        public let saved: [SavedAttachment]
        /// Why no attachment was saved, when none could be; the text is good all the same.
        public let saveFailure: ClientError?
    }

    /// Decrypts `verified` into a staging folder in `output` and moves its attachments into place.
    /// A failure to save leaves no attachment behind and is returned, not thrown: the message
    /// verified, and its text must reach the reader.
    public static func decrypt(_ verified: VerifiedEnvelope, into output: URL, keepJPEG: Bool = false, budget: ConversionBudget = .standard,
                               progress: EnvelopeSealer.Progress? = nil, converting: ImageConversionObserver? = nil) throws -> Decrypted {
        let directory: AttachmentDirectory
        do {
            directory = try AttachmentDirectory(outputDirectory: output, keepJPEG: keepJPEG, budget: budget, converting: converting)
        } catch let error as ClientError {
            // Nowhere to stage: the text still comes out of a decryption that keeps nothing.
            let message = try verified.decrypt(into: DiscardingContentSink(), progress: progress)
            return Decrypted(message: message, saved: [], saveFailure: message.attachments.isEmpty ? nil : error)
        }
        let message: OpenedMessage
        do {
            message = try verified.decrypt(into: directory, progress: progress)
        } catch {
            directory.abort()
            guard let failure = directory.writeFailure else { throw error }
            // The attachments could not be written (a full disk): the text comes out of a second
            // decryption that keeps nothing.
            let message = try verified.decrypt(into: DiscardingContentSink(), progress: progress)
            let reason = (failure as? FormatError)?.reason ?? "\(failure)"
            return Decrypted(message: message, saved: [],
                             saveFailure: ClientError(.io, "no attachment of this message was saved in \(output.path): \(reason)"))
        }
        do {
            return Decrypted(message: message, saved: try directory.commit(), saveFailure: nil)
        } catch let error as ClientError {
            return Decrypted(message: message, saved: [], saveFailure: error)
        }
    }

    /// Deletes everything staged.
    public func abort() {
        current = nil
        finish()
    }

    private func finish() {
        TemporaryFiles.remove(staging)
        if let createdFolder { FileSystem.removeEmptyDirectories(from: outputDirectory, upTo: createdFolder) }
        isFinished = true
    }
}

/// Names for received files. A sender chooses attachment names; the format already refuses path
/// separators and control and format characters. Here they are also made harmless where people
/// read mail: leading dots and dashes become "_" (no hidden files such as ~/.bash_login, no names
/// that read as options), trailing dots and spaces go, and the stem is shortened (on a character
/// boundary) so that stem, " (N)" and extension fit in 255 bytes.
public enum SavedFileName {
    public static let maximumBytes = 255

    public static func safe(_ name: String) -> String {
        var result = Substring(name)
        while let last = result.last, last == "." || last == " " { result = result.dropLast() }
        let leading = result.prefix(while: { $0 == "." || $0 == "-" })
        let safe = String(repeating: "_", count: leading.count) + result.dropFirst(leading.count)
        return safe.isEmpty ? "attachment" : safe
    }

    /// "photo.jpg" → ("photo", "jpg"); "notes" → ("notes", ""); an extension longer than 32
    /// bytes is part of the stem.
    public static func split(_ name: String) -> (stem: String, ext: String) {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return (name, "") }
        let ext = name[name.index(after: dot)...]
        guard !ext.isEmpty, ext.utf8.count <= 32 else { return (name, "") }
        return (String(name[..<dot]), String(ext))
    }

    public static func compose(stem: String, counter: Int?, ext: String) -> String {
        let tail = (counter.map { " (\($0))" } ?? "") + (ext.isEmpty ? "" : "." + ext)
        var shortened = Substring(stem)
        while shortened.utf8.count + tail.utf8.count > maximumBytes { shortened = shortened.dropLast() }
        return (shortened.isEmpty ? "attachment" : String(shortened)) + tail
    }
}
