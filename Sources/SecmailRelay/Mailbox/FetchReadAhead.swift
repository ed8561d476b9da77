import Synchronization

/// The device reads that fetches keep under way beyond their first, shared by every fetch the
/// relay serves. A fetch whose client stops reading holds the chunks it read ahead until the
/// write deadline closes its connection; were every fetch to read ahead in full
/// (`OutgoingEnvelopeFile.readsInFlight`), connections made to stall on purpose could hold 4 MiB
/// each. So the reads beyond the first come from this budget, and a fetch that finds it spent reads
/// one chunk ahead: what stalled fetches hold stays at two chunks each (the one read, the one
/// being sent) plus the budget, however many connections they use.
public final class FetchReadAhead: Sendable {
    /// Chunks (`OutgoingEnvelopeFile.chunkLength`, 1 MiB) the budget holds when no fetch runs.
    public let chunks: Int
    private let available: Atomic<Int>

    /// 64 chunks: 32 fetches at once at full speed, 64 MiB at most read ahead for all of them.
    public init(chunks: Int = 64) {
        self.chunks = chunks
        available = Atomic(chunks)
    }

    /// Chunks not taken by a fetch under way.
    var unused: Int { available.load(ordering: .relaxed) }

    /// Takes up to `wanted` chunks of the budget, never waiting; returns how many it took (0 when
    /// it is spent), for `giveBack` when the fetch ends.
    func take(upTo wanted: Int) -> Int {
        var current = available.load(ordering: .relaxed)
        while true {
            let taken = min(max(wanted, 0), current)
            guard taken > 0 else { return 0 }
            let (exchanged, original) = available.compareExchange(expected: current, desired: current - taken, ordering: .relaxed)
            if exchanged { return taken }
            current = original
        }
    }

    func giveBack(_ count: Int) {
        guard count > 0 else { return }
        available.add(count, ordering: .relaxed)
    }
}
