import FoundationEssentials
import Glibc

/// Random-access input for opening an envelope in two passes (verify, then decrypt).
public protocol EnvelopeSource {
    /// Total length in bytes.
    var byteCount: UInt64 { get }
    /// Reads into `buffer[range]` starting at `offset`; fewer bytes only at the end of the input.
    /// Returns how many bytes were read.
    func read(at offset: UInt64, into buffer: inout [UInt8], range: Range<Int>) throws -> Int
}

extension EnvelopeSource {
    /// Up to `count` bytes starting at `offset`, as a new array (for small reads).
    public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let got = try read(at: offset, into: &buffer, range: 0..<count)
        buffer.removeSubrange(got...)
        return buffer
    }
}

/// Sequential output for a sealed envelope.
public protocol ByteSink {
    func write(_ bytes: ArraySlice<UInt8>) throws
    /// Called once after the last write: everything must be written (not necessarily synced).
    func finish() throws
    /// Called once the payload is written and before the signature is made, which may wait for
    /// the key agent: a sink bound for disk can start writing meanwhile.
    func payloadWritten()
}

extension ByteSink {
    func write(_ bytes: [UInt8]) throws {
        try write(bytes[...])
    }

    public func finish() throws {}
    public func payloadWritten() {}
}

/// An envelope held in memory.
public struct MemoryEnvelopeSource: EnvelopeSource {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var byteCount: UInt64 { UInt64(bytes.count) }
    public func read(at offset: UInt64, into buffer: inout [UInt8], range: Range<Int>) throws -> Int {
        let start = Int(min(offset, byteCount))
        let count = min(range.count, bytes.count - start)
        buffer.replaceSubrange(range.lowerBound..<range.lowerBound + count, with: bytes[start..<start + count])
        return count
    }
}

/// Collects output in memory.
public final class MemorySink: ByteSink {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public func write(_ bytes: ArraySlice<UInt8>) throws { self.bytes.append(contentsOf: bytes) }
}

/// Reads an envelope file with positional reads.
public final class FileEnvelopeSource: EnvelopeSource {
    private let file: PositionalFile
    public let byteCount: UInt64

    public init(url: URL) throws {
        file = try PositionalFile(readingAtPath: url.path)
        byteCount = try file.size()
    }

    public func read(at offset: UInt64, into buffer: inout [UInt8], range: Range<Int>) throws -> Int {
        try file.read(at: offset, into: &buffer, range: range)
    }
}

/// Writes to standard output (`secmail seal -o -`), as it comes: a pipe has nothing to sync, and
/// a reader that stopped or a full disk stops the sealing at the next write.
public final class StandardOutputSink: ByteSink {
    public init() {}

    public func write(_ bytes: ArraySlice<UInt8>) throws {
        StandardStreams.writeOutput(bytes)
        if let failure = StandardStreams.outputFailure {
            throw FormatError(.io, "cannot write to standard output: \(failure)")
        }
    }
}

/// Writes to a file created for the purpose, behind a `BackgroundWriter`.
public final class FileSink: ByteSink {
    public let writer: BackgroundWriter
    public init(file: PositionalFile) { writer = BackgroundWriter(file: file) }
    public func write(_ bytes: ArraySlice<UInt8>) throws { try writer.write(bytes) }
    public func finish() throws { try writer.finish() }
    /// The payload's data sync runs while the signature is made, so that the fsync after it
    /// waits for little more than the signature.
    public func payloadWritten() { writer.syncInBackground() }
    /// Waits for every write, then fsyncs.
    public func synchronize() throws { try writer.synchronize() }
}
