import Dispatch
import Foundation
import SecmailCrypto
import SecmailFormat

/// An envelope arriving in a deposit, written to its file behind the request: the body's small
/// pieces are gathered into 256 KiB batches, each batch is hashed on the request task while the
/// file's own queue writes the one before, and neither write(2) nor fsync(2) ever blocks the
/// request task (it waits for them without holding a thread). At most two batches are in memory;
/// the request body's own backpressure bounds the rest.
final class IncomingEnvelopeFile: @unchecked Sendable {
    // @unchecked: `file` and `failure` are touched only on `queue`; `hasher`, `batch` and `size`
    // only by the one request task that owns this object.
    let url: URL
    private let file: PositionalFile
    private let queue = DispatchQueue(label: "secmail.relay.incoming-envelope")
    private let hasher: SHA256
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
        queue.async { [self] in
            do { try file.write(bytes[...]) } catch { failure = error }
        }
    }

    /// Waits for every queued write, syncs the file, and returns the SHA-256 of its bytes.
    func finish() async throws -> [UInt8] {
        if !batch.isEmpty { try await writeBatch() }
        try await writesDone()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            queue.async { [self] in
                do {
                    try file.synchronize()
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
        return hasher.finalize()
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
