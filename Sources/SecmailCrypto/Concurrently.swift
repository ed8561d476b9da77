import Foundation

/// Runs two independent pieces of work at once and returns both results: `first` on the calling
/// thread, `second` on a thread of its own (never a pool thread that other blocked work could be
/// holding). Once both have finished, `first`'s error is rethrown, else `second`'s. Used where a
/// command waits on two things that do not depend on each other: two image encodings; the
/// hashing of a payload and a private-key operation.
public func concurrently<First, Second: Sendable>(_ first: () throws -> First,
                                                  _ second: @escaping @Sendable () throws -> Second) throws -> (First, Second) {
    let other = ResultSlot<Second>()
    Thread.detachNewThread {
        let result = Result { try second() }
        // Before the caller goes on (and the process perhaps ends): see `releaseThreadState`.
        OpenSSLErrorQueue.releaseThreadState()
        other.fill(result)
    }
    let firstResult = Result { try first() }
    let secondResult = other.waitForResult()
    return (try firstResult.get(), try secondResult.get())
}

private final class ResultSlot<Value: Sendable>: @unchecked Sendable {
    // @unchecked: `result` is written once, before `filled` is signalled, and read only after.
    private var result: Result<Value, Error>?
    private let filled = DispatchSemaphore(value: 0)

    func fill(_ result: Result<Value, Error>) {
        self.result = result
        filled.signal()
    }

    func waitForResult() -> Result<Value, Error> {
        filled.wait()
        guard let result else { preconditionFailure("the slot was signalled before it was filled") }
        return result
    }
}
