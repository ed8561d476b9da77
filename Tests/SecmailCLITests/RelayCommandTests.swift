import Foundation
import SecmailRelay
import SecmailTestSupport
import Testing

/// The relays `startRelay` started (and the conversation tests' faulty relays) that have not
/// been stopped: killed when the test process exits, so a test that fails before it stops its
/// relays leaves none serving behind it.
enum StartedRelays {
    private static let lock = NSLock()
    // Guarded by `lock`.
    nonisolated(unsafe) private static var running: Set<Int32> = []
    nonisolated(unsafe) private static var exitHookInstalled = false

    static func add(_ pid: Int32) {
        lock.withLock {
            if !exitHookInstalled {
                atexit { StartedRelays.killRunning() }
                exitHookInstalled = true
            }
            running.insert(pid)
        }
    }

    static func remove(_ pid: Int32) {
        _ = lock.withLock { running.remove(pid) }
    }

    private static func killRunning() {
        lock.withLock { for pid in running { kill(pid, SIGKILL) } }
    }
}

/// What `relayWithAliceAndBob` sets up: the folder, the relay's data directory, the relay, its CA
/// file, and the two registered users.
typealias RelayWithAliceAndBob = (folder: URL, data: URL, relay: (process: Process, output: OutputCollector, port: Int), ca: String,
                                  alice: CLIUser, bob: CLIUser)

/// `secmail relay` as a real process: first start, what it prints, serving, graceful stop, restart.
@Suite(.threadsOfTheirOwn) struct RelayCommandTests {
    /// Starts `secmail relay` (through `launcher`, e.g. strace and its options, when given; with
    /// extra relay `options`) and waits for its startup lines.
    func startRelay(data: URL, launcher: [String] = [], options: [String] = []) async throws -> (process: Process, output: OutputCollector, port: Int) {
        let process = Process()
        let relayArguments = ["relay", "--data", data.path, "--listen", "127.0.0.1:0"] + options
        if launcher.isEmpty {
            process.executableURL = SecmailBinary.url
            process.arguments = relayArguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = launcher + [SecmailBinary.url.path] + relayArguments
        }
        let collector = OutputCollector()
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { handle in collector.append(handle.availableData) }
        try process.run()
        StartedRelays.add(process.processIdentifier)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !collector.text.contains("invites:"), process.isRunning {
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        let line = try #require(collector.text.split(separator: "\n").first { $0.hasPrefix("secmail relay listening on https://") },
                                "\(collector.text)")
        let port = try #require(Int(line.split(separator: ":").last ?? ""))
        return (process, collector, port)
    }

    /// A relay (with extra `options`) in a new temporary folder, and alice then bob registered on
    /// it through the CLI. The relay's output collector is kept with it, so its pipes stay read.
    func relayWithAliceAndBob(_ label: String, options: [String] = []) async throws -> RelayWithAliceAndBob {
        let folder = try temporaryDirectory(label)
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        let relay = try await startRelay(data: data, options: options)
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        let alice = CLIUser.fresh("alice", in: folder), bob = CLIUser.fresh("bob", in: folder)
        for person in [alice, bob] { try await person.register(port: relay.port, ca: ca) }
        return (folder, data, relay, ca, alice, bob)
    }

    /// SIGTERM; SIGINT if the relay still runs 15 s later; SIGKILL 5 s after that, so that a relay
    /// ignoring both fails its test (status 9) instead of holding the whole run.
    func stop(_ process: Process) async -> Int32 {
        process.terminate()
        if await !exits(process, within: 15) { process.interrupt() }
        _ = await exits(process, within: 5)
        killAndReap(process)  // at once if it exited
        StartedRelays.remove(process.processIdentifier)
        return process.terminationStatus
    }

