import Foundation
import NIOPosix
import SecmailCrypto
import SecmailFormat
@testable import SecmailRelay
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// Mailboxes over real TLS with curl: deposit, list, fetch, delete, and what is refused.
@Suite struct MailboxHTTPTests {
    func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    /// An envelope from `sender` to `recipients` (throw-away identities), written to a file.
    func envelope(from sender: String, to recipients: [String], in folder: URL) throws -> (url: URL, id: MessageID, bytes: [UInt8]) {
        let sink = MemorySink()
        let sealed = try EnvelopeSealer().seal(
            text: "hello from \(sender)", from: SenderIdentity(bundle: ThrowawayIdentities.bundle(sender), signingKey: ThrowawayIdentities.signingKey(sender)),
            to: recipients.map { try ThrowawayIdentities.bundle($0) }, into: sink)
        let url = folder.appendingPathComponent("\(sealed.header.messageID.hex).sm")
        try Data(sink.bytes).write(to: url)
        return (url, sealed.header.messageID, sink.bytes)
    }

    /// A database on `engine` in `folder` with alice and bob registered, and a mailbox store
    /// keeping its envelopes in `folder`/envelopes.
    func storeWithAliceAndBob(_ engine: EngineUnderTest, in folder: URL,
                              clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) async throws -> (RelayDatabase, MailboxStore) {
        let database = try await engine.database(in: folder)
        let directory = Directory(database: database)
        for name in ["alice", "bob"] { try await directory.register(try ThrowawayIdentities.bundle(name)) }
        return (database, try MailboxStore(database: database, directory: folder.appendingPathComponent("envelopes", isDirectory: true), clock: clock))
    }

