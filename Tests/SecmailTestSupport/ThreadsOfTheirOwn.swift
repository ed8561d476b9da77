import Foundation
import Testing

/// Runs each test of a suite on threads of its own instead of the test process's cooperative
/// threads, for suites whose tests block their thread for seconds (image codecs, scrypt and RSA
/// key generation, waiting for child processes).
///
/// A test process has as many cooperative threads as cores (two on the test machine), and a
/// synchronous test occupies one for as long as it runs. Every async test and every in-process
/// relay's request handler waits behind them: in a full parallel run a task waited 38 s to start,
/// and a probe hopping onto the pool every 100 ms waited up to 91 s, enough to put requests past
/// the relays' timeouts.
public struct ThreadsOfTheirOwnTrait: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
        test.isSuite ? nil : self
    }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        try await withTaskExecutorPreference(ThreadPerJobExecutor.shared) { try await function() }
    }
}

extension Trait where Self == ThreadsOfTheirOwnTrait {
    /// See `ThreadsOfTheirOwnTrait`.
    public static var threadsOfTheirOwn: Self { Self() }
}

/// Runs every job it is given on a new thread: a job that blocks holds only its own thread.
private final class ThreadPerJobExecutor: TaskExecutor {
    static let shared = ThreadPerJobExecutor()

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        Thread.detachNewThread { job.runSynchronously(on: executor) }
    }
}
