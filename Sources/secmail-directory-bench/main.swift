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
//   secmail-directory-bench mail URL CA SENDERS SECONDS BIG_MIB RELAY_PID
//       Against a running `secmail relay`: SENDERS registered users deposit pre-sealed 1 KiB
//       messages to each other for SECONDS (messages per second, latency; a pool of sealed
//       messages that runs dry early is resized and the run repeated), then 400 more under strace
//       (syncs per deposit), then one envelope with a BIG_MIB attachment is deposited and fetched
//       three times (MB/s); the relay's peak RSS (VmHWM of RELAY_PID) is read after each phase.
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

/// The relay's peak resident set so far, in MiB (Linux /proc).
func peakRSS(pid: Int32) -> Double {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kib = Double(line.split(separator: " ").dropFirst().first ?? "") else { return -1 }
    return kib / 1024
}

/// A registered benchmark user with a bearer token.
struct MailUser: Sendable {
    let identity: SenderIdentity
    let token: String
}

func registerMailUsers(count: Int, connection: RelayConnection, origin: String) async throws -> [MailUser] {
    let pairs = try (0..<2).map { _ in (try RSAPrivateKey.generate(bitCount: 3072), try RSAPrivateKey.generate(bitCount: 3072)) }
    let prefix = "mail\(UInt32.random(in: 0...UInt32.max))"
    var users: [MailUser] = []
    for index in 0..<count {
        let (signing, encryption) = pairs[index % 2]
        let bundle = try IdentityBundle.create(name: IdentityName("\(prefix)-\(index)"), createdAt: Int64(Date().timeIntervalSince1970),
                                               signingKey: signing, encryptionKey: encryption.publicKey)
        let identity = try SenderIdentity(bundle: bundle, signingKey: signing)
        let registration = try JSONSerialization.data(withJSONObject: ["bundle": Data(bundle.encoded).base64EncodedString()])
        guard try await connection.send(.POST, "/v1/directory/register", json: registration).status == 201 else { fail("registration failed") }
        let challenge = try await connection.send(.POST, "/v1/auth/challenge", json: try JSONSerialization.data(withJSONObject: ["name": bundle.name.value]))
        guard let object = try JSONSerialization.jsonObject(with: Data(challenge.body)) as? [String: Any],
              let nonce = (object["nonce"] as? String).flatMap({ Data(base64Encoded: $0) }) else { fail("challenge failed") }
        let signature = try signing.signature(for: AuthChallenge.signedMessage(origin: origin, name: bundle.name, nonce: Array(nonce)))
        let answer = try await connection.send(.POST, "/v1/auth/token", json: try JSONSerialization.data(withJSONObject: [
            "name": bundle.name.value, "nonce": nonce.base64EncodedString(), "signature": Data(signature).base64EncodedString()]))
        guard let tokenObject = try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any],
              let token = tokenObject["token"] as? String else { fail("token failed") }
        users.append(MailUser(identity: identity, token: token))
    }
    return users
}

final class EnvelopePool: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var items: [(sender: Int, recipient: Int, bytes: Data)]
    private var next = 0

    init(_ items: [(sender: Int, recipient: Int, bytes: Data)]) { self.items = items }

    func take() -> (sender: Int, recipient: Int, bytes: Data)? {
        lock.withLock {
            guard next < items.count else { return nil }
            defer { next += 1 }
            return items[next]
        }
    }
}

