import Dispatch
import Foundation
import SecmailCrypto
import SecmailFormat

/// An envelope arriving in a deposit, written to its file behind the request: the body's small
/// pieces are gathered into 256 KiB batches, each batch is hashed on the request task while the
/// file's own queue writes the one before, and neither write(2) nor fsync(2) ever blocks the
/// request task (it waits for them without holding a thread). At most two batches are in memory;
/// the request body's own backpressure bounds the rest. The payload hash the sender's signature
/// covers is taken in the same pass (`EnvelopePayloadDigester`), so the signature check at deposit
/// does not read the file again.
final class IncomingEnvelopeFile: @unchecked Sendable {
    // @unchecked: `file`, `digester` and `failure` are touched only on `queue`; `hasher`, `batch`
    // and `size` only by the one request task that owns this object.
    let url: URL
    private let file: PositionalFile
    private let queue = DispatchQueue(label: "secmail.relay.incoming-envelope")
    private let hasher: SHA256
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
        hasher = try SHA256()
        digester = try EnvelopePayloadDigester()
    }

    /// Adds `bytes` (a piece of the request body) to the current batch, writing it once full.
    func append(_ bytes: some Collection<UInt8>) async throws {
        size += bytes.count
        batch.append(contentsOf: bytes)
        if batch.count >= Self.batchSize { try await writeBatch() }
    }

    /// Hashes the batch and queues it for writing once the previous one is written.
    private func writeBatch() async throws {
        let bytes = batch
        batch = []
        batch.reserveCapacity(Self.batchSize)
        hasher.update(bytes)
        try await writesDone()
        // The payload hash runs on the file's queue, beside the request task's hash of the whole.
        queue.async { [self] in
            digester.update(bytes)
            do { try file.write(bytes[...]) } catch { failure = error }
        }
    }

    /// What a finished file's bytes hash to: the whole file, and the payload the signature covers
    /// (nil when its header does not parse; the deposit's full check then says why).
    struct Hashes {
        let sha256: [UInt8]
        let payload: EnvelopePayloadDigester.Digest?
    }

    /// Waits for every queued write, syncs the file, and returns its hashes.
    func finish() async throws -> Hashes {
        if !batch.isEmpty { try await writeBatch() }
        try await writesDone()
        let payload = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<EnvelopePayloadDigester.Digest?, Error>) in
            queue.async { [self] in
                do {
                    try file.synchronize()
                    continuation.resume(returning: digester.finalize())
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
        return Hashes(sha256: hasher.finalize(), payload: payload)
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
