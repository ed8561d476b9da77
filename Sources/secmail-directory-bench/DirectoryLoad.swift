import Foundation
import SecmailAPI
import SecmailClient
import SecmailFormat

/// Registers `registrations` new identities (8 clients at a time), then looks up random
/// registered names with `clients` concurrent clients for `seconds`, verifying every answer as
/// `secmail lookup` does; the lookups run once per connection mode.
func load(url: URL, caFile: String, registrations: Int, clients: Int, seconds: Double) async throws {
    let relay = try RelayAddress(url: url, caFile: caFile)
    let setup = Lane(relay, mode: .keptAlive)
    let keyAnswer = try await setup.expect(200, RelayRequest(.GET, Endpoint.logKey.path()))
    let verifier = try NoteVerifier(verifierKey: String(decoding: keyAnswer.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    await setup.close()

    let bundles = try makeBundles(count: registrations, prefix: "bench\(UInt32.random(in: 0...UInt32.max))")
    let registered = Tally()
    let registrationStart = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for worker in 0..<8 {
            group.addTask {
                // A registration is one request from one client: a new connection each, as
                // `secmail register` makes one connection for its whole run.
                let lane = Lane(relay, mode: .newConnection)
                for index in stride(from: worker, to: bundles.count, by: 8) {
                    let t = ContinuousClock.now
                    do {
                        _ = try await lane.expect(201, try RelayRequest(.POST, Endpoint.register.path(),
                                                                       json: BundleRequest(bundle: Data(bundles[index].encoded).base64EncodedString())))
                        await registered.record(elapsed(since: t))
                    } catch {
                        await registered.fail(error)
                    }
                }
            }
        }
        try await group.waitForAll()
    }
    let registrationSeconds = elapsed(since: registrationStart)
    let registrationLatencies = await registered.latencies.sorted()
    report(String(format: "registrations count=%d failures=%d seconds=%.2f per_second=%.1f latency_ms_p50=%.1f latency_ms_p99=%.1f",
                 registrationLatencies.count, await registered.failures, registrationSeconds,
                 Double(registrationLatencies.count) / registrationSeconds,
                 percentile(registrationLatencies, 0.5) * 1000, percentile(registrationLatencies, 0.99) * 1000))
    if let first = await registered.firstFailure { fail("registration failed: \(first)") }

    let names = bundles.map(\.name)
    for mode in ConnectionMode.allCases {
        try await timedLookups(relay: relay, mode: mode, names: names, verifier: verifier, clients: clients, seconds: seconds)
    }
}

/// `clients` concurrent clients look up random names for `seconds`, verifying every answer.
func timedLookups(relay: RelayAddress, mode: ConnectionMode, names: [IdentityName], verifier: NoteVerifier,
                  clients: Int, seconds: Double) async throws {
    let run = try await runLanes(relay: relay, mode: mode, clients: clients, seconds: seconds) { lane in
        guard let name = names.randomElement() else { return false }
        let answer = try await lane.expect(200, RelayRequest(.GET, Endpoint.lookup.path(name.value)))
        let verified = try DirectoryVerification.verifyLookup(answer.body, name: name, logVerifier: verifier)
        guard verified.bundle.name == name else { throw BenchFailure("wrong bundle for \(name)") }
        return true
    }
    let latencies = run.latencies.sorted()
    report(String(format: "lookups mode=%@ clients=%d count=%d failures=%d seconds=%.2f per_second=%.1f latency_ms_p50=%.1f latency_ms_p99=%.1f",
                 mode.rawValue, clients, latencies.count, run.failures, run.seconds, Double(latencies.count) / run.seconds,
                 percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000))
    if let first = run.firstFailure { fail("lookup failed: \(first)") }
}
