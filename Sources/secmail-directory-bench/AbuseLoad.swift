import Foundation
import NIOCore
import SecmailAPI
import SecmailClient
import SecmailCrypto
import SecmailFormat

/// The honest side of scripts/bench-abuse.sh. Registers `clients` honest users and one attacker
/// account (against a relay started for the setup), writes what the attacker process needs to
/// `folder`, then waits for a line on standard input before each timed phase (the script restarts
/// the relay with its default limits, and starts the attacker before the second phase). In each
/// phase `clients` honest clients alternate a lookup of another honest user and a 1 KiB deposit
/// to one, each over a new TLS connection as a command makes it, 100 ms apart, for `seconds`.
/// Each connects from an address of its own (127.0.1.1, 127.0.1.2, …), as people do; the attacker
/// uses 127.0.0.2 to 127.0.0.42.
func abuseLoad(url: URL, caFile: String, folder: URL, clients: Int, seconds: Double) async throws {
    let relay = try RelayAddress(url: url, caFile: caFile)
    let setup = Lane(relay, mode: .keptAlive)
    let keyAnswer = try await setup.expect(200, RelayRequest(.GET, Endpoint.logKey.path()))
    let origin = try NoteVerifier(verifierKey: String(decoding: keyAnswer.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)).name
    guard let pin = keyAnswer.relayKeyPin else { throw BenchFailure("the relay's TLS key could not be read") }
    let users = try await registerMailUsers(count: clients + 1, lane: setup, origin: origin, relayKeyPin: pin)
    await setup.close()
    let honest = Array(users.dropLast()), attacker = users[users.count - 1]

    // For the attacker: its token, a victim, and 1,000 registration bodies (one key pair, new
    // names): the relay should refuse them by its limits, or for the shared key.
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try Data(attacker.token.utf8).write(to: folder.appendingPathComponent("attacker-token"))
    try Data(honest[0].identity.bundle.name.value.utf8).write(to: folder.appendingPathComponent("victim"))
    let bundles = try makeBundles(count: 1000, prefix: "spam\(UInt32.random(in: 0...UInt32.max))")
    let lines = try bundles.map { bundle in
        String(decoding: try JSONEncoder().encode(BundleRequest(bundle: Data(bundle.encoded).base64EncodedString())), as: UTF8.self)
    }
    try Data(lines.joined(separator: "\n").utf8).write(to: folder.appendingPathComponent("registrations.jsonl"))

    // Enough sealed messages for both phases (about 100 deposits a second at most on 2 cores).
    let pool = EnvelopePool(sealMessages(count: Int(seconds * 400), users: honest))
    report("abuse_setup users=\(honest.count) attacker=\(attacker.identity.bundle.name.value)")
    for phase in ["unloaded", "under_attack"] {
        report("ready \(phase)")
        fflush(nil)
        guard readLine() != nil else { throw BenchFailure("standard input closed before the \(phase) phase") }
        let counter = Counter()
        let sources = try (1...honest.count).map { try SocketAddress(ipAddress: "127.0.1.\($0)", port: 0) }
        let run = try await runLanes(relay: relay, mode: .newConnection, clients: honest.count, seconds: seconds, pause: .milliseconds(100),
                                     sources: sources) { lane in
            let turn = counter.next()
            if turn % 2 == 0 {
                let name = honest[turn / 2 % honest.count].identity.bundle.name.value
                let answer = try await lane.expect(200, RelayRequest(.GET, Endpoint.lookup.path(name)))
                _ = try JSONDecoder().decode(LookupResponse.self, from: Data(answer.body))
            } else {
                guard let item = pool.take() else { return false }
                try await deposit(item, users: honest, lane: lane)
            }
            return true
        }
        let latencies = run.latencies.sorted()
        let total = latencies.count + run.failures
        report(String(format: "honest phase=%@ clients=%d operations=%d failures=%d success_percent=%.2f per_second=%.1f latency_ms_p50=%.1f latency_ms_p99=%.1f latency_ms_max=%.1f ran_dry=%@",
                     phase, honest.count, total, run.failures, total > 0 ? 100 * Double(latencies.count) / Double(total) : 0,
                     Double(latencies.count) / run.seconds, percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000,
                     (latencies.last ?? 0) * 1000, run.ranDry ? "yes" : "no"))
        if let first = run.firstFailure { report("honest_first_failure phase=\(phase) \(first)") }
        fflush(nil)
    }
}

/// A shared turn counter: even turns look up, odd turns deposit.
final class Counter: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var value = 0

    func next() -> Int {
        lock.withLock {
            defer { value += 1 }
            return value
        }
    }
}
