import Foundation
import SecmailCrypto
import SecmailTestSupport
import Testing

/// `secmail relay backup` of a serving relay, and a relay serving the backup under a new log
/// (`secmail relay new-log`), which its users follow with `register --new-log`.
@Suite struct RelayBackupTests {
    /// At a terminal `relay backup` shows how far it has copied the envelope files (from 8 MiB, as
    /// every transfer's progress line).
    @Test func aBackupAtATerminalShowsHowFarItIs() async throws {
        let relays = RelayCommandTests()
        let (folder, data, relay, _, alice, _) = try await relays.relayWithAliceAndBob("relay-backup-progress")
        let big = folder.appendingPathComponent("big.bin")
        try Data(SystemRandom().bytes(count: 9 << 20)).write(to: big)
        await #expect(try alice.run(["send", "bob", "-m", "big", "--attach", big.path]).status == 0)
        let backup = folder.appendingPathComponent("backup", isDirectory: true)
        let terminal = ClientSafetyTests()
        let shown = try await onThreadOfItsOwn { try terminal.pty([], ["relay", "backup", "--data", data.path, "--to", backup.path], home: folder) }
        #expect(shown.status == 0 && shown.output.contains("\rcopying envelope files 100%  9.0 / 9.0 MiB") && shown.output.contains("Backed up"),
                "\(shown.output)")
        #expect(await relays.stop(relay.process) == 0)
    }

    @Test func aRestoredBackupServesItsMailUnderANewLogThatUsersFollow() async throws {
        let relays = RelayCommandTests()
        let (folder, data, relay, _, alice, bob) = try await relays.relayWithAliceAndBob("relay-backup")

        func send(_ arguments: [String]) async throws -> String {
            let result = try await alice.run(["send", "bob", "--json"] + arguments)
            #expect(result.status == 0, "\(result.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            return try #require(json["id"] as? String)
        }
        // A small envelope (stored in the database) and two large ones (stored as files).
        let noise = { (name: String) throws -> URL in
            let url = folder.appendingPathComponent(name)
            try Data(SystemRandom().bytes(count: 150_000)).write(to: url)
            return url
        }
        let photo = try noise("large.bin"), gone = try noise("gone.bin")
        _ = try await send(["-m", "a short note"])
        let largeID = try await send(["-m", "a large one", "--attach", photo.path])
        let goneID = try await send(["-m", "deleted while the backup runs", "--attach", gone.path])
        // The last one's file disappears before the backup copies it, as when its recipient
        // deletes it after the snapshot: the backup must not list a message it cannot hold.
        let envelopes = data.appendingPathComponent("envelopes", isDirectory: true)
        let files = try FileManager.default.contentsOfDirectory(at: envelopes, includingPropertiesForKeys: [.contentModificationDateKey])
        #expect(files.count == 2)
        let newest = try #require(files.max { lhs, rhs in
            let date = { (url: URL) in (try? url.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast }
            return date(lhs) < date(rhs)
        })
        try FileManager.default.removeItem(at: newest)

        let backup = folder.appendingPathComponent("backup", isDirectory: true)
        let made = try await runSecmail(["relay", "backup", "--data", data.path, "--to", backup.path], environment: [:])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.stderr.contains("2 identities") && made.stderr.contains("2 messages (1 envelope file,"), "\(made.stderr)")
        #expect(made.stderr.contains("1 message deleted by its recipient during the backup is not in it"), "\(made.stderr)")
        #expect(permissions(backup) == 0o700 && permissions(backup.appendingPathComponent("log-key.ed25519")) == 0o600)
        let again = try await runSecmail(["relay", "backup", "--data", data.path, "--to", backup.path], environment: [:])
        #expect(again.status == 1 && again.stderr.contains("exists already"), "\(again.stderr)")
        // The backup was made beside its name and renamed when whole: nothing else is left there.
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains("incomplete") }.isEmpty)
        let notARelay = try await runSecmail(["relay", "backup", "--data", folder.path, "--to", folder.appendingPathComponent("nothing").path], environment: [:])
        #expect(notARelay.status == 1 && notARelay.stderr.contains("holds no relay database"), "\(notARelay.stderr)")
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("nothing").path))

        let lines = { (output: String, label: String) in output.split(separator: "\n").first { $0.contains(label) }.map(String.init) ?? "" }
        let logKey = lines(relay.output.text, "log key:"), pin = lines(relay.output.text, "TLS key pin:")
        // After the backup, carol registers and alice sees her: their views pass the backup's log.
        let carol = CLIUser.fresh("carol", in: folder)
        try await carol.register(port: relay.port, ca: data.appendingPathComponent("tls/dev-ca.pem").path)
        #expect(try await alice.run(["lookup", "carol"]).status == 0)
        // Bob audits his name and a home with no identity monitors the log: both have replayed 3 entries.
        #expect(try await bob.run(["audit"]).status == 0)
        let watcher = CLIUser.fresh("watcher", in: folder)
        let monitored = try await watcher.run(["monitor", "--relay", "https://localhost:\(relay.port)", "--ca", data.appendingPathComponent("tls/dev-ca.pem").path])
        #expect(monitored.status == 0 && monitored.stderr.contains("Checked 3 new log entries"), "\(monitored.stderr)")
        // Bob and carol rotate after the backup too, and alice follows: she pins their key versions 2.
        for person in [bob, carol] {
            #expect(try await person.run(["rotate"]).status == 0)
            let rotated = try await alice.run(["lookup", person.name])
            #expect(rotated.status == 0 && rotated.stderr.contains("rotated keys from version 1 to 2"), "\(rotated.stderr)")
        }
        let whileServing = try await runSecmail(["relay", "new-log", "--data", data.path], environment: [:])
        #expect(whileServing.status == 1 && whileServing.stderr.contains("stop it first"), "\(whileServing.stderr)")
        #expect(await relays.stop(relay.process) == 0)

        // A backup is not served as it is: its log would go back for alice and carol.
        let refused = try await runSecmail(["relay", "--data", backup.path, "--listen", "127.0.0.1:0"], environment: [:])
        #expect(refused.status == 1 && refused.stderr.contains("is a backup of \(data.path)") && refused.stderr.contains("secmail relay new-log"),
                "\(refused.stderr)")
        let renewed = try await runSecmail(["relay", "new-log", "--data", backup.path], environment: [:])
        #expect(renewed.status == 0 && renewed.stdout.contains("2 entries") && renewed.stdout.contains("log origin:     localhost/secmail/2"),
                "\(renewed.stdout)\(renewed.stderr)")
        let newKey = try #require(lines(renewed.stdout, "log key:").split(separator: " ").last.map(String.init))
        #expect(!logKey.contains(newKey) && !FileManager.default.fileExists(atPath: backup.appendingPathComponent("backup-of").path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: backup.path).contains { $0.hasPrefix("log-key.ed25519.retired-") })

        // Served from the backup: the same TLS key, the new log key, and the mail.
        let restored = try await relays.startRelay(data: backup)
        defer { restored.process.terminate() }
        #expect(lines(restored.output.text, "log key:").hasSuffix(newKey) && lines(restored.output.text, "TLS key pin:") == pin)
        let url = "https://localhost:\(restored.port)"
        for person in [alice, bob] { try person.retarget(port: restored.port) }
        // Until a user follows the new log, every command says what happened and what to do (the
        // watcher gives the new address itself, as for a relay that moved).
        for (person, command) in [(alice, ["lookup", "bob"]), (bob, ["inbox"]), (bob, ["audit"]), (watcher, ["monitor", "--relay", url])] {
            let stopped = try await person.run(command)
            #expect(stopped.status == 2 && stopped.stderr.contains("now signs its log as localhost/secmail/2") && stopped.stderr.contains("--new-log"),
                    "\(command) \(stopped.stderr)")
            // The command to follow it names the home's own identity, ready to run once the key is in.
            #expect(person.name == "watcher" || stopped.stderr.contains("secmail register \(person.name) --relay \(url) --new-log --log-key KEY"),
                    "\(command) \(stopped.stderr)")
        }
        let sameKey = try await alice.run(["register", "alice", "--relay", url, "--new-log", "--log-key", try #require(logKey.split(separator: " ").last.map(String.init))])
        #expect(sameKey.status == 1 && sameKey.stderr.contains("pinned already"), "\(sameKey.stderr)")
        let withoutKey = try await alice.run(["register", "alice", "--relay", url, "--new-log"])
        #expect(withoutKey.status == 64 && withoutKey.stderr.contains("--new-log needs --log-key"), "\(withoutKey.stderr)")
        for person in [alice, bob] {
            let followed = try await person.run(["register", person.name, "--relay", url, "--new-log", "--log-key", newKey])
            #expect(followed.status == 0 && followed.stderr.contains("now follows the relay's new log") && followed.stderr.contains("evidence/retired-log-"),
                    "\(followed.stderr)")
            #expect(followed.stderr.contains("It held bob's key version 1") == (person.name == "bob")
                    && followed.stderr.contains("logged again up to key version 2") == (person.name == "bob"), "\(followed.stderr)")
        }
        // The new log held bob's key version 1: following it logged his rotation again (before,
        // he was refused, and alice, who pinned version 2, could not take his key any more).
        let found = try await alice.run(["lookup", "bob"])
        #expect(found.status == 0 && found.stderr.contains("Matches the key pinned earlier"), "\(found.stderr)")
        // Carol registered (and rotated) after the backup: the new log does not hold her, and
        // following it registers her again and logs her rotation again.
        let carolFollows = try await carol.run(["register", "carol", "--relay", url, "--new-log", "--log-key", newKey])
        #expect(carolFollows.status == 0 && carolFollows.stderr.contains("registered again and rotations logged again up to key version 2"),
                "\(carolFollows.stderr)")
        // Her own pin is her current key, not the version 1 registered again.
        let ownPin = try await carol.run(["contacts"])
        #expect(ownPin.stdout.contains("carol  key version 2") && !ownPin.stdout.contains("key version 1"), "\(ownPin.stdout)")
        let seen = try await alice.run(["lookup", "carol"])
        #expect(seen.status == 0 && seen.stderr.contains("Matches the key pinned earlier"), "\(seen.stderr)")
        // Audit and monitor replay the new log from its start; their old positions are evidence.
        let audited = try await bob.run(["audit"])
        #expect(audited.status == 0 && audited.stderr.contains("5 new log entries") && audited.stderr.contains("rotation of bob, key version 2"), "\(audited.stderr)")
        let evidence = bob.home.appendingPathComponent("evidence", isDirectory: true)
        let retired = try #require(try FileManager.default.contentsOfDirectory(atPath: evidence.path).first { $0.hasPrefix("retired-log-") })
        #expect(try FileManager.default.contentsOfDirectory(atPath: evidence.appendingPathComponent(retired).path).sorted() == ["audit.state", "checkpoint.txt"])
        let watching = try await watcher.run(["monitor", "--new-log", "--log-key", newKey, "--relay", url])
        #expect(watching.status == 0 && watching.stderr.contains("now follows the relay's new log") && watching.stderr.contains("Checked 5 new log entries"),
                "\(watching.stderr)")
        #expect(try String(contentsOf: watcher.home.appendingPathComponent("relay.json"), encoding: .utf8).contains("localhost:\(restored.port)"))

        let inbox = try await bob.run(["inbox", "--json"])
        #expect(inbox.status == 0 && inbox.stdout.contains(largeID) && !inbox.stdout.contains(goneID), "\(inbox.stderr)")
        let out = folder.appendingPathComponent("bob-out", isDirectory: true)
        let read = try await bob.run(["read", largeID, "--out", out.path])
        #expect(read.status == 0, "\(read.stderr)")
        #expect(try Data(contentsOf: out.appendingPathComponent("large.bin")) == Data(contentsOf: photo))
        #expect(await relays.stop(restored.process) == 0)
    }
}
