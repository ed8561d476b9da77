import Foundation
import SecmailClient
import SecmailFormat
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// Every relay command as a user runs it: one TLS connection per command, and when the relay is
/// down, resets connections or stops in the middle of an answer, one clean sentence and exit 1
/// (never a NIO type name, a raw status line or a crash).
@Suite(.serialized) struct RelayConversationTests {
    let commands = RelayCommandTests()
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures", isDirectory: true)

    /// Every relay command, run by alice (registered, with bob as a contact) in `folder`.
    func everyCommand(alice: CLIUser, carol: CLIUser, port: Int, ca: String, messageID: String, replyTo: String,
                      bobFingerprint: String) -> [(name: String, run: @Sendable () async throws -> CLIResult)] {
        [
            ("register", { try await carol.run(["register", "carol", "--relay", "https://localhost:\(port)", "--ca", ca]) }),
            ("lookup", { try await alice.run(["lookup", "bob", "carol"]) }),
            ("send", { try await alice.run(["send", "bob", "-m", "hello"]) }),
            ("inbox", { try await alice.run(["inbox"]) }),
            ("read", { try await alice.run(["read", messageID, "--out", alice.home.appendingPathComponent("out").path]) }),
            ("reply", { try await alice.run(["reply", replyTo, "-m", "thanks"]) }),
            ("trust", { try await alice.run(["trust", "bob", "--fingerprint", bobFingerprint]) }),
            ("audit", { try await alice.run(["audit"]) }),
            ("rotate", { try await alice.run(["rotate"]) }),
        ]
    }

    @Test func everyCommandOpensExactlyOneConnection() async throws {
        let folder = try temporaryDirectory("one-connection")
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        let trace = folder.appendingPathComponent("accepts.strace")
        // Long idle timeouts: under a loaded test run, `register`'s key generation can outlast most
        // of the default 15 s, and the client then replaces the idle connection on purpose (what
        // anIdleConnectionIsReplacedTransparently tests); here each command's own count matters.
        let relay = try await TracedRelay.start(data: data, trace: trace, syscalls: "accept,accept4",
                                                options: ["--idle-timeout", "300", "--idle-timeout-before-sign-in", "300"])
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        let alice = CLIUser.fresh("alice", in: folder), bob = CLIUser.fresh("bob", in: folder)
        let carol = CLIUser.fresh("carol", in: folder)
        for person in [alice, bob] { try await person.register(port: relay.port, ca: ca) }
        let sent = try await bob.run(["send", "alice", "-m", "for alice"])
        let messageID = sent.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let lookup = try await alice.run(["lookup", "bob", "--json"])
        let fingerprint = try #require(try JSONSerialization.jsonObject(with: Data(lookup.stdout.utf8)) as? [String: Any])["fingerprint"] as? String

        var windows: [(name: String, start: Double, end: Double)] = []
        for command in everyCommand(alice: alice, carol: carol, port: relay.port, ca: ca, messageID: messageID, replyTo: messageID,
                                    bobFingerprint: fingerprint ?? "") {
            let start = Date().timeIntervalSince1970
            let result = try await command.run()
            #expect(result.status == 0, "\(command.name): \(result.stderr)")
            windows.append((command.name, start, Date().timeIntervalSince1970))
        }
        #expect(await relay.stop() == 0)

        let accepted = try acceptTimes(in: trace)
        for window in windows {
            let count = accepted.filter { $0 >= window.start && $0 <= window.end }.count
            #expect(count == 1, "\(window.name) opened \(count) connections")
        }
    }

