import Foundation
import NIOCore
import NIOPosix
import SecmailAPI
import SecmailClient
import SecmailCrypto
import SecmailFormat
import SecmailRelay
import SecmailTLS

/// A registered benchmark user with a bearer token.
struct MailUser: Sendable {
    let identity: SenderIdentity
    let token: String
}

/// Registers `count` users (sharing two key pairs: RSA key generation is slow) and signs each in.
func registerMailUsers(count: Int, lane: Lane, origin: String, relayKeyPin: [UInt8]) async throws -> [MailUser] {
    let pairs = try (0..<2).map { _ in (try RSAPrivateKey.generate(bitCount: 3072), try RSAPrivateKey.generate(bitCount: 3072)) }
    let prefix = "mail\(UInt32.random(in: 0...UInt32.max))"
    var users: [MailUser] = []
    for index in 0..<count {
        let (signing, encryption) = pairs[index % 2]
        let bundle = try IdentityBundle.create(name: IdentityName("\(prefix)-\(index)"), createdAt: Int64(Date().timeIntervalSince1970),
                                               signingKey: signing, encryptionKey: encryption.publicKey)
        let identity = try SenderIdentity(bundle: bundle, signingKey: signing)
        _ = try await lane.expect(201, RelayRequest(.POST, Endpoint.register.path(),
                                                    json: BundleRequest(bundle: Data(bundle.encoded).base64EncodedString())))
        let challenge = try JSONDecoder().decode(ChallengeResponse.self, from: Data(try await lane.expect(
            200, RelayRequest(.POST, Endpoint.challenge.path(), json: ChallengeRequest(name: bundle.name.value))).body))
        let token = try JSONDecoder().decode(TokenResponse.self, from: Data(try await lane.expect(
            200, RelayRequest(.POST, Endpoint.token.path(), json: SignIn.answer(challenge, as: identity, origin: origin, relayKeyPin: relayKeyPin))).body))
        users.append(MailUser(identity: identity, token: token.token))
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

func mailLoad(url: URL, caFile: String, senders: Int, seconds: Double, bigMiB: Int, bigRounds: Int, relayPID: Int32,
              tlsReference: TLSBulkReference?) async throws {
    let relay = try RelayAddress(url: url, caFile: caFile)
    let setup = Lane(relay, mode: .keptAlive)
    let keyAnswer = try await setup.expect(200, RelayRequest(.GET, Endpoint.logKey.path()))
    let origin = try NoteVerifier(verifierKey: String(decoding: keyAnswer.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)).name
    guard let pin = keyAnswer.relayKeyPin else { throw BenchFailure("the relay's TLS key could not be read") }
    let users = try await registerMailUsers(count: senders, lane: setup, origin: origin, relayKeyPin: pin)
    report(String(format: "relay_peak_rss_mib after_setup=%.1f", peakRSS(pid: relayPID)))

    for mode in ConnectionMode.allCases {
        try await timedMessages(relay: relay, mode: mode, users: users, senders: senders, seconds: seconds, relayPID: relayPID)
    }
    try await reportSyncsPerDeposit(relay: relay, users: users, senders: senders, relayPID: relayPID)

    // One large envelope to three users, deposited for each in turn (`bigRounds` times in all)
    // and fetched back.
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("secmail-bench-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let attachment = folder.appendingPathComponent("big.bin")
    try Data(try SystemRandom().bytes(count: bigMiB << 20)).write(to: attachment)
    let envelopeURL = folder.appendingPathComponent("big.sm")
    let targets = Array(users[1...3])
    // Sealed again for every third round: a relay takes a message id once per recipient.
    func sealBigEnvelope() throws -> Double {
        try? FileManager.default.removeItem(at: envelopeURL)
        let file = try PositionalFile(creatingAtPath: envelopeURL.path)
        let sink = FileSink(file: file)
        _ = try EnvelopeSealer().seal(text: "big", attachments: [OutgoingAttachment(file: attachment)], from: users[0].identity,
                                      to: targets.map(\.identity.bundle), into: sink)
        try sink.synchronize()
        return Double(try file.size())
    }
    // COLD_FETCH=1: the page cache is dropped before each fetch, as for an envelope deposited
    // long before (a relay's usual case), instead of fetched right after its deposit.
    let coldFetch = ProcessInfo.processInfo.environment["COLD_FETCH"] == "1"
    var size = 0.0
    var uploads: [Double] = [], downloads: [Double] = [], references: [Double] = []
    // What each deposit and fetch cost the relay and this client, and how busy the machine's cores
    // were meanwhile (during each bulk reference too): on two cores the two share, a deposit is as
    // fast as their CPU time allows.
    var uploadCosts: [RoundCost] = [], downloadCosts: [RoundCost] = [], referenceBusy: [Double] = []
    for round in 0..<bigRounds {
        if round % targets.count == 0 { size = try sealBigEnvelope() }
        let target = targets[round % targets.count]
        let name = target.identity.bundle.name.value
        if let tlsReference {
            let reference = try await tlsReference.measure()
            references.append(reference.mbps)
            referenceBusy.append(reference.machineBusy)
        }
        var t = ContinuousClock.now
        var cost = RoundCost.Mark(relayPID: relayPID)
        _ = try await setup.expect(201, RelayRequest(.POST, Endpoint.deposit.path(query: [(Endpoint.Query.recipient, name)]),
                                                     body: .file(envelopeURL), bearer: users[0].token))
        uploads.append(size / elapsed(since: t) / 1e6)
        uploadCosts.append(cost.since())
        guard let id = try await listedMessage(ofSize: Int(size), in: target, lane: setup) else { fail("the big message is not listed") }
        let fetched = folder.appendingPathComponent("fetched-\(name).sm")
        if coldFetch { try dropPageCache() }
        t = ContinuousClock.now
        cost = RoundCost.Mark(relayPID: relayPID)
        var fetch = RelayRequest(.GET, Endpoint.fetchMessage.path(id), bearer: target.token)
        fetch.saveBodyTo = fetched
        fetch.timeout = .seconds(600)
        _ = try await setup.expect(200, fetch)
        downloads.append(size / elapsed(since: t) / 1e6)
        downloadCosts.append(cost.since())
        try? FileManager.default.removeItem(at: fetched)
        // Acknowledged, so that the next round's listing finds the new one and no mailbox fills.
        _ = try await setup.expect(204, RelayRequest(.DELETE, Endpoint.deleteMessage.path(id), bearer: target.token))
    }
    let figures = { (values: [Double]) in values.map { String(format: "%.0f", $0) }.joined(separator: ",") }
    report(String(format: "envelope_%dmib upload_mbps=%@ download_mbps=%@ relay_peak_rss_mib=%.1f", bigMiB,
                 figures(uploads), figures(downloads), peakRSS(pid: relayPID)))
    let fractionsOf = { (values: [Double]) in values.map { String(format: "%.2f", $0) }.joined(separator: ",") }
    report("envelope_\(bigMiB)mib_machine_busy upload=\(fractionsOf(uploadCosts.map(\.machineBusy))) download=\(fractionsOf(downloadCosts.map(\.machineBusy)))"
           + (referenceBusy.isEmpty ? "" : " tls_bulk=\(fractionsOf(referenceBusy))"))
    report("envelope_\(bigMiB)mib_relay_cost " + ProcessCost.figures(uploads: uploadCosts.map(\.relay), downloads: downloadCosts.map(\.relay)))
    report("envelope_\(bigMiB)mib_client_cost " + ProcessCost.figures(uploads: uploadCosts.map(\.client), downloads: downloadCosts.map(\.client)))
    if !references.isEmpty {
        // Each round against the bulk figure measured just before it: the machine's speed drifts
        // by more than the margins being judged, so only figures from the same moment compare.
        let ratios = { (values: [Double]) in zip(values, references).map { $0 / $1 } }
        let fractions = { (values: [Double]) in ratios(values).map { String(format: "%.2f", $0) }.joined(separator: ",") }
        let median = { (values: [Double]) in String(format: "%.2f", percentile(ratios(values).sorted(), 0.5)) }
        report("envelope_\(bigMiB)mib_vs_tls_bulk tls_bulk_mbps=\(figures(references)) upload_fraction=\(fractions(uploads)) download_fraction=\(fractions(downloads)) "
               + "upload_fraction_median=\(median(uploads)) download_fraction_median=\(median(downloads))")
        // The most each round could have reached on the CPU time it took: relay and client
        // together, spread over every core with none idle. A round can beat this ceiling only by
        // costing less CPU, not by waiting less (the CPU times are in 10 ms ticks).
        let ceilings = { (costs: [RoundCost]) -> [Double]? in
            let cores = Double(ProcessInfo.processInfo.activeProcessorCount)
            var rates: [Double] = []
            for cost in costs {
                guard let relay = cost.relay.cpuMilliseconds, let client = cost.client.cpuMilliseconds else { return nil }
                rates.append(size / ((relay + client) / 1000 / cores) / 1e6)
            }
            return rates
        }
        if let uploadCeilings = ceilings(uploadCosts), let downloadCeilings = ceilings(downloadCosts) {
            report("envelope_\(bigMiB)mib_cpu_ceiling_vs_tls_bulk upload=\(fractions(uploadCeilings)) download=\(fractions(downloadCeilings)) "
                   + "upload_median=\(median(uploadCeilings)) download_median=\(median(downloadCeilings))")
        }
    }
}

/// Writes dirty pages out and drops the clean ones from the page cache (root only).
func dropPageCache() throws {
    sync()
    do {
        try "1\n".write(toFile: "/proc/sys/vm/drop_caches", atomically: false, encoding: .utf8)
    } catch {
        throw BenchFailure("COLD_FETCH needs root to write /proc/sys/vm/drop_caches: \(error)")
    }
}

/// scripts/bench-tls.sh's bulk measurement (our TLS client downloading 64 MiB bodies from
/// `secmail-tls-bench serve` over new connections), run as a subprocess between the 64 MiB rounds.
struct TLSBulkReference {
    let benchmark: String
    let port: String
    let caFile: String

    /// MB/s over two seconds of downloads, and how busy the machine's cores were meanwhile.
    func measure() async throws -> (mbps: Double, machineBusy: Double) {
        let start = machineCPUTicks()
        // On a thread of its own: waiting for the process must not hold a task executor thread.
        let output = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, Error>) in
            Thread.detachNewThread {
                continuation.resume(with: Result {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: benchmark)
                    process.arguments = ["download", port, caFile, "2"]
                    let pipe = Pipe()
                    process.standardOutput = pipe
                    try process.run()
                    let data = pipe.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    return String(decoding: data, as: UTF8.self)
                })
            }
        }
        guard let field = output.split(separator: " ").first(where: { $0.hasPrefix("mbps=") }),
              let mbps = Double(field.dropFirst("mbps=".count).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw BenchFailure("secmail-tls-bench download gave no figure: \(output)")
        }
        return (mbps, busyFraction(since: start))
    }
}

