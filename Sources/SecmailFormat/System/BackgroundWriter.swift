import FoundationEssentials
import Glibc
import Synchronization
import SecmailCrypto

/// Writes to a `PositionalFile` on a background queue so that encryption and hashing on the
/// caller's thread overlap with the kernel's copy into the page cache (the largest single cost
/// of sealing to a new file). At most `depth` chunks are in flight, so memory stays bounded and a
/// slow disk applies backpressure. The first write error is reported by the next `write` or by
/// `finish()`.
public final class BackgroundWriter: Sendable {
    public let file: PositionalFile
    private let queue: BoundedSerialQueue
    private let failure = Mutex<(any Error)?>(nil)

    public init(file: PositionalFile, depth: Int = 8) {
        self.file = file
        queue = BoundedSerialQueue(label: "secmail.background-writer", depth: depth)
    }

    /// Queues `bytes` for writing. Nothing is copied: the queue holds the bytes until they are
    /// written (a caller that then changes the array they came from changes its own copy).
    public func write(_ bytes: some ContiguousByteStorage & Sendable) throws {
        try write(contentsOf: CollectionOfOne(bytes))
    }

    /// Queues `pieces` for writing one after another, in one queue hop.
    public func write<Piece: ContiguousByteStorage & Sendable>(contentsOf pieces: some Collection<Piece> & Sendable) throws {
        try rethrowFailure()
        queue.async { [self] in
            guard currentFailure() == nil else { return }
            do {
                for piece in pieces { try file.write(piece) }
            } catch {
                failure.withLock { if $0 == nil { $0 = error } }
            }
        }
    }

    /// Starts a data sync of everything queued so far, once it is written, without waiting for
    /// either (`PositionalFile.syncInBackground`).
    public func syncInBackground() {
        queue.async { [file] in file.syncInBackground() }
    }

    /// Waits until everything queued is written; throws the first write error.
    public func finish() throws {
        queue.waitUntilEmpty()
        try rethrowFailure()
    }

    /// `finish()`, then fsync.
    public func synchronize() throws {
        try finish()
        try file.synchronize()
    }

    private func currentFailure() -> Error? {
        failure.withLock { $0 }
    }

    private func rethrowFailure() throws {
        if let failure = currentFailure() { throw failure }
    }
}
