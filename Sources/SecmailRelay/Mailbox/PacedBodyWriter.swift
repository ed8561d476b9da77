import Hummingbird
import NIOCore
import Synchronization

/// Writes a streamed response body in step with its connection's event loop. A write is queued
/// on the loop, and the writer counts the connection writable until the loop has run the write
/// and found the socket full: a body that writes on before the loop ran its last write can hand
/// over all of it first. Seen in the full test run, the loop busy with other connections: a
/// fetch queued a whole 10 MiB envelope for a client that had stopped reading in 14 ms, held in
/// the connection's buffers instead of the two chunks `FetchReadAhead` counts on. So each write
/// after the first waits until the loop has run the one before; it looks at a flag the loop sets
/// first, since waiting on the loop's future costs a hop to the loop and back even once it ran.
/// In paired rounds (one relay alternating paced and unpaced 64 MiB fetches, 8 pairs each):
/// waiting on the future after every write, medians 0.63 against 0.66 of the TLS bulk figure
/// and ~100 more context switches per fetch; with the flag, 0.67 against 0.625 (4 of 8 pairs
/// faster) and ~70 more, within the runs' noise.
struct PacedBodyWriter {
    private let loop: any EventLoop
    private var lastWrite: (ran: LoopReached, future: EventLoopFuture<Void>)?

    init(loop: any EventLoop) {
        self.loop = loop
    }

    /// Waits until the loop has run the previous write, then writes `chunk` to `writer`.
    mutating func write(_ chunk: ByteBuffer, to writer: inout any ResponseBodyWriter) async throws {
        if let lastWrite, !lastWrite.ran.flag.load(ordering: .acquiring) {
            try await lastWrite.future.get()
        }
        try await writer.write(chunk)
        let ran = LoopReached()
        lastWrite = (ran, loop.submit { ran.flag.store(true, ordering: .releasing) })
    }
}

/// Set on the loop once it has run what was queued on it before.
private final class LoopReached: Sendable {
    let flag = Atomic<Bool>(false)
}
