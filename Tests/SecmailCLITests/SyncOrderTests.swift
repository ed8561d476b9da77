import Foundation
import SecmailCrypto
import SecmailFormat
import SecmailRelay
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// The relay process under strace: an acknowledgement (the answer's first byte on the socket)
/// comes only after everything it acknowledges is on disk, and each write path pays the syncs
/// docs/DURABILITY.md promises, in that order.
@Suite(.serialized) struct SyncOrderTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures", isDirectory: true)

    @Test func registrationAndDepositAreSyncedBeforeTheyAreAcknowledged() async throws {
        let folder = try temporaryDirectory("sync-order")
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        let trace = folder.appendingPathComponent("relay.strace")
        let relay = try await TracedRelay.start(data: data, trace: trace,
                                                syscalls: "fsync,fdatasync,rename,renameat,renameat2,write,writev,sendmsg,sendto")
        let caFile = data.appendingPathComponent("tls/dev-ca.pem")
        let curl = RelayCurl(port: relay.port, caFile: caFile)

        // One registration, sent on a quiet connection so the trace can tell its work apart.
        let bundle = try ThrowawayIdentities.bundle("alice")
        let registrationBody = folder.appendingPathComponent("register.json")
        try JSONSerialization.data(withJSONObject: ["bundle": Data(bundle.encoded).base64EncodedString()]).write(to: registrationBody)
        let registration = try await pausedRequest(port: relay.port, caFile: caFile, method: "POST", path: "/v1/directory/register",
                                                   body: registrationBody, headers: ["Content-Type: application/json"])
        #expect(registration.status == 201, "\(registration.body)")

        // Two deposits from alice to bob: a small one (kept in the database) and one over the
        // inline limit (kept as a file).
        _ = try await curl.registerAndAuthenticate("bob")
        let alice = try await curl.authenticate("alice")
        var deposits: [(sentAt: Double, status: Int, body: String)] = []
        for extra in [0, MailboxStore.inlineLimit + 1024] {
            let envelope = try RelayCurl.envelope(from: "alice", to: ["bob"], extra: extra)
            let envelopeFile = folder.appendingPathComponent("message-\(extra).sm")
            try Data(envelope.bytes).write(to: envelopeFile)
            let deposit = try await pausedRequest(port: relay.port, caFile: caFile, method: "POST", path: "/v1/messages?to=bob",
                                                  body: envelopeFile, headers: ["Authorization: Bearer \(alice)",
                                                                                "Content-Type: application/octet-stream"])
            #expect(deposit.status == 201, "\(deposit.body)")
            deposits.append(deposit)
        }
        #expect(await relay.stop() == 0)

        let events = try SyscallTrace(contentsOf: trace).events
        let wal = data.appendingPathComponent("relay.sqlite-wal").path
        let envelopes = data.appendingPathComponent("envelopes").path

        // Registration: the log leaf and identity row commit, the WAL is synced, then the 201.
        let registered = try #require(SyscallTrace.untilAcknowledged(events, after: registration.sentAt), "no answer in the trace")
        #expect(registered.map(\.description) == ["sync \(wal)"])

        // Small deposit: its bytes and rows commit together: one WAL sync, then the 201.
        let small = try #require(SyscallTrace.untilAcknowledged(events, after: deposits[0].sentAt), "no answer in the trace")
        #expect(small.map(\.description) == ["sync \(wal)"])

        // Large deposit: envelope file synced, renamed into place, its directory synced, the
        // rows' commit synced, and only then the 201.
        let deposited = try #require(SyscallTrace.untilAcknowledged(events, after: deposits[1].sentAt), "no answer in the trace")
        let syncs = deposited.filter(\.isSync)
        #expect(syncs.count == 3, "\(deposited.map(\.description))")
        let expected = ["sync \(envelopes)/.incoming-", "rename \(envelopes)/.incoming-", "sync \(envelopes)", "sync \(wal)"]
        #expect(deposited.count == expected.count, "\(deposited.map(\.description))")
        for (event, prefix) in zip(deposited, expected) {
            #expect(event.description.hasPrefix(prefix), "\(deposited.map(\.description))")
        }
        if deposited.count == expected.count {
            #expect(deposited[2].description == "sync \(envelopes)")
            #expect(deposited[1].target?.hasPrefix(envelopes + "/") == true && deposited[1].target?.contains(".incoming-") == false)
        }
    }

    /// Runs Fixtures/paused_request.py: the TLS handshake, half a second of quiet, then the request.
    func pausedRequest(port: Int, caFile: URL, method: String, path: String, body: URL,
                       headers: [String]) async throws -> (sentAt: Double, status: Int, body: String) {
        let result = try await run("python3", [Self.fixtures.appendingPathComponent("paused_request.py").path,
                                               String(port), caFile.path, method, path, body.path] + headers)
        let lines = result.text.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false)
        guard result.status == 0, lines.count >= 2, let sentAt = Double(lines[0]), let status = Int(lines[1]) else {
            throw TestFailure("paused_request.py: \(result.text) \(result.stderr)")
        }
        return (sentAt, status, lines.count > 2 ? String(lines[2]) : "")
    }

    /// A client that accepts a newer checkpoint writes relay.json durably: the new file synced,
    /// renamed over the old one, the home directory synced, in that order.
    @Test func theClientSavesANewCheckpointDurably() async throws {
        let (folder, _, relay, _, alice, _) = try await RelayCommandTests().relayWithAliceAndBob("client-sync-order")

        // Bob registered after alice: her lookup sees a log that grew since her checkpoint.
        let trace = folder.appendingPathComponent("lookup.strace")
        let traced = try await run("strace", ["-f", "-qq", "-ttt", "-yy", "-o", trace.path, "-e", "trace=fsync,fdatasync,rename,renameat,renameat2",
                                              "-E", "SECMAIL_HOME=\(alice.home.path)", "--", SecmailBinary.url.path, "lookup", "bob"])
        #expect(traced.status == 0, "\(traced.stderr)")
        #expect(await RelayCommandTests().stop(relay.process) == 0)

        let settings = alice.home.appendingPathComponent("relay.json").path
        let events = try SyscallTrace(contentsOf: trace).events.map(\.description)
        let renamed = try #require(events.firstIndex { $0.hasPrefix("rename ") && $0.hasSuffix(" -> \(settings)") }, "\(events)")
        let staged = String(events[renamed].dropFirst("rename ".count).prefix { $0 != " " })
        #expect(events[..<renamed].contains("sync \(staged)"), "\(events)")
        #expect(events[(renamed + 1)...].contains("sync \(alice.home.path)"), "\(events)")
    }

    /// `read` keeps the envelope before the relay's copy goes (P9): the download is synced, renamed
    /// into received/, that directory synced, and only then does a request leave (the DELETE).
    @Test func theReaderKeepsItsCopyDurablyBeforeTheRelayDeletesIt() async throws {
        let (folder, _, relay, _, alice, bob) = try await RelayCommandTests().relayWithAliceAndBob("read-sync-order")
        let sent = try await alice.run(["send", "bob", "-m", "kept before deleted"])
        #expect(sent.status == 0, "\(sent.stderr)")
        let id = sent.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let trace = folder.appendingPathComponent("read.strace")
        let traced = try await run("strace", ["-f", "-qq", "-ttt", "-yy", "-o", trace.path,
                                              "-e", "trace=fsync,fdatasync,rename,renameat,renameat2,write,writev,sendmsg,sendto",
                                              "-E", "SECMAIL_HOME=\(bob.home.path)", "-E", "SECMAIL_PASSPHRASE=\(bob.passphrase)",
                                              "--", SecmailBinary.url.path, "read", id])
        #expect(traced.status == 0, "\(traced.stderr)")
        #expect(await RelayCommandTests().stop(relay.process) == 0)

        let received = bob.home.appendingPathComponent("received")
        let events = try SyscallTrace(contentsOf: trace).events
        let kept = try #require(events.firstIndex { $0.kind == .rename && $0.target == received.appendingPathComponent("\(id).sm").path },
                                "\(events.map(\.description))")
        #expect(events[..<kept].contains { $0.kind == .sync && $0.path == events[kept].path }, "\(events.map(\.description))")
        let directorySynced = try #require(events[kept...].firstIndex { $0.kind == .sync && $0.path == received.path },
                                           "\(events.map(\.description))")
        #expect(!events[kept..<directorySynced].contains { $0.kind == .answer }, "\(events.map(\.description))")
        #expect(events[directorySynced...].contains { $0.kind == .answer }, "no request after the copy was kept: \(events.map(\.description))")
    }

    /// `export -o` over an earlier export replaces it durably: the new file is synced, renamed
    /// over the old one (0644 less the umask: it is public), and the folder synced; nothing
    /// temporary is left.
    @Test func exportReplacesAnEarlierExportDurably() async throws {
        let folder = try temporaryDirectory("export-sync-order")
        let output = folder.appendingPathComponent("alice.id")
        let alice = Users.alice
        #expect(try await alice.run(["export", "-o", output.path]).status == 0)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: output.path)

        let trace = folder.appendingPathComponent("export.strace")
        let traced = try await run("strace", ["-f", "-qq", "-ttt", "-yy", "-o", trace.path, "-e", "trace=fsync,fdatasync,rename,renameat,renameat2",
                                              "-E", "SECMAIL_HOME=\(alice.home.path)", "--", "/bin/sh", "-c",
                                              "umask 022; exec \"$0\" export -o \"$1\"", SecmailBinary.url.path, output.path])
        #expect(traced.status == 0, "\(traced.stderr)")

        // A sync names its file as the kernel resolves it, a rename as the program gave it.
        let folderPath = folder.resolvingSymlinksInPath().path
        let events = try SyscallTrace(contentsOf: trace).events
        let renamed = try #require(events.firstIndex { $0.kind == .rename && $0.target == output.path }, "\(events.map(\.description))")
        let staged = folderPath + "/" + URL(fileURLWithPath: events[renamed].path).lastPathComponent
        #expect(events[..<renamed].contains { $0.kind == .sync && $0.path == staged }, "\(events.map(\.description))")
        #expect(events[renamed...].contains { $0.kind == .sync && $0.path == folderPath }, "\(events.map(\.description))")

        let status = try FileStatus(path: output.path)
        #expect(status.permissions == 0o644)
        let printed = try await alice.run(["export"]).stdout
        #expect(try String(contentsOf: output, encoding: .utf8) == printed)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    /// `seal` starts syncing the payload before it signs (which may wait for the key agent), so
    /// that its fsync waits for little more than the signature: a data sync of the staged file
    /// starts once the payload (all but the last KiB, the signature's trailer) is written, and
    /// ends before the staged file's fsync, which comes before the rename to the output, after
    /// which the output's folder is synced.
    @Test func sealSyncsThePayloadBeforeItsSignatureAndFinalSync() async throws {
        let folder = try temporaryDirectory("seal-early-sync")
        let attachment = folder.appendingPathComponent("data.bin")
        try Data(SystemRandom().bytes(count: 600_000)).write(to: attachment)
        let output = folder.appendingPathComponent("sealed.smsg")
        let trace = folder.appendingPathComponent("seal.strace")
        let alice = Users.alice
        let traced = try await run("strace", ["-f", "-qq", "-yy", "-o", trace.path, "-e", "trace=write,fdatasync,fsync,rename,renameat,renameat2",
                                              "-E", "SECMAIL_HOME=\(alice.home.path)", "-E", "SECMAIL_PASSPHRASE=\(alice.passphrase)",
                                              "--", SecmailBinary.url.path, "seal", "--to", Users.bundle("bob").path,
                                              "-m", "synced early", "--attach", attachment.path, "-o", output.path])
        #expect(traced.status == 0, "\(traced.stderr)")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: output.path)[.size] as? Int)

        let lines = try String(contentsOf: trace, encoding: .utf8).split(separator: "\n").map(String.init)
        let renamed = try #require(lines.firstIndex { $0.contains("rename") && $0.contains(output.path) && $0.hasSuffix("= 0") }, "\(lines)")
        let staged = try #require(lines[renamed].firstMatch(of: /rename[a-z0-9]*\((?:AT_FDCWD(?:<[^>]*>)?, )?"([^"]+)"/)?.1, "\(lines[renamed])")
        let synced = try #require(lines.firstIndex { $0.contains("fsync(") && $0.contains("<\(staged)>") }, "\(lines)")
        // The bytes asked to be written to the staged file before each line (a write's count is
        // on the line where it starts, finished or not).
        var writtenBefore: [Int] = []
        var written = 0
        for line in lines {
            writtenBefore.append(written)
            if line.contains("write(") && line.contains("<\(staged)>"),
               let count = line.firstMatch(of: /.*, (\d+)(?:\)| <unfinished)/)?.1 {
                written += Int(count) ?? 0
            }
        }
        #expect(written == size, "\(written) bytes written to the staged file, \(size) in the output: \(lines)")
        // The data sync that covers the payload: started after the payload's last write, finished
        // (on its line or where the same process resumes it) before the fsync.
        let payloadSync = try #require(lines.indices.first { index in
            lines[index].contains("fdatasync(") && lines[index].contains("<\(staged)>") && writtenBefore[index] >= size - 1024
        }, "no data sync after the payload was written: \(lines)")
        let process = { (line: String) in line.split(separator: " ", maxSplits: 1).first }
        let finished = lines[payloadSync].hasSuffix("= 0") ? payloadSync
            : lines.indices.first { index in
                index > payloadSync && process(lines[index]) == process(lines[payloadSync]) && lines[index].contains("<... fdatasync resumed>")
            }
        #expect(finished.map { $0 < synced } == true, "\(lines)")
        #expect(synced < renamed, "\(lines)")
        // Then the folder, so that the output's name survives a crash as well as its bytes.
        let folderPath = folder.resolvingSymlinksInPath().path
        #expect(lines.indices.contains { $0 > renamed && lines[$0].contains("fsync(") && lines[$0].contains("<\(folderPath)>") }, "\(lines)")
    }
}