    @Test func aRelayThatIsDownResetsOrStopsMidAnswerGetsOneCleanSentence() async throws {
        let (folder, _, relay, ca, alice, _) = try await commands.relayWithAliceAndBob("relay-failures")
        await #expect(try alice.run(["lookup", "bob"]).status == 0)
        let messageID = String(repeating: "ab", count: 16)
        // A message alice sent, kept: replying to it needs the relay.
        let sent = try await alice.run(["send", "bob", "-m", "to reply to"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let fingerprint = String(repeating: "0", count: 64)

        // A relay that stops in the middle of its first answer: the handshake (about 1.4 KB from
        // the relay) goes through, the answer is cut.
        // Started on threads of their own: waiting for Python to print its port blocks.
        let cutter = try await onThreadOfItsOwn { try FaultyRelay(["cut", String(relay.port), "1600"]) }
        let resetter = try await onThreadOfItsOwn { try FaultyRelay(["reset"]) }
        for (scenario, port) in [("cut mid-answer", cutter.port), ("reset", resetter.port), ("closed port", relay.port)] {
            if scenario == "closed port" { #expect(await commands.stop(relay.process) == 0) }
            try alice.retarget(port: port)
            let carol = CLIUser.fresh("carol-\(port)", in: folder)
            for command in everyCommand(alice: alice, carol: carol, port: port, ca: ca, messageID: messageID, replyTo: sent, bobFingerprint: fingerprint) {
                let started = Date()
                let result = try await command.run()
                let seconds = Date().timeIntervalSince(started)
                let context = "\(scenario), \(command.name) (\(String(format: "%.1f", seconds)) s): \(result.status) \(result.stderr)"
                #expect(result.status == 1, "\(context)")
                // Fast failure: no waiting for a timeout when the relay already said no.
                #expect(seconds < 10, "\(context)")
                let lines = result.stderr.split(separator: "\n")
                #expect(lines.count == 1 && lines[0].hasPrefix("secmail: error: "), "\(context)")
                #expect(result.stderr.contains("localhost:\(port)"), "\(context)")
                for leak in ["NIO", "Channel", "IOError", "errno", "Fatal error", "promise", "HTTP/1.1", "TLSError"] {
                    #expect(!result.stderr.contains(leak), "\(context)")
                }
                if scenario == "closed port" { #expect(result.stderr.contains("connection refused"), "\(context)") }
            }
        }
        cutter.stop()
        resetter.stop()
    }

    /// A deposit whose answer is lost (the relay stored it, and the connection broke before its
    /// `201` arrived) is offered once more on a new connection: the relay, taking a message id
    /// once, refuses it as accepted already, and `send` reports the message sent, which the
    /// recipient has once. When the relay cannot be reached again, `send` cannot know and says
    /// so, without advising a new send, which would be a second message.
    @Test func aDepositWhoseAnswerIsLostIsOfferedAgainAndArrivesOnce() async throws {
        let (folder, _, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("lost-answer")
        await #expect(try alice.run(["lookup", "bob"]).status == 0)
        let attachment = folder.appendingPathComponent("photo.bin")
        // Random: compression leaves it as large, well past the requests before the deposit.
        try Data((0..<300_000).map { _ in UInt8.random(in: 0...255) }).write(to: attachment)

        for stopsAfterwards in [false, true] {
            let proxy = try await onThreadOfItsOwn {
                try FaultyRelay(["lose-answer", String(relay.port), "200000"] + (stopsAfterwards ? ["stop"] : []))
            }
            try alice.retarget(port: proxy.port)
            let sent = try await alice.run(["send", "bob", "-m", "lost answer", "--attach", attachment.path])
            proxy.stop()
            let inbox = try await bob.run(["inbox", "--json"])
            let listed = try #require(try JSONSerialization.jsonObject(with: Data(inbox.stdout.utf8)) as? [[String: Any]])
            #expect(listed.count == 1, "\(inbox.stdout)")
            let id = try #require(listed.first?["id"] as? String)
            if stopsAfterwards {
                #expect(sent.status == 1, "\(sent.stderr)")
                let lines = sent.stderr.split(separator: "\n")
                #expect(lines.count == 1 && lines[0].hasPrefix("secmail: error: "), "\(sent.stderr)")
                #expect(sent.stderr.contains("connection refused") && sent.stderr.contains("message \(id) went out") && sent.stderr.contains("may have reached bob all the same"), "\(sent.stderr)")
                #expect(!sent.stderr.contains("try again"), "\(sent.stderr)")
            } else {
                #expect(sent.status == 0, "\(sent.stderr)")
                #expect(sent.stdout == id + "\n")
                #expect(FileManager.default.fileExists(atPath: alice.home.appendingPathComponent("sent/\(id).sm").path))
            }
            await #expect(try bob.run(["delete", id]).status == 0)
        }
        #expect(await commands.stop(relay.process) == 0)
    }

    /// A message that verified and was kept is read, text shown and exit 0, even when deleting
    /// the relay's copy then fails (here the relay goes away as the delete is asked): a note
    /// says so and how to delete it; once the relay is back, `read --all` shows it as read
    /// before and deletes the copy left there.
    @Test func aReadWhoseDeleteFailsStillShowsTheMessage() async throws {
        let (_, data, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("read-delete-fails")
        let sent = try await alice.run(["send", "bob", "-m", "read me once"])
        #expect(sent.status == 0, "\(sent.stderr)")
        let id = sent.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let tls = data.appendingPathComponent("tls")
        let proxy = try await onThreadOfItsOwn {
            try FaultyRelay(["tls-cut", String(relay.port), tls.appendingPathComponent("relay.pem").path,
                             tls.appendingPathComponent("relay.key.pem").path, "DELETE /v1/mailbox/"])
        }
        try bob.retarget(port: proxy.port)
        let read = try await bob.run(["read", id])
        proxy.stop()
        #expect(read.status == 0, "\(read.stderr)")
        #expect(read.stdout.contains("read me once"), "\(read.stdout)")
        #expect(read.stderr.contains("its copy on the relay is not deleted yet; `secmail delete \(id)` or `secmail read --all` deletes it"), "\(read.stderr)")
        #expect(FileManager.default.fileExists(atPath: bob.home.appendingPathComponent("received/\(id).sm").path))

        try bob.retarget(port: relay.port)
        let listed = try await bob.run(["inbox", "--json"])
        let messages = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        #expect(messages.count == 1 && messages.first?["id"] as? String == id && messages.first?["readBefore"] as? Bool == true, "\(listed.stdout)")
        #expect(try await bob.run(["inbox"]).stdout.contains("\(id)  alice"))
        #expect(try await bob.run(["inbox"]).stdout.contains("(read before)"))
        let again = try await bob.run(["read", "--all"])
        #expect(again.status == 0 && again.stdout.contains("read me once"), "\(again.stderr)")
        #expect(again.stderr.contains("read before") && again.stderr.contains("its copy left on the relay is deleted now"), "\(again.stderr)")
        #expect(try await bob.run(["inbox", "--json"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
        #expect(await commands.stop(relay.process) == 0)
    }

    /// Ctrl-C during `read`, once the message was saved and kept and its delete is under way
    /// (here held by the relay), says what is true then: nothing half-saved, and how to see the
    /// message again, which then opens from the kept copy.
    @Test func ctrlCDuringReadSaysHowToSeeTheMessage() async throws {
        let (folder, data, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("interrupted-read")
        let attachment = folder.appendingPathComponent("notes.txt")
        try Data("attached notes".utf8).write(to: attachment)
        let sent = try await alice.run(["send", "bob", "-m", "read me", "--attach", attachment.path])
        #expect(sent.status == 0, "\(sent.stderr)")
        let id = sent.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let tls = data.appendingPathComponent("tls"), marker = folder.appendingPathComponent("delete-held")
        let proxy = try await onThreadOfItsOwn {
            try FaultyRelay(["tls-cut", String(relay.port), tls.appendingPathComponent("relay.pem").path,
                             tls.appendingPathComponent("relay.key.pem").path, "DELETE /v1/mailbox/", marker.path])
        }
        try bob.retarget(port: proxy.port)
        let (status, stderr) = try await bob.runInterrupted(["read", String(id.prefix(6))],
                                                            when: { FileManager.default.fileExists(atPath: marker.path) })
        proxy.stop()
        #expect(status == 130)
        #expect(stderr.hasSuffix("secmail: interrupted; nothing half-saved was left; `secmail read \(id)` shows the message\n"), "\(stderr)")
        #expect(try Data(contentsOf: bob.home.appendingPathComponent("mail/\(id)/notes.txt")) == Data("attached notes".utf8))
        try bob.retarget(port: relay.port)
        let again = try await bob.run(["read", id])
        #expect(again.status == 0 && again.stdout.contains("read me") && again.stderr.contains("read before"), "\(again.stderr)")
        #expect(await commands.stop(relay.process) == 0)
    }

    /// Ctrl-C during `send` says what became of the message: while the envelope is still going
    /// out, nothing was sent (the relay drops a deposit cut short); once all of it went and the
    /// answer is awaited, it may have arrived, and so it has here.
    @Test func ctrlCDuringSendSaysWhetherTheMessageMayHaveGone() async throws {
        let (folder, _, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("interrupted-send")
        await #expect(try alice.run(["lookup", "bob"]).status == 0)
        let attachment = folder.appendingPathComponent("large.bin")
        // Random, and larger than the socket buffers between sender and proxy can hold (the proxy
        // fixes its receive buffer: autotuning would let it grow to 32 MiB).
        let random = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
        try random.read(upToCount: 40 << 20)?.write(to: attachment)

        for hold in ["upload", "answer"] {
            let marker = folder.appendingPathComponent("held-\(hold)")
            let proxy = try await onThreadOfItsOwn {
                try FaultyRelay(["hold-\(hold)", String(relay.port), String(20 << 20), marker.path])
            }
            try alice.retarget(port: proxy.port)
            let (status, stderr) = try await alice.runInterrupted(["send", "bob", "-m", "interrupted", "--attach", attachment.path],
                                                                  when: { FileManager.default.fileExists(atPath: marker.path) })
            proxy.stop()
            #expect(status == 130, "\(hold): \(stderr)")
            let listed = try await bob.run(["inbox", "--json"])
            let messages = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
            if hold == "upload" {
                #expect(stderr.hasSuffix("secmail: interrupted; nothing was sent, and nothing half-written was kept\n"), "\(stderr)")
                #expect(messages.isEmpty, "\(listed.stdout)")
            } else {
                #expect(stderr.contains("secmail: interrupted; the whole message had gone to the relay: it may have reached bob all the same"), "\(stderr)")
                #expect(messages.count == 1, "\(listed.stdout)")
            }
            #expect(!contents(of: alice.home.appendingPathComponent("sent")).contains { $0.hasPrefix(".") }, "\(hold)")
        }
        #expect(await commands.stop(relay.process) == 0)
    }

    /// One connection serves a command's requests; when the relay closed it while idle, the next
    /// request opens another, without the caller noticing; and once the relay's idle time (from
    /// `GET /v1/relay`) is mostly spent, the client does not wait to be cut off. The relay is a
    /// process of its own: an in-process relay shares this process's busy thread pool and can
    /// stall long enough, under a full parallel run, to time out requests in flight.
    @Test func anIdleConnectionIsReplacedTransparently() async throws {
        let folder = try temporaryDirectory("idle-connection")
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        let relay = try await commands.startRelay(data: data, options: ["--idle-timeout", "8", "--idle-timeout-before-sign-in", "8"])
        let alice = CLIUser.fresh("alice", in: folder)
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        try await alice.register(port: relay.port, ca: ca)
        let name = try IdentityName("alice")

        // Closed by the relay: noticed when the next request is due.
        let client = try RelayClient(home: SecmailHome(url: alice.home))
        let directory = DirectoryClient(relay: client)
        _ = try await directory.lookup([name])
        _ = try await directory.lookup([name])
        #expect(client.connectionsOpened == 1)
        try await Task.sleep(for: .milliseconds(10_000))
        #expect(try await directory.lookup([name])[0].pin == .unchanged)
        #expect(client.connectionsOpened == 2)

        // Idle for most of the announced eight seconds before sign-in (over six): replaced before
        // the relay cuts it. (Eight, not less: a task in a busy test process can wait seconds to
        // resume, and a connection opened just before such a wait must not time out unused.)
        #expect(try await client.info().limits.idleTimeoutBeforeSignInSeconds == 8)
        try await Task.sleep(for: .milliseconds(7000))
        #expect(try await directory.lookup([name])[0].pin == .unchanged)
        #expect(client.connectionsOpened == 3)
        await client.close()
        #expect(await commands.stop(relay.process) == 0)
    }

    /// Mistakes a relay can tell cheaply are reported before the passphrase is asked for (none is
    /// given here: asking would fail differently) and before anything is sealed or sent.
    @Test func cheapChecksComeBeforeThePassphrase() async throws {
        let (folder, _, relay, _, alice, _) = try await commands.relayWithAliceAndBob("cheap-checks", options: ["--max-envelope-mib", "1"])
        await #expect(try alice.run(["lookup", "bob"]).status == 0)
        let noPassphrase = ["SECMAIL_HOME": alice.home.path]

        let typo = try await runSecmail(["send", "bobb", "-m", "hi"], environment: noPassphrase)
        #expect(typo.status == 1)
        #expect(typo.stderr.contains("no one is registered as bobb on the relay at localhost:\(relay.port); did you mean bob?"), "\(typo.stderr)")

        // A file where a recipient belongs (as scp and mail(1) take them): pointed to --attach,
        // whether it cannot be a name or could be one that is not registered.
        try Data("notes".utf8).write(to: folder.appendingPathComponent("my notes.txt"))
        try Data("notes".utf8).write(to: folder.appendingPathComponent("Notes.txt"))
        let spaced = try await runSecmail(["send", "bob", "my notes.txt", "-m", "hi"], environment: noPassphrase, in: folder)
        #expect(spaced.status == 1)
        #expect(spaced.stderr.contains("'my notes.txt' is a file here: to send it, attach it with --attach 'my notes.txt'"), "\(spaced.stderr)")
        try Data("notes".utf8).write(to: folder.appendingPathComponent("bob's notes"))
        let quoted = try await runSecmail(["send", "bob", "bob's notes", "-m", "hi"], environment: noPassphrase, in: folder)
        #expect(quoted.stderr.contains(#"attach it with --attach 'bob'\''s notes'"#), "\(quoted.stderr)")
        let named = try await runSecmail(["send", "bob", "Notes.txt", "-m", "hi"], environment: noPassphrase, in: folder)
        #expect(named.status == 1)
        #expect(named.stderr.contains("no one is registered as notes.txt on the relay at localhost:\(relay.port); Notes.txt is a file here: to send it, attach it with --attach Notes.txt"),
                "\(named.stderr)")
        let unknownElsewhere = try await runSecmail(["send", "carol", "Notes.txt", "-m", "hi"], environment: noPassphrase, in: folder)
        #expect(!unknownElsewhere.stderr.contains("is a file here"), "\(unknownElsewhere.stderr)")

        let big = folder.appendingPathComponent("big.bin")
        try Data(repeating: 7, count: 2 << 20).write(to: big)
        let tooBig = try await runSecmail(["send", "bob", "-m", "hi", "--attach", big.path], environment: noPassphrase)
        #expect(tooBig.status == 1)
        #expect(tooBig.stderr.contains("accepts envelopes of at most 1048576 bytes"), "\(tooBig.stderr)")
        #expect(contents(of: alice.home.appendingPathComponent("sent")).isEmpty)
        #expect(await commands.stop(relay.process) == 0)
    }

    /// The times of successful accept(2) calls in an strace -ttt log.
    func acceptTimes(in trace: URL) throws -> [Double] {
        try String(contentsOf: trace, encoding: .utf8).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
            guard fields.count == 3, let time = Double(fields[1]), fields[2].contains("accept"),
                  let result = fields[2].range(of: ") = ", options: .backwards) else { return nil }
            return fields[2][result.upperBound...].first?.isNumber == true ? time : nil
        }
    }
}

/// Fixtures/faulty_relay.py running in the background.
final class FaultyRelay: @unchecked Sendable {
    // @unchecked: set once in init, read afterwards.
    let process = Process()
    let port: Int

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", RelayConversationTests.fixtures.appendingPathComponent("faulty_relay.py").path] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        // Not the runner's stderr: a child holding it open would keep the test run from ending
        // should the test process die before it could stop the child.
        process.standardError = FileHandle.nullDevice
        try process.run()
        StartedRelays.add(process.processIdentifier)
        var line = Data()
        while let byte = try pipe.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) { line += byte }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else { throw TestFailure("faulty_relay.py did not start") }
        self.port = port
    }

    /// SIGKILL (`killAndReap`): SIGTERM would be blocked in it.
    func stop() {
        killAndReap(process)
        StartedRelays.remove(process.processIdentifier)
    }
}
