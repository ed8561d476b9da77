import Foundation

/// Values that never go stale, kept in memory, at most `capacity` of them. When full it starts
/// again empty: the hot entries come back first, and nothing is spent tracking which are hot.
final class BoundedCache<Key: Hashable & Sendable, Value: Sendable>: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var entries: [Key: Value] = [:]
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    subscript(key: Key) -> Value? {
        lock.withLock { entries[key] }
    }

    func keep(_ value: Value, for key: Key) {
        lock.withLock {
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = value
        }
    }
}