/// `secmail relay` running under `strace -f -ttt -yy`, tracing `syscalls` (e.g. those that make
/// data durable and those that answer clients) into `trace`.
struct TracedRelay {
    let strace: Process
    let port: Int

    static func start(data: URL, trace: URL, syscalls: String, options: [String] = []) async throws -> TracedRelay {
        guard await (try? run("strace", ["-V"]))?.status == 0 else {
            throw TestFailure("strace is needed to trace the relay's syncs (Debian package strace; .ci/run installs it)")
        }
        let launcher = ["strace", "-f", "--seccomp-bpf", "-qq", "-ttt", "-yy", "-o", trace.path, "-e", "trace=\(syscalls)", "--"]
        let started = try await RelayCommandTests().startRelay(data: data, launcher: launcher, options: options)
        return TracedRelay(strace: started.process, port: started.port)
    }

    /// SIGTERM to the relay (strace's child); strace exits with it once the trace is written. If
    /// it has not within 20 s, both are killed (status 9, a failure for the caller).
    func stop() async -> Int32 {
        let pid = strace.processIdentifier
        let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        let relays = children.split(separator: " ").compactMap { Int32($0) }
        for relay in relays { kill(relay, SIGTERM) }
        if await !exits(strace, within: 20) { for relay in relays { kill(relay, SIGKILL) } }
        killAndReap(strace)
        return strace.terminationStatus
    }
}

