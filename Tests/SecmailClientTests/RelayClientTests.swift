import Foundation
import SecmailAPI
@testable import SecmailClient
import SecmailCrypto
import SecmailFormat
@testable import SecmailRelay
import SecmailRelayTestSupport
import SecmailTLS
import SecmailTestSupport
import Testing

@Suite struct RelayClientTests {
    static let caTrust = TLSConfiguration.Trust.certificateAuthorities(file: RunningRelay.certs.appendingPathComponent("dev-ca.pem").path)

    func connect(_ relay: RunningRelay, trust: TLSConfiguration.Trust = caTrust) async throws -> RelayHTTPConnection {
        try await RelayHTTPConnection.open(host: "localhost", port: relay.port, tls: TLSContext(configuration: .client(trust: trust)))
    }

    func register(_ name: String, on connection: RelayHTTPConnection) async throws -> RelayResponse {
        try await connection.send(RelayRequest(.POST, Endpoint.register.path(),
                                               json: BundleRequest(bundle: Data(ThrowawayIdentities.bundle(name).encoded).base64EncodedString())))
    }

    func lookup(_ name: String, on connection: RelayHTTPConnection) async throws -> RelayResponse {
        try await connection.send(RelayRequest(.GET, Endpoint.lookup.path(name)))
    }

    /// A new client home whose settings pin `relay` (its TLS key and log key), as after a first contact.
    func pinnedHome(_ relay: RunningRelay, _ label: String) throws -> SecmailHome {
        let home = SecmailHome(url: try makeTemporaryDirectory(label))
        let pin = try String(contentsOf: RunningRelay.certs.appendingPathComponent("relay.spki-sha256"), encoding: .utf8)
        try RelaySettings(url: "https://localhost:\(relay.port)", caFile: RunningRelay.certs.appendingPathComponent("dev-ca.pem").path,
                          relayKeyPin: pin.trimmingCharacters(in: .whitespacesAndNewlines),
                          logVerifierKey: try relay.services.signer.verifier.verifierKey, checkpoint: nil).save(to: home)
        return home
    }

    @Test(arguments: EngineUnderTest.available) func registrationAndAVerifiedLookupOverTLS(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine)
        defer { Task { await relay.stop() } }
        let connection = try await connect(relay)
        let created = try await register("alice", on: connection)
        #expect(created.status == 201)
        let pin = try String(contentsOf: RunningRelay.certs.appendingPathComponent("relay.spki-sha256"), encoding: .utf8)
        #expect(hexString(created.relayKeyPin ?? []) == pin.trimmingCharacters(in: .whitespacesAndNewlines))

