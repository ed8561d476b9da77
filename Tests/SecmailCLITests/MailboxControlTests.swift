import Foundation
import GRDB
import SecmailFormat
import SecmailRelay
import SecmailTestSupport
import Testing

/// Issue 12, mailbox owner controls: a paginated listing the client pages through, and deleting
/// without reading. A real relay process; CLI users.
@Suite struct MailboxControlTests {
    let commands = RelayCommandTests()

    @Test func inboxPagesThroughTenThousandMessagesAndDeleteRemovesWithoutReading() async throws {
        let folder = try temporaryDirectory("mailbox-control")
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        var relay = try await commands.startRelay(data: data)
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        let alice = CLIUser.fresh("alice", in: folder), bob = CLIUser.fresh("bob", in: folder)
        try alice.register(port: relay.port, ca: ca)
        try bob.register(port: relay.port, ca: ca)
        let first = try alice.run(["send", "bob", "-m", "one", "--json"]), second = try alice.run(["send", "bob", "-m", "two", "--json"])
        func id(_ result: CLIResult) throws -> String {
            try #require((try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])?["id"] as? String, "\(result.stderr)")
        }
        let ids = [try id(first), try id(second)]

        // Delete without reading: both go, nothing is kept locally.
        let deleted = try bob.run(["delete"] + ids)
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(try bob.run(["inbox"]).stderr.contains("No messages."))
        #expect(!FileManager.default.fileExists(atPath: bob.home.appendingPathComponent("received/\(ids[0]).sm").path))
        let again = try bob.run(["delete", ids[0]])
        #expect(again.status == 1 && again.stderr.contains(ids[0]), "\(again.stderr)")
        let malformed = try bob.run(["delete", "not-an-id"])
        #expect(malformed.status == 1 && malformed.stderr.contains("a message id is 32 hex digits"), "\(malformed.stderr)")

        // 10,000 listed messages (rows written straight into the relay's database: listing reads
        // only them), paged through by `inbox`.
        #expect(await commands.stop(relay.process) == 0)
        let database = try RelayDatabase(path: data.appendingPathComponent("relay.sqlite").path)
        try await database.write { db in
            for index in 0..<10_000 {
                let envelopeID = String(format: "%032x", index)
                let messageID = Data((0..<16).map { UInt8(truncatingIfNeeded: index >> (8 * ($0 % 4))) ^ UInt8($0) })
                try db.execute(sql: """
                    INSERT INTO envelopes (envelope_id, message_id, sender, size, sha256, received_at, inline_data) VALUES (?, ?, 'alice', 3, ?, ?, ?)
                    """, arguments: [envelopeID, messageID, Data(repeating: 0, count: 32), 1_800_000_000 + index / 7, Data([1, 2, 3])])
                try db.execute(sql: "INSERT INTO deliveries (recipient, message_id, envelope_id) VALUES ('bob', ?, ?)", arguments: [messageID, envelopeID])
            }
        }
        relay = try await commands.startRelay(data: data)
        try bob.retarget(port: relay.port)
        let listed = try bob.run(["inbox", "--json"])
        #expect(listed.status == 0, "\(listed.stderr)")
        let messages = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        #expect(messages.count == 10_000)
        #expect(Set(messages.compactMap { $0["id"] as? String }).count == 10_000)
        let times = messages.compactMap { $0["time"] as? Int }
        #expect(times == times.sorted())
        #expect(await commands.stop(relay.process) == 0)
    }
}
