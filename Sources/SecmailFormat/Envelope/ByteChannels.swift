import Foundation

/// Random-access input for opening an envelope in two passes (verify, then decrypt).
public protocol EnvelopeSource {
    /// Total length in bytes.
    var byteCount: UInt64 { get }
    /// Up to `count` bytes starting at `offset`; fewer only at the end of the input.
    func read(at offset: UInt64, count: Int) throws -> [UInt8]
}

/// Sequential output for a sealed envelope.
public protocol ByteSink {
    func write(_ bytes: [UInt8]) throws
}

/// An envelope held in memory.
public struct MemoryEnvelopeSource: EnvelopeSource {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var byteCount: UInt64 { UInt64(bytes.count) }
    public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        let start = Int(min(offset, byteCount))
        let end = min(start + count, bytes.count)
        return Array(bytes[start..<end])
    }
}

/// Collects output in memory.
public final class MemorySink: ByteSink {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public func write(_ bytes: [UInt8]) throws { self.bytes.append(contentsOf: bytes) }
}

/// Reads an envelope file with positional reads.
public final class FileEnvelopeSource: EnvelopeSource {
    private let handle: FileHandle
    public let byteCount: UInt64

    public init(url: URL) throws {
        do {
            handle = try FileHandle(forReadingFrom: url)
            byteCount = try handle.seekToEnd()
        } catch {
            throw FormatError(.io, "cannot read \(url.path): \(error.localizedDescription)")
        }
    }

    deinit {
        try? handle.close()
    }

    public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        do {
            try handle.seek(toOffset: offset)
            var result: [UInt8] = []
            result.reserveCapacity(count)
            // read(upToCount:) may return less than asked before the end of a file on some systems.
            while result.count < count, let data = try handle.read(upToCount: count - result.count), !data.isEmpty {
                result.append(contentsOf: data)
            }
            return result
        } catch {
            throw FormatError(.io, "reading the envelope failed: \(error.localizedDescription)")
        }
    }
}

/// Writes to an open file handle.
public final class FileSink: ByteSink {
    private let handle: FileHandle
    public init(handle: FileHandle) { self.handle = handle }
    public func write(_ bytes: [UInt8]) throws {
        do {
            try handle.write(contentsOf: bytes)
        } catch {
            throw FormatError(.io, "writing failed: \(error.localizedDescription)")
        }
    }
}
