import Foundation

/// Writes to a `PositionalFile` on a background queue so that encryption and hashing on the
/// caller's thread overlap with the kernel's copy into the page cache (the largest single cost
/// of sealing to a new file). At most `depth` chunks are in flight, so memory stays bounded and a
/// slow disk applies backpressure. The first write error is reported by the next `write` or by
/// `finish()`.
public final class BackgroundWriter: @unchecked Sendable {
    // @unchecked: `failure` is guarded by `lock`; `file` is only written from the serial queue.
    public let file: PositionalFile
    private let queue: BoundedSerialQueue
    private let lock = NSLock()
    private var failure: Error?

    public init(file: PositionalFile, depth: Int = 8) {
        self.file = file
        queue = BoundedSerialQueue(label: "secmail.background-writer", depth: depth)
    }

    /// Queues a copy of `bytes` for writing.
    public func write(_ bytes: ArraySlice<UInt8>) throws {
        try rethrowFailure()
        let copy = Array(bytes)
        queue.async { [self] in
            guard currentFailure() == nil else { return }
            do {
                try file.write(copy[...])
            } catch {
                lock.withLock { failure = error }
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
        lock.withLock { failure }
    }

    private func rethrowFailure() throws {
        if let failure = currentFailure() { throw failure }
    }
}
