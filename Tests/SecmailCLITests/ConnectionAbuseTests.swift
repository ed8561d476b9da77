import Foundation
import SecmailFormat
import SecmailRelay
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// Issue 12, connections: a real `secmail relay` process over TLS on 127.0.0.1, clients that
/// misbehave on purpose (Fixtures/slow_client.py), and an honest client served meanwhile.
@Suite struct ConnectionAbuseTests {
    let commands = RelayCommandTests()
    static let client = RelayConversationTests.fixtures.appendingPathComponent("slow_client.py").path

    /// What slow_client.py reports (each mode fills some of these).
    struct Report: Decodable, Sendable {
        var seconds: Double?
        var bytes: Int?
        var eof: Bool?
        var open: Int?
        var refused: Int?
    }

    /// Runs slow_client.py and returns its report.
    func slowClient(_ arguments: [String]) async throws -> Report {
        let result = try await run("python3", [Self.client] + arguments)
        do {
            return try JSONDecoder().decode(Report.self, from: Data(result.text.utf8))
        } catch {
            throw TestFailure("slow_client.py \(arguments): \(result.text) \(result.stderr)")
        }
    }

    /// How long an honest request takes right now, in seconds (nil: it failed).
    /// The seconds an honest client waited for the relay's health answer, timed by curl itself (a
    /// clock in this process would also count the waits for its busy threads before and after),
    /// or nil without a 200.
    func honestRequest(port: Int, ca: String) async throws -> Double? {
        let result = try await run("curl", ["--silent", "--show-error", "--max-time", "60", "--cacert", ca, "--output", "/dev/null",
                                            "--write-out", "%{http_code} %{time_total}", "https://localhost:\(port)/v1/health"])
        let fields = result.text.split(separator: " ")
        guard fields.count == 2, fields[0] == "200" else { return nil }
        return Double(fields[1])
    }

