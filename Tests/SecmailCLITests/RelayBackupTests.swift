import Foundation
import SecmailCrypto
import SecmailTestSupport
import Testing

/// `secmail relay backup` of a serving relay, and a relay serving the backup.
@Suite struct RelayBackupTests {
    @Test func aBackupTakenWhileServingServesTheSameLogKeysAndMail() async throws {
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
        #expect(await relays.stop(relay.process) == 0)

        // Served from the backup: the same log key and TLS key, and the mail.
        let restored = try await relays.startRelay(data: backup)
        defer { restored.process.terminate() }
        #expect(lines(restored.output.text, "log key:") == logKey && lines(restored.output.text, "TLS key pin:") == pin)
        try bob.retarget(port: restored.port)
        let inbox = try await bob.run(["inbox", "--json"])
        #expect(inbox.status == 0 && inbox.stdout.contains(largeID) && !inbox.stdout.contains(goneID), "\(inbox.stderr)")
        let out = folder.appendingPathComponent("bob-out", isDirectory: true)
        let read = try await bob.run(["read", largeID, "--out", out.path])
        #expect(read.status == 0, "\(read.stderr)")
        #expect(try Data(contentsOf: out.appendingPathComponent("large.bin")) == Data(contentsOf: photo))
        #expect(await relays.stop(restored.process) == 0)
    }
}
