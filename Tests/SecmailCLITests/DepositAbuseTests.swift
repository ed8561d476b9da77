import Foundation
import SecmailAPI
import SecmailCrypto
import SecmailFormat
import SecmailRelay
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// Issue 12, deposits: a real `secmail relay` process over TLS on 127.0.0.1; the throw-away
/// identities alice, bob and carol deposit through curl and Fixtures/slow_client.py.
@Suite struct DepositAbuseTests {
    let commands = RelayCommandTests()

    struct Setup {
        let relay: (process: Process, output: OutputCollector, port: Int)
        let curl: RelayCurl
        let ca: String
        var tokens: [String: String] = [:]
    }

    func setUp(_ label: String, options: [String]) async throws -> Setup {
        let data = try temporaryDirectory(label).appendingPathComponent("relay", isDirectory: true)
        let relay = try await commands.startRelay(data: data, options: options)
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        var setup = Setup(relay: relay, curl: RelayCurl(port: relay.port, caFile: URL(fileURLWithPath: ca)), ca: ca)
        for name in ["alice", "bob", "carol"] { setup.tokens[name] = try await setup.curl.registerAndAuthenticate(name) }
        return setup
    }

    /// Deposits `bytes` from `sender` to bob; returns the status and body.
    func deposit(_ bytes: [UInt8], from sender: String, _ setup: Setup) async throws -> (status: Int, body: String) {
        let file = try temporaryDirectory("deposit").appendingPathComponent("envelope.smsg")
        try Data(bytes).write(to: file)
        return try await setup.curl.call("/v1/messages?to=bob", method: "POST", headers: ["Authorization: Bearer \(setup.tokens[sender] ?? "")"], file: file)
    }

    func slowClient(_ arguments: [String]) async throws -> Int? {
        let result = try await run("python3", [ConnectionAbuseTests.client] + arguments)
        guard let object = try? JSONSerialization.jsonObject(with: Data(result.text.utf8)) as? [String: Any] else {
            throw TestFailure("slow_client.py \(arguments): \(result.text) \(result.stderr)")
        }
        return object["status"] as? Int
    }

    @Test func junkIsRefusedAtDeposit() async throws {
        let setup = try await setUp("deposit-junk", options: [])
        let genuine = try RelayCurl.envelope(from: "alice", to: ["bob"])
        var changed = genuine.bytes
        changed[changed.count - 300] ^= 1
        let forged = try await deposit(changed, from: "alice", setup)
        #expect(forged.status == 400 && forged.body.contains("the signature does not verify"), "\(forged)")
        // The same for an envelope large enough to be streamed to a file, whose payload hash is
        // taken as it arrives: a changed byte in the middle of its payload is refused, the
        // genuine one accepted.
        let large = try RelayCurl.envelope(from: "alice", to: ["bob"], extra: 300_000)
        var changedLarge = large.bytes
        changedLarge[changedLarge.count / 2] ^= 1
        let forgedLarge = try await deposit(changedLarge, from: "alice", setup)
        #expect(forgedLarge.status == 400 && forgedLarge.body.contains("the signature does not verify"), "\(forgedLarge)")
        #expect(try await deposit(large.bytes, from: "alice", setup).status == 201)

        // An envelope in alice's name sealed with keys the log does not record for her.
        let stranger = try IdentityBundle.create(name: IdentityName("alice"), createdAt: 1, signingKey: ThrowawayIdentities.signingKey("carol"),
                                                 encryptionKey: ThrowawayIdentities.encryptionKey("carol").publicKey)
        let sink = MemorySink()
        _ = try EnvelopeSealer().seal(text: "not really alice", from: SenderIdentity(bundle: stranger, signingKey: ThrowawayIdentities.signingKey("carol")),
                                      to: [ThrowawayIdentities.bundle("bob")], into: sink)
        let unlogged = try await deposit(sink.bytes, from: "alice", setup)
        #expect(unlogged.status == 400 && unlogged.body.contains("not a logged key of alice"), "\(unlogged)")
        #expect(try await deposit(genuine.bytes, from: "alice", setup).status == 201)
        #expect(await commands.stop(setup.relay.process) == 0)
    }

