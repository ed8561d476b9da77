// Release-mode benchmark of the key directory (issue 4), driven by scripts/bench-directory.sh.
//
//   secmail-directory-bench build-log DB LEAVES
//       Appends LEAVES log leaves to the relay database DB through LogStore, as registrations
//       do, then times inclusion and consistency proofs at the full size (the script measures the
//       database's size once this process has closed it).
//   secmail-directory-bench load URL CA REGISTRATIONS CLIENTS SECONDS
//       Against a running `secmail relay`: registers REGISTRATIONS new identities over HTTPS
//       (8 at a time), then runs CLIENTS concurrent clients for SECONDS, each looking up random
//       registered names and verifying every answer as `secmail lookup` does.
//
// Output: one `key=value ...` line per measurement.
import Foundation
import NIOCore
import NIOPosix
import SecmailClient
import SecmailCrypto
import SecmailFormat
import SecmailRelay
import SecmailTLS

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("secmail-directory-bench: \(message)\n".utf8))
    exit(1)
}

func elapsed(since start: ContinuousClock.Instant) -> Double {
    let duration = ContinuousClock.now - start
    return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// Real bundles for `count` names. RSA-3072 signing is the cost (about 2 ms a bundle), so a few
/// key pairs are shared among the names; the relay checks each bundle's self-signature, not
/// that keys are unique.
func makeBundles(count: Int, prefix: String) throws -> [IdentityBundle] {
    let pairs = try (0..<4).map { _ in (try RSAPrivateKey.generate(bitCount: 3072), try RSAPrivateKey.generate(bitCount: 3072)) }
    let results = BundleSlots(count: count)
    DispatchQueue.concurrentPerform(iterations: count) { index in
        let (signing, encryption) = pairs[index % pairs.count]
        results.set(index, try? IdentityBundle.create(
            name: IdentityName("\(prefix)-\(index)"), createdAt: Int64(Date().timeIntervalSince1970),
            signingKey: signing, encryptionKey: encryption.publicKey))
    }
    return try results.all()
}

/// Bundles created in parallel, each into its own slot.
final class BundleSlots: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var slots: [IdentityBundle?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ bundle: IdentityBundle?) { lock.withLock { slots[index] = bundle } }

    func all() throws -> [IdentityBundle] {
        try lock.withLock {
            try slots.map { bundle in
                guard let bundle else { throw FormatError(.invalidField, "a benchmark bundle could not be created") }
                return bundle
            }
        }
    }
}

func buildLog(databasePath: String, leaves: Int) throws {
    let database = try RelayDatabase(path: databasePath)
    let log = LogStore(database: database)
    // Real leaves: DirectoryEntry encodings of real bundles (64 distinct ones, each logged at
    // many times), so leaf sizes and hashing are those of real registrations.
    let bundles = try makeBundles(count: 64, prefix: "log-bench")
    let start = ContinuousClock.now
    var appended = try log.size()
    let target = appended + UInt64(leaves)
    while appended < target {
        let batch = min(1000, target - appended)
        try database.write { db in
            for offset in 0..<batch {
                let index = appended + offset
                let entry = try DirectoryEntry(kind: .registration, time: Int64(index), bundle: bundles[Int(index % 64)])
                _ = try LogStore.append(entry.encoded, time: Int64(index), in: db)
            }
        }
        appended += batch
    }
    let buildSeconds = elapsed(since: start)
    let size = try log.size()
    print(String(format: "log_build leaves=%d seconds=%.2f appends_per_second=%.0f", leaves, buildSeconds, Double(leaves) / buildSeconds))

    var generator = SystemRandomNumberGenerator()
    let samples = 2000
    var inclusion: [Double] = []
    for _ in 0..<samples {
        let index = UInt64.random(in: 0..<size, using: &generator)
        let t = ContinuousClock.now
        _ = try log.inclusionProof(index: index, size: size)
        inclusion.append(elapsed(since: t) * 1e6)
    }
    var consistency: [Double] = []
    for _ in 0..<samples {
        let old = UInt64.random(in: 1...size, using: &generator)
        let t = ContinuousClock.now
        _ = try log.consistencyProof(from: old, to: size)
        consistency.append(elapsed(since: t) * 1e6)
    }
    let rootStart = ContinuousClock.now
    for _ in 0..<samples { _ = try log.root() }
    let rootMicros = elapsed(since: rootStart) * 1e6 / Double(samples)
    inclusion.sort()
    consistency.sort()
    print(String(format: "log_proofs size=%llu inclusion_us_p50=%.0f inclusion_us_p99=%.0f consistency_us_p50=%.0f consistency_us_p99=%.0f root_us=%.0f",
                 size, percentile(inclusion, 0.5), percentile(inclusion, 0.99), percentile(consistency, 0.5), percentile(consistency, 0.99), rootMicros))
}