/// The id of the first message of `size` bytes in `user`'s mailbox, page by page (the timed
/// phases leave each user about a thousand messages, a page's worth).
func listedMessage(ofSize size: Int, in user: MailUser, lane: Lane) async throws -> String? {
    var cursor: String?
    repeat {
        let query = cursor.map { [(Endpoint.Query.after, $0)] } ?? []
        let page = try JSONDecoder().decode(MailboxListResponse.self, from: Data(
            try await lane.expect(200, RelayRequest(.GET, Endpoint.mailbox.path(query: query), bearer: user.token)).body))
        if let message = page.messages.first(where: { $0.size == size }) { return message.id }
        cursor = page.next
    } while cursor != nil
    return nil
}

/// `senders` concurrent senders deposit pre-sealed 1 KiB messages for `seconds` (sealing is the
/// client's work, not the relay's). A pool that runs dry before the deadline would cut the
/// measurement short, so such a run is repeated with a pool sized from the rate it saw; only a
/// run that lasted its whole time is reported.
func timedMessages(relay: RelayAddress, mode: ConnectionMode, users: [MailUser], senders: Int, seconds: Double,
                   relayPID: Int32) async throws {
    var poolSize = senders * 200
    for round in 1...4 {
        let pool = EnvelopePool(sealMessages(count: poolSize, users: users))
        let writtenBefore = storageBytesWritten(pid: relayPID), cpuBefore = cpuSeconds(pid: relayPID)
        let run = try await timedDeposits(pool: pool, users: users, senders: senders, seconds: seconds, relay: relay, mode: mode)
        var written = "unknown", cpu = "unknown"
        if let before = writtenBefore, let after = storageBytesWritten(pid: relayPID) {
            written = String(format: "%.1f", Double(after - before) / 1024 / Double(max(1, run.latencies.count)))
        }
        if let before = cpuBefore, let after = cpuSeconds(pid: relayPID) {
            cpu = String(format: "%.3f", (after - before) * 1000 / Double(max(1, run.latencies.count)))
        }
        let latencies = run.latencies.sorted()
        if run.ranDry, round < 4 {
            let rate = Double(latencies.count) / run.seconds
            report(String(format: "messages_1kib_pool_ran_dry mode=%@ round=%d pool=%d seconds=%.2f per_second=%.1f (sealing a larger pool)",
                         mode.rawValue, round, poolSize, run.seconds, rate))
            poolSize = Int(rate * seconds * 1.5) + senders
            continue
        }
        report(String(format: "messages_1kib mode=%@ senders=%d count=%d failures=%d seconds=%.2f per_second=%.1f latency_ms_p50=%.1f latency_ms_p99=%.1f relay_cpu_ms_per_message=%@ relay_storage_kib_per_message=%@ pool=%d ran_dry=%@ relay_peak_rss_mib=%.1f",
                     mode.rawValue, senders, latencies.count, run.failures, run.seconds, Double(latencies.count) / run.seconds,
                     percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000, cpu, written, poolSize, run.ranDry ? "yes" : "no",
                     peakRSS(pid: relayPID)))
        if let first = run.firstFailure { fail("deposit failed: \(first)") }
        return
    }
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

/// `senders` concurrent senders deposit messages from `pool` until `seconds` pass or it is empty.
func timedDeposits(pool: EnvelopePool, users: [MailUser], senders: Int, seconds: Double, relay: RelayAddress,
                   mode: ConnectionMode) async throws -> LoadRun {
    try await runLanes(relay: relay, mode: mode, clients: senders, seconds: seconds) { lane in
        guard let item = pool.take() else { return false }
        try await deposit(item, users: users, lane: lane)
        return true
    }
}

func deposit(_ item: (sender: Int, recipient: Int, bytes: Data), users: [MailUser], lane: Lane) async throws {
    let recipient = users[item.recipient].identity.bundle.name.value
    _ = try await lane.expect(201, RelayRequest(.POST, Endpoint.deposit.path(query: [(Endpoint.Query.recipient, recipient)]),
                                                body: .binary(item.bytes), bearer: users[item.sender].token))
}

/// Attaches strace to the relay while `senders` senders deposit 400 more messages, and reports
/// the syncs (fsync, fdatasync) it observed per deposit, by file: the WAL, envelope files and the
/// envelopes directory. Skipped, with a line saying so, where strace is not installed.
func reportSyncsPerDeposit(relay: RelayAddress, users: [MailUser], senders: Int, relayPID: Int32) async throws {
    let count = 400
    let pool = EnvelopePool(sealMessages(count: count, users: users))
    let traceFile = FileManager.default.temporaryDirectory.appendingPathComponent("secmail-bench-\(UUID().uuidString).strace")
    defer { try? FileManager.default.removeItem(at: traceFile) }
    let strace = Process()
    // Started with an empty signal mask: children of this process inherit the runtime's blocked
    // signals, and strace must see the SIGINT that detaches it.
    strace.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    strace.arguments = ["python3", "-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, set()); os.execvp(sys.argv[1], sys.argv[1:])",
                        "strace", "-f", "-qq", "-y", "-p", String(relayPID), "-e", "trace=fsync,fdatasync", "-o", traceFile.path]
    strace.standardError = FileHandle.nullDevice
    do { try strace.run() } catch {
        report("syncs_per_deposit skipped=strace_not_runnable")
        return
    }
    try await Task.sleep(for: .seconds(1))  // strace attaches to every thread of the relay
    guard strace.isRunning else {
        report("syncs_per_deposit skipped=strace_not_installed_or_not_permitted")
        return
    }
    let run = try await timedDeposits(pool: pool, users: users, senders: senders, seconds: 120, relay: relay, mode: .keptAlive)
    strace.interrupt()  // detaches; the relay runs on
    strace.waitUntilExit()
    if let first = run.firstFailure { fail("deposit failed while traced: \(first)") }
    let lines = (try? String(contentsOf: traceFile, encoding: .utf8))?.split(separator: "\n") ?? []
    let syncs = lines.filter { $0.contains("fsync(") || $0.contains("fdatasync(") }
    let wal = syncs.filter { $0.contains("-wal>") }.count
    let files = syncs.filter { $0.contains("/envelopes/") }.count
    let directory = syncs.filter { $0.contains("/envelopes>") }.count
    let deposits = Double(run.latencies.count)
    report(String(format: "syncs_per_deposit deposits=%d senders=%d total=%.2f wal=%.2f envelope_files=%.2f envelope_directory=%.2f other=%.2f",
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

/// What one large deposit or fetch cost a process (the relay, this client), from /proc (nil where
/// unreadable).
struct ProcessCost {
    let cpuMilliseconds: Double?
    let minorFaults: Int?
    let switchCount: Int?

    /// The process's counters at the start of a round.
    struct Mark {
        let pid: Int32
        let cpu: Double?
        let faults: Int?
        let switches: Int?

        init(pid: Int32) {
            self.pid = pid
            cpu = cpuSeconds(pid: pid)
            faults = minorPageFaults(pid: pid)
            switches = contextSwitches(pid: pid)
        }

        /// The cost from this mark until now.
        func since() -> ProcessCost {
            let cpuNow = cpuSeconds(pid: pid), faultsNow = minorPageFaults(pid: pid), switchesNow = contextSwitches(pid: pid)
            return ProcessCost(cpuMilliseconds: cpu.flatMap { before in cpuNow.map { ($0 - before) * 1000 } },
                               minorFaults: faults.flatMap { before in faultsNow.map { $0 - before } },
                               switchCount: switches.flatMap { before in switchesNow.map { $0 - before } })
        }
    }

    /// `upload_cpu_ms=… download_cpu_ms=… upload_minor_faults=…`: each figure round by round.
    static func figures(uploads: [ProcessCost], downloads: [ProcessCost]) -> String {
        let list = { (costs: [ProcessCost], figure: (ProcessCost) -> String?) in costs.map { figure($0) ?? "unknown" }.joined(separator: ",") }
        let columns: [(String, (ProcessCost) -> String?)] = [
            ("cpu_ms", { $0.cpuMilliseconds.map { String(format: "%.0f", $0) } }),
            ("minor_faults", { $0.minorFaults.map(String.init) }),
            ("context_switches", { $0.switchCount.map(String.init) }),
        ]
        return columns.map { name, figure in "upload_\(name)=\(list(uploads, figure)) download_\(name)=\(list(downloads, figure))" }
            .joined(separator: " ")
    }
}

/// What one large deposit or fetch cost the relay and this client, and how busy the machine's
/// cores were meanwhile (busy over total ticks).
struct RoundCost {
    let relay: ProcessCost
    let client: ProcessCost
    let machineBusy: Double

    struct Mark {
        let relay: ProcessCost.Mark
        let client: ProcessCost.Mark
        let machine: (busy: Int, total: Int)?

        init(relayPID: Int32) {
            relay = ProcessCost.Mark(pid: relayPID)
            client = ProcessCost.Mark(pid: getpid())
            machine = machineCPUTicks()
        }

        func since() -> RoundCost {
            RoundCost(relay: relay.since(), client: client.since(), machineBusy: busyFraction(since: machine))
        }
    }
}