    /// Deposits that arrive while a commit is under way share the next one; a refused one (a
    /// replayed id) does not hold back the others in its group, and leaves no file.
    @Test(arguments: EngineUnderTest.available) func depositsThatArriveTogetherShareOneCommit(engine: EngineUnderTest) async throws {
        let folder = try makeTemporaryDirectory("group-commit")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (database, store) = try await storeWithAliceAndBob(engine, in: folder)
        let envelopes = store.directory
        let messages = try (0..<4).map { _ in try envelope(from: "alice", to: ["bob"], in: folder) }
        func deposit(_ message: (url: URL, id: MessageID, bytes: [UInt8])) async throws -> MessageID {
            let incoming = store.incomingFile()
            try Data(message.bytes).write(to: incoming)
            return try await store.deposit(file: incoming, recipients: [IdentityName("bob")],
                                           depositor: IdentityName("alice"))
        }

        // The first deposit's commit waits for a writer held elsewhere; four more arrive
        // meanwhile, one of them a replay of the first. Each step waits for the one before, so
        // a busy machine changes only how long this takes.
        let held = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let holder = Task { try await database.write { _ in held.signal(); release.wait() } }
        await Task.detached { held.wait() }.value
        let first = Task { try await deposit(messages[0]) }
        while await store.commitGroups().recentSizes != [1] { try await Task.sleep(for: .milliseconds(10)) }
        let others = [messages[1], messages[2], messages[0], messages[3]].map { message in Task { try await deposit(message) } }
        while await store.commitGroups().waiting < 4 { try await Task.sleep(for: .milliseconds(10)) }
        release.signal()
        try await holder.value
        #expect(try await first.value == messages[0].id)
        #expect(try await others[0].value == messages[1].id)
        #expect(try await others[1].value == messages[2].id)
        #expect(await relayErrorCode { _ = try await others[2].value } == .conflict)
        #expect(try await others[3].value == messages[3].id)

        #expect(await store.commitGroups().recentSizes == [1, 4])
        #expect(try await store.list(IdentityName("bob")).messages.map(\.messageID) .sorted { $0.hex < $1.hex }
                == [messages[0].id, messages[1].id, messages[2].id, messages[3].id].sorted { $0.hex < $1.hex })
        // Four envelopes' bytes (files beside SQLite, chunks in PostgreSQL), nothing left of the
        // refused replay, not even its staged file.
        let files = try FileManager.default.contentsOfDirectory(atPath: envelopes.path).count
        if engine == .sqlite {
            #expect(files == 4)
        } else {
            let chunked = try await database.read { db in try db.fetchOne(Int.self, "SELECT COUNT(DISTINCT envelope_id) FROM envelope_chunks") }
            #expect(files == 0 && chunked == 4, "\(files) files, \(chunked ?? 0) envelopes in chunks")
        }
    }

    /// A mailbox lists its messages in the order they arrived, also those received within one
    /// second (envelope ids grow with time; with random ones six messages of the same second
    /// came out in one of 720 orders).
    @Test(arguments: EngineUnderTest.available) func aMailboxListsMessagesInTheOrderTheyArrived(engine: EngineUnderTest) async throws {
        let folder = try makeTemporaryDirectory("arrival-order")
        defer { try? FileManager.default.removeItem(at: folder) }
        let second = Int64(Date().timeIntervalSince1970)
        let (_, store) = try await storeWithAliceAndBob(engine, in: folder, clock: { second })
        var deposited: [MessageID] = []
        for _ in 0..<6 {
            let message = try envelope(from: "alice", to: ["bob"], in: folder)
            deposited.append(try await store.deposit(bytes: message.bytes, recipients: [IdentityName("bob")], depositor: IdentityName("alice")))
        }
        let listed = try await store.list(IdentityName("bob"))
        #expect(listed.messages.map(\.messageID) == deposited)
        #expect(Set(listed.messages.map(\.receivedAt)) == [second])
        // Every page says how many bytes the mailbox holds: all of its messages, not the page's.
        #expect(listed.usedBytes == listed.messages.map(\.size).reduce(0, +))
        #expect(try await store.list(IdentityName("bob"), limit: 1).usedBytes == listed.usedBytes)
        #expect(try await store.list(IdentityName("alice")).usedBytes == 0)
        // Paged two at a time, the same order.
        var paged: [MessageID] = [], cursor: String?
        repeat {
            let page = try await store.list(IdentityName("bob"), after: cursor, limit: 2)
            paged += page.messages.map(\.messageID)
            cursor = page.next
        } while cursor != nil
        #expect(paged == deposited)
    }

    @Test func envelopeIDsAreHexThatGrowsWithTimeAndDiffersWithinAMicrosecond() throws {
        let now = Date()
        let earlier = try MailboxStore.newEnvelopeID(now: now), later = try MailboxStore.newEnvelopeID(now: now.addingTimeInterval(0.000_002))
        #expect(earlier.count == 32 && earlier.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        #expect(earlier < later)
        let sameInstant = try (0..<100).map { _ in try MailboxStore.newEnvelopeID(now: now) }
        #expect(Set(sameInstant).count == 100)
        #expect(Set(sameInstant.map { $0.prefix(16) }) == [earlier.prefix(16)])
    }

    /// A small deposit from a session the relay has found before goes to the database once (on
    /// SQLite the session is then kept in memory; on PostgreSQL, which other relays also write,
    /// never). The refusals are those of a first deposit, and the session still ends with its
    /// lifetime and with a rotation of its name's keys.
    @Test(arguments: EngineUnderTest.available) func aSessionSeenBeforeDepositsSmallEnvelopesAndStillEnds(engine: EngineUnderTest) async throws {
        let clock = TestClock()
        let relay = try await RunningRelay(engine: engine, authenticationClock: { clock.now })
        defer { Task { await relay.stop() } }
        let folder = try makeTemporaryDirectory("session-cache")
        defer { try? FileManager.default.removeItem(at: folder) }
        for name in ["alice", "bob"] { try await relay.services.directory.register(try ThrowawayIdentities.bundle(name)) }
        let authenticator = relay.services.authenticator
        func deposit(from sender: String, to name: String, token: String) async throws -> (status: Int, body: String) {
            let message = try envelope(from: sender, to: [sender == "alice" ? "bob" : "alice"], in: folder)
            return try await relay.curl("/v1/messages?to=\(name)", method: "POST", headers: ["Authorization: Bearer \(token)"], file: message.url)
        }

        let alice = try await relay.token("alice")
        #expect(authenticator.cachedName(owning: alice) == nil)
        #expect(try await deposit(from: "alice", to: "bob", token: alice).status == 201)
        // Every authenticated route keeps and uses the session the same way.
        let bob = try await relay.token("bob")
        #expect(try await relay.curl("/v1/mailbox", headers: ["Authorization: Bearer \(bob)"]).status == 200)
        #expect(authenticator.cachedName(owning: bob) == (engine == .sqlite ? try IdentityName("bob") : nil))
        #expect(authenticator.cachedName(owning: alice) == (engine == .sqlite ? try IdentityName("alice") : nil))
        let unknown = try await deposit(from: "alice", to: "nobody", token: alice)
        #expect(unknown.status == 404)
        #expect(try json(unknown.body)["reason"] as? String == "no one is registered as nobody on this relay")
        #expect(try await deposit(from: "alice", to: "bob", token: alice).status == 201)

        // Bob's session, once kept, ends with its lifetime.
        #expect(try await deposit(from: "bob", to: "alice", token: bob).status == 201)
        clock.advance(Authenticator.tokenLifetime + 1)
        #expect(authenticator.cachedName(owning: bob) == nil)
        #expect(try await deposit(from: "bob", to: "alice", token: bob).status == 401)
        #expect(try await relay.curl("/v1/mailbox", headers: ["Authorization: Bearer \(bob)"]).status == 401)

        // Alice's ends with the rotation of her keys, which also ended her token in the database.
        clock.advance(-Authenticator.tokenLifetime - 1)
        #expect(try await deposit(from: "alice", to: "bob", token: alice).status == 201)
        let newSigning = try RSAPrivateKey.generate(bitCount: 3072), newEncryption = try RSAPrivateKey.generate(bitCount: 3072)
        try await relay.services.directory.rotate(to: try IdentityBundle.create(
            name: try IdentityName("alice"), keyVersion: 2, createdAt: 1, signingKey: newSigning, encryptionKey: newEncryption.publicKey,
            rotatingFrom: (try ThrowawayIdentities.bundle("alice"), try ThrowawayIdentities.signingKey("alice"))))
        #expect(authenticator.cachedName(owning: alice) == nil)
        #expect(try await deposit(from: "alice", to: "bob", token: alice).status == 401)
        #expect(try await relay.curl("/v1/mailbox", headers: ["Authorization: Bearer \(alice)"]).status == 401)
    }

    /// A session a read found is kept only if no session ended after that read began.
    @Test func aSessionReadBeforeARotationIsNotKeptAfterIt() throws {
        let sessions = SessionCache()
        let alice = try IdentityName("alice"), token = Data(repeating: 1, count: 32), other = Data(repeating: 2, count: 32)
        let before = sessions.generation
        sessions.end(sessionsOf: try IdentityName("bob"))  // any ending, committed while the read ran
        sessions.keep(alice, expiresAt: 100, for: token, readAt: before)
        #expect(sessions.name(for: token, now: 0) == nil)
        sessions.keep(alice, expiresAt: 100, for: token, readAt: sessions.generation)
        sessions.keep(alice, expiresAt: 100, for: other, readAt: sessions.generation)
        #expect(sessions.name(for: token, now: 100) == alice)
        #expect(sessions.name(for: token, now: 101) == nil)
        sessions.end(sessionsOf: alice)
        #expect(sessions.name(for: token, now: 0) == nil && sessions.name(for: other, now: 0) == nil)
    }

    @Test(arguments: EngineUnderTest.available) func depositListFetchDeleteAndEveryRefusal(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine, maximumEnvelopeSize: 64 * 1024)
        defer { Task { await relay.stop() } }
        let folder = try makeTemporaryDirectory("mailbox-http")
        for name in ["alice", "bob", "carol"] {
            try await relay.services.directory.register(try ThrowawayIdentities.bundle(name))
        }
        let alice = try await relay.token("alice"), bob = try await relay.token("bob"), carol = try await relay.token("carol")
        let message = try envelope(from: "alice", to: ["bob"], in: folder)
        func deposit(_ file: URL, to names: [String], token: String?) async throws -> (status: Int, body: String) {
            try await relay.curl("/v1/messages?" + names.map { "to=\($0)" }.joined(separator: "&"), method: "POST",
                                 headers: token.map { ["Authorization: Bearer \($0)"] } ?? [], file: file)
        }

        #expect(try await deposit(message.url, to: ["bob"], token: nil).status == 401)
        let unknown = try await deposit(message.url, to: ["nobody"], token: alice)
        #expect(unknown.status == 404)
        // Bob cannot deposit what alice signed (the envelope names its sender).
        #expect(try await deposit(message.url, to: ["bob"], token: bob).status == 403)
        // Not encrypted to carol: refused for her.
        let notForCarol = try await deposit(message.url, to: ["carol"], token: alice)
        #expect(notForCarol.status == 400)
        #expect(try json(notForCarol.body)["reason"] as? String == "the envelope is not encrypted to any key of carol")
        // Truncated: refused, nothing stored.
        let truncated = folder.appendingPathComponent("truncated.sm")
        try Data(message.bytes.dropLast(10)).write(to: truncated)
        #expect(try await deposit(truncated, to: ["bob"], token: alice).status == 400)
        // Oversized (this relay takes 64 KiB).
        let big = folder.appendingPathComponent("big.sm")
        try Data(repeating: 7, count: 100 * 1024).write(to: big)
        #expect(try await deposit(big, to: ["bob"], token: alice).status == 413)

        let stored = try await deposit(message.url, to: ["bob"], token: alice)
        #expect(stored.status == 201, "\(stored.body)")
        #expect(try json(stored.body)["messageId"] as? String == message.id.hex)
        // The same message again: a message id is accepted once per recipient.
        #expect(try await deposit(message.url, to: ["bob"], token: alice).status == 409)

        let listing = try json(try await relay.curl("/v1/mailbox", headers: ["Authorization: Bearer \(bob)"]).body)
        let messages = try #require(listing["messages"] as? [[String: Any]])
        #expect(messages.count == 1)
        #expect(messages.first?["id"] as? String == message.id.hex)
        #expect(messages.first?["from"] as? String == "alice")
        #expect(messages.first?["size"] as? Int == message.bytes.count)
        #expect((try json(try await relay.curl("/v1/mailbox", headers: ["Authorization: Bearer \(carol)"]).body)["messages"] as? [Any])?.isEmpty == true)

        let fetched = folder.appendingPathComponent("fetched.sm")
        let fetch = try await relay.curl("/v1/mailbox/\(message.id.hex)", headers: ["Authorization: Bearer \(bob)"], output: fetched)
        #expect(fetch.status == 200)
        #expect(Array(try Data(contentsOf: fetched)) == message.bytes)
        // Carol's token does not reach bob's mailbox.
        #expect(try await relay.curl("/v1/mailbox/\(message.id.hex)", headers: ["Authorization: Bearer \(carol)"]).status == 404)
        #expect(try await relay.curl("/v1/mailbox/\(message.id.hex)", method: "DELETE", headers: ["Authorization: Bearer \(carol)"]).status == 404)
        #expect(try await relay.curl("/v1/mailbox/nothex", headers: ["Authorization: Bearer \(bob)"]).status == 400)

        #expect(try await relay.curl("/v1/mailbox/\(message.id.hex)", method: "DELETE", headers: ["Authorization: Bearer \(bob)"]).status == 204)
        #expect((try json(try await relay.curl("/v1/mailbox", headers: ["Authorization: Bearer \(bob)"]).body)["messages"] as? [Any])?.isEmpty == true)
        // Deleted, and still not accepted again (P4); its file is gone.
        #expect(try await deposit(message.url, to: ["bob"], token: alice).status == 409)
        let files = try FileManager.default.contentsOfDirectory(atPath: relay.services.mailboxes.directory.path)
        #expect(files.isEmpty, "\(files)")
    }

    @Test(arguments: EngineUnderTest.available) func aFullMailboxRefusesMoreAndStoresNothing(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine, mailboxQuota: 10 * 1024)
        defer { Task { await relay.stop() } }
        let folder = try makeTemporaryDirectory("mailbox-quota")
        for name in ["alice", "bob"] { try await relay.services.directory.register(try ThrowawayIdentities.bundle(name)) }
        let alice = try await relay.token("alice")
        /// Deposits `count` messages of about 4 KiB from alice to bob; returns their statuses.
        func deposit(_ count: Int) async throws -> [Int] {
            var statuses: [Int] = []
            for _ in 0..<count {
                let (id, bytes) = try RelayCurl.envelope(from: "alice", to: ["bob"], extra: 4000)
                let file = folder.appendingPathComponent("\(id.hex).sm")
                try Data(bytes).write(to: file)
                statuses.append(try await relay.curl("/v1/messages?to=bob", method: "POST", headers: ["Authorization: Bearer \(alice)"],
                                                     file: file).status)
            }
            return statuses
        }
        let statuses = try await deposit(3)
        #expect(statuses == [201, 201, 413], "\(statuses)")
        let listed = try await relay.services.mailboxes.list(IdentityName("bob")).messages
        #expect(listed.count == 2)
        // Small envelopes live in the database: no file at all, none left by the refused one.
        #expect(try FileManager.default.contentsOfDirectory(atPath: relay.services.mailboxes.directory.path).isEmpty)

        // Deleting a message frees its bytes: the mailbox takes one more again, and only one.
        try await relay.services.mailboxes.delete(IdentityName("bob"), listed[0].messageID)
        let after = try await deposit(2)
        #expect(after == [201, 413], "\(after)")
    }

    /// An envelope too large for its database row goes to a file written around the page cache
    /// and comes back from it the same way (`IncomingEnvelopeFile`, `OutgoingEnvelopeFile`): every
    /// byte in order, for a length that is no multiple of the blocks, the pages or the chunks
    /// either way; its signature is checked against the hash taken as it arrived, so a copy with
    /// one payload byte changed is refused. A stored file found shorter than its recorded size
    /// cuts the answer off at once (curl: partial transfer), instead of leaving the client
    /// waiting for bytes the Content-Length promised.
    @Test(arguments: EngineUnderTest.available) func aLargeEnvelopeIsStoredInItsFileAndFetchedByteForByte(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine)
        defer { Task { await relay.stop() } }
        let folder = try makeTemporaryDirectory("mailbox-large")
        for name in ["alice", "bob"] { try await relay.services.directory.register(try ThrowawayIdentities.bundle(name)) }
        let alice = try await relay.token("alice"), bob = try await relay.token("bob")
        let (id, bytes) = try RelayCurl.envelope(from: "alice", to: ["bob"], extra: 3 * OutgoingEnvelopeFile.chunkLength + 12_345)
        let file = folder.appendingPathComponent("large.sm")
        try Data(bytes).write(to: file)

        var changed = bytes
        changed[changed.count - 5_000] ^= 1
        let changedFile = folder.appendingPathComponent("changed.sm")
        try Data(changed).write(to: changedFile)
        let refused = try await relay.curl("/v1/messages?to=bob", method: "POST", headers: ["Authorization: Bearer \(alice)"], file: changedFile)
        #expect(refused.status == 400, "\(refused.body)")

        let stored = try await relay.curl("/v1/messages?to=bob", method: "POST", headers: ["Authorization: Bearer \(alice)"], file: file)
        #expect(stored.status == 201, "\(stored.body)")
        let fetched = folder.appendingPathComponent("fetched.sm")
        let fetch = try await relay.curl("/v1/mailbox/\(id.hex)", headers: ["Authorization: Bearer \(bob)"], output: fetched)
        #expect(fetch.status == 200)
        #expect(PositionalFile.sameContent(fetched.path, file.path))

        guard case .file(let stored, let size) = try await relay.services.mailboxes.storedEnvelope(IdentityName("bob"), id) else {
            #expect(engine == .postgres, "SQLite keeps a large envelope in a file of its own")
            return
        }
        #expect(truncate(stored.path, off_t(size - 100)) == 0)
        let cutOff = try await RelayCurl(port: relay.port, caFile: RunningRelay.certs.appendingPathComponent("dev-ca.pem"))
            .exitStatus("/v1/mailbox/\(id.hex)", headers: ["Authorization: Bearer \(bob)"], output: URL(fileURLWithPath: "/dev/null"))
        #expect(cutOff == 18, "curl's exit status for a transfer closed with bytes outstanding")
    }

    /// Fetches read ahead from a budget the relay's fetches share, and a fetch that stalls gives
    /// its part back when its connection goes: a client that stops reading holds the budget (here
    /// two chunks) while the relay waits for it; a fetch meanwhile finds the budget spent and
    /// still arrives byte for byte, reading one chunk ahead; once the stalled client is killed
    /// the whole budget is there again. All the while the connections' event loop is busy, as a
    /// loaded relay's are (50 ms at a time): a fetch that wrote on without waiting for the loop
    /// queued the whole envelope for the stalled client during one such stretch, and gave its
    /// read-ahead back.
    @Test func fetchesReadAheadFromASharedBudgetAndAStalledFetchGivesItsPartBack() async throws {
        let budget = FetchReadAhead(chunks: 2)
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let relay = try await RunningRelay(limits: RelayLimits(deadlines: RunningRelay.patientDeadlines, fetchReadAhead: budget), eventLoopGroup: loops)
        defer { Task { await relay.stop(); try? await loops.shutdownGracefully() } }
        let folder = try makeTemporaryDirectory("mailbox-read-ahead")
        for name in ["alice", "bob"] { try await relay.services.directory.register(try ThrowawayIdentities.bundle(name)) }
        let alice = try await relay.token("alice"), bob = try await relay.token("bob")
        // More than the socket buffers between the relay and the stalled client hold: the
        // relay's send buffer grows to the kernel's limit (4 MiB here), the client's receive
        // buffer is fixed small.
        let sendBufferLimit = (try? String(contentsOfFile: "/proc/sys/net/ipv4/tcp_wmem", encoding: .utf8))?
            .split(whereSeparator: \.isWhitespace).last.flatMap { Int($0) } ?? 4 << 20
        let (id, bytes) = try RelayCurl.envelope(from: "alice", to: ["bob"], extra: sendBufferLimit + 6 * OutgoingEnvelopeFile.chunkLength)
        let file = folder.appendingPathComponent("large.sm")
        try Data(bytes).write(to: file)
        #expect(try await relay.curl("/v1/messages?to=bob", method: "POST", headers: ["Authorization: Bearer \(alice)"], file: file).status == 201)

        // Asks for the message, takes its first bytes and reads no more until it is killed.
        let stalledReader = Process()
        stalledReader.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        stalledReader.arguments = ["python3", "-c", """
            import socket, ssl, sys, time
            port, ca, token, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            raw.connect(("127.0.0.1", port))
            tls = ssl.create_default_context(cafile=ca).wrap_socket(raw, server_hostname="localhost")
            tls.sendall(f"GET {path} HTTP/1.1\\r\\nHost: localhost\\r\\nAuthorization: Bearer {token}\\r\\n\\r\\n".encode())
            tls.recv(1)
            time.sleep(600)
            """, String(relay.port), RunningRelay.certs.appendingPathComponent("dev-ca.pem").path, bob, "/v1/mailbox/\(id.hex)"]
        stalledReader.standardError = FileHandle.nullDevice
        let loop = loops.next()
        let keepLoopBusy = Task.detached {
            while !Task.isCancelled { try? await loop.submit { usleep(50_000) }.get() }
        }
        // Also when a step below throws: once the loop is shut down, its submissions fail at once
        // and this would spin for the rest of the test run.
        defer { keepLoopBusy.cancel() }
        try stalledReader.run()
        defer { killAndReap(stalledReader) }
        #expect(await eventually(within: 60) { budget.unused == 0 }, "the stalled fetch took no read-ahead")

        let fetched = folder.appendingPathComponent("fetched.sm")
        #expect(try await relay.curl("/v1/mailbox/\(id.hex)", headers: ["Authorization: Bearer \(bob)"], output: fetched).status == 200)
        #expect(PositionalFile.sameContent(fetched.path, file.path))
        keepLoopBusy.cancel()
        await keepLoopBusy.value
        #expect(budget.unused == 0, "the stalled fetch no longer holds its read-ahead")

        killAndReap(stalledReader)
        #expect(await eventually(within: 60) { budget.unused == 2 }, "the stalled fetch kept \(2 - budget.unused) chunks of the budget")
    }

    /// A deposit that names its message id (`?message=`, as `secmail send` does) is refused as a
    /// repeat before its body is read, so before the mailbox's room is checked: a repeat into the
    /// mailbox its first deposit filled is told `409 conflict`, not `413`. The envelope must carry
    /// the id named.
    @Test(arguments: EngineUnderTest.available) func aDepositNamingItsIDIsRefusedAsARepeatBeforeTheMailboxIsFull(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine, mailboxQuota: 150 * 1024)
        defer { Task { await relay.stop() } }
        let folder = try makeTemporaryDirectory("mailbox-repeat")
        for name in ["alice", "bob"] { try await relay.services.directory.register(try ThrowawayIdentities.bundle(name)) }
        let alice = try await relay.token("alice")
        // Larger than 64 KiB: admitted before its body, and more than half the quota.
        func envelope() throws -> (id: MessageID, file: URL) {
            let (id, bytes) = try RelayCurl.envelope(from: "alice", to: ["bob"], extra: 100_000)
            let file = folder.appendingPathComponent("\(id.hex).sm")
            try Data(bytes).write(to: file)
            return (id, file)
        }
        func deposit(_ file: URL, naming id: MessageID?) async throws -> (status: Int, body: String) {
            try await relay.curl("/v1/messages?to=bob" + (id.map { "&message=\($0.hex)" } ?? ""), method: "POST",
                                 headers: ["Authorization: Bearer \(alice)"], file: file)
        }
        let first = try envelope()
        #expect(try await deposit(first.file, naming: first.id).status == 201)
        #expect(try await deposit(first.file, naming: nil).status == 413)
        let repeated = try await deposit(first.file, naming: first.id)
        #expect(repeated.status == 409, "\(repeated.body)")
        #expect(try json(repeated.body)["error"] as? String == "conflict")

        try await relay.services.mailboxes.delete(IdentityName("bob"), first.id)
        let second = try envelope()
        let misnamed = try await deposit(second.file, naming: try MessageID(bytes: Array(repeating: 7, count: 16)))
        #expect(misnamed.status == 400)
        #expect((try json(misnamed.body)["reason"] as? String)?.contains("carries message id \(second.id)") == true, "\(misnamed.body)")
        #expect(try await relay.curl("/v1/messages?to=bob&message=nothex", method: "POST", headers: ["Authorization: Bearer \(alice)"],
                                     file: second.file).status == 400)
        #expect(try await deposit(second.file, naming: second.id).status == 201)
        #expect(try await relay.services.mailboxes.list(IdentityName("bob")).messages.map(\.messageID) == [second.id])
    }

    /// A client that connects and then says nothing is cut off after the idle timeout (1 s here):
    /// its connection closes by itself, where nothing else would close it. The wait is long
    /// (60 s) and only the close is required of it: under a full parallel run a CI machine once
    /// took 31 s to get this test's relay and client through their handshake and timer.
    @Test(arguments: EngineUnderTest.available) func anIdleConnectionIsClosed(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine, limits: RelayLimits(deadlines: ConnectionDeadlines(idleBeforeSignIn: .seconds(1), idle: .seconds(1))))
        defer { Task { await relay.stop() } }
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        client.arguments = ["openssl", "s_client", "-connect", "127.0.0.1:\(relay.port)", "-quiet", "-ign_eof",
                            "-CAfile", RunningRelay.certs.appendingPathComponent("dev-ca.pem").path]
        let silence = Pipe()  // never written: the client sends no request
        client.standardInput = silence
        client.standardOutput = FileHandle.nullDevice
        client.standardError = FileHandle.nullDevice
        // The exit time is taken when the process ends (on Foundation's thread), not when this
        // task next runs: on a busy machine the test's own wake-ups can lag by seconds.
        let exited = ExitTime()
        client.terminationHandler = { _ in exited.mark() }
        let started = Date()
        try client.run()
        let closedByRelay = await exits(client, within: 60)
        killAndReap(client)
        let closedAfter = (exited.time ?? Date()).timeIntervalSince(started)
        #expect(closedByRelay, "the relay kept an idle connection open for \(closedAfter) s")
        #expect(closedAfter >= 0.9)
        try? silence.fileHandleForWriting.close()
    }

    @Test(arguments: EngineUnderTest.available) func requestRatesAreLimitedPerAddressAndPerIdentity(engine: EngineUnderTest) async throws {
        let byAddress = try await RunningRelay(engine: engine, limits: RelayLimits(perAddress: .init(perSecond: 0.001, burst: 3)))
        defer { Task { await byAddress.stop() } }
        var statuses: [Int] = []
        for _ in 0..<6 { statuses.append(try await byAddress.curl("/v1/health").status) }
        #expect(statuses.prefix(3).allSatisfy { $0 == 200 }, "\(statuses)")
        #expect(statuses.suffix(2).allSatisfy { $0 == 429 }, "\(statuses)")
        let refused = try await byAddress.curl("/v1/health")
        #expect(try json(refused.body)["error"] as? String == "rateLimited")
        // The refusal says when the bucket holds a request again: at most 1/0.001 s, less the time
        // since it was emptied (RateLimiterTests checks the count itself).
        let head = try await run("curl", ["--silent", "--show-error", "--dump-header", "-", "--output", "/dev/null",
                                          "--cacert", RunningRelay.certs.appendingPathComponent("dev-ca.pem").path,
                                          "https://localhost:\(byAddress.port)/v1/health"])
        let retryAfter = head.text.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("retry-after: ") }.flatMap { Int($0.dropFirst(13)) }
        #expect(head.text.hasPrefix("HTTP/1.1 429") && (1...1000).contains(retryAfter ?? 0), "\(head.text)")

        let byIdentity = try await RunningRelay(engine: engine, perIdentity: .init(perSecond: 0.001, burst: 2))
        defer { Task { await byIdentity.stop() } }
        try await byIdentity.services.directory.register(try ThrowawayIdentities.bundle("bob"))
        let bob = try await byIdentity.token("bob")
        var listings: [Int] = []
        for _ in 0..<4 { listings.append(try await byIdentity.curl("/v1/mailbox", headers: ["Authorization: Bearer \(bob)"]).status) }
        #expect(listings == [200, 200, 429, 429], "\(listings)")
        // Unauthenticated routes from the same address are not affected by bob's limit.
        #expect(try await byIdentity.curl("/v1/health").status == 200)
    }
}

/// When a process ended, recorded by its termination handler.
final class ExitTime: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var stored: Date?

    var time: Date? { lock.withLock { stored } }

    func mark() { lock.withLock { if stored == nil { stored = Date() } } }
}
