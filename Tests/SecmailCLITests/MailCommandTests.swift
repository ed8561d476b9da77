import Foundation
import SecmailClient
import SecmailCrypto
import SecmailFormat
import SecmailRelay
import SecmailImages
import SecmailTestSupport
import Testing

/// `secmail send`, `inbox` and `read` against a real relay process, two users in two homes.
@Suite struct MailCommandTests {
    let commands = RelayCommandTests()

    func inbox(_ person: CLIUser) async throws -> [[String: Any]] {
        let listed = try await person.run(["inbox", "--json"])
        #expect(listed.status == 0, "\(listed.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
    }

    func contacts(_ person: CLIUser) async throws -> [String: [String: Any]] {
        let listed = try await person.run(["contacts", "--json"])
        #expect(listed.status == 0, "\(listed.stderr)")
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: entries.map { ($0["name"] as? String ?? "", $0) })
    }

    /// A message read before opens from its kept copy without the relay: with the relay stopped,
    /// `read ID` shows it again (its whole id; a prefix still needs the mailbox listing, and the
    /// refusal names the whole id of the one message read before that the prefix matches).
    @Test func aMessageReadBeforeOpensWithTheRelayDown() async throws {
        let (_, _, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("read-offline")
        let sent = try await alice.run(["send", "bob", "-m", "worth reading twice"])
        let id = sent.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        await #expect(try bob.run(["read", id]).status == 0)
        #expect(await commands.stop(relay.process) == 0)

        let again = try await bob.run(["read", id])
        #expect(again.status == 0 && again.stdout.contains("worth reading twice") && again.stderr.contains("read before"), "\(again.stderr)")
        let byPrefix = try await bob.run(["read", String(id.prefix(6))])
        #expect(byPrefix.status == 1 && byPrefix.stderr.contains("cannot reach the relay")
                && byPrefix.stderr.contains("is kept here, and `secmail read \(id)` opens its copy without the relay"), "\(byPrefix.stderr)")
        let otherPrefix = id.hasPrefix("0000") ? "ffff" : "0000"
        let unmatched = try await bob.run(["read", otherPrefix])
        #expect(unmatched.status == 1 && unmatched.stderr.contains("cannot reach the relay") && !unmatched.stderr.contains("is kept here"), "\(unmatched.stderr)")
    }

    /// A sender whose clock is far ahead of the relay's (or behind it by more than the envelope
    /// age the relay takes) is told so before the passphrase or any sealing, by the relay's Date
    /// header; a reader whose slow clock makes honest mail look future-dated is told to check it.
    @Test func aWrongClockIsSaidBeforeSendingAndWhenReading() async throws {
        let (_, _, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("wrong-clock")
        defer { relay.process.terminate() }
        let faketime = try #require(["/usr/bin/faketime", "/usr/local/bin/faketime"].first { FileManager.default.isExecutableFile(atPath: $0) },
                                    "faketime is needed (Debian: apt-get install faketime)")
        func run(_ person: CLIUser, shiftedBy shift: String, _ arguments: [String], passphrase: String?) async throws -> ProcessResult {
            try await runProcess(URL(fileURLWithPath: faketime), ["-f", shift, SecmailBinary.url.path] + arguments,
                                 environment: ["SECMAIL_HOME": person.home.path, "SECMAIL_PASSPHRASE": passphrase])
        }
        for (shift, words) in [("+20m", "minutes ahead of the relay"), ("-8d", "days behind the relay")] {
            // No passphrase and no terminal: the clock is what stops it, first.
            let refused = try await run(alice, shiftedBy: shift, ["send", "bob", "-m", "hi"], passphrase: nil)
            #expect(refused.status == 1 && refused.stderr.contains(words) && refused.stderr.contains("nothing was sent"), "\(refused.stderr)")
        }
        await #expect(try bob.run(["inbox", "--json"]).stdout == "[]\n")

        await #expect(try alice.run(["send", "bob", "-m", "on time"]).status == 0)
        let early = try await run(bob, shiftedBy: "-1h", ["read", "--all"], passphrase: bob.passphrase)
        #expect(early.status == 2 && early.stderr.contains("in the future") && early.stderr.contains("behind the relay's, so check it first"), "\(early.stderr)")
    }

    /// A message to several recipients is one deposit: refused for one (a full mailbox), it
    /// reaches none, and `send` says so and what to do; no copy is kept as sent. The owner of the
    /// nearly full mailbox is told by `inbox` (from 80% of the quota), the others are not.
    @Test func aRefusedDepositReachesNoRecipientAndSendSaysSo() async throws {
        let (folder, _, relay, ca, alice, bob) = try await commands.relayWithAliceAndBob("refused-deposit", options: ["--mailbox-quota-mib", "1"])
        defer { relay.process.terminate() }
        let carol = CLIUser.fresh("carol", in: folder)
        try await carol.register(port: relay.port, ca: ca)
        let filler = folder.appendingPathComponent("filler.bin")
        // Incompressible, so that it takes most of bob's 1 MiB.
        try Data(SystemRandom().bytes(count: 900_000)).write(to: filler)
        await #expect(try alice.run(["send", "bob", "-m", "fill", "--attach", filler.path]).status == 0)
        let sentBefore = contents(of: alice.home.appendingPathComponent("sent"))

        let refused = try await alice.run(["send", "bob", "carol", "-m", "to both", "--attach", filler.path])
        #expect(refused.status == 1 && refused.stderr.contains("the mailbox of bob is full")
                    && refused.stderr.contains("nothing was sent: a message reaches all its recipients or none"), "\(refused.stderr)")
        await #expect(try carol.run(["inbox", "--json"]).stdout == "[]\n")
        #expect(contents(of: alice.home.appendingPathComponent("sent")) == sentBefore)

        let full = try await bob.run(["inbox"])
        #expect(full.status == 0 && full.stderr.contains("Your mailbox on the relay is 8") && full.stderr.contains("of 1.0 MiB"), "\(full.stderr)")
        await #expect(try !carol.run(["inbox"]).stderr.contains("Your mailbox"))
    }

    /// At a terminal, `inbox` that had to ask for the passphrase says how to be asked once (inbox
    /// then read is where a person types it twice in a row); with the key agent holding the keys
    /// it asks nothing and says nothing of it.
    @Test func inboxAtATerminalSuggestsUnlockOnlyWhenItAsked() async throws {
        let (_, _, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("inbox-unlock-tip")
        defer { relay.process.terminate() }
        await #expect(try alice.run(["send", "bob", "-m", "hi"]).status == 0)
        let terminal = ClientSafetyTests()
        let asked = try await onThreadOfItsOwn { try terminal.pty([["Passphrase for bob", bob.passphrase + "\n"]], ["inbox"], home: bob.home) }
        #expect(asked.status == 0 && asked.output.contains("Read one with") && asked.output.contains("Run `secmail unlock` first"), "\(asked.output)")

        await #expect(try bob.run(["unlock"]).status == 0)
        defer { _ = try? bob.run(["lock"]) }
        let served = try await onThreadOfItsOwn { try terminal.pty([], ["inbox"], home: bob.home) }
        #expect(served.status == 0 && served.output.contains("Read one with"), "\(served.output)")
        #expect(!served.output.contains("Passphrase for") && !served.output.contains("secmail unlock"), "\(served.output)")
    }

    @Test func readSaysWhenItPinsOrFollowsARotationContactsShowTrustAndPruneKeepsTombstones() async throws {
        let (_, _, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("pins-prune")
        defer { relay.process.terminate() }

        // Refused for one name, a send pins no other one unseen (nor after a wrong passphrase:
        // then it says so).
        let refused = try await alice.run(["send", "bob", "carol", "-m", "zero"])
        #expect(refused.status == 1 && refused.stderr.contains("no one is registered as carol"), "\(refused.stderr)")
        await #expect(try contacts(alice)["bob"] == nil)
        let wrongPassphrase = try await runSecmail(["send", "bob", "-m", "zero"], environment: ["SECMAIL_HOME": alice.home.path, "SECMAIL_PASSPHRASE": "not it at all"])
        #expect(wrongPassphrase.status == 4 && wrongPassphrase.stderr.contains("Pinned bob's key on first use"), "\(wrongPassphrase.stderr)")
        try FileManager.default.removeItem(at: alice.home.appendingPathComponent("contacts/bob.id"))

        let first = try await alice.run(["send", "bob", "-m", "one"])
        #expect(first.status == 0 && first.stderr.contains("Pinned bob's key on first use"), "\(first.stderr)")
        let firstID = first.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // Mail from someone not yet pinned stands out in the inbox.
        await #expect(try inbox(bob).map { $0["contact"] as? Bool } == [false])
        let unknownSender = try await bob.run(["inbox"]).stdout
        #expect(unknownSender.contains("  alice  ") && unknownSender.hasSuffix("  (not among your contacts)\n"), "\(unknownSender)")
        let readFirst = try await bob.run(["read", firstID])
        #expect(readFirst.status == 0 && readFirst.stderr.contains("Pinned alice's key on first use"), "\(readFirst.stderr)")
        await #expect(try contacts(bob)["alice"]?["trust"] as? String == "firstUse")
        await #expect(try contacts(bob)["bob"]?["trust"] as? String == "own")
        let aliceKey = try await #require((try JSONSerialization.jsonObject(with: Data(alice.run(["whoami", "--json"]).stdout.utf8)) as? [String: Any])?["fingerprint"] as? String)
        await #expect(try bob.run(["trust", "alice", "--fingerprint", aliceKey]).status == 0)
        await #expect(try contacts(bob)["alice"]?["trust"] as? String == "compared")
        // Names padded to the longest: the columns line up.
        let listed = try await bob.run(["contacts"]).stdout
        #expect(listed.contains("alice  key version 1") && listed.contains("bob    key version 1"), "\(listed)")
        #expect(listed.contains("your own key") && listed.split(separator: "\n").first { $0.hasPrefix("bob ") }?.hasSuffix("your own key") == true, "\(listed)")

        await #expect(try alice.run(["rotate"]).status == 0)
        // One's own rotated key is listed as one's own, not as a pin that followed a rotation.
        await #expect(try contacts(alice)["alice"]?["trust"] as? String == "own")
        await #expect(try contacts(alice)["alice"]?["keyVersion"] as? Int == 2)
        let second = try await alice.run(["send", "bob", "-m", "two"])
        let secondID = second.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        await #expect(try inbox(bob).map { $0["contact"] as? Bool } == [true])
        await #expect(try !bob.run(["inbox"]).stdout.contains("not among your contacts"))
        let readSecond = try await bob.run(["read", secondID])
        #expect(readSecond.status == 0 && readSecond.stderr.contains("alice rotated keys from version 1 to 2"), "\(readSecond.stderr)")
        // Both read: the empty mailbox is an empty JSON array, on one line.
        await #expect(try bob.run(["inbox", "--json"]).stdout == "[]\n")
        let followed = try await #require(try contacts(bob)["alice"])
        #expect(followed["trust"] as? String == "comparedBeforeRotation" && followed["comparedKeyVersion"] as? Int == 1)

        // prune: the first message was stored two days ago, the second just now.
        let received = bob.home.appendingPathComponent("received")
        let old = Date().addingTimeInterval(-2 * 86_400)
        try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: received.appendingPathComponent("\(firstID).sm").path)
        let dry = try await bob.run(["prune", "--older-than", "1d", "--dry-run", "--json"])
        let counted = try #require(try JSONSerialization.jsonObject(with: Data(dry.stdout.utf8)) as? [String: Any])
        #expect(counted["received"] as? Int == 1 && counted["sent"] as? Int == 0)
        #expect(FileManager.default.fileExists(atPath: received.appendingPathComponent("\(firstID).sm").path))
        let nothing = try await bob.run(["prune", "--older-than", "3d"])
        #expect(nothing.status == 0 && nothing.stderr.contains("No kept copy here was stored more than 3 days ago: nothing to remove"), "\(nothing.stderr)")
        let pruned = try await bob.run(["prune", "--older-than", "1d"])
        #expect(pruned.status == 0 && pruned.stderr.contains("Removed the kept copies of 0 sent and 1 read message"), "\(pruned.stderr)")
        #expect(!FileManager.default.fileExists(atPath: received.appendingPathComponent("\(firstID).sm").path))
        #expect(!FileManager.default.fileExists(atPath: received.appendingPathComponent("\(firstID).sender").path))
        #expect(FileManager.default.fileExists(atPath: received.appendingPathComponent("\(firstID).pruned").path))
        let gone = try await bob.run(["read", firstID])
        #expect(gone.status == 1 && gone.stderr.contains("pruned") && gone.stderr.contains("replay"), "\(gone.stderr)")
        // The newer one is still there to read again.
        let again = try await bob.run(["read", secondID])
        #expect(again.status == 0 && again.stderr.contains("read before"), "\(again.stderr)")
    }

    @Test func filesTravelCompressedAndPhotosAsJPEGXLOnlyToReadersThatDeclaredItAndArriveExact() async throws {
        let folder = try temporaryDirectory("compressed-files")
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        let relay = try await commands.startRelay(data: data)
        defer { relay.process.terminate() }
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        let alice = CLIUser.fresh("alice", in: folder), bob = CLIUser.fresh("bob", in: folder), carol = CLIUser.fresh("carol", in: folder)
        for person in [alice, bob, carol] { try await person.register(port: relay.port, ca: ca) }
        // Registering declared what bob's client reads: alice's first message to him uses it.
        #expect(FileManager.default.fileExists(atPath: bob.home.appendingPathComponent("reader-features").path))
        // carol stands for a client from before reader features: the relay holds no list for her.
        let database = try RelayDatabase(path: data.appendingPathComponent("relay.sqlite").path)
        try await database.write { db in try db.execute("DELETE FROM reader_features WHERE name = ?", ["carol"]) }

        let notes = folder.appendingPathComponent("notes.txt")
        let text = (0..<4000).map { "line \($0): the quarterly figures, once more, with feeling\n" }.joined()
        try Data(text.utf8).write(to: notes)
        let noise = folder.appendingPathComponent("noise.bin")
        try Data(SystemRandom().bytes(count: 200_000)).write(to: noise)

        func sent(_ result: CLIResult) throws -> (id: String, compressed: [[String: Any]]) {
            #expect(result.status == 0, "\(result.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            return (try #require(json["id"] as? String), try #require(json["compressed"] as? [[String: Any]]))
        }
        let toBob = try await sent(alice.run(["send", "bob", "-m", "notes", "--attach", notes.path, "--attach", noise.path, "--json"]))
        #expect(toBob.compressed.count == 1)  // the noise would not shrink by 5%: it goes as it is
        let report = try #require(toBob.compressed.first)
        #expect(report["originalBytes"] as? Int == text.utf8.count)
        #expect((report["sentBytes"] as? Int ?? .max) < text.utf8.count / 5, "\(report)")
        let out = folder.appendingPathComponent("bob-out", isDirectory: true)
        let read = try await bob.run(["read", toBob.id, "--out", out.path])
        #expect(read.status == 0, "\(read.stderr)")
        #expect(try Data(contentsOf: out.appendingPathComponent("notes.txt")) == Data(text.utf8))
        #expect(try Data(contentsOf: out.appendingPathComponent("noise.bin")) == Data(contentsOf: noise))
        // The size shown is the file's as saved, not the compressed one that travelled.
        #expect(read.stderr.contains("Saved notes.txt (application/octet-stream, \(formatSize(text.utf8.count)))"), "\(read.stderr)")

        // A photo travels as JPEG XL to bob: he gets a PNG of the JPEG's pixels, and with
        // --as-sent the stripped JPEG bit for bit.
        let ppm = folder.appendingPathComponent("photo.ppm"), photo = folder.appendingPathComponent("photo.jpg")
        try Data(testPPM(width: 400, height: 300)).write(to: ppm)
        try await run("cjpeg", ["-quality", "88", "-outfile", photo.path, ppm.path])
        let photoBytes = Array(try Data(contentsOf: photo))
        let pipeline = ImagePipeline()
        let decoded = try pipeline.decode(photoBytes).image
        let stripped = try #require(try pipeline.strippedJPEG(photoBytes, decoded: decoded))
        let photoSend = try await alice.run(["send", "bob", "-m", "photo", "--attach", photo.path, "--json"])
        let photoJSON = try #require(try JSONSerialization.jsonObject(with: Data(photoSend.stdout.utf8)) as? [String: Any])
        let image = try #require((photoJSON["images"] as? [[String: Any]])?.first)
        #expect(image["sent"] as? String == "jxl" && (image["jxlBytes"] as? Int ?? .max) < stripped.count, "\(image)")
        #expect(image["jxlMethod"] as? String == "the JPEG recompressed, effort 7", "\(image)")
        let photoID = try #require(photoJSON["id"] as? String)
        let asPNG = folder.appendingPathComponent("bob-photo", isDirectory: true)
        let readPhoto = try await bob.run(["read", photoID, "--out", asPNG.path])
        let png = Array(try Data(contentsOf: asPNG.appendingPathComponent("photo.png")))
        // One line for the file: what it became, the PNG's size (not the JPEG XL's), where it is.
        let savedLine = "photo.jxl arrived as JPEG XL; saved as PNG with the same pixels (\(formatSize(png.count))) to \(asPNG.appendingPathComponent("photo.png").path)"
        #expect(readPhoto.status == 0 && readPhoto.stderr.components(separatedBy: "\n").filter { $0.contains("photo.") } == [savedLine],
                "\(readPhoto.stderr)")
        #expect(try pipeline.decode(png).image.hasSamePixels(as: decoded))
        let asSent = folder.appendingPathComponent("bob-photo-as-sent", isDirectory: true)
        let readAgain = try await bob.run(["read", photoID, "--as-sent", "--out", asSent.path])
        #expect(readAgain.status == 0, "\(readAgain.stderr)")
        #expect(Array(try Data(contentsOf: asSent.appendingPathComponent("photo.jpg"))) == stripped)
        #expect(readAgain.stderr.contains("photo.jxl arrived as JPEG XL; saved as the JPEG it was made from, bit for bit (\(formatSize(stripped.count))) to \(asSent.appendingPathComponent("photo.jpg").path)"),
                "\(readAgain.stderr)")

        // A graphic with an sRGB chunk travels as JPEG XL as well (bob reads the rendering box),
        // and the PNG he gets says sRGB too.
        var graphic = TestPNG(width: 240, height: 160, colorType: 2, bitDepth: 8) { x, y, c in ((x * x / 40 + y * 3) / 5 + c * 70) % 256 }
        graphic.extraChunks = [("sRGB", [0])]
        let graphicFile = folder.appendingPathComponent("graphic.png")
        try Data(graphic.encoded).write(to: graphicFile)
        let graphicSend = try await alice.run(["send", "bob", "-m", "graphic", "--attach", graphicFile.path, "--json"])
        let graphicJSON = try #require(try JSONSerialization.jsonObject(with: Data(graphicSend.stdout.utf8)) as? [String: Any])
        let graphicImage = try #require((graphicJSON["images"] as? [[String: Any]])?.first)
        #expect(graphicImage["sent"] as? String == "jxl", "\(graphicImage)")
        let graphicOut = folder.appendingPathComponent("bob-graphic", isDirectory: true)
        let readGraphic = try await bob.run(["read", try #require(graphicJSON["id"] as? String), "--out", graphicOut.path])
        #expect(readGraphic.status == 0, "\(readGraphic.stderr)")
        let graphicPNG = Array(try Data(contentsOf: graphicOut.appendingPathComponent("graphic.png")))
        let graphicDecoded = try pipeline.decode(graphicPNG).image
        #expect(graphicDecoded.hasSamePixels(as: try pipeline.decode(graphic.encoded).image))
        #expect(graphicDecoded.rendering == RenderingInfo(srgbIntent: 0) && chunkTypes(graphicPNG).contains("sRGB"))

        // One envelope for bob and carol: carol did not declare, so nothing is compressed and the
        // photo travels as the stripped JPEG.
        let toBoth = try await sent(alice.run(["send", "bob", "carol", "-m", "notes", "--attach", notes.path, "--attach", photo.path, "--json"]))
        #expect(toBoth.compressed.isEmpty)
        let carolOut = folder.appendingPathComponent("carol-out", isDirectory: true)
        let carolRead = try await carol.run(["read", toBoth.id, "--out", carolOut.path, "--as-sent"])
        #expect(carolRead.status == 0, "\(carolRead.stderr)")
        #expect(try Data(contentsOf: carolOut.appendingPathComponent("notes.txt")) == Data(text.utf8))
        #expect(Array(try Data(contentsOf: carolOut.appendingPathComponent("photo.jpg"))) == stripped)
    }

    /// As the CLI prints sizes (formatBytes), for matching its lines.
    func formatSize(_ bytes: Int) -> String {
        String(format: "%.1f KiB", Double(bytes) / 1024)
    }

    /// `read --all` reads every waiting message, oldest first; one that fails verification is
    /// said, stays on the relay and does not keep the others; the exit status is the failure's.
    @Test func readAllReadsEveryWaitingMessageAndLeavesAFailingOneOnTheRelay() async throws {
        let (_, data, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("read-all")
        var sent: [String] = []
        for text in ["one", "two", "three"] {
            sent.append(try await alice.run(["send", "bob", "-m", text]).stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let ids = sent
        let database = try RelayDatabase(path: data.appendingPathComponent("relay.sqlite").path)
        try await database.write { db in
            var bytes = Array(try #require(try db.fetchOne(Data.self, "SELECT inline_data FROM envelopes WHERE message_id = ?", [Data(hexBytes(ids[1]))])))
            bytes[bytes.count / 2] ^= 0x01
            try db.execute("UPDATE envelopes SET inline_data = ? WHERE message_id = ?", [Data(bytes), Data(hexBytes(ids[1]))])
        }
        database.close()
        let all = try await bob.run(["read", "--all", "--json"])
        #expect(all.status == 2, "\(all.stderr)")
        let results = try #require(try JSONSerialization.jsonObject(with: Data(all.stdout.utf8)) as? [[String: Any]])
        #expect(results.compactMap { $0["text"] as? String } == ["one", "three"], "\(results)")
        #expect(results.filter { $0["error"] != nil }.compactMap { $0["id"] as? String } == [ids[1]], "\(results)")
        #expect(all.stderr.contains("message \(ids[1]): ") && all.stderr.contains("1 message of 3 could not be read or saved"), "\(all.stderr)")
        await #expect(try inbox(bob).map { $0["id"] as? String } == [ids[1]])
        let text = try await bob.run(["read", "--all"])
        #expect(text.status == 2 && text.stdout.isEmpty, "\(text.stdout)")
        #expect(try await bob.run(["read"]).status == 64)
        #expect(try await bob.run(["read", ids[1], "--all"]).status == 64)
        #expect(await commands.stop(relay.process) == 0)
    }

    /// A relay whose disk is full (its data on an 8 MiB tmpfs here) refuses a deposit with `507
    /// storageFull` and a sentence that names no file of the relay's, removes the deposit's
    /// partial file, keeps serving, and loses nothing it had acknowledged. Before, the write's
    /// failure was the format's `io` error, answered `400` (the request's fault) with the
    /// relay's own path in it. Skipped where the test cannot mount a tmpfs (not root).
    @Test func aRelayWhoseDiskIsFullRefusesTheDepositAndKeepsServing() async throws {
        let folder = try temporaryDirectory("disk-full")
        guard let small = try await SmallDisk.mount(size: "8m", in: folder) else { return }
        defer { SmallDisk.unmount(small) }
        let data = small.appendingPathComponent("relay", isDirectory: true)
        let relay = try await commands.startRelay(data: data)
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        let alice = CLIUser.fresh("alice", in: folder), bob = CLIUser.fresh("bob", in: folder)
        for person in [alice, bob] { try await person.register(port: relay.port, ca: ca) }
        let attachment = folder.appendingPathComponent("five.bin")
        // Random bytes: sent as they are (a compressible file would travel deflated).
        try FileHandle(forReadingAtPath: "/dev/urandom")?.readData(ofLength: 5_000_000).write(to: attachment)

        let first = try await alice.run(["send", "bob", "-m", "fits", "--attach", attachment.path])
        #expect(first.status == 0, "\(first.stderr)")
        let second = try await alice.run(["send", "bob", "-m", "does not fit", "--attach", attachment.path])
        #expect(second.status == 1)
        #expect(second.stderr.contains("the relay's storage is full, so nothing was stored; try again later, or tell the relay's operator"), "\(second.stderr)")
        #expect(!second.stderr.contains(data.path), "\(second.stderr)")
        #expect(relay.output.text.contains("No space left on device"), "the relay's log says what failed")
        let envelopes = try FileManager.default.contentsOfDirectory(atPath: data.appendingPathComponent("envelopes").path)
        #expect(envelopes.allSatisfy { !$0.hasPrefix(".") } && envelopes.count == 1, "\(envelopes)")

        // Still serving: a small message goes, and both acknowledged messages read back whole.
        let third = try await alice.run(["send", "bob", "-m", "small"])
        #expect(third.status == 0, "\(third.stderr)")
        let read = try await bob.run(["read", "--all", "--json"])
        #expect(read.status == 0, "\(read.stderr)")
        let texts = try #require(try JSONSerialization.jsonObject(with: Data(read.stdout.utf8)) as? [[String: Any]]).compactMap { $0["text"] as? String }
        #expect(Set(texts) == ["fits", "small"])
        let saved = try Data(contentsOf: bob.home.appendingPathComponent("mail").appendingPathComponent(
            try FileManager.default.contentsOfDirectory(atPath: bob.home.appendingPathComponent("mail").path).first ?? "").appendingPathComponent("five.bin"))
        #expect(saved == (try Data(contentsOf: attachment)))
        #expect(await commands.stop(relay.process) == 0)
    }

    /// A reader whose own disk is full: `read` says so with what to do, leaves no partial file,
    /// and the message stays on the relay; `seal` into that disk says the same and leaves nothing;
    /// with room again (the tmpfs remounted larger) the message reads.
    /// Skipped where the test cannot mount a tmpfs (not root).
    @Test func aReaderWhoseDiskIsFullIsToldToMakeRoomAndLosesNothing() async throws {
        let folder = try temporaryDirectory("reader-disk-full")
        guard let small = try await SmallDisk.mount(size: "2m", in: folder) else { return }
        defer { SmallDisk.unmount(small) }
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        let relay = try await commands.startRelay(data: data)
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        let alice = CLIUser.fresh("alice", in: folder), bob = CLIUser.fresh("bob", in: small)
        for person in [alice, bob] { try await person.register(port: relay.port, ca: ca) }
        let attachment = folder.appendingPathComponent("three.bin")
        try FileHandle(forReadingAtPath: "/dev/urandom")?.readData(ofLength: 3_000_000).write(to: attachment)
        let sent = try await alice.run(["send", "bob", "-m", "three megabytes", "--attach", attachment.path])
        #expect(sent.status == 0, "\(sent.stderr)")

        let full = try await bob.run(["read", "--all"])
        #expect(full.status == 1)
        #expect(full.stderr.contains("No space left on device: free some disk space and try again"), "\(full.stderr)")
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: bob.home.path).filter { $0.split(separator: "/").contains { $0.hasPrefix(".") } }
        #expect(leftovers.isEmpty, "\(leftovers)")
        await #expect(try inbox(bob).count == 1)
        let bundle = folder.appendingPathComponent("bob.id"), sealed = small.appendingPathComponent("sealed.sm")
        #expect(try await bob.run(["export", "-o", bundle.path]).status == 0)
        let seal = try await bob.run(["seal", "--to", bundle.path, "-m", "too big", "--attach", attachment.path, "-o", sealed.path])
        #expect(seal.status == 1 && seal.stderr.contains("No space left on device: free some disk space and try again"), "\(seal.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: small.path) == ["bob-home"])

        #expect(try await run("mount", ["-o", "remount,size=16m", small.path]).status == 0)
        let roomy = try await bob.run(["read", "--all", "--json"])
        #expect(roomy.status == 0 && roomy.stdout.contains("three megabytes"), "\(roomy.stderr)")
        await #expect(try inbox(bob).isEmpty)
        #expect(await commands.stop(relay.process) == 0)
    }

    /// A sender whose home cannot take the copy kept of what she sent (no inode left on her
    /// tmpfs once the sealed message is staged in `sent/`): the message goes all the same, `send` exits 0 and
    /// says that no copy is kept (`keepingError` in JSON), nothing half-kept or staged remains, and
    /// the recipient reads it. Skipped where the test cannot mount a tmpfs (not root).
    @Test func aSentCopyThatCannotBeKeptIsSaidAndTheMessageStillGoes() async throws {
        let folder = try temporaryDirectory("sender-disk-full")
        guard let small = try await SmallDisk.mount(size: "16m", in: folder) else { return }
        defer { SmallDisk.unmount(small) }
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        let relay = try await commands.startRelay(data: data)
        let ca = data.appendingPathComponent("tls/dev-ca.pem").path
        let alice = CLIUser.fresh("alice", in: small), bob = CLIUser.fresh("bob", in: folder)
        for person in [alice, bob] { try await person.register(port: relay.port, ca: ca) }
        let first = try await alice.run(["send", "bob", "-m", "kept"])
        #expect(first.status == 0, "\(first.stderr)")
        let keptID = first.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // One inode free: the log view saved through a temporary takes and gives it back, the
        // staged message keeps it, and the sent-copy key finds none.
        let used = try await run("df", ["--output=iused", small.path]).text.split(separator: "\n").last.map { $0.trimmingCharacters(in: .whitespaces) }
        let inodes = try #require(used.flatMap { Int($0) })
        #expect(try await run("mount", ["-o", "remount,nr_inodes=\(inodes + 1)", small.path]).status == 0)

        let sent = try await alice.run(["send", "bob", "-m", "gone but not kept", "--json"])
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stderr.contains("The message went, but no copy of it is kept for you to read again: "), "\(sent.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(sent.stdout.utf8)) as? [String: Any])
        #expect((result["keepingError"] as? String)?.contains("No space left on device") == true, "\(result)")
        #expect(contents(of: alice.home.appendingPathComponent("sent")) == ["\(keptID).key", "\(keptID).sm"])
        let read = try await bob.run(["read", "--all", "--json"])
        #expect(read.status == 0 && read.stdout.contains("gone but not kept"), "\(read.stderr)")
        #expect(await commands.stop(relay.process) == 0)
    }

    /// Two `read --all` of one home at once (two terminals, or a script beside a person) both
    /// succeed: a message the other one fetched, kept and removed from the relay in the meantime
    /// opens from its kept copy, and a removal the other one made first is as good as its own.
    /// Before, the second said "no message … in the mailbox" for each such message and exited 1.
    /// Both save each message's attachment into the same folder, which ends with one copy (the
    /// race of two saves of one file is pinned down by AttachmentDirectoryTests).
    @Test func twoReadAllOfOneHomeAtOnceBothSucceed() async throws {
        let (folder, _, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("read-all-twice")
        let texts = (1...8).map { "message \($0)" }
        let attachment = folder.appendingPathComponent("notes.bin")
        try Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }).write(to: attachment)
        for text in texts {
            let sent = try await alice.run(["send", "bob", "-m", text, "--attach", attachment.path])
            #expect(sent.status == 0, "\(sent.stderr)")
        }
        async let first = bob.run(["read", "--all", "--json"])
        async let second = bob.run(["read", "--all", "--json"])
        var shown: [[String]] = []
        for result in try await [first, second] {
            #expect(result.status == 0, "\(result.stderr)")
            let read = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
            #expect(read.allSatisfy { $0["error"] == nil }, "\(read)")
            shown.append(read.compactMap { $0["text"] as? String })
        }
        // Nothing is removed before a listing, so whichever listed first saw all eight.
        #expect(shown.map(\.count).max() == texts.count, "\(shown)")
        #expect(Set(shown.joined()) == Set(texts), "\(shown)")
        let mail = bob.home.appendingPathComponent("mail")
        let folders = try FileManager.default.contentsOfDirectory(atPath: mail.path)
        #expect(folders.count == texts.count)
        for id in folders {
            #expect(try FileManager.default.contentsOfDirectory(atPath: mail.appendingPathComponent(id).path) == ["notes.bin"], "\(id)")
        }
        await #expect(try inbox(bob).isEmpty)
        #expect(await commands.stop(relay.process) == 0)
    }

    /// `read` and `delete` take the first 4 or more digits of an id, as git takes a commit's: one
    /// match among the waiting messages (and for `read` those read before), else a clear refusal.
    @Test func readAndDeleteTakeTheFirstDigitsOfAnID() async throws {
        let (_, _, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("id-prefix")
        let first = try await alice.run(["send", "bob", "-m", "first"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let second = try await alice.run(["send", "bob", "-m", "second"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let read = try await bob.run(["read", String(first.prefix(6)), "--json"])
        #expect(read.status == 0 && read.stdout.contains("\"first\""), "\(read.stderr)")
        let deleted = try await bob.run(["delete", String(second.prefix(5).uppercased())])
        #expect(deleted.status == 0 && deleted.stderr.contains("Deleted \(second)"), "\(deleted.stderr)")
        await #expect(try inbox(bob).isEmpty)
        // Read before, by its first digits: the kept copy.
        let again = try await bob.run(["read", String(first.prefix(8)), "--json"])
        #expect(again.status == 0 && again.stdout.contains("\"readBefore\" : true"), "\(again.stderr)")
        // Two kept ids that share their first digits (files made here, never read).
        let received = bob.home.appendingPathComponent("received", isDirectory: true)
        for fake in ["abcd0000000000000000000000000000", "abcd1111111111111111111111111111"] {
            try Data().write(to: received.appendingPathComponent("\(fake).sm"))
        }
        let ambiguous = try await bob.run(["read", "abcd"])
        #expect(ambiguous.status == 1 && ambiguous.stderr.contains("abcd starts 2 message ids (abcd0000000000000000000000000000, abcd1111111111111111111111111111)"),
                "\(ambiguous.stderr)")
        let unknownPrefix = ["0000", "1234", "ffff"].first { prefix in !([first, second].contains { $0.hasPrefix(prefix) }) } ?? "0000"
        let none = try await bob.run(["read", unknownPrefix])
        #expect(none.status == 1 && none.stderr.contains("no message waiting, read before or sent has an id starting with \(unknownPrefix)"), "\(none.stderr)")
        for bad in ["12", "zz12", String(repeating: "a", count: 33)] {
            let refused = try await bob.run(["read", bad])
            #expect(refused.status == 1 && refused.stderr.contains("is not a message id"), "\(bad): \(refused.stderr)")
        }
        #expect(await commands.stop(relay.process) == 0)
    }

    /// With the passphrase, `read` unlocks the reader's current key version at once and an
    /// earlier one only for a message sealed to it: a damaged earlier key file does not stop
    /// reading current mail, and mail sealed before a rotation is read with the key of then.
    @Test func readUnlocksOnlyTheKeyVersionAMessageIsSealedTo() async throws {
        let (_, _, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("keyring")
        let early = try await alice.run(["send", "bob", "-m", "to version 1"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        await #expect(try bob.run(["rotate"]).status == 0)
        let late = try await alice.run(["send", "bob", "-m", "to version 2"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let earlierKey = bob.home.appendingPathComponent("identity/v1/encryption-key.pem")
        let intact = try Data(contentsOf: earlierKey)
        try Data("damaged\n".utf8).write(to: earlierKey)
        let current = try await bob.run(["read", late, "--json", "--no-agent"])
        #expect(current.status == 0 && current.stdout.contains("to version 2"), "\(current.stderr)")
        let refused = try await bob.run(["read", early, "--json", "--no-agent"])
        #expect(refused.status == 1 && refused.stdout.isEmpty && refused.stderr.contains("the encryption key of key version 1 ("), "\(refused.stderr)")
        await #expect(try inbox(bob).map { $0["id"] as? String } == [early])
        try intact.write(to: earlierKey)
        let earlier = try await bob.run(["read", early, "--json", "--no-agent"])
        #expect(earlier.status == 0 && earlier.stdout.contains("to version 1"), "\(earlier.stderr)")
        #expect(await commands.stop(relay.process) == 0)
    }

    @Test func sendInboxReadWithAnImageAcrossARotationAndTamperingIsCaught() async throws {
        let (folder, data, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("mail-cli")
        let ppm = folder.appendingPathComponent("photo.ppm")
        try Data(testPPM(width: 200, height: 150)).write(to: ppm)
        let photo = folder.appendingPathComponent("photo.jpg")
        await #expect(try run("cjpeg", ["-quality", "90", "-outfile", photo.path, ppm.path]).status == 0)

        // 1. Alice sends bob a message with a photo; bob lists and reads it.
        let sent = try await alice.run(["send", "bob", "-m", "Hello Bob", "--attach", photo.path])
        #expect(sent.status == 0, "\(sent.stderr)")
        let id = sent.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.count == 32)
        // bob's client declared JPEG XL when he registered.
        #expect(sent.stderr.contains("sending the JPEG XL (the reader gets a PNG)"), "\(sent.stderr)")
        let listed = try await inbox(bob)
        #expect(listed.count == 1)
        #expect(listed.first?["id"] as? String == id)
        #expect(listed.first?["from"] as? String == "alice")
        #expect((listed.first?["size"] as? Int ?? 0) > 0 && listed.first?["time"] is Int)

        let out = folder.appendingPathComponent("bob-out", isDirectory: true)
        let read = try await bob.run(["read", id, "--out", out.path, "--json"])
        #expect(read.status == 0, "\(read.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(read.stdout.utf8)) as? [String: Any])
        #expect(result["from"] as? String == "alice")
        #expect(result["text"] as? String == "Hello Bob")
        #expect((result["files"] as? [String])?.map { URL(fileURLWithPath: $0).lastPathComponent } == ["photo.png"])
        let received = try ImagePipeline().decode(Array(try Data(contentsOf: out.appendingPathComponent("photo.png")))).image
        #expect(received.hasSamePixels(as: try ImagePipeline().decode(Array(try Data(contentsOf: photo))).image))
        // Read, stored locally, gone from the relay; reading it again opens the kept copy with the
        // key that verified it (the relay is not asked: a replay from it never gets in).
        await #expect(try inbox(bob).isEmpty)
        #expect(FileManager.default.fileExists(atPath: bob.home.appendingPathComponent("received/\(id).sm").path))
        let again = try await bob.run(["read", id, "--out", out.path, "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        let reread = try #require(try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any])
        #expect(reread["readBefore"] as? Bool == true && reread["text"] as? String == "Hello Bob")
        // The same PNG is there already: no second copy.
        #expect((reread["files"] as? [String])?.map { URL(fileURLWithPath: $0).lastPathComponent } == ["photo.png"])
        #expect(contents(of: out).filter { $0.hasSuffix(".png") } == ["photo.png"])

        // 2. Sent before alice rotates, read after: verified with her logged earlier key.
        let early = try await alice.run(["send", "bob", "-m", "signed with version 1"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        await #expect(try alice.run(["rotate"]).status == 0)
        let late = try await alice.run(["send", "bob", "-m", "signed with version 2"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        for (messageID, text, version) in [(early, "signed with version 1", 1), (late, "signed with version 2", 2)] {
            let opened = try await bob.run(["read", messageID, "--out", out.path, "--json"])
            #expect(opened.status == 0, "\(opened.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(opened.stdout.utf8)) as? [String: Any])
            #expect(json["text"] as? String == text)
            #expect(json["keyVersion"] as? Int == version)
        }

        // 3. One byte of a stored envelope changed on the relay: refused, nothing written, and
        //    the message stays on the relay.
        let tampered = try await alice.run(["send", "bob", "-m", "do not change me", "--attach", photo.path]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // A small envelope lives in the relay's database, where the change is made.
        #expect(contents(of: data.appendingPathComponent("envelopes", isDirectory: true)).isEmpty)
        let database = try RelayDatabase(path: data.appendingPathComponent("relay.sqlite").path)
        try await database.write { db in
            var bytes = Array(try #require(try db.fetchOne(Data.self, "SELECT inline_data FROM envelopes WHERE message_id = ?", [Data(hexBytes(tampered))])))
            bytes[bytes.count / 2] ^= 0x01
            try db.execute("UPDATE envelopes SET inline_data = ? WHERE message_id = ?", [Data(bytes), Data(hexBytes(tampered))])
        }
        let tamperedOut = folder.appendingPathComponent("tampered-out", isDirectory: true)
        let refused = try await bob.run(["read", tampered, "--out", tamperedOut.path])
        #expect(refused.status == 2, "\(refused.stderr)")
        #expect(contents(of: tamperedOut).isEmpty)
        await #expect(try inbox(bob).map { $0["id"] as? String } == [tampered])
        #expect(!FileManager.default.fileExists(atPath: bob.home.appendingPathComponent("received/\(tampered).sm").path))

        // 4. Unknown recipients are refused before anything is sent.
        let unknown = try await alice.run(["send", "nobody", "-m", "hi"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no one is registered as nobody"))
        #expect(await commands.stop(relay.process) == 0)
    }

    /// `read --all` lists the mailbox once: each message's size, which bounds its download,
    /// comes from that listing rather than from one more listing per message; and it looks each
    /// sender up once (and proves their key history once), not once a message: here two messages
    /// signed before alice's rotation and two after.
    @Test func readAllListsTheMailboxOnceAndLooksEachSenderUpOnce() async throws {
        let (_, _, relay, _, alice, bob) = try await commands.relayWithAliceAndBob("read-all-listing")
        defer { relay.process.terminate() }
        for number in 1...4 {
            if number == 3 { await #expect(try alice.run(["rotate"]).status == 0) }
            await #expect(try alice.run(["send", "bob", "-m", "message \(number)"]).status == 0)
        }
        func requests(_ method: String, _ path: String) -> Int {
            relay.output.text.split(separator: "\n").filter { $0.contains("method=\(method)") && $0.contains("path=\(path) ") }.count
        }
        let before = (listings: requests("GET", "/v1/mailbox"), lookups: requests("GET", "/v1/directory/alice"),
                      histories: requests("GET", "/v1/directory/alice/history"))
        let read = try await bob.run(["read", "--all"])
        #expect(read.status == 0 && read.stdout.contains("message 1") && read.stdout.contains("message 4"), "\(read.stderr)")
        #expect(read.stderr.contains("key version 1") && read.stderr.contains("key version 2"), "\(read.stderr)")
        #expect(requests("GET", "/v1/mailbox") - before.listings == 1, "\(relay.output.text)")
        #expect(requests("GET", "/v1/directory/alice") - before.lookups == 1, "\(relay.output.text)")
        #expect(requests("GET", "/v1/directory/alice/history") - before.histories == 1, "\(relay.output.text)")
        await #expect(try bob.run(["inbox", "--json"]).stdout == "[]\n")
    }

    /// The reader is told whom else a message went to: the envelope names its recipients by key,
    /// so a pinned contact's key is said by name and any other is counted; nothing is said of a
    /// message to the reader alone; the sender opening the kept copy sees all of them.
    @Test func theReaderIsToldWhomElseAMessageWentTo() async throws {
        let (folder, _, relay, ca, alice, bob) = try await commands.relayWithAliceAndBob("other-recipients")
        defer { relay.process.terminate() }
        let carol = CLIUser.fresh("carol", in: folder)
        try await carol.register(port: relay.port, ca: ca)
        let both = try await alice.run(["send", "bob", "carol", "-m", "to both"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let alone = try await alice.run(["send", "bob", "-m", "to bob alone"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let unknown = try await bob.run(["read", both])
        #expect(unknown.status == 0 && unknown.stderr.contains("Also to: 1 recipient not among your contacts"), "\(unknown.stderr)")
        let json = try await bob.run(["read", both, "--json"])
        let fields = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(fields["to"] as? [String] == ["bob"] && fields["unnamedRecipients"] as? Int == 1, "\(json.stdout)")
        await #expect(try bob.run(["lookup", "carol"]).status == 0)
        let named = try await bob.run(["read", both])
        #expect(named.stderr.contains("Also to: carol\n"), "\(named.stderr)")
        let single = try await bob.run(["read", alone])
        #expect(single.status == 0 && !single.stderr.contains("Also to") && !single.stderr.contains("To:"), "\(single.stderr)")
        let sentCopy = try await alice.run(["open", alice.home.appendingPathComponent("sent/\(both).sm").path])
        #expect(sentCopy.status == 0 && sentCopy.stderr.contains("To: bob and carol\n"), "\(sentCopy.stderr)")
    }

    /// `reply` sends to the sender of a message read (with --all, to its other recipients this
    /// home can name, and says how many it leaves out), and to the recipients of a message sent.
    @Test func aReplyGoesToTheSenderOrToEveryoneItCanName() async throws {
        let (folder, _, relay, ca, alice, bob) = try await commands.relayWithAliceAndBob("reply")
        defer { relay.process.terminate() }
        let carol = CLIUser.fresh("carol", in: folder)
        try await carol.register(port: relay.port, ca: ca)
        func id(_ result: CLIResult) -> String { result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
        func senders(_ person: CLIUser) async throws -> [String] { try await inbox(person).compactMap { $0["from"] as? String } }

        let nothing = try await bob.run(["reply", "abcd", "-m", "too early"])
        #expect(nothing.status == 1 && nothing.stderr.contains("no message abcd is kept here to reply to"), "\(nothing.stderr)")
        let both = id(try await alice.run(["send", "bob", "carol", "-m", "to both"]))
        await #expect(try bob.run(["read", both]).status == 0)

        let toSender = try await bob.run(["reply", String(both.prefix(6)), "-m", "to alice alone"])
        #expect(toSender.status == 0 && toSender.stderr.contains("To alice (") && !toSender.stderr.contains("To carol"), "\(toSender.stderr)")
        // carol's key is no contact of bob's yet: left out of a reply to all, and said.
        let leftOut = try await bob.run(["reply", both, "--all", "-m", "to all bob knows"])
        #expect(leftOut.status == 0 && leftOut.stderr.contains("1 recipient of message \(both) is not among your contacts and is left out")
                && !leftOut.stderr.contains("To carol"), "\(leftOut.stderr)")
        await #expect(try bob.run(["lookup", "carol"]).status == 0)
        let toAll = try await bob.run(["reply", both, "--all", "-m", "to all"])
        #expect(toAll.status == 0 && toAll.stderr.contains("To alice (") && toAll.stderr.contains("To carol (")
                && !toAll.stderr.contains("To bob") && !toAll.stderr.contains("left out"), "\(toAll.stderr)")
        await #expect(try senders(alice) == ["bob", "bob", "bob"])
        await #expect(try senders(carol).filter { $0 == "bob" }.count == 1)

        // A reply to a message sent goes to its recipients again, not to oneself.
        let again = try await alice.run(["reply", both, "-m", "a follow-up"])
        #expect(again.status == 0 && again.stderr.contains("To bob (") && again.stderr.contains("To carol (") && !again.stderr.contains("To alice"),
                "\(again.stderr)")
    }

    /// A sender's lookup from an earlier message of the same command serves the next one, unless
    /// the sender rotated meanwhile: a message signed with a key that lookup does not list has
    /// the sender looked up again (and verifies), rather than being refused as signed by an
    /// unlisted key. One `MailClient` stands for one `read --all`.
    @Test func aSenderWhoRotatedDuringACommandIsLookedUpAgain() async throws {
        // Long idle timeouts: this client runs in the test process, whose tasks can wait many
        // seconds for a thread under a full parallel run, past the relay's default 15 s before
        // sign-in (twice in CI: "closed the connection before answering").
        let (folder, _, relay, _, alice, bob) = try await commands.relayWithAliceAndBob(
            "rotated-meanwhile", options: ["--idle-timeout", "600", "--idle-timeout-before-sign-in", "600"])
        defer { relay.process.terminate() }
        func lookups() -> Int {
            relay.output.text.split(separator: "\n").filter { $0.contains("method=GET") && $0.contains("path=/v1/directory/alice ") }.count
        }
        let first = try await alice.run(["send", "bob", "-m", "before"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let keystore = Keystore(home: SecmailHome(url: bob.home))
        let (identity, keyring) = try keystore.unlockSenderAndKeyring(passphrase: try Passphrase(bob.passphrase))
        let mail = MailClient(relay: try RelayClient(home: keystore.home))
        let lookupsBefore = lookups()
        let read = try await mail.read(try MessageID(hex: first), identity: identity, keyring: keyring, into: folder.appendingPathComponent("out-1"))
        #expect(read.message.text == "before" && read.sender.keyVersion == 1)
        #expect(lookups() - lookupsBefore == 1, "\(relay.output.text)")

        // Closed while alice rotates and sends, as a long pause would have the client do; the
        // lookups this client verified stay with it.
        await mail.relay.close()
        await #expect(try alice.run(["rotate"]).status == 0)
        let second = try await alice.run(["send", "bob", "-m", "after"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let lookupsBetween = lookups()
        let again = try await mail.read(try MessageID(hex: second), identity: identity, keyring: keyring, into: folder.appendingPathComponent("out-2"))
        #expect(again.message.text == "after" && again.sender.keyVersion == 2)
        #expect(lookups() - lookupsBetween == 1, "\(relay.output.text)")
        await mail.relay.close()
    }
}

/// A small disk for the tests of a full one: a tmpfs mounted on a new folder.
enum SmallDisk {
    /// A tmpfs of `size` (mount's `size=`, e.g. "8m") on a new folder in `folder`; nil, with the
    /// skip printed for the calling test, where the test process cannot mount one (not root).
    static func mount(size: String, in folder: URL, test: String = #function) async throws -> URL? {
        let small = folder.appendingPathComponent("small", isDirectory: true)
        try FileManager.default.createDirectory(at: small, withIntermediateDirectories: false)
        let mounted = try await run("mount", ["-t", "tmpfs", "-o", "size=\(size),mode=0700", "tmpfs", small.path])
        guard mounted.status == 0 else {
            print("skipped \(test): cannot mount a tmpfs (\(mounted.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))")
            return nil
        }
        return small
    }

    /// Unmounts it (lazily: a relay being stopped may still hold a file there).
    static func unmount(_ small: URL) {
        _ = try? run("umount", ["-l", small.path])
    }
}
