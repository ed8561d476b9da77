import Foundation
import SecmailAPI
import SecmailClient
import SecmailCrypto
import SecmailFormat
import SecmailRelay
import SecmailRelayTestSupport
import SecmailTLS
import SecmailTestSupport
import Testing

/// Issue 15: several `secmail relay` processes on one PostgreSQL database, as two relays behind
/// one address would run: one log, one directory, one set of mailboxes and sign-ins.
@Suite(.enabled(if: TestPostgres.isAvailable, "no PostgreSQL cluster (scripts/test.sh starts one)"))
struct SharedDatabaseTests {
    let commands = RelayCommandTests()
    static let certs = RunningRelay.certs
    static let caFile = certs.appendingPathComponent("dev-ca.pem")
    /// Both relays serve the same certificate and key, as relays behind one address must (clients pin the key).
    static let sharedCertificate = ["--cert", certs.appendingPathComponent("relay.pem").path,
                                    "--key", certs.appendingPathComponent("throwaway-relay.key.pem").path]
    /// Load tests register many names with a few key pairs, faster than one address may; their
    /// kept-alive connections belong to this process's tasks, which other tests can stall for
    /// more than a minute, so they may stay idle for ten, and a request's head, body or answer
    /// may be that slow too (in one CI run a worker's connection was closed before an answer).
    static let loadOptions = ["--idle-timeout-before-sign-in", "600", "--idle-timeout", "600", "--header-timeout", "600", "--min-body-rate", "1",
                              "--write-timeout", "600", "--allow-shared-keys", "--registrations-per-hour-per-address", "1000000", "--registrations-per-hour", "1000000",
                              "--rate-per-address", "100000", "--rate-per-identity", "100000", "--max-connections-per-address", "100000",
                              "--connection-rate-per-address", "100000"]

    struct Relay {
        let data: URL
        let process: Process
        let port: Int
    }