/// Counts finished operations and their latencies across tasks.
actor Tally {
    var latencies: [Double] = []
    var failures = 0
    var firstFailure: String?

    func record(_ seconds: Double) { latencies.append(seconds) }

    func fail(_ error: Error) {
        failures += 1
        if firstFailure == nil { firstFailure = String(describing: error) }
    }
}

func load(url: URL, caFile: String, registrations: Int, clients: Int, seconds: Double) async throws {
    let connection = try RelayConnection(url: url, trust: .certificateAuthorities(file: caFile))
    let keyAnswer = try await connection.send(.GET, "/v1/log/key")
    guard keyAnswer.status == 200 else { fail("GET /v1/log/key answered \(keyAnswer.status)") }
    let verifier = try NoteVerifier(verifierKey: String(decoding: keyAnswer.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))

    let prefix = "bench\(UInt32.random(in: 0...UInt32.max))"
    let bundles = try makeBundles(count: registrations, prefix: prefix)
    let registered = Tally()
    let registrationStart = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for worker in 0..<8 {
            group.addTask {
                for index in stride(from: worker, to: bundles.count, by: 8) {
                    let body = try JSONSerialization.data(withJSONObject: ["bundle": Data(bundles[index].encoded).base64EncodedString()])
                    let t = ContinuousClock.now
                    do {
                        let answer = try await connection.send(.POST, "/v1/directory/register", json: body)
                        guard answer.status == 201 else { throw ClientError(.relayRefused, "register answered \(answer.status)") }
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
    let registrationFailures = await registered.failures
    print(String(format: "registrations count=%d failures=%d seconds=%.2f per_second=%.1f latency_ms_p50=%.1f latency_ms_p99=%.1f",
                 registrationLatencies.count, registrationFailures, registrationSeconds,
                 Double(registrationLatencies.count) / registrationSeconds,
                 percentile(registrationLatencies, 0.5) * 1000, percentile(registrationLatencies, 0.99) * 1000))
    if let first = await registered.firstFailure { fail("registration failed: \(first)") }

    let names = bundles.map(\.name)
    let lookups = Tally()
    let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
    let lookupStart = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<clients {
            group.addTask {
                while ContinuousClock.now < deadline {
                    let name = names.randomElement()!
                    let t = ContinuousClock.now
                    do {
                        let answer = try await connection.send(.GET, "/v1/directory/\(name.value)")
                        guard answer.status == 200 else { throw ClientError(.relayRefused, "lookup answered \(answer.status)") }
                        let verified = try DirectoryVerification.verifyLookup(answer.body, name: name, logVerifier: verifier)
                        guard verified.bundle.name == name else { throw ClientError(.verificationFailed, "wrong bundle") }
                        await lookups.record(elapsed(since: t))
                    } catch {
                        await lookups.fail(error)
                    }
                }
            }
        }
        try await group.waitForAll()
    }
    let lookupSeconds = elapsed(since: lookupStart)
    let lookupLatencies = await lookups.latencies.sorted()
    let lookupFailures = await lookups.failures
    print(String(format: "lookups clients=%d count=%d failures=%d seconds=%.2f per_second=%.1f latency_ms_p50=%.1f latency_ms_p99=%.1f",
                 clients, lookupLatencies.count, lookupFailures, lookupSeconds, Double(lookupLatencies.count) / lookupSeconds,
                 percentile(lookupLatencies, 0.5) * 1000, percentile(lookupLatencies, 0.99) * 1000))
    if let first = await lookups.firstFailure { fail("lookup failed: \(first)") }
}

let arguments = CommandLine.arguments
do {
    switch arguments.dropFirst().first {
    case "build-log" where arguments.count == 4:
        guard let leaves = Int(arguments[3]), leaves > 0 else { fail("LEAVES is a positive number") }
        try buildLog(databasePath: arguments[2], leaves: leaves)
    case "load" where arguments.count == 7:
        guard let url = URL(string: arguments[2]), let registrations = Int(arguments[4]), let clients = Int(arguments[5]),
              let seconds = Double(arguments[6]), registrations > 0, clients > 0, seconds > 0 else {
            fail("usage: load URL CA REGISTRATIONS CLIENTS SECONDS")
        }
        try await load(url: url, caFile: arguments[3], registrations: registrations, clients: clients, seconds: seconds)
    default:
        fail("usage: secmail-directory-bench build-log DB LEAVES | load URL CA REGISTRATIONS CLIENTS SECONDS")
    }
} catch {
    fail("\(error)")
}
