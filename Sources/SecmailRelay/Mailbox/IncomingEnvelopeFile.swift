import Dispatch
import Foundation
import NIOCore
import SecmailFormat
import Synchronization

/// An envelope arriving in a deposit, hashed and written to its file behind the request. The
/// request task hashes each piece of the body as it comes (`EnvelopePayloadDigester`: the hash the
/// sender's signature covers, so that the check at deposit needs no second read of the file) and
/// gathers the pieces into 256 KiB batches, each handed to a queue that copies it into page-aligned
/// blocks written around the page cache (`AlignedBlockWriter`), while the connection's thread
/// decrypts the next ones. Three threads share the work that the connection's thread did alone
/// when it also hashed, and no page-cache page is filled: 64 MiB deposits, three interleaved pairs
/// of runs on the 2-core test machine, median 0.54–0.57 of the TLS bulk figure before, 0.62–0.66
/// after. A batch holds the pieces themselves (buffers the TLS layer filled and hands on). Neither
/// write(2) nor fsync(2) ever blocks the request task (it waits for them without holding a
/// thread). Up to `batchesInFlight` batches may wait on the queue, so that a moment's delay there
/// does not stop the connection from being read; the request body's own backpressure bounds the
/// rest.
final class IncomingEnvelopeFile: @unchecked Sendable {
    // @unchecked: `file` is used only on `writing` until `finish` has waited for it; `failure` and
    // `written` are behind their mutexes; `digester`, `batch`, `batchBytes`, `size` and `queued`
    // are touched only by the one request task that owns this object.
    let url: URL
    private let file: AlignedBlockWriter
    private let writing = DispatchQueue(label: "secmail.relay.incoming-envelope.write")
    private let failure = Mutex<(any Error)?>(nil)
    private var batch: [ByteBuffer] = []
    private var batchBytes = 0
    /// Batches handed to `writing` so far.
    private var queued = 0
    /// Batches `writing` has finished, and the request task's wait for a count of them. The
    /// writing thread resumes the task itself: waiting through a DispatchGroup's notify woke a
    /// pool thread only to resume the task on another, two hand-overs per batch (perf in 64 MiB
    /// deposits: ~190 such wakeups per deposit, most for a batch already written).
    private let written = Mutex<WriteProgress>(WriteProgress())
    static let batchSize = 256 * 1024
    /// Measured on two cores with 64 MiB deposits: with one batch at a time the connection's
    /// thread and the file's queue each waited for the other, and a sixth of the CPU sat idle.
    static let batchesInFlight = 4
    private let digester: EnvelopePayloadDigester
    /// Bytes received so far.
    private(set) var size = 0

    /// Creates `url` (0600, failing if it exists) for an envelope of the `declared` length, whose
    /// disk blocks are reserved ahead of the bytes (`PositionalFile`), written around the page
    /// cache where the filesystem allows it.
    init(url: URL, declared: Int) throws {
        self.url = url
        digester = try EnvelopePayloadDigester()
        let created = try PositionalFile(creatingAtPath: url.path, permissions: 0o600, expectedLength: UInt64(declared))
        _ = created.writeAroundPageCache()
        file = AlignedBlockWriter(file: created)
    }

    /// Hashes `piece` (of the request body) and adds it to the current batch, queueing that once
    /// full.
    func append(_ piece: ByteBuffer) async throws {
        piece.withUnsafeReadableBytes { digester.update($0) }
        size += piece.readableBytes
        batchBytes += piece.readableBytes
        batch.append(piece)
        if batchBytes >= Self.batchSize { try await queueBatch() }
    }

    /// Queues the batch for writing, first waiting for the oldest queued batch when
    /// `batchesInFlight` are queued already; throws the first write error.
    private func queueBatch() async throws {
        await waitUntilWritten(queued - Self.batchesInFlight + 1)
        try rethrowFailure()
        let pieces = batch
        batch = []
        batchBytes = 0
        queued += 1
        writing.async { [self] in
            defer { batchWritten() }
            guard failure.withLock({ $0 == nil }) else { return }
            do {
                for piece in pieces { try piece.withUnsafeReadableBytes { try file.write($0) } }
            } catch { failure.withLock { $0 = error } }
        }
    }

    /// Waits for every queued batch and syncs the file; returns the digest of the payload the
    /// signature covers (nil when the header did not parse or the payload is not all there, for
    /// the full check to report).
    func finish() async throws -> EnvelopePayloadDigester.Digest? {
        if !batch.isEmpty { try await queueBatch() }
        await waitUntilWritten(queued)
        try rethrowFailure()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            writing.async { [file] in
                continuation.resume(with: Result {
                    try file.flush()
                    try file.file.synchronize()
                })
            }
        }
        return digester.finalize()
    }

    private func rethrowFailure() throws {
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// Returns once `writing` has finished `count` batches, suspending only if it has not yet.
    private func waitUntilWritten(_ count: Int) async {
        guard count > 0, written.withLock({ $0.finished }) < count else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = written.withLock { progress in
                guard progress.finished < count else { return true }
                progress.waiter = (count, continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// On `writing`, after each batch: counts it and resumes the request task if it waits for it.
    private func batchWritten() {
        let waiter = written.withLock { progress -> CheckedContinuation<Void, Never>? in
            progress.finished += 1
            guard let waiter = progress.waiter, progress.finished >= waiter.count else { return nil }
            progress.waiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }
}

private struct WriteProgress {
    var finished = 0
    var waiter: (count: Int, continuation: CheckedContinuation<Void, Never>)?
}
