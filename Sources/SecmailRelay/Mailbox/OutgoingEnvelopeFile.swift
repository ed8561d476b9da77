import Foundation
import Hummingbird
import NIOCore
import NIOPosix
import SecmailFormat

/// A stored envelope file sent as a response body: read around the page cache
/// (`PositionalFile.readAroundPageCache()`) in `chunkLength` pieces on NIO's thread pool, each
/// straight into the buffer that goes to the connection, `readsInFlight` reads under way while
/// the connection takes the chunk before. The page-cache reads this replaces (Hummingbird's
/// FileIO) cost a relay thread more CPU than the TLS layer sending the bytes for an envelope not
/// in the cache, the usual case (120 ms per 64 MiB fetch, perf). An envelope fetched right after
/// its deposit was a page-cache hit before and is a device read now (see README's figures).
struct OutgoingEnvelopeFile: Sendable {
    /// 1 MiB less a page (a multiple of the alignment direct reads need), so that with its
    /// alignment slack the buffer is exactly 1 MiB (NIO rounds a buffer up to a power of two),
    /// memory the relay's allocator keeps for reuse (`ProcessMemory.keepStreamingBuffersForReuse`).
    /// Each chunk is a task, a hop to the thread pool and back, and a wakeup of the connection's
    /// thread; on two cores shared with the client, those hand-overs cost more than the bytes:
    /// against 256 KiB chunks (four in flight), 64 MiB fetches went from medians of 0.64 and 0.67
    /// of the TLS bulk figure to 0.74 and 0.78 (two interleaved pairs of runs, 12 rounds each),
    /// the relay's CPU per fetch 50 → 40 ms and its context switches 1,000 → 350.
    static let chunkLength = (1 << 20) - PositionalFile.directIOAlignment
    /// Reads under way at once while the connection takes the chunk before. A fetch is bound by
    /// the device (perf, 64 MiB fetches on the 2-core test machine's virtual disk: its reads took
    /// 68 ms of a 78 ms fetch with one under way, each 1 MiB read 0.78 ms against 0.58 ms with
    /// the cores idle), and more requests queued keep it busier. Measured in paired rounds (one
    /// relay alternating the two settings fetch by fetch, 24 fetches a run, so that the device's
    /// drift from run to run, larger than the difference, falls on both): three against one,
    /// medians 0.765/0.650 of the TLS bulk figure (11 of 12 pairs faster); three against two,
    /// 0.76/0.715, 0.745/0.70, 0.77/0.71; four no faster than three (0.69/0.70, 0.68/0.67);
    /// three against one in blocks of four fetches, 0.69/0.63 (32 fetches).
    /// Costs 4 MiB of buffers per fetch under way instead of 2; the reads beyond the first come
    /// from the relay's `FetchReadAhead`.
    static let readsInFlight = 3
    let file: PositionalFile
    let size: Int
    let readAhead: FetchReadAhead
    let connectionLoop: any EventLoop

    /// Opens the file at `url` of `size` bytes (as the mailbox recorded it), to be sent on a
    /// connection served by `connectionLoop`.
    init(url: URL, size: Int, readAhead: FetchReadAhead, connectionLoop: any EventLoop) throws {
        file = try PositionalFile(readingAtPath: url.path)
        _ = file.readAroundPageCache()
        self.size = size
        self.readAhead = readAhead
        self.connectionLoop = connectionLoop
    }

    var body: ResponseBody {
        ResponseBody(contentLength: size) { [readAhead, connectionLoop] writer in
            let chunks = (size + Self.chunkLength - 1) / Self.chunkLength
            let extraReads = readAhead.take(upTo: min(Self.readsInFlight, chunks) - 1)
            defer { readAhead.giveBack(extraReads) }
            let readsInFlight = 1 + extraReads
            var reading: [Task<ByteBuffer, any Error>] = []
            var requested = 0
            func keepReadsUnderWay() {
                while reading.count < readsInFlight, requested < size {
                    reading.append(read(at: requested))
                    requested += Self.chunkLength
                }
            }
            do {
                keepReadsUnderWay()
                var paced = PacedBodyWriter(loop: connectionLoop)
                while !reading.isEmpty {
                    let chunk = try await reading.removeFirst().value
                    keepReadsUnderWay()
                    try await paced.write(chunk, to: &writer)
                }
            } catch {
                // Reads still under way (the client went away, say) fill their buffers all the
                // same: the budget comes back (the defer) once they are done, not while they
                // still hold them.
                for read in reading { _ = try? await read.value }
                throw error
            }
            try await writer.finish(nil)
        }
    }

    /// Starts reading the chunk at `offset`, at most what is left of `size`; fails unless all of
    /// it is there. (A short chunk would leave the client waiting for bytes the Content-Length
    /// promised; a failure closes the connection, which the client reports.)
    private func read(at offset: Int) -> Task<ByteBuffer, any Error> {
        Task { [file, size] in
            let expected = min(Self.chunkLength, size - offset)
            return try await NIOThreadPool.singleton.runIfActive {
                var buffer = ByteBufferAllocator().buffer(capacity: Self.chunkLength + PositionalFile.directIOAlignment)
                var skipped = 0
                _ = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.chunkLength + PositionalFile.directIOAlignment) { free in
                    // The buffer may have room for more than a chunk; the next read starts after this one.
                    let read = try file.readAligned(at: UInt64(offset), into: UnsafeMutableRawBufferPointer(
                        rebasing: free.prefix(Self.chunkLength + PositionalFile.directIOAlignment - 1)))
                    skipped = read.skipped
                    return read.skipped + min(read.count, expected)
                }
                buffer.moveReaderIndex(forwardBy: skipped)
                guard buffer.readableBytes == expected else {
                    throw RelayError(.storage, "the envelope file ended at \(offset + buffer.readableBytes) of its \(size) bytes")
                }
                return buffer
            }
        }
    }
}