        let answer = try await lookup("alice", on: connection)
        #expect(answer.status == 200)
        let lookup = try DirectoryVerification.verifyLookup(answer.body, name: IdentityName("alice"), logVerifier: relay.services.signer.verifier)
        #expect(lookup.bundle == (try ThrowawayIdentities.bundle("alice")))
        #expect(lookup.checkpoint.size == 1)
    }

    /// A download to a file that the relay refuses (`429`, its request rate, with its
    /// Retry-After) leaves no file, so the same request to the same path may go again: before,
    /// the refused attempt's empty file made the next one fail with "File exists". (The relay
    /// keeps the tests' patient deadlines: under the whole suite its handshakes take seconds.)
    @Test func aRefusedDownloadLeavesNoFileAndMayGoAgain() async throws {
        let relay = try await RunningRelay(limits: RelayLimits(perAddress: .init(perSecond: 0.001, burst: 1), deadlines: RunningRelay.patientDeadlines))
        defer { Task { await relay.stop() } }
        let folder = try makeTemporaryDirectory("refused-download")
        func download(to name: String) async throws -> RelayResponse {
            var request = RelayRequest(.GET, Endpoint.relayInfo.path())
            request.saveBodyTo = folder.appendingPathComponent(name)
            return try await connect(relay).send(request)
        }
        #expect(try await download(to: "first").status == 200)
        _ = try JSONDecoder().decode(RelayInfo.self, from: Data(contentsOf: folder.appendingPathComponent("first")))
        for attempt in 1...2 {
            let refused = try await download(to: "second")
            #expect(refused.status == 429 && (1...1000).contains(refused.retryAfter ?? 0),
                    "attempt \(attempt): \(refused.status) \(String(describing: refused.retryAfter))")
            #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("second").path))
        }
    }

    @Test(arguments: EngineUnderTest.available) func aRelayWhoseKeyIsNotThePinnedOneIsRefused(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine)
        defer { Task { await relay.stop() } }
        let wrongPin = [UInt8](repeating: 7, count: 32)
        let handshake = await #expect(throws: TLSError.self) { try await connect(relay, trust: .pinnedPublicKey(sha256: wrongPin)) }
        #expect(handshake?.code == .certificateVerificationFailed)

        // Through a client's pinned settings, the same is one sentence with its own code.
        let home = SecmailHome(url: try makeTemporaryDirectory("wrong-pin"))
        try RelaySettings(url: "https://localhost:\(relay.port)", caFile: nil, relayKeyPin: hexString(wrongPin),
                          logVerifierKey: try relay.services.signer.verifier.verifierKey, checkpoint: nil).save(to: home)
        let client = try RelayClient(home: home)
        let error = await #expect(throws: ClientError.self) { try await client.info() }
        #expect(error?.code == .pinMismatch)
        #expect(error?.reason.contains("pinned") == true)
    }

    /// An envelope of many TLS records and several 256 KiB pieces (and a remainder) goes up from
    /// its file and comes back byte for byte, both into a file and into memory, on one connection;
    /// bytes appended to the file while it is being sent are not sent (the body is the size that
    /// Content-Length announced).
    @Test func aLargeEnvelopeIsDepositedAndFetchedIntact() async throws {
        let relay = try await RunningRelay()
        defer { Task { await relay.stop() } }
        let connection = try await connect(relay)
        for name in ["alice", "bob"] { #expect(try await register(name, on: connection).status == 201) }
        let folder = try makeTemporaryDirectory("large-envelope")
        defer { try? FileManager.default.removeItem(at: folder) }
        let attachment = folder.appendingPathComponent("noise.bin")
        let piece = RelayHTTPConnection.uploadPieceSize
        try Data(try SystemRandom().bytes(count: 5 * piece + 12_345)).write(to: attachment)
        let envelope = folder.appendingPathComponent("large.sm")
        let sink = FileSink(file: try PositionalFile(creatingAtPath: envelope.path))
        let alice = try SenderIdentity(bundle: ThrowawayIdentities.bundle("alice"), signingKey: ThrowawayIdentities.signingKey("alice"))
        _ = try EnvelopeSealer().seal(text: "large", attachments: [OutgoingAttachment(file: attachment)], from: alice,
                                      to: [ThrowawayIdentities.bundle("bob")], into: sink)
        try sink.synchronize()
        let sealed = try Data(contentsOf: envelope)

        func token(_ name: String) async throws -> String {
            let client = try RelayClient(home: try pinnedHome(relay, "large-envelope-\(name)"))
            let token = try await client.token(for: try SenderIdentity(bundle: ThrowawayIdentities.bundle(name), signingKey: ThrowawayIdentities.signingKey(name)))
            await client.close()
            return token
        }
        var deposit = RelayRequest(.POST, Endpoint.deposit.path(query: [(Endpoint.Query.recipient, "bob")]),
                                   body: .file(envelope), bearer: try await token("alice"))
        let growth = FileGrowth(envelope, by: piece + 44 * 1024)
        // After the first piece, the file grows by more than a piece while it is being sent.
        deposit.uploadProgress = { _, _ in growth.growOnce() }
        let deposited = try await connection.send(deposit)
        #expect(growth.grown)
        #expect(deposited.status == 201, "\(String(decoding: deposited.body, as: UTF8.self))")
        let id = try JSONDecoder().decode(DepositResponse.self, from: Data(deposited.body)).messageId

        let bob = try await token("bob")
        let saved = folder.appendingPathComponent("fetched.sm")
        var toFile = RelayRequest(.GET, Endpoint.fetchMessage.path(id), bearer: bob)
        toFile.saveBodyTo = saved
        #expect(try await connection.send(toFile).status == 200)
        #expect(try Data(contentsOf: saved) == sealed)
        let inMemory = try await connection.send(RelayRequest(.GET, Endpoint.fetchMessage.path(id), bearer: bob))
        #expect(inMemory.status == 200)
        #expect(Data(inMemory.body) == sealed)
    }

    /// Appends bytes to a file once, from whichever thread reports an upload's progress first.
    final class FileGrowth: @unchecked Sendable {
        // @unchecked: `grown` is read and written under `lock`.
        private let lock = NSLock()
        private let file: URL
        private let count: Int
        private var done = false

        init(_ file: URL, by count: Int) { self.file = file; self.count = count }

        var grown: Bool { lock.withLock { done } }

        func growOnce() {
            lock.withLock {
                guard !done, let handle = try? FileHandle(forWritingTo: file) else { return }
                _ = try? handle.seekToEnd()
                try? handle.write(contentsOf: Data(repeating: 0x5A, count: count))
                try? handle.close()
                done = true
            }
        }
    }

    /// A client whose challenge expired before its answer reached the relay (a laptop that slept
    /// mid sign-in, a starved process) asks for one new challenge; a second expiry is an error
    /// that says what is odd.
    @Test(arguments: EngineUnderTest.available) func anExpiredChallengeIsReplacedOnce(engine: EngineUnderTest) async throws {
        for expiries in [1, 2] {
            let clock = LateAnswerClock(lateAnswers: expiries)
            let relay = try await RunningRelay(engine: engine, authenticationClock: { clock.read() })
            defer { Task { await relay.stop() } }
            #expect(try await register("alice", on: try await connect(relay)).status == 201)
            let client = try RelayClient(home: try pinnedHome(relay, "expired-challenge"))
            let alice = try SenderIdentity(bundle: ThrowawayIdentities.bundle("alice"), signingKey: ThrowawayIdentities.signingKey("alice"))
            if expiries == 1 {
                let token = try await client.token(for: alice)
                #expect(clock.readings == 4, "two challenges issued and two answers checked")
                let whoami = try await client.call(RelayRequest(.GET, Endpoint.whoami.path(), bearer: token), as: WhoAmIResponse.self)
                #expect(whoami.name == "alice")
            } else {
                let error = await #expect(throws: ClientError.self) { try await client.token(for: alice) }
                #expect(error?.reason.contains("two sign-in challenges for alice expire") == true, "\(String(describing: error))")
                #expect(clock.readings == 4, "two challenges issued and two answers checked")
            }
            await client.close()
        }
    }

    @Test(arguments: EngineUnderTest.available) func aKeySwappedInTheRelayDatabaseIsDetected(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine)
        defer { Task { await relay.stop() } }
        let connection = try await connect(relay)
        _ = try await register("alice", on: connection)
        // The relay's database is edited to serve mallory's keys (carol's) under the name alice.
        let mallory = try IdentityBundle.create(name: IdentityName("alice"), createdAt: 0,
                                                signingKey: ThrowawayIdentities.signingKey("carol"),
                                                encryptionKey: ThrowawayIdentities.encryptionKey("carol").publicKey)
        try await relay.services.directory.database.write { db in
            try db.execute("UPDATE identities SET bundle = ?, fingerprint = ? WHERE name = 'alice'", [Data(mallory.encoded), Data(mallory.fingerprint.bytes)])
        }
        let answer = try await lookup("alice", on: connection)
        let error = #expect(throws: ClientError.self) {
            try DirectoryVerification.verifyLookup(answer.body, name: IdentityName("alice"), logVerifier: relay.services.signer.verifier)
        }
        #expect(error?.code == .verificationFailed)
        #expect(error?.reason.contains("different key") == true)
    }

    @Test(arguments: EngineUnderTest.available) func aForgedProofOrAnUnpinnedLogKeyIsRefused(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine)
        defer { Task { await relay.stop() } }
        let connection = try await connect(relay)
        _ = try await register("alice", on: connection)
        _ = try await register("bob", on: connection)
        let answer = try await lookup("alice", on: connection)
        var json = try #require(try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any])
        var proof = try #require(json["inclusionProof"] as? [String])
        var node = Array(try #require(Data(base64Encoded: proof[0])))
        node[0] ^= 1
        proof[0] = Data(node).base64EncodedString()
        json["inclusionProof"] = proof
        let forged = Array(try JSONSerialization.data(withJSONObject: json))
        let forgedError = #expect(throws: ClientError.self) {
            try DirectoryVerification.verifyLookup(forged, name: IdentityName("alice"), logVerifier: relay.services.signer.verifier)
        }
        #expect(forgedError?.reason.contains("inclusion proof") == true)

        let stranger = try NoteVerifier(name: relay.services.signer.origin, publicKey: Ed25519PrivateKey.generate().publicKey)
        #expect(throws: ClientError.self) {
            try DirectoryVerification.verifyLookup(answer.body, name: IdentityName("alice"), logVerifier: stranger)
        }
        #expect(throws: ClientError.self) {
            try DirectoryVerification.verifyLookup(answer.body, name: IdentityName("bob"), logVerifier: relay.services.signer.verifier)
        }
    }

    @Test(arguments: EngineUnderTest.available) func aRolledBackOrForkedLogIsRefused(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine)
        defer { Task { await relay.stop() } }
        let connection = try await connect(relay)
        let verifier = try relay.services.signer.verifier
        _ = try await register("alice", on: connection)
        let first = try DirectoryVerification.verifyLookup(try await lookup("alice", on: connection).body,
                                                           name: IdentityName("alice"), logVerifier: verifier).checkpoint
        _ = try await register("bob", on: connection)
        let second = try DirectoryVerification.verifyLookup(try await lookup("bob", on: connection).body,
                                                            name: IdentityName("bob"), logVerifier: verifier).checkpoint
        let consistency = try await connection.send(RelayRequest(.GET, Endpoint.consistency.path(query: [("from", "1"), ("to", "2")])))
        let proof = try ((try JSONSerialization.jsonObject(with: Data(consistency.body)) as? [String: Any])?["proof"] as? [String] ?? [])
            .map { Array(try #require(Data(base64Encoded: $0))) }
        try DirectoryVerification.verifyExtension(of: first, to: second, proof: proof)

        let rollback = #expect(throws: ClientError.self) { try DirectoryVerification.verifyExtension(of: second, to: first, proof: []) }
        #expect(rollback?.reason.contains("rolled back") == true)
        var otherRoot = first.rootHash
        otherRoot[0] ^= 1
        let forkedEarlier = try Checkpoint(origin: first.origin, size: first.size, rootHash: otherRoot)
        let fork = #expect(throws: ClientError.self) { try DirectoryVerification.verifyExtension(of: forkedEarlier, to: second, proof: proof) }
        #expect(fork?.reason.contains("forked") == true)
    }

    /// Two commands of one home at once each save the log view they verified. The one that saves
    /// last does not put relay.json back to its older checkpoint: the two are proven consistent
    /// by the relay and the newer is kept. A checkpoint saved meanwhile that is not consistent
    /// with this command's view is a fork: refused, with both kept as evidence.
    @Test func aViewSavedMeanwhileByAnotherCommandIsNeitherRolledBackNorForked() async throws {
        let relay = try await RunningRelay()
        defer { Task { await relay.stop() } }
        let connection = try await connect(relay)
        _ = try await register("alice", on: connection)
        let home = try pinnedHome(relay, "views-at-once")
        func storedSize() throws -> UInt64? {
            try RelaySettings.load(from: home).checkpoint.map { try Checkpoint(text: SignedNote.open($0, verifier: relay.services.signer.verifier)).size }
        }
        // The slower command verifies alice in a log of one entry, and saves last.
        let slower = try RelayClient(home: home)
        _ = try await slower.verifiedLookup(IdentityName("alice"))
        _ = try await register("bob", on: connection)
        let faster = try RelayClient(home: home)
        _ = try await faster.verifiedLookup(IdentityName("bob"))
        try await faster.saveLogView()
        #expect(try storedSize() == 2)
        try await slower.saveLogView()
        #expect(try storedSize() == 2, "the slower command put the view back")

        // A third command saves a checkpoint of three entries whose root is not the log's: a
        // fork of what the others were shown (signed with the log key, as a lying relay can).
        let third = try RelayClient(home: home)
        _ = try await third.verifiedLookup(IdentityName("alice"))
        _ = try await register("carol", on: connection)
        _ = try await third.verifiedLookup(IdentityName("carol"))
        var forged = try RelaySettings.load(from: home)
        forged.checkpoint = try relay.services.signer.sign(size: 3, rootHash: [UInt8](repeating: 7, count: 32))
        try forged.save(to: home)
        let fork = await #expect(throws: ClientError.self) { try await third.saveLogView() }
        #expect(fork?.code == .logInconsistent, "\(String(describing: fork))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: home.url.appendingPathComponent("evidence").path).count == 1)
    }

    /// Saving the view takes `relay.lock` in the home from its second reading of relay.json to
    /// its write, so that two commands saving at once take turns: a save waits while another
    /// holder has the lock, and writes once it is released.
    @Test func commandsSavingTheViewAtOnceTakeTurns() async throws {
        let relay = try await RunningRelay()
        defer { Task { await relay.stop() } }
        _ = try await register("alice", on: try await connect(relay))
        let home = try pinnedHome(relay, "views-in-turn")
        let client = try RelayClient(home: home)
        _ = try await client.verifiedLookup(IdentityName("alice"))
        var other = try ExclusiveFileLock.acquire(home.url.appendingPathComponent("relay.lock").path).lock
        try #require(other != nil)
        let saving = Task { try await client.saveLogView() }
        try await Task.sleep(for: .milliseconds(300))
        #expect(try RelaySettings.load(from: home).checkpoint == nil, "saved while another command held relay.lock")
        #expect(other != nil)
        other = nil
        try await saving.value
        #expect(try RelaySettings.load(from: home).checkpoint != nil)
    }
}

/// A relay clock on which each of the first `lateAnswers` sign-in answers arrives a second after
/// its challenge expired. The authenticator reads the clock once per challenge (even readings)
/// and once per answer (odd ones).
final class LateAnswerClock: @unchecked Sendable {
    // @unchecked: `count` is guarded by `lock`.
    private let lock = NSLock()
    private var count = 0
    let lateAnswers: Int

    init(lateAnswers: Int) {
        self.lateAnswers = lateAnswers
    }

    var readings: Int { lock.withLock { count } }

    func read() -> Int64 {
        lock.withLock {
            let answersSoFar = (count + 1) / 2
            count += 1
            return 1_800_000_000 + Int64(min(answersSoFar, lateAnswers)) * (Authenticator.challengeLifetime + 1)
        }
    }
}
