import FoundationEssentials
import Glibc
import SecmailFormat

/// An envelope to open: a regular file as it is; a pipe, a FIFO or a terminal device
/// (`open /dev/stdin`, `open <(curl …)`) copied first into a scratch file. Opening reads an
/// envelope twice — the signature over every byte before anything is decrypted, then the
/// decryption — which a pipe cannot give. The copy holds only ciphertext. It goes in the home
/// (or the system's temporary folder when there is none yet), is removed when this object goes
/// away (the source keeps the file open, so it reads on after that) or the command is
/// interrupted, and one left by a crash is removed by the next `open`.
public final class EnvelopeInput {
    public let source: FileEnvelopeSource
    private let copy: URL?

    static let copyPrefix = "opening"

    public init(path: String, home: URL) throws {
        let url = URL(fileURLWithPath: path)
        let status: FileStatus
        do { status = try FileStatus(path: path, followingLinks: true) } catch let error as FormatError {
            throw ClientError(.io, "cannot open \(error.reason)")
        }
        switch status.kind {
        case .regular:
            source = try FileEnvelopeSource(url: url)
            copy = nil
        case .directory:
            throw ClientError(.invalidInput, "\(path) is a folder, not an envelope")
        default:
            let folder = (try? FileStatus(path: home.path, followingLinks: true))?.kind == .directory
                ? home : FileManager.default.temporaryDirectory
            TemporaryFiles.sweep(folder, prefixes: [Self.copyPrefix])
            let copy = TemporaryFiles.path(in: folder, prefix: Self.copyPrefix)
            do {
                try Self.copyEnvelope(from: url, to: copy)
                source = try FileEnvelopeSource(url: copy)
            } catch {
                TemporaryFiles.remove(copy)
                throw error
            }
            self.copy = copy
        }
    }

    deinit {
        if let copy { TemporaryFiles.remove(copy) }
    }

    /// Copies what `url` gives until its end, or until the end of the envelope its header
    /// describes: a stream that is no envelope is refused once the largest header could have been
    /// read, and one that goes on past its envelope's signature is refused there, instead of being
    /// copied to the disk without end.
    private static func copyEnvelope(from url: URL, to copy: URL) throws {
        let input: NamedFile.Stream
        do { input = try NamedFile.Stream(path: url.path) } catch {
            throw ClientError(.io, "cannot open \(url.path): \(error)")
        }
        func read(upTo count: UInt64) throws -> [UInt8] {
            do { return try input.read(upTo: Int(min(count, 1 << 20))) } catch {
                throw ClientError(.io, "cannot read \(url.path): \(error)")
            }
        }
        let file = try PositionalFile(creatingAtPath: copy.path, permissions: 0o600, scratch: true)
        var copied: UInt64 = 0
        // Once the header is read: where its payload ends (the signature's length field
        // included), then where the signature ends.
        var payloadEnd: UInt64?, envelopeEnd: UInt64?
        while copied < envelopeEnd ?? payloadEnd ?? UInt64.max {
            let piece = try read(upTo: (envelopeEnd ?? payloadEnd ?? UInt64.max) - copied)
            if piece.isEmpty { return }
            try file.write(piece[...])
            copied += UInt64(piece.count)
            if payloadEnd == nil, copied >= UInt64(EnvelopeHeader.maximumEncodedLength) {
                let header = try EnvelopeOpener.readHeader(try FileEnvelopeSource(url: copy))
                payloadEnd = UInt64(header.encoded.count) + header.ciphertextLength + 2
            }
            if let payloadEnd, envelopeEnd == nil, copied >= payloadEnd {
                var length = [UInt8](repeating: 0, count: 2)
                _ = try PositionalFile(readingAtPath: copy.path).read(at: payloadEnd - 2, into: &length, range: 0..<2)
                envelopeEnd = payloadEnd + (UInt64(length[0]) << 8 | UInt64(length[1]))
            }
        }
        if let envelopeEnd, !(try read(upTo: 1)).isEmpty {
            throw FormatError(.trailingBytes, "the envelope goes on after its signature, which ends at byte \(envelopeEnd)")
        }
    }
}
