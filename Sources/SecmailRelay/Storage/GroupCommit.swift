/// Group commit: work submitted while a commit is under way waits for it to end and then shares
/// the next one, so a burst of N writes pays one WAL commit (fsync) instead of N, and an idle
/// relay commits a lone write at once. `commitBatch` writes a batch in one transaction and gives
/// each item its own outcome (one savepoint per item, so one refused item does not hold back
/// the others); every submitter is answered only after that transaction has committed.
actor GroupCommit<Work: Sendable, Output: Sendable> {
    typealias Batch = @Sendable ([Work]) async -> [Result<Output, Error>]

    private let commitBatch: Batch
    private var waiting: [(work: Work, continuation: CheckedContinuation<Output, Error>)] = []
    private var isCommitting = false
    /// How many items each recent commit carried (the last 1,000), for tests and diagnostics.
    private(set) var recentGroupSizes: [Int] = []
    /// Items waiting for the commit under way to end.
    var waitingCount: Int { waiting.count }

    init(_ commitBatch: @escaping Batch) {
        self.commitBatch = commitBatch
    }

    /// Commits `work` with whatever else is waiting; returns its output once durable, or throws
    /// why it was refused.
    func submit(_ work: Work) async throws -> Output {
        try await withCheckedThrowingContinuation { continuation in
            waiting.append((work, continuation))
            if !isCommitting {
                isCommitting = true
                Task { await drain() }
            }
        }
    }

    private func drain() async {
        while !waiting.isEmpty {
            let batch = waiting
            waiting = []
            recentGroupSizes.append(batch.count)
            if recentGroupSizes.count > 1000 { recentGroupSizes.removeFirst(recentGroupSizes.count - 1000) }
            let outcomes = await commitBatch(batch.map(\.work))
            for (waiter, outcome) in zip(batch, outcomes) { waiter.continuation.resume(with: outcome) }
        }
        isCommitting = false
    }
}
