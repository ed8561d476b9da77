import Foundation
import SecmailFormat

/// Writes decrypted attachments into a hidden staging directory inside the output directory
/// and moves them into place only on `commit()`, so an interrupted or failed open leaves
/// nothing in the output directory. Existing files are never overwritten: a clash gets a
/// " (2)" style suffix. Files are created 0600.
public final class AttachmentDirectory: ContentSink {
    public let outputDirectory: URL
    private let staging: URL
    private var staged: [(info: AttachmentInfo, url: URL)] = []
    private var current: FileHandle?
    private var isFinished = false

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
        try FileSystem.createFile(url, bytes: [], permissions: 0o600)
        do {
            current = try FileHandle(forWritingTo: url)
        } catch {
            throw ClientError(.io, "cannot write \(url.path): \(error.localizedDescription)")
        }
        staged.append((info, url))
    }

    public func write(_ bytes: ArraySlice<UInt8>) throws {
        do {
            try current?.write(contentsOf: bytes)
        } catch {
            throw ClientError(.io, "writing an attachment failed: \(error.localizedDescription)")
        }
    }

    public func endAttachment() throws {
        do {
            try current?.synchronize()
            try current?.close()
        } catch {
            throw ClientError(.io, "finishing an attachment failed: \(error.localizedDescription)")
        }
        current = nil
    }

    /// Moves every staged attachment to its final name and returns the final paths.
    public func commit() throws -> [URL] {
        var placed: [URL] = []
        for (info, url) in staged {
            let target = Self.freeName(for: info.name, in: outputDirectory)
            do {
                try FileManager.default.moveItem(at: url, to: target)
            } catch {
                throw ClientError(.io, "cannot save \(target.path): \(error.localizedDescription)")
            }
            placed.append(target)
        }
        try? FileManager.default.removeItem(at: staging)
        isFinished = true
        return placed
    }

    /// Deletes everything staged.
    public func abort() {
        try? current?.close()
        current = nil
        try? FileManager.default.removeItem(at: staging)
        isFinished = true
    }

    /// `name`, or "stem (N).ext" with the smallest N that is free.
    static func freeName(for name: String, in directory: URL) -> URL {
        let candidate = directory.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: candidate.path) else { return candidate }
        let ext = (name as NSString).pathExtension
        let stem = ext.isEmpty ? name : String(name.dropLast(ext.count + 1))
        var counter = 2
        while true {
            let next = directory.appendingPathComponent(ext.isEmpty ? "\(stem) (\(counter))" : "\(stem) (\(counter)).\(ext)")
            if !FileManager.default.fileExists(atPath: next.path) { return next }
            counter += 1
        }
    }
}
