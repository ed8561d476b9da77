import Foundation
import SecmailFormat
import SecmailRelay
import SecmailTestSupport
import Testing

/// Issue 12, mailbox owner controls: a paginated listing the client pages through, and deleting
/// without reading. A real relay process; CLI users.
@Suite struct MailboxControlTests {
    let commands = RelayCommandTests()

    /// A relay process in `folder` with alice and bob registered, and alice's `texts` sent to bob;
    /// returns the relay, bob, and the messages' ids.
    func mailbox(_ label: String, texts: [String]) async throws -> (folder: URL, data: URL, relay: (process: Process, output: OutputCollector, port: Int),
                                                                    bob: CLIUser, ids: [String]) {
        let (folder, data, relay, _, alice, bob) = try await commands.relayWithAliceAndBob(label)
        var ids: [String] = []
        for text in texts {
            let sent = try await alice.run(["send", "bob", "-m", text, "--json"])
            ids.append(try #require((try JSONSerialization.jsonObject(with: Data(sent.stdout.utf8)) as? [String: Any])?["id"] as? String, "\(sent.stderr)"))
        }
        return (folder, data, relay, bob, ids)
    }

    @Test func inboxPagesThroughTenThousandMessagesAndDeleteRemovesWithoutReading() async throws {
        var (_, data, relay, bob, ids) = try await mailbox("mailbox-control", texts: ["one", "two"])

        // Delete without reading: both go, nothing is kept locally.
        let deleted = try await bob.run(["delete"] + ids)
        #expect(deleted.status == 0, "\(deleted.stderr)")
        await #expect(try bob.run(["inbox"]).stderr.contains("No messages."))
        #expect(!FileManager.default.fileExists(atPath: bob.home.appendingPathComponent("received/\(ids[0]).sm").path))
        let again = try await bob.run(["delete", ids[0]])
        #expect(again.status == 1 && again.stderr.contains(ids[0]), "\(again.stderr)")
        let malformed = try await bob.run(["delete", "not-an-id"])
        #expect(malformed.status == 1 && malformed.stderr.contains("not-an-id is not a message id: give its 32 hex digits"), "\(malformed.stderr)")

        // 10,000 listed messages (rows written straight into the relay's database: listing reads
        // only them), paged through by `inbox`.
        #expect(await commands.stop(relay.process) == 0)
        let database = try RelayDatabase(path: data.appendingPathComponent("relay.sqlite").path)
        try await database.write { db in
            for index in 0..<10_000 {
                let envelopeID = String(format: "%032x", index)
                let messageID = Data((0..<16).map { UInt8(truncatingIfNeeded: index >> (8 * ($0 % 4))) ^ UInt8($0) })
                try db.execute("""
                    INSERT INTO envelopes (envelope_id, message_id, sender, size, received_at, inline_data) VALUES (?, ?, 'alice', 3, ?, ?)
                    """, [envelopeID, messageID, 1_800_000_000 + index / 7, Data([1, 2, 3])])
                try db.execute("INSERT INTO deliveries (recipient, message_id, envelope_id) VALUES ('bob', ?, ?)", [messageID, envelopeID])
            }
        }
        relay = try await commands.startRelay(data: data)
        try bob.retarget(port: relay.port)
        let listed = try await bob.run(["inbox", "--json"])
        #expect(listed.status == 0, "\(listed.stderr)")
        let messages = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        #expect(messages.count == 10_000)
        #expect(Set(messages.compactMap { $0["id"] as? String }).count == 10_000)
        let times = messages.compactMap { $0["time"] as? Int }
        #expect(times == times.sorted())
        #expect(await commands.stop(relay.process) == 0)
    }

    /// Junk that reached a mailbox before the relay verified deposits (here: written into its
    /// database, and one genuine message altered there) is deleted without being decrypted;
    /// genuine mail stays.
    /// A relay that lets an identity make 2 requests a second (bursts of 4): alice's eight sends
    /// and bob's `read --all` of them (a fetch and a delete each) go past that, are refused
    /// `429` with a Retry-After, wait and go again: every message is sent and read, exit 0, and
    /// nothing is left on the relay. (Before, `read --all` of 600 messages at the relay's
    /// default rate failed 382 of them.)
    @Test func sendAndReadAllKeepToTheRelaysRequestRate() async throws {
        let (_, _, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("request-rate", options: ["--rate-per-identity", "2"])
        for index in 0..<8 {
            let sent = try await alice.run(["send", "bob", "-m", "message \(index)"])
            #expect(sent.status == 0, "\(index): \(sent.stderr)")
        }
        let read = try await bob.run(["read", "--all"])
        #expect(read.status == 0, "\(read.stderr)")
        for index in 0..<8 { #expect(read.stdout.contains("message \(index)\n") || read.stderr.contains("message \(index)\n"), "\(index): \(read.stdout)") }
        await #expect(try bob.run(["inbox"]).stderr.contains("No messages."))
        let refusals = relay.output.text.split(separator: "\n").filter { $0.contains("status=429") }
        #expect(refusals.count >= 2, "the relay's rate was never reached: \(relay.output.text)")
        #expect(await commands.stop(relay.process) == 0)
    }

    @Test func purgeUnverifiableDeletesJunkAndKeepsGenuineMail() async throws {
        var (folder, data, relay, bob, ids) = try await mailbox("mailbox-purge", texts: ["keep me", "alter me"])
        #expect(await commands.stop(relay.process) == 0)
        let database = try RelayDatabase(path: data.appendingPathComponent("relay.sqlite").path)
        try await database.write { [ids] db in
            let altered = try #require(try db.fetchOne(String.self, """
                SELECT envelope_id FROM deliveries WHERE recipient = 'bob' AND hex(message_id) = upper(?)
                """, [ids[1]]))
            var bytes = try #require(try db.fetchOne(Data.self, "SELECT inline_data FROM envelopes WHERE envelope_id = ?", [altered]))
            bytes[bytes.count - 400] ^= 1
            try db.execute("UPDATE envelopes SET inline_data = ? WHERE envelope_id = ?", [bytes, altered])
            try db.execute("""
                INSERT INTO envelopes (envelope_id, message_id, sender, size, received_at, inline_data)
                VALUES ('0123456789abcdef0123456789abcdef', X'00112233445566778899AABBCCDDEEFF', 'alice', 5, 1, X'6A756E6B21')
                """)
            try db.execute("INSERT INTO deliveries (recipient, message_id, envelope_id) VALUES ('bob', X'00112233445566778899AABBCCDDEEFF', '0123456789abcdef0123456789abcdef')")
            try db.execute("UPDATE mailbox_usage SET bytes = bytes + 5 WHERE recipient = 'bob'")
            try db.execute("UPDATE sender_usage SET bytes = bytes + 5 WHERE recipient = 'bob' AND sender = 'alice'")
        }
        relay = try await commands.startRelay(data: data)
        try bob.retarget(port: relay.port)
        // Neither a message that fails to verify nor the purge pins the sender it names.
        let pinned = bob.home.appendingPathComponent("contacts/alice.id")
        let altered = try await bob.run(["read", ids[1]], in: folder)
        #expect(altered.status == 2, "\(altered.stderr)")
        #expect(!FileManager.default.fileExists(atPath: pinned.path))
        let purged = try await bob.run(["inbox", "--purge-unverifiable", "--json"])
        #expect(purged.status == 0, "\(purged.stderr)")
        #expect(purged.stderr.contains("Deleted 2 unverifiable messages; 1 verified."), "\(purged.stderr)")
        let left = try #require(try JSONSerialization.jsonObject(with: Data(purged.stdout.utf8)) as? [[String: Any]])
        #expect(left.compactMap { $0["id"] as? String } == [ids[0]])
        #expect(!FileManager.default.fileExists(atPath: pinned.path))
        let read = try await bob.run(["read", ids[0]], in: folder)
        #expect(read.status == 0 && read.stdout.contains("keep me"), "\(read.stderr) \(read.stdout)")
        #expect(read.stderr.contains("Pinned alice's key on first use") && FileManager.default.fileExists(atPath: pinned.path), "\(read.stderr)")
        #expect(await commands.stop(relay.process) == 0)
    }
}