    @Test func relayCreatesItsDataServesAndStopsGracefully() async throws {
        let data = try temporaryDirectory("relay-data").appendingPathComponent("relay", isDirectory: true)
        let first = try await startRelay(data: data)
        #expect(first.output.text.contains("CA file:"))
        let logKeyLine = first.output.text.split(separator: "\n").first { $0.contains("log key:") }.map(String.init) ?? ""
        #expect(logKeyLine.contains("/secmail+"))
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        let health = try await run("curl", ["--silent", "--max-time", "60", "--cacert", ca, "https://localhost:\(first.port)/v1/health"])
        #expect(health.text == "ok\n", "\(health.stderr)")
        #expect(await stop(first.process) == 0)
        #expect(first.output.text.contains("secmail relay stopped"))
        #expect(permissions(data) == 0o700)
        #expect(permissions(data.appendingPathComponent("log-key.ed25519")) == 0o600)
        #expect(permissions(data.appendingPathComponent("relay.sqlite")) == 0o600)
        #expect(permissions(data.appendingPathComponent("tls/relay.key.pem")) == 0o600)

        // A restart keeps the same log key and certificate.
        let second = try await startRelay(data: data)
        #expect(second.output.text.contains(logKeyLine))
        let again = try await run("curl", ["--silent", "--max-time", "60", "--cacert", ca, "https://localhost:\(second.port)/v1/health"])
        #expect(again.text == "ok\n")
        #expect(await stop(second.process) == 0)
    }

