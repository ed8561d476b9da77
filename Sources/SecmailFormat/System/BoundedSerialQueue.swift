import Dispatch

/// Work done in order on a queue of its own, with at most `depth` items queued: `async` blocks its
/// caller while that many wait, so that memory stays bounded and a slow consumer (a disk, a hash
/// slower than the encryption feeding it) holds the producer back.
final class BoundedSerialQueue: @unchecked Sendable {
    // @unchecked: a DispatchQueue and a DispatchSemaphore are safe to use from any thread.
    private let queue: DispatchQueue
    private let slots: DispatchSemaphore

    init(label: String, depth: Int) {
        queue = DispatchQueue(label: label)
        slots = DispatchSemaphore(value: depth)
    }

    /// Queues `work`, first waiting while `depth` items are queued.
    func async(_ work: @escaping @Sendable () -> Void) {
        slots.wait()
        queue.async { [slots] in
            work()
            slots.signal()
        }
    }

    /// Waits until everything queued has run.
    func waitUntilEmpty() {
        queue.sync {}
    }
}
