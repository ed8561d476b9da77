import Foundation
import SecmailAPI
import SecmailClient
import SecmailFormat
import SecmailRelay
import SecmailTLS
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// The relay process under load and under SIGKILL: every acknowledged message is delivered
/// exactly once and intact; nothing partial is ever listed.
@Suite(.serialized) struct MailboxDurabilityTests {
    let commands = RelayCommandTests()
    static let users = ["alice", "bob", "carol"]
    /// These tests make hundreds of curl requests, each a new connection from 127.0.0.1: faster
    /// than a relay lets one address open connections by default.
    static let manyConnections = ["--connection-rate-per-address", "10000"]

    func listing(_ curl: RelayCurl, token: String) async throws -> [String] {
        let answer = try await curl.call("/v1/mailbox", headers: ["Authorization: Bearer \(token)"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any])
        return (object["messages"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
    }

    /// 20 concurrent clients each deposit 20 messages to random users.
    @Test func concurrentSendersDeliverEveryMessageExactlyOnce() async throws {
        let folder = try temporaryDirectory("mail-concurrency")
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        // About concurrency, not request rates: 400 deposits from three identities may come faster
        // than their default rates allow (one in 400 was refused 429 in a loaded run), and 20
        // clients sending as 3 identities may have more than the default 4 deposits of one
        // identity under way at once (2 in 400 were refused 429 in a loaded CI run).
        let relay = try await commands.startRelay(data: data, options: Self.manyConnections
                                                  + ["--rate-per-address", "100000", "--rate-per-identity", "100000",
                                                     "--uploads-per-identity", "20"])
        let curl = RelayCurl(port: relay.port, caFile: data.appendingPathComponent("tls/dev-ca.pem"))
        var tokens: [String: String] = [:]
        for name in Self.users { tokens[name] = try await curl.registerAndAuthenticate(name) }
        let frozenTokens = tokens

        // 400 envelopes: a random sender to one or two random other users.
        var plan: [(sender: String, recipients: [String], id: MessageID, file: URL)] = []
        for index in 0..<400 {
            let sender = Self.users.randomElement()!
            let others = Self.users.filter { $0 != sender }.shuffled()
            let recipients = Array(others.prefix(Int.random(in: 1...2)))
            let envelope = try RelayCurl.envelope(from: sender, to: recipients)
            let file = folder.appendingPathComponent("\(index).sm")
            try Data(envelope.bytes).write(to: file)
            plan.append((sender, recipients, envelope.id, file))
        }
        let frozenPlan = plan
        let statuses = try await withThrowingTaskGroup(of: [Int].self) { group in
            for client in 0..<20 {
                group.addTask {
                    var statuses: [Int] = []
                    for item in frozenPlan[(client * 20)..<(client * 20 + 20)] {
                        let query = item.recipients.map { "to=\($0)" }.joined(separator: "&")
                        statuses.append(try await curl.call("/v1/messages?\(query)", method: "POST",
                                                            headers: ["Authorization: Bearer \(frozenTokens[item.sender]!)"], file: item.file).status)
                    }
                    return statuses
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(statuses.count == 400)
        #expect(statuses.allSatisfy { $0 == 201 }, "\(Dictionary(grouping: statuses, by: { $0 }).mapValues(\.count))")
        for name in Self.users {
            let expected = plan.filter { $0.recipients.contains(name) }.map(\.id.hex).sorted()
            let listed = try await listing(curl, token: tokens[name]!)
            #expect(listed.sorted() == expected, "\(name): \(listed.count) listed, \(expected.count) sent")
            #expect(Set(listed).count == listed.count)
        }
        #expect(await commands.stop(relay.process) == 0)
    }

    /// SIGKILL in the middle of many deposits; after a restart every acknowledged message is
    /// there byte for byte, nothing partial is listed, and no stray file is left.
    @Test(arguments: EngineUnderTest.available)
    func aKilledRelayKeepsEveryAcknowledgedMessageAndListsNothingPartial(engine: EngineUnderTest) async throws {
        let folder = try temporaryDirectory("mail-crash")
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        let database = engine == .postgres ? ["--database", TestPostgres.url(of: try await TestPostgres.freshDatabase("crash"))] : []
        let relay = try await commands.startRelay(data: data, options: Self.manyConnections + database)
        let curl = RelayCurl(port: relay.port, caFile: data.appendingPathComponent("tls/dev-ca.pem"))
        let alice = try await curl.registerAndAuthenticate("alice")
        let bob = try await curl.registerAndAuthenticate("bob")

        // 60 envelopes of about 300 KiB, so that a kill lands in the middle of some.
        var envelopes: [(id: MessageID, bytes: [UInt8], file: URL)] = []
        for index in 0..<60 {
            let envelope = try RelayCurl.envelope(from: "alice", to: ["bob"], extra: 300 * 1024)
            let file = folder.appendingPathComponent("\(index).sm")
            try Data(envelope.bytes).write(to: file)
            envelopes.append((envelope.id, envelope.bytes, file))
        }
        let acknowledged = Acknowledged()
        let (firstCurl, frozen) = (curl, envelopes)
        let senders = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<6 {
                    group.addTask {
                        for item in frozen[(lane * 10)..<(lane * 10 + 10)] {
                            let answer = try await firstCurl.call("/v1/messages?to=bob", method: "POST",
                                                             headers: ["Authorization: Bearer \(alice)"], file: item.file)
                            if answer.status == 201 { await acknowledged.add(item.id.hex) }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        // Kill once a third is acknowledged (or after 20 s), mid-stream.
        let acked = try await kill(relay.process, onceAcknowledged: 20, of: 60, by: acknowledged, within: 20) { _ = await senders.result }

        try await expectIntactAfterRestart(data: data, options: database, folder: folder, bob: bob, acknowledged: acked,
                                           sent: envelopes.map { ($0.id, $0.bytes) })
    }
}

extension MailboxDurabilityTests {
    /// Group commit under SIGKILL: 16 kept-alive connections deposit small messages as fast as
    /// the relay takes them, so deposits share commits; the relay is killed mid-burst. Every
    /// acknowledged message is listed and intact after a restart, nothing else is listed that
    /// was not sent, and no stray file remains.
    @Test func aKilledRelayDuringABurstOfGroupCommitsKeepsEveryAcknowledgedMessage() async throws {
        let folder = try temporaryDirectory("group-commit-crash")
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        // Room for all 16 of alice's connections to upload at once: under the default 4 uploads
        // per identity most deposits were refused (429), and a slow CI run once got only 78 of
        // the 80 acknowledgements this test waits for before all 320 were tried.
        let relay = try await commands.startRelay(data: data, options: ["--rate-per-address", "100000", "--rate-per-identity", "100000",
                                                                        "--uploads-per-identity", "32"] + Self.manyConnections)
        let caFile = data.appendingPathComponent("tls/dev-ca.pem")
        let curl = RelayCurl(port: relay.port, caFile: caFile)
        let alice = try await curl.registerAndAuthenticate("alice")
        let bob = try await curl.registerAndAuthenticate("bob")

        let envelopes = try (0..<320).map { _ in try RelayCurl.envelope(from: "alice", to: ["bob"]) }
        let acknowledged = Acknowledged()
        let tls = try TLSContext(configuration: .client(trust: .certificateAuthorities(file: caFile.path)))
        let port = relay.port
        let senders = Task {
            await withTaskGroup(of: Void.self) { group in
                for lane in 0..<16 {
                    group.addTask {
                        guard let connection = try? await RelayHTTPConnection.open(host: "localhost", port: port, tls: tls) else { return }
                        for envelope in envelopes[(lane * 20)..<(lane * 20 + 20)] {
                            let request = RelayRequest(.POST, Endpoint.deposit.path(query: [("to", "bob")]), body: .binary(Data(envelope.bytes)),
                                                       bearer: alice)
                            guard let answer = try? await connection.send(request) else { return }
                            if answer.status == 201 { await acknowledged.add(envelope.id.hex) }
                        }
                    }
                }
            }
        }
        let acked = try await kill(relay.process, onceAcknowledged: 80, of: 320, by: acknowledged, within: 30) { _ = await senders.result }

        try await expectIntactAfterRestart(data: data, folder: folder, bob: bob, acknowledged: acked,
                                           sent: envelopes.map { ($0.id, $0.bytes) })
    }
}

extension MailboxDurabilityTests {
    /// SIGKILLs `relay` once `count` of the `total` deposits under way are acknowledged (or after
    /// `seconds`), lets the senders finish, and returns every id acknowledged before the relay
    /// died; some must be, not all.
    func kill(_ relay: Process, onceAcknowledged count: Int, of total: Int, by acknowledged: Acknowledged,
              within seconds: TimeInterval, senders: () async -> Void) async throws -> Set<String> {
        let deadline = Date().addingTimeInterval(seconds)
        while await acknowledged.count < count, Date() < deadline { try await Task.sleep(nanoseconds: 5_000_000) }
        Foundation.kill(relay.processIdentifier, SIGKILL)
        relay.waitUntilExit()
        await senders()
        let acked = await acknowledged.ids
        #expect(acked.count >= count && acked.count < total, "\(acked.count) acknowledged before the kill")
        return acked
    }

    /// After a SIGKILL: a restarted relay on `data` (with `options`: its database) lists every
    /// acknowledged message, each listed message is one that was sent and comes back byte for
    /// byte, and no stray file is left.
    func expectIntactAfterRestart(data: URL, options: [String] = [], folder: URL, bob: String, acknowledged: Set<String>,
                                  sent: [(id: MessageID, bytes: [UInt8])]) async throws {
        let relay = try await commands.startRelay(data: data, options: Self.manyConnections + options)
        let curl = RelayCurl(port: relay.port, caFile: data.appendingPathComponent("tls/dev-ca.pem"))
        let listed = try await listing(curl, token: bob)
        // Every acknowledged message is there; anything else listed committed fully before the kill.
        #expect(acknowledged.isSubset(of: Set(listed)), "missing: \(acknowledged.subtracting(listed))")
        for id in listed {
            let item = try #require(sent.first { $0.id.hex == id })
            let fetched = folder.appendingPathComponent("fetched-\(id).sm")
            #expect(try await curl.call("/v1/mailbox/\(id)", headers: ["Authorization: Bearer \(bob)"], output: fetched).status == 200)
            #expect(Array(try Data(contentsOf: fetched)) == item.bytes, "message \(id) is not intact")
        }
        // Envelopes over MailboxStore.inlineLimit are files beside SQLite; smaller ones, and every
        // one on PostgreSQL, live in the database (and staged uploads are gone).
        let files = try FileManager.default.contentsOfDirectory(atPath: data.appendingPathComponent("envelopes").path)
        let listedFiles = options.contains("--database") ? 0
            : sent.filter { listed.contains($0.id.hex) && $0.bytes.count > MailboxStore.inlineLimit }.count
        #expect(files.count == listedFiles, "\(files.count) files for \(listedFiles) file-backed messages")
        #expect(await commands.stop(relay.process) == 0)
    }
}

actor Acknowledged {
    private(set) var ids: Set<String> = []
    var count: Int { ids.count }
    func add(_ id: String) { ids.insert(id) }
}