    /// A request that says `Connection: close` is answered and its connection ended at once by
    /// the relay, as HTTP/1.1 asks (RFC 9112, 9.6), and so is one the HTTP layer refuses as
    /// malformed (400); before, the relay answered and then held the connection until its idle
    /// timeout (15 s), so a client reading to the end waited that long, and the connection
    /// counted against its address's cap meanwhile. Seen by `openssl s_client`, which stays
    /// until the server closes. A malformed chunked body is refused as malformed (it was called
    /// larger than the limit, 413).
    @Test func aConnectionCloseRequestEndsTheConnectionOnceAnswered() async throws {
        let data = try temporaryDirectory("relay-connection-close").appendingPathComponent("relay", isDirectory: true)
        // Held-open connections would last 120 s, so the bound below tells the two apart even
        // when the machine is busy (s_client alone took 9 s to finish once under the whole suite).
        let relay = try await startRelay(data: data, options: ["--idle-timeout-before-sign-in", "120"])
        for (request, status) in [("GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", "200"),
                                  // HTTP/1.0 ends with the answer unless asked to keep alive; a close token in any case.
                                  ("GET /v1/health HTTP/1.0\r\nHost: localhost\r\n\r\n", "200"),
                                  ("GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: Keep-Alive, Close\r\n\r\n", "200"),
                                  ("GET /v1/he alth HTTP/1.1\r\nHost: localhost\r\n\r\n", "400"),
                                  ("POST /v1/auth/challenge HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400"),
                                  // Well-formed chunks past the 8 KiB a JSON body may have: too large, still.
                                  ("POST /v1/auth/challenge HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2710\r\n"
                                   + String(repeating: "x", count: 10_000) + "\r\n0\r\n\r\n", "413")] {
            let client = Process()
            client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            client.arguments = ["openssl", "s_client", "-connect", "127.0.0.1:\(relay.port)", "-quiet", "-ign_eof",
                                "-CAfile", data.appendingPathComponent("tls/dev-ca.pem").path]
            let input = Pipe(), output = Pipe()
            client.standardInput = input
            client.standardOutput = output
            client.standardError = FileHandle.nullDevice
            let started = Date()
            try client.run()
            // Kept open: only the relay's closing can end s_client.
            input.fileHandleForWriting.write(Data(request.utf8))
            _ = await exits(client, within: 60)
            let closedAfter = Date().timeIntervalSince(started)
            killAndReap(client)
            let answer = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 \(status)"), "\(answer)")
            if request.hasPrefix("POST") { #expect(answer.contains(status == "400" ? "\"malformedRequest\"" : "\"tooLarge\""), "\(answer)") }
            if status == "200" { #expect(answer.lowercased().contains("\r\nconnection: close\r\n"), "the answer does not say the connection ends: \(answer)") }
            #expect(closedAfter < 45, "the relay kept the connection open for \(closedAfter) s after answering \(request.prefix(120).debugDescription)")
            try? input.fileHandleForWriting.close()
        }
        #expect(await stop(relay.process) == 0)
    }

    /// `relay status` while the relay serves (and says so, with its process id) and after it
    /// stopped: its log key as the relay printed it, the names, the mail waiting and the invites,
    /// read from the database; a folder that is no relay's is refused and left untouched, and so
    /// is a database an older relay serves (`status` and `invite` alike), which this relay
    /// migrates when it starts, saying so.
    @Test func relayStatusShowsTheLogMailAndInvitesWhileItServes() async throws {
        let (folder, data, relay, _, alice, _) = try await relayWithAliceAndBob("relay-status")
        let nowhere = folder.appendingPathComponent("no-relay", isDirectory: true)
        let refused = try await runSecmail(["relay", "status", "--data", nowhere.path], environment: [:])
        #expect(refused.status == 1 && refused.stderr.contains("is not a relay's data directory"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: nowhere.path))
        // An empty --data (an unset variable) would name the current folder: refused before
        // anything is made or changed.
        for arguments in [["relay", "--data", "", "--listen", "127.0.0.1:0"], ["relay", "status", "--data", ""],
                          ["relay", "backup", "--data", data.path, "--to", ""]] {
            let empty = try await runSecmail(arguments, environment: [:])
            #expect(empty.status != 0 && empty.stderr.contains("is empty: give the"), "\(arguments): \(empty.stderr)")
        }

        let sent = try await alice.run(["send", "bob", "-m", "waiting for bob"])
        #expect(sent.status == 0, "\(sent.stderr)")
        await #expect(try runSecmail(["relay", "invite", "--data", data.path], environment: [:]).status == 0)
        let status = try await runSecmail(["relay", "status", "--data", data.path, "--json"], environment: [:])
        let fields = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any], "\(status.stderr)")
        let printedKey = relay.output.text.split(separator: "\n").first { $0.contains("log key:") }?.split(separator: " ").last.map(String.init)
        #expect(fields["logKey"] as? String == printedKey && printedKey != nil, "\(fields)")
        // The TLS key pin of the development certificate it serves, as the relay printed it too.
        let printedPin = relay.output.text.split(separator: "\n").first { $0.contains("TLS key pin:") }?.split(separator: " ").last.map(String.init)
        #expect((fields["certificate"] as? [String: Any])?["tlsKeyPin"] as? String == printedPin && printedPin != nil, "\(fields)")
        #expect(fields["names"] as? Int == 2 && fields["keyVersions"] as? Int == 2 && fields["logEntries"] as? Int == 2, "\(fields)")
        #expect(fields["messages"] as? Int == 1 && fields["waiting"] as? Int == 1 && fields["mailboxesHoldingMail"] as? Int == 1
                && (fields["fullestMailbox"] as? [String: Any])?["name"] as? String == "bob", "\(fields)")
        #expect(fields["unusedInvites"] as? Int == 1 && (fields["databaseBytes"] as? Int ?? 0) > 0 && (fields["availableBytes"] as? Int ?? 0) > 0, "\(fields)")
        #expect(fields["serving"] as? Bool == true && fields["relayProcess"] as? Int == Int(relay.process.processIdentifier), "\(fields)")
        let human = try await runSecmail(["relay", "status", "--data", data.path], environment: [:])
        #expect(human.status == 0 && human.stdout.contains("identities  2 names (2 key versions)")
                && human.stdout.contains("1 message (") && human.stdout.contains("fullest: bob"), "\(human.stdout)")
        #expect(human.stderr.contains("secmail register NAME --relay https://HOST:PORT --tls-pin \(printedPin ?? "") --log-key \(printedKey ?? "")"),
                "\(human.stderr)")
        #expect(human.stdout.contains("\(data.path): serving (process \(relay.process.processIdentifier))"), "\(human.stdout)")
        #expect(await stop(relay.process) == 0)
        let stopped = try await runSecmail(["relay", "status", "--data", data.path, "--json"], environment: [:])
        let stoppedFields = try #require(try JSONSerialization.jsonObject(with: Data(stopped.stdout.utf8)) as? [String: Any], "\(stopped.stderr)")
        #expect(stoppedFields["serving"] as? Bool == false && stoppedFields["relayProcess"] == nil, "\(stoppedFields)")

        // The database as a relay from before V010 left it (the column V010 drops, and no record
        // of V010) is refused, not migrated under that relay.
        let file = data.appendingPathComponent("relay.sqlite").path
        let last = "V010__envelope_hash_dropped"
        try await RelayDatabase(path: file).write { db in
            try db.execute("ALTER TABLE envelopes ADD COLUMN sha256 BLOB")
            try db.execute("DELETE FROM schema_migrations WHERE name = ?", [last])
        }
        let older = try await runSecmail(["relay", "status", "--data", data.path], environment: [:])
        #expect(older.status == 1 && older.stderr.contains("lacks migration \(last)") && older.stdout.isEmpty, "\(older.stderr)")
        let inviteForOlder = try await runSecmail(["relay", "invite", "--data", data.path], environment: [:])
        #expect(inviteForOlder.status == 1 && inviteForOlder.stderr.contains("lacks migration \(last)"), "\(inviteForOlder.stderr)")
        #expect(throws: RelayError.self) { try RelayDatabase(path: file, migrating: false) }

        // The relay of this version migrates it when it starts, and says so (an operator
        // upgrading learns that there is no going back to the older relay); then status reads it.
        let upgraded = try await startRelay(data: data)
        #expect(upgraded.output.text.contains("migrated:       \(last) (an older relay cannot serve it now)"), "\(upgraded.output.text)")
        let afterUpgrade = try await runSecmail(["relay", "status", "--data", data.path], environment: [:])
        #expect(afterUpgrade.status == 0 && afterUpgrade.stdout.contains("1 message ("), "\(afterUpgrade.stderr)")
        #expect(await stop(upgraded.process) == 0)
        // A start that migrated nothing says nothing of migrations; neither did the first start,
        // which created the database.
        let again = try await startRelay(data: data)
        #expect(!again.output.text.contains("migrated:") && !relay.output.text.contains("migrated:"), "\(again.output.text)")
        #expect(await stop(again.process) == 0)
    }

    /// A file in envelopes/ without a committed row may be a deposit between its rename and its
    /// commit on the running relay: `invite` must leave it; only a relay starting to serve (no
    /// other can be serving then) removes it.
    @Test func onlyAServingRelayRemovesUncommittedEnvelopeFiles() async throws {
        let data = try temporaryDirectory("relay-orphans").appendingPathComponent("relay", isDirectory: true)
        // No relay has been there: a mistyped --data is said, and nothing is made there.
        let nowhere = try await runSecmail(["relay", "invite", "--data", data.path], environment: [:])
        #expect(nowhere.status == 1 && nowhere.stdout.isEmpty && nowhere.stderr.contains("\(data.path) is not a relay's data directory (it holds no log key)"),
                "\(nowhere.stderr)")
        #expect(!FileManager.default.fileExists(atPath: data.path))
        let first = try await startRelay(data: data)
        #expect(await stop(first.process) == 0)
        let inFlight = data.appendingPathComponent("envelopes/0123456789abcdef0123456789abcdef")
        try Data("a deposit not yet committed".utf8).write(to: inFlight)
        let invite = try await runSecmail(["relay", "invite", "--data", data.path], environment: [:])
        #expect(invite.status == 0, "\(invite.stderr)")
        // The code alone on standard output (for scripts); how to use it on standard error.
        let code = invite.stdout.trimmingCharacters(in: .newlines)
        #expect(code.count == 32 && invite.stderr.contains("secmail register NAME --invite \(code)"), "\(invite.stdout) \(invite.stderr)")
        #expect(FileManager.default.fileExists(atPath: inFlight.path), "invite removed a deposit in flight")

        let relay = try await startRelay(data: data)
        #expect(!FileManager.default.fileExists(atPath: inFlight.path), "the serving relay kept an orphan")
        #expect(await stop(relay.process) == 0)
    }

    @Test func badRelayOptionsAreRefused() throws {
        let data = try temporaryDirectory("relay-bad")
        #expect(try runSecmail(["relay", "--data", data.path, "--listen", "nonsense"], environment: [:]).status == 64)
        // `--port`, which people try first, points at --listen (the parser alone suggested --cert).
        let port = try runSecmail(["relay", "--data", data.path, "--port", "8443"], environment: [:])
        #expect(port.status == 64 && port.stderr.contains("there is no --port: give the address and port together, --listen 127.0.0.1:8443"), "\(port.stderr)")
        #expect(!port.stderr.contains("--cert"))
        let halfTLS = try runSecmail(["relay", "--data", data.path, "--listen", "127.0.0.1:0", "--cert", "/nonexistent.pem"], environment: [:])
        #expect(halfTLS.status == 1)
        #expect(halfTLS.stderr.contains("--cert and --key"))
        // A PostgreSQL server that is not there: said in words, not in NIO's.
        let noServer = try runSecmail(["relay", "--data", data.path, "--listen", "127.0.0.1:0", "--database", "postgres://secmail@127.0.0.1:1/secmail"],
                                      environment: [:])
        #expect(noServer.status == 1 && noServer.stderr.contains("cannot reach the PostgreSQL database postgres://secmail@127.0.0.1:1/secmail")
                && noServer.stderr.contains("(connection refused)") && !noServer.stderr.contains("SingleConnectionFailure"), "\(noServer.stderr)")
        // That start stopped before serving: no invite is made for a relay that never served.
        let invite = try runSecmail(["relay", "invite", "--data", data.path], environment: [:])
        #expect(invite.status == 1 && invite.stdout.isEmpty && invite.stderr.contains("no relay has served from it yet"), "\(invite.stderr)")
    }

    /// `secmail relay …` and `secmail demo` are the secmail-relay program's: the client starts it
    /// in its place with the rest of the command line, `--help` included, and says what to do
    /// where it is missing.
    @Test func relayAndDemoAreHandedToTheRelayProgram() throws {
        let help = try runSecmail(["relay", "--help"], environment: [:])
        #expect(help.status == 0 && help.stdout.contains("USAGE: secmail-relay <subcommand>") && help.stdout.contains("new-log"), "\(help.stdout)")
        let demoHelp = try runSecmail(["demo", "--help"], environment: [:])
        #expect(demoHelp.status == 0 && demoHelp.stdout.contains("USAGE: secmail-relay demo") && demoHelp.stdout.contains("--keep"), "\(demoHelp.stdout)")
        // The same process: what the client started with ends as the relay's program.
        let status = try runSecmail(["relay", "status", "--data", "/nonexistent-secmail-relay-data"], environment: [:])
        #expect(status.status == 1 && status.stderr.hasPrefix("secmail: error: ") && !status.stderr.contains("runs the secmail-relay program"), "\(status.stderr)")

        // A client installed alone, with no secmail-relay on PATH either.
        let alone = try temporaryDirectory("client-alone")
        let client = alone.appendingPathComponent("secmail")
        // A hard link where it can be: a copy is written through a descriptor that a child
        // another test forks at that moment inherits, and running the copy then fails with
        // ETXTBSY ("Text file busy", seen once in a clean-clone CI run).
        do {
            try FileManager.default.linkItem(at: SecmailBinary.url, to: client)
        } catch {
            try FileManager.default.copyItem(at: SecmailBinary.url, to: client)
        }
        for arguments in [["relay", "--data", alone.path], ["demo"]] {
            let result = try runProcess(client, arguments, environment: ["PATH": "/usr/bin:/bin"])
            #expect(result.status == 1, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("`secmail \(arguments[0])` runs the secmail-relay program, and the secmail-relay program is neither next to this one (in \(alone.path)) nor on PATH"),
                    "\(result.stderr)")
            #expect(result.stderr.contains("swift run secmail-relay \(arguments[0] == "demo" ? "demo …" : "…")"), "\(result.stderr)")
        }
    }
}

/// Collects a child's output from the readability handler's thread.
final class OutputCollector: @unchecked Sendable {
    // @unchecked: `data` is guarded by `lock`.
    private let lock = NSLock()
    private var data = Data()
    func append(_ chunk: Data) { lock.withLock { data.append(chunk) } }
    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}
