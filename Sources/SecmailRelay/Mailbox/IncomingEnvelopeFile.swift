import Dispatch
import Foundation
import SecmailFormat

/// An envelope arriving in a deposit, written to its file behind the request: the body's pieces
/// are gathered into 256 KiB batches, and the file's own queue hashes and writes each batch while
/// the request task gathers the next, so neither write(2) nor fsync(2) ever blocks the request
/// task (it waits for them without holding a thread). At most two batches are in memory; the
/// request body's own backpressure bounds the rest. The hash is the payload's, the one the
/// sender's signature covers (`EnvelopePayloadDigester`), so the signature check at deposit does
/// not read the file again.
final class IncomingEnvelopeFile: @unchecked Sendable {
    // @unchecked: `file`, `digester` and `failure` are touched only on `queue`; `batch` and `size`
    // only by the one request task that owns this object.
    let url: URL
    private let file: PositionalFile
    private let queue = DispatchQueue(label: "secmail.relay.incoming-envelope")
    private let digester: EnvelopePayloadDigester
    private var failure: Error?
    private var batch: [UInt8] = []
    static let batchSize = 256 * 1024
    /// Bytes received so far.
    private(set) var size = 0

    /// Creates `url` (0600, failing if it exists).
    init(url: URL) throws {
        self.url = url
        file = try PositionalFile(creatingAtPath: url.path, permissions: 0o600)
        digester = try EnvelopePayloadDigester()
    }

    /// Adds `bytes` (a piece of the request body) to the current batch, writing it once full.
    func append(_ bytes: some Collection<UInt8>) async throws {
        size += bytes.count
        batch.append(contentsOf: bytes)
        if batch.count >= Self.batchSize { try await writeBatch() }
    }

    /// Queues the batch for hashing and writing once the previous one is written.
    private func writeBatch() async throws {
        let bytes = batch
        batch = []
        batch.reserveCapacity(Self.batchSize)
        try await writesDone()
        queue.async { [self] in
            digester.update(bytes)
            do { try file.write(bytes[...]) } catch { failure = error }
        }
    }

    /// Waits for every queued write, syncs the file, and returns the hash of the payload the
    /// signature covers (nil when the header does not parse; the deposit's full check then says why).
    func finish() async throws -> EnvelopePayloadDigester.Digest? {
        if !batch.isEmpty { try await writeBatch() }
        try await writesDone()
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<EnvelopePayloadDigester.Digest?, Error>) in
            queue.async { [self] in
                do {
                    try file.synchronize()
                    continuation.resume(returning: digester.finalize())
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Suspends until every write queued so far has run; throws the first write error.
    private func writesDone() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            queue.async { [self] in
                if let failure { continuation.resume(throwing: failure) } else { continuation.resume() }
            }
        }
    }
}