    /// Two relays on the database `url`: the first creates the log key and origin, the second gets
    /// copies of them (shared configuration, docs/DEPLOY.md).
    func startPair(in folder: URL, database url: String, options: [String] = []) async throws -> [Relay] {
        let first = folder.appendingPathComponent("relay-a", isDirectory: true), second = folder.appendingPathComponent("relay-b", isDirectory: true)
        let options = ["--database", url] + Self.sharedCertificate + options
        let a = try await commands.startRelay(data: first, options: options)
        try FileManager.default.createDirectory(at: second, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for file in ["log-key.ed25519", "origin"] {
            try FileManager.default.copyItem(at: first.appendingPathComponent(file), to: second.appendingPathComponent(file))
        }
        let b = try await commands.startRelay(data: second, options: options)
        return [Relay(data: first, process: a.process, port: a.port), Relay(data: second, process: b.process, port: b.port)]
    }

    @Test func aRelayWithAnotherLogKeyIsRefusedBeforeItSigns() async throws {
        let folder = try temporaryDirectory("shared-key")
        let url = TestPostgres.url(of: try await TestPostgres.freshDatabase("sharedkey"))
        let first = try await commands.startRelay(data: folder.appendingPathComponent("relay-a"), options: ["--database", url] + Self.sharedCertificate)
        let stranger = try await runSecmail(["relay", "--data", folder.appendingPathComponent("relay-b").path, "--listen", "127.0.0.1:0",
                                             "--database", url] + Self.sharedCertificate, environment: [:])
        #expect(stranger.status != 0)
        #expect(stranger.stderr.contains("copy log-key.ed25519 and origin"), "\(stranger.stderr)")
        #expect(await commands.stop(first.process) == 0)
    }

    /// `secmail relay new-log` on a relay of the shared database records the new log key and
    /// origin there: the other relay, still holding the old key, is refused at start until it
    /// has copies of the new files, and then both sign the new log, which a user follows.
    @Test func aNewLogOnTheSharedDatabaseIsSignedByEveryRelayOnceCopied() async throws {
        let folder = try temporaryDirectory("shared-new-log")
        let url = TestPostgres.url(of: try await TestPostgres.freshDatabase("sharednewlog"))
        let relays = try await startPair(in: folder, database: url)
        let alice = CLIUser.fresh("alice", in: folder)
        try await alice.register(port: relays[0].port, ca: Self.caFile.path)
        for relay in relays { #expect(await commands.stop(relay.process) == 0) }

        let renewed = try await runSecmail(["relay", "new-log", "--data", relays[0].data.path, "--database", url], environment: [:])
        #expect(renewed.status == 0 && renewed.stdout.contains("log origin:     localhost/secmail/2") && renewed.stdout.contains("Copy log-key.ed25519 and origin"),
                "\(renewed.stdout)\(renewed.stderr)")
        let newKey = try #require(renewed.stdout.split(separator: "\n").first { $0.contains("log key:") }?.split(separator: " ").last.map(String.init))
        let options = ["--database", url] + Self.sharedCertificate
        let stale = try await runSecmail(["relay", "--data", relays[1].data.path, "--listen", "127.0.0.1:0"] + options, environment: [:])
        #expect(stale.status != 0 && stale.stderr.contains("localhost/secmail/2") && stale.stderr.contains("copy log-key.ed25519 and origin"), "\(stale.stderr)")

        for file in ["log-key.ed25519", "origin"] {
            let copy = relays[1].data.appendingPathComponent(file)
            try FileManager.default.removeItem(at: copy)
            try FileManager.default.copyItem(at: relays[0].data.appendingPathComponent(file), to: copy)
        }
        let first = try await commands.startRelay(data: relays[0].data, options: options)
        let second = try await commands.startRelay(data: relays[1].data, options: options)
        for relay in [first, second] {
            #expect(relay.output.text.contains(newKey), "\(relay.output.text)")
        }
        let followed = try await alice.run(["register", "alice", "--relay", "https://localhost:\(second.port)", "--new-log", "--log-key", newKey])
        #expect(followed.status == 0 && followed.stderr.contains("now follows the relay's new log"), "\(followed.stderr)")
        try alice.retarget(port: first.port)
        let found = try await alice.run(["lookup", "alice"])
        #expect(found.status == 0, "\(found.stderr)")
        for relay in [first, second] { #expect(await commands.stop(relay.process) == 0) }
    }

    /// 2 × 500 registrations, and 2 × 50 rotations each through the relay the name did not
    /// register with, all at once: one linear log. Checkpoints sampled from both relays during
    /// the load are each consistent with the final tree (proofs asked of the other relay), both
    /// relays end on the same signed tree, `secmail monitor` replays it through each, and a
    /// rotated name is verified at version 2 through both.
    @Test func twoRelaysKeepOneLinearLogUnderConcurrentRegistrationsAndRotations() async throws {
        let folder = try temporaryDirectory("shared-log")
        let relays = try await startPair(in: folder, database: TestPostgres.url(of: try TestPostgres.freshDatabase("sharedlog")), options: Self.loadOptions)
        let tls = try TLSContext(configuration: .client(trust: .certificateAuthorities(file: Self.caFile.path)))
        let pin = try Fingerprint(hex: String(contentsOf: Self.certs.appendingPathComponent("relay.spki-sha256"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)).bytes
        let keyPairs = try ["alice", "bob", "carol"].map { (try ThrowawayIdentities.signingKey($0), try ThrowawayIdentities.encryptionKey($0)) }

        // Names r<relay>-<n>; every tenth is rotated later through the other relay.
        let perRelay = 500
        let bundles: [[SenderIdentity]] = try (0..<2).map { relay in
            try (0..<perRelay).map { index in
                let (signing, encryption) = keyPairs[index % keyPairs.count]
                let bundle = try IdentityBundle.create(name: IdentityName("r\(relay)-\(index)"), createdAt: 1_800_000_000,
                                                       signingKey: signing, encryptionKey: try encryption.publicKey)
                return try SenderIdentity(bundle: bundle, signingKey: signing)
            }
        }
        let ports = relays.map(\.port)
        let origin = "localhost/secmail"

        let sampler = CheckpointSampler()
        let sampling = Task {
            var turn = 0
            while !Task.isCancelled {
                let port = ports[turn % 2]
                turn += 1
                if let connection = try? await RelayHTTPConnection.open(host: "localhost", port: port, tls: tls),
                   let answer = try? await connection.send(RelayRequest(.GET, Endpoint.checkpoint.path())), answer.status == 200 {
                    await sampler.add(String(decoding: answer.body, as: UTF8.self), from: port)
                    await connection.close()
                }
                try? await Task.sleep(nanoseconds: 50_000_000)
            }
        }
        let failures = try await withThrowingTaskGroup(of: [String].self) { group in
            for relay in 0..<2 {
                for worker in 0..<8 {
                    group.addTask {
                        var failures: [String] = []
                        let connection = try await RelayHTTPConnection.open(host: "localhost", port: ports[relay], tls: tls)
                        for index in stride(from: worker, to: perRelay, by: 8) {
                            let answer = try await connection.send(RelayRequest(.POST, Endpoint.register.path(),
                                                                                json: BundleRequest(bundle: Data(bundles[relay][index].bundle.encoded).base64EncodedString())))
                            if answer.status != 201 { failures.append("register r\(relay)-\(index): \(answer.status)") }
                        }
                        // Rotations of the other relay's names, through this one.
                        let other = 1 - relay
                        for index in stride(from: worker * 10, to: perRelay, by: 80) {
                            let current = bundles[other][index]
                            let (signing, encryption) = keyPairs[(index + 1) % keyPairs.count]
                            let next = try IdentityBundle.create(name: current.bundle.name, keyVersion: 2, createdAt: 1_800_000_001,
                                                                 signingKey: signing, encryptionKey: try encryption.publicKey,
                                                                 rotatingFrom: (current.bundle, current.signer))
                            // The name's registration through the other relay may still be on its way.
                            var status = 0
                            for _ in 0..<100 where status != 200 {
                                status = try await rotate(current, to: next, over: connection, origin: origin, pin: pin)
                                if status == 404 || status == 403 { try await Task.sleep(nanoseconds: 50_000_000) } else { break }
                            }
                            if status != 200 { failures.append("rotate \(current.bundle.name): \(status)") }
                        }
                        await connection.close()
                        return failures
                    }
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        sampling.cancel()
        _ = await sampling.result
        #expect(failures.isEmpty, "\(failures.prefix(5))")

        // Both relays serve the same signed tree: 1,000 registrations and 100 rotations.
        var finals: [Checkpoint] = []
        var verifierKeys: [String] = []
        for port in ports {
            let connection = try await RelayHTTPConnection.open(host: "localhost", port: port, tls: tls)
            verifierKeys.append(String(decoding: try await connection.send(RelayRequest(.GET, Endpoint.logKey.path())).body, as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines))
            let verifier = try NoteVerifier(verifierKey: verifierKeys[0])
            let note = String(decoding: try await connection.send(RelayRequest(.GET, Endpoint.checkpoint.path())).body, as: UTF8.self)
            finals.append(try Checkpoint(text: try SignedNote.open(note, verifier: verifier)))
            await connection.close()
        }
        #expect(verifierKeys[0] == verifierKeys[1])
        let verifier = try NoteVerifier(verifierKey: verifierKeys[0])
        #expect(finals[0] == finals[1])
        #expect(finals[0].size == 2 * UInt64(perRelay) + 100)

        // Every checkpoint either relay signed during the load is a prefix of the final tree,
        // proven by the other relay.
        let samples = await sampler.notes
        #expect(samples.count >= 4, "only \(samples.count) checkpoints sampled")
        #expect(Set(samples.map(\.port)).count == 2)
        for sample in samples {
            let checkpoint = try Checkpoint(text: try SignedNote.open(sample.note, verifier: verifier))
            guard checkpoint.size > 0 else { continue }
            let other = ports.first { $0 != sample.port } ?? sample.port
            let connection = try await RelayHTTPConnection.open(host: "localhost", port: other, tls: tls)
            let answer = try await connection.send(RelayRequest(.GET, Endpoint.consistency.path(query: [("from", "\(checkpoint.size)"), ("to", "\(finals[0].size)")])))
            await connection.close()
            let proof = try JSONDecoder().decode(ConsistencyResponse.self, from: Data(answer.body)).proof.compactMap { Data(base64Encoded: $0).map(Array.init) }
            #expect(MerkleProof.verifyConsistency(oldSize: checkpoint.size, newSize: finals[0].size, oldRoot: checkpoint.rootHash,
                                                  newRoot: finals[0].rootHash, proof: proof), "checkpoint \(checkpoint.size) from \(sample.port)")
        }

        // secmail monitor replays the whole log through one relay, then follows it through the other.
        let monitorHome = folder.appendingPathComponent("monitor", isDirectory: true)
        let environment = ["SECMAIL_HOME": monitorHome.path]
        let firstRun = try await runSecmail(["monitor", "--relay", "https://localhost:\(ports[0])", "--ca", Self.caFile.path], environment: environment)
        #expect(firstRun.status == 0, "\(firstRun.stderr)")
        #expect(firstRun.stdout.contains("\(finals[0].size)") || firstRun.stderr.contains("\(finals[0].size)"), "\(firstRun.stdout)\(firstRun.stderr)")
        let secondRun = try await runSecmail(["monitor", "--relay", "https://localhost:\(ports[1])"], environment: environment)
        #expect(secondRun.status == 0 && secondRun.stderr.contains("this home now monitors that address"), "\(secondRun.stderr)")

        // A name rotated through relay b is at version 2 through either relay.
        for port in ports {
            let connection = try await RelayHTTPConnection.open(host: "localhost", port: port, tls: tls)
            let answer = try await connection.send(RelayRequest(.GET, Endpoint.lookup.path("r0-0")))
            await connection.close()
            let lookup = try DirectoryVerification.verifyLookup(answer.body, name: IdentityName("r0-0"), logVerifier: verifier)
            #expect(lookup.bundle.keyVersion == 2)
        }
        for relay in relays { #expect(await commands.stop(relay.process) == 0) }
    }

    /// Signs in as `identity` over `connection` and rotates its name to `next`; the status of the
    /// step that failed, or of the rotation.
    func rotate(_ identity: SenderIdentity, to next: IdentityBundle, over connection: RelayHTTPConnection, origin: String, pin: [UInt8]) async throws -> Int {
        let challengeAnswer = try await connection.send(RelayRequest(.POST, Endpoint.challenge.path(), json: ChallengeRequest(name: identity.bundle.name.value)))
        guard challengeAnswer.status == 200 else { return challengeAnswer.status }
        let challenge = try JSONDecoder().decode(ChallengeResponse.self, from: Data(challengeAnswer.body))
        let tokenAnswer = try await connection.send(RelayRequest(.POST, Endpoint.token.path(),
                                                                 json: SignIn.answer(challenge, as: identity, origin: origin, relayKeyPin: pin)))
        guard tokenAnswer.status == 200 else { return tokenAnswer.status }
        let token = try JSONDecoder().decode(TokenResponse.self, from: Data(tokenAnswer.body)).token
        return try await connection.send(RelayRequest(.POST, Endpoint.rotate.path(), json: BundleRequest(bundle: Data(next.encoded).base64EncodedString()),
                                                      bearer: token)).status
    }

    /// alice sends through relay a; bob reads through relay b (a large attachment: chunks), which
    /// removes the message, and relay a no longer lists it.
    @Test func mailDepositedThroughOneRelayIsReadThroughTheOther() async throws {
        let folder = try temporaryDirectory("shared-mail")
        let database = TestPostgres.url(of: try await TestPostgres.freshDatabase("sharedmail"))
        let relays = try await startPair(in: folder, database: database)
        let alice = CLIUser.fresh("alice", in: folder), bob = CLIUser.fresh("bob", in: folder)
        try await alice.register(port: relays[0].port, ca: Self.caFile.path)
        try await bob.register(port: relays[1].port, ca: Self.caFile.path)
        let attachment = folder.appendingPathComponent("data.bin")
        try Data(try SystemRandom().bytes(count: 2_500_000)).write(to: attachment)
        let sent = try await alice.run(["send", "bob", "--message", "through relay a", "--attach", attachment.path])
        #expect(sent.status == 0, "\(sent.stderr)")
        let id = try #require(sent.stdout.split(separator: "\n").last.map(String.init))
        // Either relay's status shows the one database: the message alice deposited through a.
        let status = try await runSecmail(["relay", "status", "--data", relays[1].data.path, "--database", database, "--json"], environment: [:])
        let fields = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any], "\(status.stderr)")
        #expect(fields["names"] as? Int == 2 && fields["logEntries"] as? Int == 2 && fields["messages"] as? Int == 1
                && fields["waiting"] as? Int == 1 && (fields["messageBytes"] as? Int ?? 0) > 2_500_000
                && (fields["fullestMailbox"] as? [String: Any])?["name"] as? String == "bob" && fields["databaseBytes"] == nil, "\(fields)")
        let out = folder.appendingPathComponent("out", isDirectory: true)
        let read = try await bob.run(["read", id, "--out", out.path])
        #expect(read.status == 0, "\(read.stderr)")
        #expect(read.stdout.contains("through relay a"))
        #expect(try Data(contentsOf: out.appendingPathComponent("data.bin")) == Data(contentsOf: attachment))
        try bob.retarget(port: relays[0].port)
        let inbox = try await bob.run(["inbox"])
        #expect(inbox.status == 0 && (inbox.stdout + inbox.stderr).contains("No messages"), "\(inbox.stdout)\(inbox.stderr)")
        for relay in relays { #expect(await commands.stop(relay.process) == 0) }
    }

    /// The same envelope deposited through both relays at once, as a client offering it again
    /// after a lost answer may: one deposit is taken (201) and the other refused as a message id
    /// accepted already (409 conflict; the relays' write transactions take turns, so the second
    /// sees the first's row), never a storage error; bob has each message once.
    @Test func theSameEnvelopeThroughBothRelaysAtOnceIsTakenOnce() async throws {
        let folder = try temporaryDirectory("shared-repeat")
        // Patient relays: this process's tasks, connections included, can be stalled by other tests.
        let relays = try await startPair(in: folder, database: TestPostgres.url(of: try await TestPostgres.freshDatabase("sharedrepeat")),
                                         options: Self.loadOptions)
        let alice = CLIUser.fresh("alice", in: folder), bob = CLIUser.fresh("bob", in: folder)
        try await alice.register(port: relays[0].port, ca: Self.caFile.path)
        try await bob.register(port: relays[1].port, ca: Self.caFile.path)
        let sender = try Keystore(home: SecmailHome(url: alice.home)).unlockSender(passphrase: Passphrase(alice.passphrase))
        let bobBundle = try Keystore(home: SecmailHome(url: bob.home)).currentBundle()
        // Sign-ins live in the shared database: a token from relay a serves at relay b too.
        let client = try RelayClient(home: SecmailHome(url: alice.home))
        let token = try await client.token(for: sender)
        await client.close()
        let tls = try TLSContext(configuration: .client(trust: .certificateAuthorities(file: Self.caFile.path)))
        let attachment = folder.appendingPathComponent("data.bin")
        try Data(try SystemRandom().bytes(count: 2_000_000)).write(to: attachment)

        let rounds = 6
        for round in 0..<rounds {
            let envelope = folder.appendingPathComponent("round-\(round).sm")
            let sink = FileSink(file: try PositionalFile(creatingAtPath: envelope.path, permissions: 0o600))
            _ = try EnvelopeSealer().seal(text: "round \(round)", attachments: [try OutgoingAttachment(file: attachment)],
                                          from: sender, to: [bobBundle], into: sink)
            try sink.synchronize()
            let deposit = RelayRequest(.POST, Endpoint.deposit.path(query: [(Endpoint.Query.recipient, "bob")]), body: .file(envelope), bearer: token)
            async let first = Self.send(deposit, port: relays[0].port, tls: tls)
            async let second = Self.send(deposit, port: relays[1].port, tls: tls)
            let answers = try await [first, second]
            #expect(answers.map(\.status).sorted() == [201, 409], "round \(round): \(answers.map { "\($0.status) \(String(decoding: $0.body, as: UTF8.self))" })")
        }
        let inbox = try await bob.run(["inbox", "--json"])
        let listed = try #require(try JSONSerialization.jsonObject(with: Data(inbox.stdout.utf8)) as? [[String: Any]])
        #expect(listed.count == rounds, "\(inbox.stdout)")
        for relay in relays { #expect(await commands.stop(relay.process) == 0) }
    }

    /// `request` on a connection of its own to the relay on `port`.
    static func send(_ request: RelayRequest, port: Int, tls: TLSContext) async throws -> RelayResponse {
        let connection = try await RelayHTTPConnection.open(host: "localhost", port: port, tls: tls)
        let answer = try await connection.send(request)
        await connection.close()
        return answer
    }

    /// The database stops under a stream of deposits and lookups and starts again: while it is
    /// down every request gets a clean `500 storage` answer (no hang, no crash), every deposit
    /// acknowledged before or after is listed, and the relay serves again without a restart.
    @Test func aDatabaseOutageFailsRequestsCleanlyAndTheRelayRecovers() async throws {
        try await withClusterOfItsOwn { cluster in try await outageUnderLoad(cluster: cluster) }
    }

    /// Runs `body` with a PostgreSQL cluster of its own (the outage test stops its server; the
    /// other tests share theirs), removed afterwards whether `body` threw or not.
    private func withClusterOfItsOwn(_ body: (_ socketDirectory: URL) async throws -> Void) async throws {
        // Outside the tests' private workspace: the server runs as the postgres user.
        let cluster = FileManager.default.temporaryDirectory.appendingPathComponent("secmail-outage-\(UUID().uuidString)", isDirectory: true)
        try #require(try await runDetached(["bash", Self.clusterScript, "start", cluster.path]) == 0)
        do {
            try await body(cluster)
        } catch {
            _ = try? await runDetached(["bash", Self.clusterScript, "stop", cluster.path])
            throw error
        }
        #expect(try await runDetached(["bash", Self.clusterScript, "stop", cluster.path]) == 0)
    }

    private static let clusterScript = certs.deletingLastPathComponent().appendingPathComponent("scripts/test-postgres.sh").path

    private func outageUnderLoad(cluster: URL) async throws {
        let folder = try temporaryDirectory("shared-outage")
        let script = Self.clusterScript
        #expect(try await run("psql", TestPostgres.psqlArguments("CREATE DATABASE outage", socketDirectory: cluster.path)).status == 0)
        let url = "postgres://postgres@/outage?host=\(cluster.path)"
        let relay = try await commands.startRelay(data: folder.appendingPathComponent("relay"), options: ["--database", url] + Self.sharedCertificate
                                                  + ["--rate-per-address", "100000", "--rate-per-identity", "100000", "--connection-rate-per-address", "100000"])
        defer { if relay.process.isRunning { relay.process.terminate() } }
        let curl = RelayCurl(port: relay.port, caFile: Self.caFile)
        let alice = try await curl.registerAndAuthenticate("alice")
        let bob = try await curl.registerAndAuthenticate("bob")

        let acknowledged = Acknowledged()
        let statuses = StatusLog()
        let load = Task {
            for _ in 0..<400 {
                let envelope = try RelayCurl.envelope(from: "alice", to: ["bob"])
                let file = folder.appendingPathComponent("\(envelope.id.hex).sm")
                try Data(envelope.bytes).write(to: file)
                let answer = try await curl.call("/v1/messages?to=bob", method: "POST", headers: ["Authorization: Bearer \(alice)"], file: file)
                await statuses.add(answer.status, answer.body)
                if answer.status == 201 { await acknowledged.add(envelope.id.hex) }
                let lookup = try await curl.call("/v1/directory/bob")
                await statuses.add(lookup.status, lookup.body)
                if await statuses.sawRecovery { break }
            }
        }
        let deadline = Date().addingTimeInterval(60)
        while await acknowledged.count < 5, Date() < deadline { try await Task.sleep(nanoseconds: 20_000_000) }
        let early = await statuses.all.prefix(3)
        try #require(await acknowledged.count >= 5, "\(early)")
        #expect(try await runDetached(["bash", script, "halt", cluster.path]) == 0)
        await statuses.markOutage()
        let down = try await curl.call("/v1/directory/bob")
        #expect(down.status == 500 && down.body.contains("\"storage\""), "\(down)")
        try await Task.sleep(nanoseconds: 1_000_000_000)
        #expect(try await runDetached(["bash", script, "resume", cluster.path]) == 0)
        await statuses.markResumed()
        _ = await load.result

        let seen = await statuses.all
        let succeeded: Set = [200, 201]
        #expect(seen.allSatisfy { succeeded.contains($0.status) || ($0.status == 500 && $0.body.contains("\"storage\"")) },
                "\(seen.filter { !succeeded.contains($0.status) }.prefix(3))")
        #expect(seen.contains { $0.status == 500 }, "no request met the outage")
        #expect(await statuses.sawRecovery, "no deposit succeeded after the database came back")
        #expect(try await curl.call("/v1/directory/bob").status == 200)
        let listed = try await MailboxDurabilityTests().listing(curl, token: bob)
        #expect(await acknowledged.ids.isSubset(of: Set(listed)))
        #expect(await commands.stop(relay.process) == 0)
    }
}

/// Checkpoints sampled during a load, with the port of the relay that signed each.
actor CheckpointSampler {
    private(set) var notes: [(note: String, port: Int)] = []

    func add(_ note: String, from port: Int) {
        notes.append((note, port))
    }
}

/// Deposit statuses through an outage: whether one succeeded after the database came back.
actor StatusLog {
    private(set) var all: [(status: Int, body: String)] = []
    private var phase = 0
    private(set) var sawRecovery = false

    func add(_ status: Int, _ body: String) {
        all.append((status, body))
        if phase == 2, status == 201 { sawRecovery = true }
    }

    func markOutage() { phase = 1 }
    func markResumed() { phase = 2 }
}
