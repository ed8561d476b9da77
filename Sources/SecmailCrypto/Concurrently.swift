import Dispatch
import Glibc

/// Runs two independent pieces of work at once and returns both results: `first` on the calling
/// thread, `second` on a thread of its own (never a pool thread that other blocked work could be
/// holding). Once both have finished, `first`'s error is rethrown, else `second`'s. Used where a
/// command waits on two things that do not depend on each other: two image encodings; the
/// hashing of a payload and a private-key operation.
public func concurrently<First, Second: Sendable>(_ first: () throws -> First,
                                                  _ second: @escaping @Sendable () throws -> Second) throws -> (First, Second) {
    let other = ResultSlot<Second>()
    detachThread {
        let result = Result { try second() }
        // Before the caller goes on (and the process perhaps ends): see `releaseThreadState`.
        OpenSSLErrorQueue.releaseThreadState()
        other.fill(result)
    }
    let firstResult = Result { try first() }
    let secondResult = other.waitForResult()
    return (try firstResult.get(), try secondResult.get())
}

/// Runs `work` on a new thread of its own, detached: it ends when `work` returns. (Foundation's
/// `Thread.detachNewThread` without Foundation: the client-side modules use FoundationEssentials
/// only, for the client's start-up cost.) Should the system refuse a thread, `work` runs on the
/// caller's.
public func detachThread(_ work: @escaping @Sendable () -> Void) {
    let context = Unmanaged.passRetained(ThreadWork(work)).toOpaque()
    var thread = pthread_t()
    let status = pthread_create(&thread, nil, { context in
        guard let context else { return nil }
        Unmanaged<ThreadWork>.fromOpaque(context).takeRetainedValue().body()
        return nil
    }, context)
    guard status == 0 else {
        Unmanaged<ThreadWork>.fromOpaque(context).takeRetainedValue().body()
        return
    }
    pthread_detach(thread)
}

private final class ThreadWork: Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
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
