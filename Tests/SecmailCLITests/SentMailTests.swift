import Foundation
import SecmailFormat
import SecmailTestSupport
import Testing

/// Mail one sent can be read again (`read ID`, `open sent/ID.sm`) and found (`kept`), while the
/// envelope on the relay stays sealed to its recipients alone.
@Suite struct SentMailTests {
    let commands = RelayCommandTests()

    func json(_ result: CLIResult) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
    }

    @Test func theSenderReadsWhatSheSentWithoutTheRelayAndAfterARotation() async throws {
        let (folder, _, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("sent-copies")
        defer { relay.process.terminate() }
        let notes = folder.appendingPathComponent("notes.txt")
        let attached = Data("minutes of the meeting\n".utf8)
        try attached.write(to: notes)
        let sent = try await alice.run(["send", "bob", "-m", "for bob, and for me to read again", "--attach", notes.path])
        #expect(sent.status == 0, "\(sent.stderr)")
        let id = sent.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let sentCopy = alice.home.appendingPathComponent("sent/\(id).sm")

        // The envelope names bob's key alone: the sender's copy opens with the key kept beside it.
        let header = try EnvelopeOpener.readHeader(FileEnvelopeSource(url: sentCopy))
        let bobKey = try #require((try json(await bob.run(["whoami", "--json"])) as? [String: Any])?["fingerprint"] as? String)
        #expect(header.recipients.map(\.fingerprint.hex) == [bobKey])
        #expect(FileManager.default.fileExists(atPath: alice.home.appendingPathComponent("sent/\(id).key").path))
        await #expect(try bob.run(["read", id]).status == 0)

        let listed = try #require(try json(await alice.run(["kept", "--json"])) as? [[String: Any]])
        #expect(listed.count == 1 && listed[0]["id"] as? String == id && listed[0]["sent"] as? Bool == true
                && listed[0]["to"] as? [String] == ["bob"] && listed[0]["opens"] as? Bool == true, "\(listed)")
        let bobsList = try #require(try json(await bob.run(["kept", "--read", "--json"])) as? [[String: Any]])
        #expect(bobsList.count == 1 && bobsList[0]["from"] as? String == "alice" && bobsList[0]["sent"] as? Bool == false
                && bobsList[0]["to"] as? [String] == ["bob"] && bobsList[0]["unnamedRecipients"] as? Int == 0, "\(bobsList)")
        await #expect(try bob.run(["kept", "--sent", "--json"]).stdout == "[]\n")
        // Only the mail exchanged with one contact: any case of the name, none with another.
        let withBob = try #require(try json(await alice.run(["kept", "Bob", "--json"])) as? [[String: Any]])
        #expect(withBob.map { $0["id"] as? String } == [id], "\(withBob)")
        let withAlice = try #require(try json(await bob.run(["kept", "alice", "--json"])) as? [[String: Any]])
        #expect(withAlice.map { $0["id"] as? String } == [id], "\(withAlice)")
        await #expect(try alice.run(["kept", "carol", "--json"]).stdout == "[]\n")
        // A typo of a contact's name is pointed to the name.
        await #expect(try alice.run(["kept", "bo"]).stderr == "No mail kept with bo; did you mean bob?\n")
        await #expect(try alice.run(["kept", "carol", "--sent"]).stderr == "No messages sent to carol.\n")

        // After a rotation, the copy opens with the key version it was kept for.
        await #expect(try alice.run(["rotate"]).status == 0)
        let again = try await alice.run(["read", id, "--json"])
        let shown = try #require(try json(again) as? [String: Any])
        #expect(again.status == 0 && shown["text"] as? String == "for bob, and for me to read again" && shown["to"] as? [String] == ["bob"],
                "\(again.stderr)")
        let files = try #require(shown["files"] as? [String])
        #expect(files.count == 1 && (try? Data(contentsOf: URL(fileURLWithPath: files[0]))) == attached)

        // Without the relay: `read` of its whole id, and `open` of the kept copy.
        #expect(await commands.stop(relay.process) == 0)
        let offline = try await alice.run(["read", id])
        #expect(offline.status == 0 && offline.stdout.contains("for bob, and for me to read again")
                && offline.stderr.contains("sent by you to bob"), "\(offline.stderr)")
        let opened = try await alice.run(["open", sentCopy.path, "--out", folder.appendingPathComponent("opened").path])
        #expect(opened.status == 0 && opened.stdout.contains("for bob, and for me to read again"), "\(opened.stderr)")

        // A damaged key is said to be one; nothing is decrypted with it.
        let keyFile = alice.home.appendingPathComponent("sent/\(id).key")
        var key = try Data(contentsOf: keyFile)
        key[60] ^= 1
        try key.write(to: keyFile)
        let damaged = try await alice.run(["read", id, "--out", folder.appendingPathComponent("damaged").path])
        #expect(damaged.status == 2 && !damaged.stdout.contains("for bob"), "\(damaged.stderr)")
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("damaged").path))
        try Data(key.prefix(30)).write(to: keyFile)
        let truncated = try await alice.run(["read", id])
        #expect(truncated.status == 2 && truncated.stderr.contains("is damaged"), "\(truncated.stderr)")

        // A copy kept without a key (sent by an older secmail) is listed as one that does not open,
        // its recipients named by the pins, else counted.
        try FileManager.default.removeItem(at: keyFile)
        let withoutKey = try #require(try json(await alice.run(["kept", "--json"])) as? [[String: Any]])
        #expect(withoutKey.count == 1 && withoutKey[0]["opens"] as? Bool == false && withoutKey[0]["to"] as? [String] == ["bob"]
                && withoutKey[0]["unnamedRecipients"] as? Int == 0, "\(withoutKey)")
        await #expect(try alice.run(["kept"]).stdout.contains("\(id)  to bob  "))
        let bobsPin = alice.home.appendingPathComponent("contacts/bob.id")
        let pin = try Data(contentsOf: bobsPin)
        try FileManager.default.removeItem(at: bobsPin)
        let unpinned = try #require(try json(await alice.run(["kept", "--json"])) as? [[String: Any]])
        #expect(unpinned[0]["to"] as? [String] == [] && unpinned[0]["unnamedRecipients"] as? Int == 1, "\(unpinned)")
        let human = try await alice.run(["kept"])
        #expect(human.stdout.contains("\(id)  to 1 recipient key  ") && human.stdout.contains("(cannot be opened)"), "\(human.stdout)")
        try pin.write(to: bobsPin)
        try Data(key).write(to: keyFile)

        // prune takes the key with the copy.
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-2 * 86_400)], ofItemAtPath: sentCopy.path)
        await #expect(try alice.run(["prune", "--older-than", "1d"]).status == 0)
        #expect(contents(of: alice.home.appendingPathComponent("sent")).isEmpty)
    }
}