/// An strace -f -ttt -yy log reduced to durability events and socket answers, in the order the
/// calls completed (a sync) or began (an answer), as strace saw them.
struct SyscallTrace {
    struct Event: CustomStringConvertible {
        enum Kind { case sync, rename, answer }
        let kind: Kind
        let time: Double
        /// The synced file, the renamed file's old path, or the socket.
        let path: String
        /// A rename's new path.
        let target: String?

        var isSync: Bool { kind == .sync }
        var description: String {
            switch kind {
            case .sync: "sync \(path)"
            case .rename: "rename \(path) -> \(target ?? "")"
            case .answer: "answer \(path)"
            }
        }
    }

    let events: [Event]

    init(contentsOf url: URL) throws {
        var pending: [Substring: (time: Double, call: Substring)] = [:]
        var events: [Event] = []
        for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
            guard fields.count == 3, let time = Double(fields[1]) else { continue }
            let (thread, rest) = (fields[0], fields[2])
            if rest.hasSuffix("<unfinished ...>") {
                pending[thread] = (time, rest)
                // A write to a socket has begun: that is when the answer starts leaving.
                if let answer = Self.answer(rest, time: time) { events.append(answer) }
                continue
            }
            if rest.hasPrefix("<... ") {
                if let begun = pending.removeValue(forKey: thread), Self.succeeded(rest), let event = Self.durability(begun.call, time: time) {
                    events.append(event)
                }
                continue
            }
            if let answer = Self.answer(rest, time: time) {
                events.append(answer)
            } else if Self.succeeded(rest), let event = Self.durability(rest, time: time) {
                events.append(event)
            }
        }
        self.events = events
    }

    /// The durability events after `start` up to the first answer on a socket; nil if no answer.
    static func untilAcknowledged(_ events: [Event], after start: Double) -> [Event]? {
        var window: [Event] = []
        for event in events where event.time >= start {
            if event.kind == .answer { return window }
            window.append(event)
        }
        return nil
    }

    private static func succeeded(_ call: Substring) -> Bool {
        call.range(of: ") = 0", options: .backwards) != nil
    }

    private static func answer(_ call: Substring, time: Double) -> Event? {
        guard call.hasPrefix("write(") || call.hasPrefix("writev(") || call.hasPrefix("sendmsg(") || call.hasPrefix("sendto("),
              let path = firstDescriptorPath(call), path.hasPrefix("TCP") else { return nil }
        return Event(kind: .answer, time: time, path: path, target: nil)
    }

    private static func durability(_ call: Substring, time: Double) -> Event? {
        if call.hasPrefix("fsync(") || call.hasPrefix("fdatasync(") {
            return firstDescriptorPath(call).map { Event(kind: .sync, time: time, path: $0, target: nil) }
        }
        if call.hasPrefix("rename(") || call.hasPrefix("renameat(") || call.hasPrefix("renameat2(") {
            let quoted = call.split(separator: "\"", omittingEmptySubsequences: false)
            guard quoted.count >= 5 else { return nil }
            return Event(kind: .rename, time: time, path: String(quoted[1]), target: String(quoted[3]))
        }
        return nil
    }

    /// `fsync(7</a/b>)` → `/a/b`; `write(21<TCP:[…]>, …` → `TCP:[…]`.
    private static func firstDescriptorPath(_ call: Substring) -> String? {
        guard let open = call.firstIndex(of: "<"), let close = call[open...].firstIndex(of: ">") else { return nil }
        return String(call[call.index(after: open)..<close])
    }
}
