import Foundation

/// Runs two independent pieces of work at once (one each on two cores) and returns both
/// results; the first error either throws is rethrown once both have finished.
func concurrently<First: Sendable, Second: Sendable>(_ first: @Sendable () throws -> First,
                                                     _ second: @Sendable () throws -> Second) throws -> (First, Second) {
    let results = PairBox<First, Second>()
    DispatchQueue.concurrentPerform(iterations: 2) { index in
        if index == 0 {
            results.setFirst(Result { try first() })
        } else {
            results.setSecond(Result { try second() })
        }
    }
    return try results.values()
}

private final class PairBox<First: Sendable, Second: Sendable>: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var first: Result<First, Error>?
    private var second: Result<Second, Error>?

    func setFirst(_ result: Result<First, Error>) { lock.withLock { first = result } }
    func setSecond(_ result: Result<Second, Error>) { lock.withLock { second = result } }

    func values() throws -> (First, Second) {
        let (first, second) = lock.withLock { (self.first, self.second) }
        guard let first, let second else { preconditionFailure("concurrentPerform returned before both ran") }
        return (try first.get(), try second.get())
    }
}