    @Test func sizeAndRoomAreCheckedBeforeTheBodyAndUploadsAreCapped() async throws {
        let setup = try await setUp("deposit-room", options: ["--mailbox-quota-mib", "1", "--uploads-per-identity", "1"])
        let port = String(setup.relay.port), ca = setup.ca
        let alice = setup.tokens["alice"] ?? ""
        // No length: 411 at once. Too big for bob's mailbox: 413 at once, with no body sent.
        #expect(try await slowClient(["post-head", port, ca, "/v1/messages?to=bob", alice, "none", "0", "0"]) == 411)
        #expect(try await slowClient(["post-head", port, ca, "/v1/messages?to=bob", alice, "2000000", "0", "0"]) == 413)

        // One upload under way for alice (half of 200 KB sent, then held): her next is refused,
        // carol's goes through.
        for attempt in 1...3 {
            async let held = slowClient(["post-head", port, ca, "/v1/messages?to=bob", alice, "200000", "100000", "8"])
            // Asked again until refused rather than once after a fixed wait: on a loaded machine
            // (CI runs the suites side by side) the held upload has been seen to reach the relay
            // after the second deposit. One accepted before it does is fine; none refused within
            // 12 s is not.
            try await Task.sleep(for: .seconds(3))
            var second = (status: 0, body: "")
            let deadline = Date().addingTimeInterval(9)
            while true {
                second = try await deposit(try RelayCurl.envelope(from: "alice", to: ["bob"]).bytes, from: "alice", setup)
                guard second.status == 201, Date() < deadline else { break }
                try await Task.sleep(for: .seconds(1))
            }
            let heldStatus = try await held
            // Later still, the held upload reached the relay while one of those deposits was under
            // way, and was itself the one refused (seen once in CI, with the suites taking 200 s):
            // the limit worked, the other way round; the round is played again.
            if heldStatus == 429, second.status == 201, attempt < 3 { continue }
            #expect(second.status == 429 && second.body.contains("deposits under way"), "\(second)")
            #expect(try await deposit(try RelayCurl.envelope(from: "carol", to: ["bob"]).bytes, from: "carol", setup).status == 201)
            // The held upload got no answer: it stayed under way, its body incomplete.
            #expect(heldStatus == nil)
            break
        }
        #expect(await commands.stop(setup.relay.process) == 0)
    }

    /// A client that goes away in the middle of its upload (here after 100,000 of 300,000 bytes,
    /// a body streamed to a file, and after 1,000 of 50,000, one kept in memory) is the
    /// request's failure: the relay logs a `400`, as it logs any refusal, not a `500` "request
    /// failed" at error level (which an operator is told to look into), and keeps nothing of it.
    @Test func anUploadThatBreaksOffIsTheClientsFailure() async throws {
        let data = try temporaryDirectory("deposit-broken").appendingPathComponent("relay", isDirectory: true)
        let relay = try await commands.startRelay(data: data)
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        let curl = RelayCurl(port: relay.port, caFile: URL(fileURLWithPath: ca))
        let alice = try await curl.registerAndAuthenticate("alice")
        _ = try await curl.registerAndAuthenticate("bob")
        let port = String(relay.port)
        #expect(try await slowClient(["post-head", port, ca, "/v1/messages?to=bob", alice, "300000", "100000", "0"]) == nil)
        #expect(try await slowClient(["post-head", port, ca, "/v1/messages?to=bob", alice, "50000", "1000", "0"]) == nil)

        func deposits() -> [Substring] { relay.output.text.split(separator: "\n").filter { $0.contains("path=/v1/messages") } }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, deposits().count < 2 { try await Task.sleep(for: .milliseconds(100)) }
        #expect(deposits().count == 2 && deposits().allSatisfy { $0.contains(" info ") && $0.contains("status=400") }, "\(relay.output.text)")
        #expect(!relay.output.text.contains("request failed"), "\(relay.output.text)")
        let envelopes = try FileManager.default.contentsOfDirectory(atPath: data.appendingPathComponent("envelopes").path)
        #expect(envelopes.isEmpty, "\(envelopes)")
        #expect(await commands.stop(relay.process) == 0)
    }

    @Test func oneSenderCannotFillAMailbox() async throws {
        let setup = try await setUp("deposit-share", options: ["--max-envelope-mib", "1", "--mailbox-quota-mib", "4", "--sender-share", "25"])
        var statuses: [Int] = []
        for _ in 0..<4 { statuses.append(try await deposit(try RelayCurl.envelope(from: "alice", to: ["bob"], extra: 300_000).bytes, from: "alice", setup).status) }
        #expect(statuses == [201, 201, 201, 413], "\(statuses)")
        let refused = try await deposit(try RelayCurl.envelope(from: "alice", to: ["bob"], extra: 300_000).bytes, from: "alice", setup)
        #expect(refused.body.contains("one sender may hold at most"), "\(refused)")
        #expect(try await deposit(try RelayCurl.envelope(from: "carol", to: ["bob"], extra: 300_000).bytes, from: "carol", setup).status == 201)
        // Bob deletes one of alice's messages: her share has room for one again, and only one.
        let bearer = ["Authorization: Bearer \(setup.tokens["bob"] ?? "")"]
        let listed = try await setup.curl.call(Endpoint.mailbox.path(), headers: bearer)
        let mailbox = try #require(try JSONSerialization.jsonObject(with: Data(listed.body.utf8)) as? [String: Any])
        let fromAlice = try #require((mailbox["messages"] as? [[String: Any]])?.first { $0["from"] as? String == "alice" }?["id"] as? String)
        #expect(try await setup.curl.call(Endpoint.deleteMessage.path(fromAlice), method: "DELETE", headers: bearer).status == 204)
        statuses = []
        for _ in 0..<2 { statuses.append(try await deposit(try RelayCurl.envelope(from: "alice", to: ["bob"], extra: 300_000).bytes, from: "alice", setup).status) }
        #expect(statuses == [201, 413], "\(statuses)")
        #expect(await commands.stop(setup.relay.process) == 0)
    }
}
