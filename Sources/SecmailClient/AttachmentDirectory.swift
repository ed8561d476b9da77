import Foundation
import SecmailFormat
import SecmailImages

/// Writes decrypted attachments into a hidden staging directory inside the output directory
/// and moves them into place only on `commit()`, so an interrupted or failed open leaves
/// nothing in the output directory. Existing files are never overwritten: a clash gets a
/// " (2)" style suffix. Files are created 0600.
///
/// Images reach the reader as PNG (DESIGN section 6): an attachment that travelled as a JPEG is
/// decoded and saved as NAME.png with the very same pixels. Should that fail, the JPEG is saved
/// as it came, with a note, so nothing received is lost.
public final class AttachmentDirectory: ContentSink {
    public let outputDirectory: URL
    private let staging: URL
    private var staged: [(info: AttachmentInfo, url: URL)] = []
    private var current: BackgroundWriter?
    private var isFinished = false
    /// What `commit()` did beyond moving files (conversions, or why one was not made).
    public private(set) var notes: [String] = []

    public init(outputDirectory: URL) throws {
        self.outputDirectory = outputDirectory
        try FileSystem.createPrivateDirectory(outputDirectory)
        staging = outputDirectory.appendingPathComponent(".secmail-staging-\(UUID().uuidString)", isDirectory: true)
        try FileSystem.createPrivateDirectory(staging)
    }

    deinit {
        if !isFinished { abort() }
    }

    public func beginAttachment(_ info: AttachmentInfo, index: Int) throws {
        let url = staging.appendingPathComponent(String(index))
        current = BackgroundWriter(file: try PositionalFile(creatingAtPath: url.path, permissions: 0o600))
        staged.append((info, url))
    }

    public func write(_ bytes: ArraySlice<UInt8>) throws {
        try current?.write(bytes)
    }

    public func endAttachment() throws {
        // Durable before it is moved into place (and, later, before the relay copy is deleted).
        try current?.synchronize()
        current = nil
    }

    /// Moves every staged attachment to its final name and returns the final paths.
    public func commit() throws -> [URL] {
        var placed: [URL] = []
        for (info, url) in staged {
            let (name, source) = convertedImage(info: info, staged: url)
            let target = Self.freeName(for: name, in: outputDirectory)
            do {
                try FileManager.default.moveItem(at: source, to: target)
            } catch {
                throw ClientError(.io, "cannot save \(target.path): \(error.localizedDescription)")
            }
            placed.append(target)
        }
        try? FileManager.default.removeItem(at: staging)
        isFinished = true
        return placed
    }

    /// For a JPEG image: a staged PNG with the same pixels and the name to save it under.
    private func convertedImage(info: AttachmentInfo, staged url: URL) -> (String, URL) {
        guard let prefix = try? FileHandle(forReadingFrom: url).read(upToCount: 3), ImageFormat.detect(prefix) == .jpeg else {
            return (info.name, url)
        }
        do {
            let png = try ImagePipeline().readerPNG(Array(try Data(contentsOf: url)))
            let converted = url.appendingPathExtension("png")
            let file = try PositionalFile(creatingAtPath: converted.path, permissions: 0o600)
            try file.write(png[...])
            try file.synchronize()
            let stem = Self.splitExtension(info.name).stem
            notes.append("\(info.name) arrived as JPEG; saved as PNG with the same pixels")
            return (stem + ".png", converted)
        } catch {
            notes.append("\(info.name) could not be converted to PNG (\(error)); saved as received")
            return (info.name, url)
        }
    }

    /// Deletes everything staged.
    public func abort() {
        current = nil
        try? FileManager.default.removeItem(at: staging)
        isFinished = true
    }

    /// "photo.jpg" → ("photo", "jpg"); "notes" → ("notes", "").
    public static func splitExtension(_ name: String) -> (stem: String, ext: String) {
        let ext = (name as NSString).pathExtension
        return (ext.isEmpty ? name : String(name.dropLast(ext.count + 1)), ext)
    }

    /// `name`, or "stem (N).ext" with the smallest N that is free.
    static func freeName(for name: String, in directory: URL) -> URL {
        let candidate = directory.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: candidate.path) else { return candidate }
        let (stem, ext) = splitExtension(name)
        var counter = 2
        while true {
            let next = directory.appendingPathComponent(ext.isEmpty ? "\(stem) (\(counter))" : "\(stem) (\(counter)).\(ext)")
            if !FileManager.default.fileExists(atPath: next.path) { return next }
            counter += 1
        }
    }
}
