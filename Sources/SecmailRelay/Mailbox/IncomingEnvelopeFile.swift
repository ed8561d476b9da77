import Dispatch
import Foundation
import SecmailCrypto
import SecmailFormat

/// An envelope arriving in a deposit, written to its file behind the request: each chunk is
/// hashed on the request task while the file's own queue writes the one before, and neither
/// write(2) nor fsync(2) ever blocks the request task (it waits for them without holding a
/// thread). One chunk is written while the next is hashed; the request body's own backpressure
/// bounds the rest.
final class IncomingEnvelopeFile: @unchecked Sendable {
    // @unchecked: `file` and `failure` are touched only on `queue`; `hasher` and `size` only by
    // the one request task that owns this object.
    let url: URL
    private let file: PositionalFile
    private let queue = DispatchQueue(label: "secmail.relay.incoming-envelope")
    private let hasher: SHA256
    private var failure: Error?
    /// Bytes received so far.
    private(set) var size = 0

    /// Creates `url` (0600, failing if it exists).
    init(url: URL) throws {
        self.url = url
        file = try PositionalFile(creatingAtPath: url.path, permissions: 0o600)
        hasher = try SHA256()
    }

    /// Hashes `bytes` and queues them for writing once the previous chunk is written.
    func append(_ bytes: [UInt8]) async throws {
        size += bytes.count
        hasher.update(bytes)
        try await writesDone()
        queue.async { [self] in
            do { try file.write(bytes[...]) } catch { failure = error }
        }
    }

    /// Waits for every queued write, syncs the file, and returns the SHA-256 of its bytes.
    func finish() async throws -> [UInt8] {
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