func mailLoad(url: URL, caFile: String, senders: Int, seconds: Double, bigMiB: Int, relayPID: Int32) async throws {
    let connection = try RelayConnection(url: url, trust: .certificateAuthorities(file: caFile))
    let key = String(decoding: try await connection.send(.GET, "/v1/log/key").body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    let origin = try NoteVerifier(verifierKey: key).name
    let users = try await registerMailUsers(count: senders, connection: connection, origin: origin)
    print(String(format: "relay_peak_rss_mib after_setup=%.1f", peakRSS(pid: relayPID)))

    // Pre-sealed 1 KiB messages (sealing is the client's work, not the relay's). A pool that runs
    // dry before the deadline would cut the measurement short, so such a run is repeated with a
    // pool sized from the rate it saw; only a run that lasted its whole time is reported.
    var poolSize = senders * 200
    for round in 1...4 {
        let pool = EnvelopePool(sealMessages(count: poolSize, users: users))
        let run = try await timedDeposits(pool: pool, users: users, senders: senders, seconds: seconds, connection: connection)
        let latencies = run.latencies.sorted()
        if run.ranDry, round < 4 {
            let rate = Double(latencies.count) / run.seconds
            print(String(format: "messages_1kib_pool_ran_dry round=%d pool=%d seconds=%.2f per_second=%.1f (sealing a larger pool)",
                         round, poolSize, run.seconds, rate))
            poolSize = Int(rate * seconds * 1.5) + senders
            continue
        }
        print(String(format: "messages_1kib senders=%d count=%d failures=%d seconds=%.2f per_second=%.1f latency_ms_p50=%.1f latency_ms_p99=%.1f pool=%d ran_dry=%@ relay_peak_rss_mib=%.1f",
                     senders, latencies.count, run.failures, run.seconds, Double(latencies.count) / run.seconds,
                     percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000, poolSize, run.ranDry ? "yes" : "no",
                     peakRSS(pid: relayPID)))
        if let first = run.firstFailure { fail("deposit failed: \(first)") }
        break
    }
    try await reportSyncsPerDeposit(users: users, senders: senders, connection: connection, relayPID: relayPID)

    // One large envelope to three users, deposited for each and fetched back.
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("secmail-bench-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let attachment = folder.appendingPathComponent("big.bin")
    try Data(try SystemRandom().bytes(count: bigMiB << 20)).write(to: attachment)
    let envelopeURL = folder.appendingPathComponent("big.sm")
    let targets = Array(users[1...3])
    let file = try PositionalFile(creatingAtPath: envelopeURL.path)
    let sink = FileSink(file: file)
    _ = try EnvelopeSealer().seal(text: "big", attachments: [OutgoingAttachment(file: attachment)], from: users[0].identity,
                                  to: targets.map(\.identity.bundle), into: sink)
    try sink.synchronize()
    let size = Double(try file.size())
    var uploads: [Double] = [], downloads: [Double] = []
    for target in targets {
        let name = target.identity.bundle.name.value
        var t = ContinuousClock.now
        let deposited = try await connection.send(.POST, "/v1/messages?to=\(name)", body: .file(envelopeURL), bearer: users[0].token)
        guard deposited.status == 201 else { fail("big deposit answered \(deposited.status)") }
        uploads.append(size / elapsed(since: t) / 1e6)
        let listing = try await connection.send(.GET, "/v1/mailbox", bearer: target.token)
        guard let object = try JSONSerialization.jsonObject(with: Data(listing.body)) as? [String: Any],
              let id = (object["messages"] as? [[String: Any]])?.first(where: { ($0["size"] as? Int) == Int(size) })?["id"] as? String else {
            fail("the big message is not listed")
        }
        let fetched = folder.appendingPathComponent("fetched-\(name).sm")
        t = ContinuousClock.now
        let answer = try await connection.send(.GET, "/v1/mailbox/\(id)", body: nil, bearer: target.token, saveBodyTo: fetched, timeout: .seconds(600))
        guard answer.status == 200 else { fail("big fetch answered \(answer.status)") }
        downloads.append(size / elapsed(since: t) / 1e6)
        try? FileManager.default.removeItem(at: fetched)
    }
    print(String(format: "envelope_%dmib upload_mbps=%@ download_mbps=%@ relay_peak_rss_mib=%.1f", bigMiB,
                 uploads.map { String(format: "%.0f", $0) }.joined(separator: ","),
                 downloads.map { String(format: "%.0f", $0) }.joined(separator: ","), peakRSS(pid: relayPID)))
}

/// `count` 1 KiB messages between the users, sealed on every core.
func sealMessages(count: Int, users: [MailUser]) -> [(sender: Int, recipient: Int, bytes: Data)] {
    let sealed = EnvelopeSlots(count: count)
    DispatchQueue.concurrentPerform(iterations: count) { index in
        let sender = index % users.count, recipient = (index + 1 + index / users.count) % users.count
        let to = recipient == sender ? (sender + 1) % users.count : recipient
        let sink = MemorySink()
        let text = String(repeating: "x", count: 1024)
        if (try? EnvelopeSealer().seal(text: text, from: users[sender].identity, to: [users[to].identity.bundle], into: sink)) != nil {
            sealed.set(index, (sender, to, Data(sink.bytes)))
        }
    }
    return sealed.all()
}

/// What one timed deposit run measured.
struct DepositRun {
    let latencies: [Double]
    let failures: Int
    let firstFailure: String?
    let seconds: Double
    /// The pool was empty before the deadline: the run measured less than its whole time.
    let ranDry: Bool
}

/// `senders` concurrent senders deposit messages from `pool` until `seconds` pass or it is empty.
func timedDeposits(pool: EnvelopePool, users: [MailUser], senders: Int, seconds: Double, connection: RelayConnection) async throws -> DepositRun {
    let tally = Tally()
    let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
    let start = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<senders {
            group.addTask {
                while ContinuousClock.now < deadline, let item = pool.take() {
                    let t = ContinuousClock.now
                    do {
                        try await deposit(item, users: users, connection: connection)
                        await tally.record(elapsed(since: t))
                    } catch {
                        await tally.fail(error)
                    }
                }
            }
        }
        try await group.waitForAll()
    }
    let duration = elapsed(since: start)
    return DepositRun(latencies: await tally.latencies, failures: await tally.failures, firstFailure: await tally.firstFailure,
                      seconds: duration, ranDry: ContinuousClock.now < deadline)
}

func deposit(_ item: (sender: Int, recipient: Int, bytes: Data), users: [MailUser], connection: RelayConnection) async throws {
    let recipient = users[item.recipient].identity.bundle.name.value
    let answer = try await connection.send(.POST, "/v1/messages?to=\(recipient)", body: .binary(item.bytes), bearer: users[item.sender].token)
    guard answer.status == 201 else {
        throw ClientError(.relayRefused, "deposit answered \(answer.status): \(String(decoding: answer.body, as: UTF8.self))")
    }
}

/// Attaches strace to the relay while `senders` senders deposit 400 more messages, and reports
/// the syncs (fsync, fdatasync) it observed per deposit, by file: the WAL, envelope files and the
/// envelopes directory. Skipped, with a line saying so, where strace is not installed.
func reportSyncsPerDeposit(users: [MailUser], senders: Int, connection: RelayConnection, relayPID: Int32) async throws {
    let count = 400
    let pool = EnvelopePool(sealMessages(count: count, users: users))
    let traceFile = FileManager.default.temporaryDirectory.appendingPathComponent("secmail-bench-\(UUID().uuidString).strace")
    defer { try? FileManager.default.removeItem(at: traceFile) }
    let strace = Process()
    strace.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    strace.arguments = ["strace", "-f", "-qq", "-y", "-p", String(relayPID), "-e", "trace=fsync,fdatasync", "-o", traceFile.path]
    strace.standardError = FileHandle.nullDevice
    do { try strace.run() } catch {
        print("syncs_per_deposit skipped=strace_not_runnable")
        return
    }
    try await Task.sleep(for: .seconds(1))  // strace attaches to every thread of the relay
    guard strace.isRunning else {
        print("syncs_per_deposit skipped=strace_not_installed_or_not_permitted")
        return
    }
    let run = try await timedDeposits(pool: pool, users: users, senders: senders, seconds: 120, connection: connection)
    strace.interrupt()  // detaches; the relay runs on
    strace.waitUntilExit()
    if let first = run.firstFailure { fail("deposit failed while traced: \(first)") }
    let lines = (try? String(contentsOf: traceFile, encoding: .utf8))?.split(separator: "\n") ?? []
    let syncs = lines.filter { $0.contains("fsync(") || $0.contains("fdatasync(") }
    let wal = syncs.filter { $0.contains("-wal>") }.count
    let files = syncs.filter { $0.contains("/envelopes/") }.count
    let directory = syncs.filter { $0.contains("/envelopes>") }.count
    let deposits = Double(run.latencies.count)
    print(String(format: "syncs_per_deposit deposits=%d senders=%d total=%.2f wal=%.2f envelope_files=%.2f envelope_directory=%.2f other=%.2f",
                 run.latencies.count, senders, Double(syncs.count) / deposits, Double(wal) / deposits, Double(files) / deposits,
                 Double(directory) / deposits, Double(syncs.count - wal - files - directory) / deposits))
}

/// Sealed envelopes made in parallel, each into its own slot.
final class EnvelopeSlots: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var slots: [(sender: Int, recipient: Int, bytes: Data)?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: (sender: Int, recipient: Int, bytes: Data)) { lock.withLock { slots[index] = value } }

    func all() -> [(sender: Int, recipient: Int, bytes: Data)] { lock.withLock { slots.compactMap { $0 } } }
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
    case "mail" where arguments.count == 8:
        guard let url = URL(string: arguments[2]), let senders = Int(arguments[4]), let seconds = Double(arguments[5]),
              let big = Int(arguments[6]), let pid = Int32(arguments[7]), senders >= 4, seconds > 0, big > 0 else {
            fail("usage: mail URL CA SENDERS SECONDS BIG_MIB RELAY_PID (SENDERS at least 4)")
        }
        try await mailLoad(url: url, caFile: arguments[3], senders: senders, seconds: seconds, bigMiB: big, relayPID: pid)
    default:
        fail("usage: secmail-directory-bench build-log DB LEAVES | load URL CA REGISTRATIONS CLIENTS SECONDS | mail URL CA SENDERS SECONDS BIG_MIB RELAY_PID")
    }
} catch {
    fail("\(error)")
}