    @Test func bareFinsAndTrickledRequestsAreCutOffOnTimeWhileOthersAreServed() async throws {
        let data = try temporaryDirectory("abuse-deadlines").appendingPathComponent("relay", isDirectory: true)
        // Room for the six misbehaving connections and the honest one, little more.
        let relay = try await commands.startRelay(data: data, options: ["--header-timeout", "3", "--max-connections", "8"])
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        let port = String(relay.port)

        async let bareFins = withThrowingTaskGroup(of: Report.self) { group in
            for _ in 0..<4 { group.addTask { try await slowClient(["bare-fin", port, ca]) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        async let head = slowClient(["trickle-head", port, ca])
        async let body = slowClient(["trickle-body", port, ca])
        // Meanwhile an honest client is served, again and again.
        var honest: [Double?] = []
        for _ in 0..<8 {
            try await Task.sleep(for: .seconds(1))
            honest.append(try await honestRequest(port: relay.port, ca: ca))
        }
        for closed in try await bareFins {
            let seconds = try #require(closed.seconds, "\(closed)")
            #expect(seconds < 2, "a FIN without close_notify held its connection for \(seconds) s")
        }
        let headSeconds = try #require(try await head.seconds)
        #expect(headSeconds >= 2.5 && headSeconds < 7, "a trickled head was cut after \(headSeconds) s (deadline 3 s)")
        let bodySeconds = try #require(try await body.seconds)
        #expect(bodySeconds >= 9 && bodySeconds < 16, "a body at 1 byte/s was cut after \(bodySeconds) s (1 KiB/s after 10 s)")
        // Every honest request is served, typically at once (a bound on each one's time would
        // measure this machine's load during a parallel test run; the abuse benchmark times them).
        #expect(honest.allSatisfy { $0 != nil }, "honest requests: \(honest)")
        let median = honest.compactMap { $0 }.sorted()[honest.count / 2]
        #expect(median < 5, "honest requests: \(honest)")
        #expect(await commands.stop(relay.process) == 0)
    }

    @Test func answersNobodyReadsAreCutOffAfterTheWriteTimeout() async throws {
        let data = try temporaryDirectory("abuse-unread").appendingPathComponent("relay", isDirectory: true)
        // A log of 300 leaves, so that each GET /v1/log/entries answer is about 600 KB.
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let database = try RelayDatabase(path: data.appendingPathComponent("relay.sqlite").path)
        let leaf = try DirectoryEntry(kind: .registration, time: 0, bundle: ThrowawayIdentities.bundle("alice"), mapRoot: NameMapKey.emptyRoot)
        try await database.write { db in for _ in 0..<300 { _ = try LogStore.append(leaf.encoded, time: 0, in: db) } }
        let relay = try await commands.startRelay(data: data, options: ["--write-timeout", "2"])
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        // The client reads nothing until the relay says it cut the connection off (the marker):
        // had it started reading after a fixed wait, a relay still producing its answers on a
        // loaded machine would have been kept going, 4 KiB at a time, for over 100 s.
        let cutOff = try temporaryDirectory("abuse-unread-go").appendingPathComponent("cut-off")
        async let reading = slowClient(["unread-pipeline", String(relay.port), ca, "-", "40", "120", cutOff.path])
        let cutOffLine = "closed a connection: the client did not read its answer within 2 s"
        let deadline = Date().addingTimeInterval(120)
        while !relay.output.text.contains(cutOffLine), Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(relay.output.text.contains(cutOffLine), "\(relay.output.text)")
        #expect(FileManager.default.createFile(atPath: cutOff.path, contents: nil))
        let result = try await reading
        #expect(result.eof == true, "\(result)")
        let received = try #require(result.bytes)
        #expect(received < 40 * 500_000 / 2, "the relay kept writing \(received) bytes nobody read")
        #expect(try await honestRequest(port: relay.port, ca: ca) != nil)
        #expect(await commands.stop(relay.process) == 0)
    }

    @Test func connectionsAreCappedPerAddressGroup() async throws {
        let folder = try temporaryDirectory("abuse-cap")
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        var relay = try await commands.startRelay(data: data, options: ["--max-connections-per-address", "3"])
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path

        // 127.0.0.1 holds three connections; a fourth and fifth are refused at once.
        var port = String(relay.port)
        let firstPort = port
        async let held = slowClient(["hold", firstPort, ca, "127.0.0.1", "5", "6"])
        try await Task.sleep(for: .seconds(3))
        // 127.0.0.2 is another client (each IPv4 address is its own group by default).
        let neighbour = try await slowClient(["hold", port, ca, "127.0.0.2", "2"])
        let holder = try await held
        #expect(holder.open == 3 && holder.refused == 2, "\(holder)")
        #expect(neighbour.open == 2, "\(neighbour)")
        #expect(await commands.stop(relay.process) == 0)

        // Configured to group a /24, 127.0.0.2 shares 127.0.0.1's three slots.
        relay = try await commands.startRelay(data: data, options: ["--max-connections-per-address", "3", "--ipv4-prefix", "24"])
        port = String(relay.port)
        let sharedPort = port
        // 127.0.0.2 tries only once the three are held (the holder's marker file): on a loaded
        // machine they took more than 12 s to open once, and a neighbour that came first took
        // one of the slots itself.
        let held3 = folder.appendingPathComponent("three-held")
        async let full = slowClient(["hold", sharedPort, ca, "127.0.0.1", "3", "15", held3.path])
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: held3.path), Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        let shared = try await slowClient(["hold", sharedPort, ca, "127.0.0.2", "1"])
        #expect(try await full.open == 3)
        #expect(shared.refused == 1, "\(shared)")
        #expect(await commands.stop(relay.process) == 0)
    }

    /// An address opening connections faster than the rate is refused before the handshake; a
    /// full relay closes a connection that made no progress for a newcomer, at once, instead of
    /// keeping the newcomer waiting behind idle ones.
    @Test func fastOpenersAreRefusedAndAFullRelayMakesRoomForNewcomers() async throws {
        let data = try temporaryDirectory("abuse-full").appendingPathComponent("relay", isDirectory: true)
        let relay = try await commands.startRelay(data: data, options: [
            "--connection-rate-per-address", "1", "--max-connections", "6", "--max-connections-per-address", "4",
            "--idle-timeout-before-sign-in", "120", "--header-timeout", "120"])
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        let port = String(relay.port)

        // Ten at once from 127.0.0.5: the burst (twice the rate) gets in, the rest are refused.
        // "At once" may take a second or two on a loaded machine (a whole run once opened 3 and
        // refused 7): each second refills one opening, no more.
        let fast = try await slowClient(["hold", port, ca, "127.0.0.5", "10"])
        #expect(fast.open.map { (2...4).contains($0) } == true && fast.refused.map { $0 + (fast.open ?? 0) } == 10, "\(fast)")
        try await Task.sleep(for: .seconds(2))

        // Six idle connections from three addresses fill the relay for a minute…
        async let first = slowClient(["hold", port, ca, "127.0.0.6", "2", "60"])
        async let second = slowClient(["hold", port, ca, "127.0.0.7", "2", "60"])
        async let third = slowClient(["hold", port, ca, "127.0.0.8", "2", "60"])
        try await Task.sleep(for: .seconds(3))
        // …yet a newcomer is served at once, three times: each takes the slot of an idle one.
        for _ in 0..<3 {
            try await Task.sleep(for: .seconds(1))  // within 127.0.0.1's own opening rate
            let seconds = try await honestRequest(port: relay.port, ca: ca)
            // Served long before a holder lets go of a slot: not left waiting. (A loaded CI run took
            // over 3 s for the request itself; a loaded full local run, slowed about fivefold, 16 s
            // once, when the holders let go after 20 s and this check allowed 10.)
            #expect(seconds != nil && seconds! < 30, "\(String(describing: seconds))")
        }
        #expect(try await first.open == 2)
        #expect(try await second.open == 2)
        #expect(try await third.open == 2)
        #expect(await commands.stop(relay.process) == 0)
    }
}
