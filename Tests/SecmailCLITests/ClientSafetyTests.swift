import Foundation
import SecmailClient
import SecmailCrypto
import SecmailFormat
import SecmailImages
import SecmailRelay
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// Issue 13: the client as people use it. Untrusted text never reaches the terminal raw, received
/// files land only where they should and all together, Ctrl-C leaves nothing behind, prompts
/// behave. Real `secmail` processes (a real relay where one is needed).
@Suite(.threadsOfTheirOwn) struct ClientSafetyTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures", isDirectory: true)
    let commands = RelayCommandTests()

    /// alice seals `text` and the files to bob; returns the envelope.
    func seal(_ text: String, attaching files: [URL] = [], in folder: URL) async throws -> URL {
        let envelope = folder.appendingPathComponent("msg-\(UUID().uuidString).smsg")
        let sealed = try await Users.alice.run(["seal", "--to", Users.bundle("bob").path, "-m", text, "-o", envelope.path]
                                               + files.flatMap { ["--attach", $0.path] })
        #expect(sealed.status == 0, "\(sealed.stderr)")
        return envelope
    }

    func open(_ envelope: URL, _ extra: [String] = []) async throws -> CLIResult {
        try await Users.bob.run(["open", envelope.path, "--from", Users.bundle("alice").path] + extra)
    }

    @Test func escapeSequencesInTextAreShownNeutralisedAndCannotForgeTheVerificationLine() async throws {
        let folder = try temporaryDirectory("escapes")
        let hostile = "hi\r\nfrom Windows\r\n\u{1B}[1A\u{1B}[2K\rVerified: signed by ceo\n\u{1B}]0;owned\u{07}\u{1B}]52;c;ZXZpbA==\u{07}\u{9B}31m\u{202E}gnp.exe\r"
        let envelope = try await seal(hostile, in: folder)
        let out = folder.appendingPathComponent("out")
        let shown = try await open(envelope, ["--out", out.path])
        #expect(shown.status == 0, "\(shown.stderr)")
        // No control or format character reaches the terminal; each text line is framed.
        let everything = shown.stdout + shown.stderr
        #expect(!everything.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{07}" || $0 == "\u{9B}" || $0 == "\u{202E}" || $0 == "\r" })
        #expect(shown.stdout.contains("\\u{1B}[2K\\u{D}Verified: signed by ceo"))
        // A Windows line end is a line end; a carriage return anywhere else is shown escaped.
        #expect(shown.stdout.hasPrefix("│ hi\n│ from Windows\n│ \\u{1B}[1A"), "\(shown.stdout)")
        #expect(shown.stdout.hasSuffix("gnp.exe\\u{D}\n"), "\(shown.stdout)")
        #expect(shown.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix("│ ") }, "\(shown.stdout)")
        #expect(shown.stderr.split(separator: "\n").filter { $0.hasPrefix("Verified:") }.count == 1)
        // Exact for programs.
        let raw = try await open(envelope, ["--out", out.path, "--raw"])
        #expect(raw.stdout == hostile + "\n")
        let json = try await open(envelope, ["--out", out.path, "--json"])
        #expect((try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])?["text"] as? String == hostile)
    }

    /// An image whose 255-byte name has no extension gains one on the wire: the name gives way
    /// rather than the image being refused for a name the sender never chose.
    @Test func anImageNamedWith255BytesAndNoExtensionIsSent() async throws {
        let folder = try temporaryDirectory("long-image-name")
        let image = folder.appendingPathComponent(String(repeating: "b", count: 255))
        try Data(TestPNG(width: 24, height: 16, colorType: 2, bitDepth: 8) { x, y, c in (x * 9 + y * 5 + c * 70) % 256 }.encoded).write(to: image)
        let envelope = try await seal("a long name", attaching: [image], in: folder)
        let out = folder.appendingPathComponent("out", isDirectory: true)
        let opened = try await open(envelope, ["--out", out.path])
        #expect(opened.status == 0, "\(opened.stderr)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: out.path)) == [String(repeating: "b", count: 251) + ".png"])
    }

    @Test func attachmentNamesWithBidiOrControlCharactersAreRefusedAndHostileNamesSavedHarmlessly() async throws {
        let folder = try temporaryDirectory("names")
        let bidi = folder.appendingPathComponent("invoice\u{202E}gnp.exe")
        try Data("x".utf8).write(to: bidi)
        let refused = try await Users.alice.run(["seal", "--to", Users.bundle("bob").path, "-m", "x", "--attach", bidi.path,
                                                 "-o", folder.appendingPathComponent("no.smsg").path])
        #expect(refused.status == 1 && refused.stderr.contains("format character"), "\(refused.stderr)")
        #expect(refused.stderr.contains("attachment \(folder.path)/invoice"), "the refusal does not say which file: \(refused.stderr)")
        #expect(!refused.stderr.unicodeScalars.contains("\u{202E}"))

        // A dotfile, a name that reads as an option, trailing dots, and a 250-byte JPEG name that
        // becomes .png on arrival and then collides.
        let sources = folder.appendingPathComponent("src", isDirectory: true)
        try FileManager.default.createDirectory(at: sources, withIntermediateDirectories: true)
        let dotfile = sources.appendingPathComponent(".bash_login"), dash = sources.appendingPathComponent("-rf"),
            dots = sources.appendingPathComponent("report.pdf. . .")
        for file in [dotfile, dash, dots] { try Data("payload \(file.lastPathComponent)".utf8).write(to: file) }
        let longName = String(repeating: "é", count: 123) + ".jpg"  // 246 + 4 bytes
        let jpeg = sources.appendingPathComponent(longName)
        let ppm = sources.appendingPathComponent("in.ppm")
        try Data(testPPM(width: 32, height: 16)).write(to: ppm)
        try await run("cjpeg", ["-outfile", jpeg.path, ppm.path])
        let envelope = try await seal("files", attaching: [dotfile, dash, dots, jpeg], in: folder)
        let home = Users.bob.home
        for round in 1...2 {
            let opened = try await open(envelope, ["--out", home.path])  // reading in the home directory itself
            #expect(opened.status == 0, "\(opened.stderr)")
            if round == 1 {
                // Changed since they were saved, so the second round saves beside them.
                for name in contents(of: home) where name.hasPrefix("_") || name.hasPrefix("report") || name.hasSuffix(".png") {
                    try Data("changed".utf8).write(to: home.appendingPathComponent(name))
                }
            }
        }
        let saved = contents(of: home)
        #expect(!FileManager.default.fileExists(atPath: home.appendingPathComponent(".bash_login").path))
        #expect(saved.contains("_bash_login") && saved.contains("_bash_login (2)"))
        #expect(saved.contains("_rf") && saved.contains("report.pdf") && saved.contains("report (2).pdf"))
        let pngs = saved.filter { $0.hasSuffix(".png") && $0.hasPrefix("é") }
        #expect(pngs.count == 2 && pngs.allSatisfy { $0.utf8.count <= 255 }, "\(pngs)")
        #expect(pngs.contains { $0.hasSuffix(" (2).png") })
        #expect(!saved.contains { $0.hasPrefix(".secmail-staging") })
        for name in saved where name.hasPrefix("_") || name.hasPrefix("report") || name.hasSuffix(".png") {
            try FileManager.default.removeItem(at: home.appendingPathComponent(name))
        }
    }

    @Test func attachmentsGoToTheMessageFolderInTheHomeByDefault() async throws {
        let folder = try temporaryDirectory("default-out")
        let note = folder.appendingPathComponent("note.txt")
        try Data("note".utf8).write(to: note)
        let envelope = try await seal("with a note", attaching: [note], in: folder)
        let opened = try await open(envelope, ["--json"])
        #expect(opened.status == 0, "\(opened.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(opened.stdout.utf8)) as? [String: Any])
        let id = try #require(result["id"] as? String)
        #expect((result["files"] as? [String]) == [Users.bob.home.appendingPathComponent("mail/\(id)/note.txt").path])
    }

    /// A message without attachments leaves no empty folder behind, in the home or at --out; a
    /// folder that was there already stays.
    @Test func aMessageWithoutAttachmentsLeavesNoFolder() async throws {
        let folder = try temporaryDirectory("text-only")
        let envelope = try await seal("only text", attaching: [], in: folder)
        let opened = try await open(envelope, ["--json"])
        #expect(opened.status == 0, "\(opened.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(opened.stdout.utf8)) as? [String: Any])
        let id = try #require(result["id"] as? String)
        #expect((result["files"] as? [String]) == [])
        #expect(!FileManager.default.fileExists(atPath: Users.bob.home.appendingPathComponent("mail/\(id)").path))
        let named = folder.appendingPathComponent("new-folder")
        #expect(try await open(envelope, ["--out", named.path]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: named.path))
        let existing = folder.appendingPathComponent("existing")
        try FileManager.default.createDirectory(at: existing, withIntermediateDirectories: false)
        #expect(try await open(envelope, ["--out", existing.path]).status == 0)
        #expect(FileManager.default.fileExists(atPath: existing.path))
    }

    @Test func textIsShownWhenTheAttachmentsCannotBeSaved() async throws {
        let folder = try temporaryDirectory("unsaveable")
        let note = folder.appendingPathComponent("note.txt")
        try Data("note".utf8).write(to: note)
        let envelope = try await seal("the text survives", attaching: [note], in: folder)
        // The output "folder" is a file: nothing can be staged or saved there.
        let blocker = folder.appendingPathComponent("not-a-folder")
        try Data().write(to: blocker)
        let opened = try await open(envelope, ["--out", blocker.path])
        #expect(opened.status == 1)
        #expect(opened.stdout == "│ the text survives\n")
        #expect(opened.stderr.contains("Verified: signed by alice") && opened.stderr.contains("give --out another folder"), "\(opened.stderr)")
    }

    /// A compressed attachment (encoding 1) from a validly signed sender that does not inflate
    /// exactly — a bomb declaring more than its stream can hold, one past the 64 MiB bound, a
    /// damaged stream — saves nothing of the message; its text is shown. A good one arrives exact.
    @Test func compressedAttachmentsInflateExactlyOrNothingIsSaved() async throws {
        let folder = try temporaryDirectory("inflate")
        let alice = try Keystore(home: SecmailHome(url: Users.alice.home)).unlockSender(passphrase: Passphrase(Users.alice.passphrase))
        let bob = try IdentityBundle(armoredOrBinary: Array(Data(contentsOf: Users.bundle("bob"))))
        func sealed(_ stored: [UInt8]) throws -> URL {
            let envelope = folder.appendingPathComponent("msg-\(UUID().uuidString).smsg")
            let file = try PositionalFile(creatingAtPath: envelope.path, permissions: 0o600)
            let sink = FileSink(file: file)
            _ = try EnvelopeSealer().seal(
                text: "compressed",
                attachments: [try OutgoingAttachment(name: "plain.txt", bytes: Array("as it is".utf8)),
                              try OutgoingAttachment(name: "packed.txt", mediaType: "text/plain", encoding: .deflate, bytes: stored)],
                from: alice, to: [bob], into: sink)
            try sink.synchronize()
            return envelope
        }
        let original = Array(String(repeating: "all work and no play ", count: 5000).utf8)
        let good = try #require(try AttachmentCompression.compress(original))
        func length(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
        let stream = Array(good.dropFirst(8))
        let out = folder.appendingPathComponent("good", isDirectory: true)
        let opened = try await open(try sealed(good), ["--out", out.path])
        #expect(opened.status == 0, "\(opened.stderr)")
        #expect(try Array(Data(contentsOf: out.appendingPathComponent("packed.txt"))) == original)

        var damaged = stream
        damaged[damaged.count / 2] ^= 0x5A
        for (label, stored) in [("bomb", length(UInt64(stream.count) * 2000) + stream), ("over 64 MiB", length(65 << 20) + Array(repeating: 0, count: 100_000)),
                                ("damaged", length(UInt64(original.count)) + damaged), ("short", length(UInt64(original.count) + 1) + stream),
                                ("trailing bytes", good + [0])] {
            let target = folder.appendingPathComponent(label, isDirectory: true)
            let refused = try await open(try sealed(stored), ["--out", target.path])
            #expect(refused.status == 1, "\(label): \(refused.stderr)")
            #expect(refused.stdout == "│ compressed\n", "\(label)")
            #expect(refused.stderr.contains("packed.txt cannot be inflated"), "\(label): \(refused.stderr)")
            let left = (try? FileManager.default.contentsOfDirectory(atPath: target.path)) ?? []
            #expect(left.isEmpty, "\(label): \(left)")
        }
    }

    /// SIGINT while a large attachment decrypts, and while a large JPEG converts: exit 130, no
    /// plaintext and no staging folder left; SIGINT while a large message is sealed: no half
    /// envelope left.
    @Test func ctrlCLeavesNoPlaintextAndNoTemporaryFiles() async throws {
        let folder = try temporaryDirectory("interrupt")
        let big = folder.appendingPathComponent("big.bin")
        try Data(count: 160 << 20).write(to: big)
        let ppm = folder.appendingPathComponent("noise.ppm"), photo = folder.appendingPathComponent("noise.jpg")
        try Data(testPPM(width: 3000, height: 2000)).write(to: ppm)
        try await run("cjpeg", ["-quality", "90", "-outfile", photo.path, ppm.path])
        let envelope = try await seal("big", attaching: [big], in: folder)
        // A 6-megapixel JPEG of noise travelling as it is (sealed through the library, which skips
        // the sender's image work), so the reader converts it to PNG: seconds of work.
        let photoEnvelope = folder.appendingPathComponent("photo.smsg")
        let alice = try Keystore(home: SecmailHome(url: Users.alice.home)).unlockSender(passphrase: Passphrase(Users.alice.passphrase))
        let file = try PositionalFile(creatingAtPath: photoEnvelope.path, permissions: 0o600)
        let sink = FileSink(file: file)
        _ = try EnvelopeSealer().seal(text: "photo", attachments: [OutgoingAttachment(file: photo)], from: alice,
                                      to: [try IdentityBundle(armoredOrBinary: Array(Data(contentsOf: Users.bundle("bob"))))], into: sink)
        try sink.synchronize()

        // Interrupted once the work is seen under way: decrypted bytes staged, the JPEG staged
        // whole (its conversion follows), the envelope half written.
        func staged(_ out: URL, file: String, minimumBytes: Int) -> @Sendable () -> Bool {
            {
                guard let staging = contents(of: out).first(where: { $0.hasPrefix(".secmail-staging") }) else { return false }
                let url = out.appendingPathComponent(staging).appendingPathComponent(file)
                return ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.intValue ?? 0 >= minimumBytes
            }
        }
        let photoBytes = try Data(contentsOf: photo).count
        for (label, source, file, bytes) in [("decrypting", envelope, "0", 8 << 20), ("converting", photoEnvelope, "0", photoBytes)] {
            let out = folder.appendingPathComponent("out-\(label)", isDirectory: true)
            let ready = staged(out, file: file, minimumBytes: bytes)
            let status = try await Users.bob.runInterrupted(["open", source.path, "--from", Users.bundle("alice").path, "--out", out.path],
                                                            when: ready).status
            #expect(status == 130, "\(label)")
            #expect(contents(of: out).isEmpty, "\(label): \(contents(of: out))")
        }
        let sealing = folder.appendingPathComponent("sealed-\(UUID().uuidString).smsg")
        let status = try await Users.alice.runInterrupted(["seal", "--to", Users.bundle("bob").path, "-m", "x", "--attach", big.path, "-o", sealing.path],
                                                          when: { contents(of: folder).contains { $0.hasPrefix(".secmail-partial") } }).status
        #expect(status == 130)
        #expect(!contents(of: folder).contains { $0.hasPrefix(".") || $0.hasPrefix("sealed-") }, "\(contents(of: folder))")
    }

    /// The dialogue at the terminal (a pseudo-terminal): empty, short and mismatched entries are
    /// explained and asked again; a wrong passphrase gets three tries; Ctrl-C ends at once with 130
    /// and the echo back on.
    @Test func promptsExplainAndAskAgainAndCtrlCExitsAt130() throws {
        let folder = try temporaryDirectory("prompts")
        let home = folder.appendingPathComponent("home")
        let mismatched = try pty([["New passphrase", "a good long passphrase\n"], ["Repeat", "a different one\n"], ["differ", "a good long passphrase\n"],
                                  ["Repeat", "another\n"], ["differ", "a good long passphrase\n"], ["Repeat", "and another\n"]],
                                 ["init", "dora"], home: home)
        #expect(mismatched.status == 1 && mismatched.output.contains("no passphrase was chosen after 3 tries"), "\(mismatched.output)")
        let created = try pty([["New passphrase", "\n"], ["is empty", "short\n"], ["too short", "a good long passphrase\n"],
                               ["Repeat", "a good long passphrase\n"]],
                              ["init", "dora"], home: home)
        #expect(created.status == 0, "\(created.output)")
        #expect(created.output.contains("Created identity dora"))
        #expect(!created.output.contains("a good long passphrase"), "the passphrase was echoed")

        let note = folder.appendingPathComponent("n.txt")
        try Data("n".utf8).write(to: note)
        let sealed = try pty([["Passphrase for dora", "wrong\n"], ["Wrong passphrase", "wrong again\n"], ["Wrong passphrase", "a good long passphrase\n"]],
                             ["seal", "--to", Users.bundle("bob").path, "-m", "hi", "-o", folder.appendingPathComponent("a.smsg").path], home: home)
        #expect(sealed.status == 0, "\(sealed.output)")
        let thrice = try pty([["Passphrase for dora", "one\n"], ["Wrong", "two\n"], ["Wrong", "three\n"]],
                             ["seal", "--to", Users.bundle("bob").path, "-m", "hi", "-o", folder.appendingPathComponent("b.smsg").path], home: home)
        #expect(thrice.status == 4, "\(thrice.output)")

        let stopped = try pty([["Passphrase for dora", "half typed\u{03}"]],
                              ["seal", "--to", Users.bundle("bob").path, "-m", "hi", "-o", folder.appendingPathComponent("c.smsg").path], home: home)
        #expect(stopped.status == 130, "\(stopped.output)")
        #expect(stopped.echo == true)
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("c.smsg").path))
    }

    /// Ctrl-Z at the passphrase prompt: the terminal has its echo back while the command is
    /// stopped (a shell that does not set its own would otherwise take commands unseen), and after
    /// `fg` the echo is off again and the prompt is shown again, so the passphrase typed then does
    /// not show; Ctrl-C after a resume still ends at once with the echo on. Before, the command
    /// stopped with the echo off, and after `fg` the passphrase showed as it was typed.
    @Test func ctrlZAtThePromptGivesTheEchoBackAndFgAsksAgainUnseen() throws {
        let folder = try temporaryDirectory("prompt-stopped")
        let home = folder.appendingPathComponent("home")
        #expect(try runSecmail(["init", "dora"], environment: ["SECMAIL_HOME": home.path, "SECMAIL_PASSPHRASE": "a good long passphrase"]).status == 0)
        let output = folder.appendingPathComponent("a.smsg")
        let sealing = ["seal", "--no-agent", "--to", Users.bundle("bob").path, "-m", "hi", "-o", output.path]
        let resumed = try pty([["Passphrase for dora", "\u{1A}"], ["[continued]", ""], ["Passphrase for dora", "a good long passphrase\n"]],
                              sealing, home: home, jobControl: .foreground)
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(resumed.output.contains("[stopped by SIGTSTP echo=on]"), "\(resumed.output)")
        #expect(resumed.output.components(separatedBy: "Passphrase for dora").count == 3, "asked again after fg: \(resumed.output)")
        #expect(!resumed.output.contains("a good long passphrase"), "the passphrase was echoed: \(resumed.output)")
        #expect(FileManager.default.fileExists(atPath: output.path))

        let interrupted = try pty([["Passphrase for dora", "\u{1A}"], ["[continued]", ""], ["Passphrase for dora", "half\u{03}"]],
                                  sealing.dropLast() + [folder.appendingPathComponent("b.smsg").path], home: home, jobControl: .foreground)
        #expect(interrupted.status == 130 && interrupted.echo == true, "\(interrupted.output)")
    }

    /// In the background the prompt waits, as any program's use of its terminal from there does:
    /// after Ctrl-Z and `bg` the command leaves the terminal alone (its echo stays on for the
    /// shell) and stops again at its read (SIGTTIN); started with `&` it stops before it asks
    /// (SIGTTOU). After `fg` it asks, unseen. Before, both ended at once with "no passphrase
    /// entered (end of input)", exit 130: the kernel answers a thread that blocks SIGTTIN, as the
    /// Swift runtime's do, with EIO instead of stopping it.
    @Test func inTheBackgroundThePromptWaitsForFg() throws {
        let folder = try temporaryDirectory("prompt-background")
        let home = folder.appendingPathComponent("home")
        #expect(try runSecmail(["init", "dora"], environment: ["SECMAIL_HOME": home.path, "SECMAIL_PASSPHRASE": "a good long passphrase"]).status == 0)
        let sealing = { (name: String) in ["seal", "--no-agent", "--to", Users.bundle("bob").path, "-m", "hi", "-o", folder.appendingPathComponent(name).path] }

        let sentBack = try pty([["Passphrase for dora", "\u{1A}"], ["[continued]", ""], ["Passphrase for dora", "a good long passphrase\n"]],
                               sealing("a.smsg"), home: home, jobControl: .background)
        #expect(sentBack.status == 0, "\(sentBack.output)")
        let stops = ["[stopped by SIGTSTP echo=on]", "[continued in the background]", "[stopped by SIGTTIN echo=on]", "[continued]"]
        let positions = stops.map { sentBack.output.range(of: $0)?.lowerBound }
        #expect(positions.allSatisfy { $0 != nil } && positions.map { $0! } == positions.map { $0! }.sorted(), "\(sentBack.output)")
        // Asked before Ctrl-Z and after fg, not in the background.
        #expect(sentBack.output.components(separatedBy: "Passphrase for dora").count == 3, "\(sentBack.output)")
        #expect(!sentBack.output.contains("a good long passphrase"), "the passphrase was echoed: \(sentBack.output)")
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("a.smsg").path))

        let startedBack = try pty([["[continued]", ""], ["Passphrase for dora", "a good long passphrase\n"]],
                                  sealing("b.smsg"), home: home, jobControl: .startedInBackground)
        #expect(startedBack.status == 0, "\(startedBack.output)")
        let stopped = try #require(startedBack.output.range(of: "[stopped by SIGTTOU echo=on]"), "\(startedBack.output)")
        // Asked once, after fg.
        #expect(startedBack.output.components(separatedBy: "Passphrase for dora").count == 2, "\(startedBack.output)")
        #expect(startedBack.output.range(of: "Passphrase for dora").map { $0.lowerBound > stopped.upperBound } == true, "\(startedBack.output)")
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("b.smsg").path))
    }

    /// `secmail passphrase` at a terminal: the current passphrase first (a wrong one asked again),
    /// then the new one twice; afterwards only the new one opens the keys. From files, a new
    /// passphrase equal to the old one is refused.
    @Test func thePassphraseIsChangedAtATerminalOrFromFiles() async throws {
        let folder = try temporaryDirectory("passphrase-change")
        let home = folder.appendingPathComponent("home")
        let environment = ["SECMAIL_HOME": home.path]
        await #expect(try runSecmail(["init", "erin"], environment: environment.merging(["SECMAIL_PASSPHRASE": "the first passphrase"]) { $1 }).status == 0)
        // The dialogue takes seconds of waiting: on a thread of its own, not a cooperative one
        // that the in-process relays of tests running alongside need.
        let changed = try await onThreadOfItsOwn { [self] in
            try pty([["Passphrase for erin", "not it\n"], ["Wrong passphrase", "the first passphrase\n"],
                     ["New passphrase for erin", "short\n"], ["too short", "the second passphrase\n"], ["Repeat", "the second passphrase\n"]],
                    ["passphrase"], home: home)
        }
        #expect(changed.status == 0 && changed.output.contains("Changed the passphrase of erin: 2 private keys"), "\(changed.output)")
        #expect(!changed.output.contains("the second passphrase"), "the passphrase was echoed")

        let sealWith = { (passphrase: String) async throws -> CLIResult in
            try await runSecmail(["seal", "--to", Users.bundle("bob").path, "-m", "x", "-o", folder.appendingPathComponent("\(UUID().uuidString).smsg").path],
                                 environment: environment.merging(["SECMAIL_PASSPHRASE": passphrase]) { $1 })
        }
        await #expect(try sealWith("the first passphrase").status == 4)
        await #expect(try sealWith("the second passphrase").status == 0)

        let same = folder.appendingPathComponent("same")
        try Data("the second passphrase\n".utf8).write(to: same)
        chmod(same.path, 0o600)
        let refused = try await runSecmail(["passphrase", "--passphrase-file", same.path, "--new-passphrase-file", same.path], environment: environment)
        #expect(refused.status == 1 && refused.stderr.contains("the new passphrase is the one in use"), "\(refused.stderr)")
        // No terminal and no new passphrase given: the way to give it is named.
        let untold = try await runSecmail(["passphrase", "--passphrase-file", same.path], environment: environment)
        #expect(untold.status == 1 && untold.stderr.contains("give the new one with --new-passphrase-file"), "\(untold.stderr)")
    }

    /// A passphrase file may end in CRLF, be reached through a symbolic link or be a pipe
    /// (`<(pass show secmail)`, /dev/stdin); a regular file others can read is refused, however
    /// it is reached, before it is read.
    @Test func passphraseFilesMayEndInCRLFOrBePipesButMustBePrivate() throws {
        let folder = try temporaryDirectory("passphrase-file")
        let file = folder.appendingPathComponent("pass"), link = folder.appendingPathComponent("link")
        try Data("\(Users.alice.passphrase)\r\nnot this line\n".utf8).write(to: file)
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: file)
        func seal(_ passphraseFile: URL, input: Data? = nil) throws -> CLIResult {
            let output = folder.appendingPathComponent("m\(UUID().uuidString).smsg")
            return try runSecmail(["seal", "--to", Users.bundle("bob").path, "-m", "x", "-o", output.path, "--passphrase-file", passphraseFile.path],
                                  environment: ["SECMAIL_HOME": Users.alice.home.path], input: input)
        }
        chmod(file.path, 0o644)
        for path in [file, link] {
            let refused = try seal(path)
            #expect(refused.status == 1 && refused.stderr.contains("can be read by other users (mode 644)") && refused.stderr.contains("chmod 600"), "\(refused.stderr)")
        }
        chmod(file.path, 0o600)
        for path in [file, link] {
            let sealed = try seal(path)
            #expect(sealed.status == 0, "\(path.lastPathComponent): \(sealed.stderr)")
        }
        let piped = try seal(URL(fileURLWithPath: "/dev/stdin"), input: Data("\(Users.alice.passphrase)\n".utf8))
        #expect(piped.status == 0, "\(piped.stderr)")
        let missing = try seal(folder.appendingPathComponent("absent"))
        #expect(missing.status == 1 && missing.stderr.contains("No such file"), "\(missing.stderr)")
    }

    /// A home others may enter (755), or that belongs to another user, is refused by every
    /// command before it reads or writes anything there, with the chmod that fixes it; `init`
    /// does not create an identity in a folder made with the usual 755 that holds anything, and
    /// makes an empty one 700 first, saying so. The same home at 700, also reached through a
    /// symbolic link, serves. (The other owner needs root to chown.)
    @Test func aHomeOpenToOthersOrNotYoursIsRefused() throws {
        let folder = try temporaryDirectory("home-permissions")
        let home = folder.appendingPathComponent("home"), link = folder.appendingPathComponent("link")
        let environment = ["SECMAIL_HOME": home.path, "SECMAIL_PASSPHRASE": "a good long passphrase"]
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        try Data().write(to: home.appendingPathComponent("stray"))
        let refusedInit = try runSecmail(["init", "dora"], environment: environment)
        #expect(refusedInit.status == 1 && refusedInit.stderr.contains("\(home.path) has permissions 755")
                && refusedInit.stderr.contains("chmod 700 '\(home.path)'"), "\(refusedInit.stderr)")
        #expect(contents(of: home) == ["stray"])

        let stray = folder.appendingPathComponent("stray")
        try FileManager.default.moveItem(at: home.appendingPathComponent("stray"), to: stray)
        let madePrivate = try runSecmail(["init", "dora"], environment: environment)
        #expect(madePrivate.status == 0 && madePrivate.stderr.contains("Made \(home.path) private (permissions 700; it was 755)"),
                "\(madePrivate.stderr)")
        #expect((try FileManager.default.attributesOfItem(atPath: home.path)[.posixPermissions] as? Int) == 0o700)
        let before = contents(of: home)
        chmod(home.path, 0o755)
        let output = folder.appendingPathComponent("m.smsg").path
        for arguments in [["whoami"], ["contacts"], ["lock"], ["seal", "--to", Users.bundle("bob").path, "-m", "x", "-o", output]] {
            let refused = try runSecmail(arguments, environment: environment)
            #expect(refused.status == 1 && refused.stderr.contains("has permissions 755"), "\(arguments): \(refused.stderr)")
        }
        #expect(contents(of: home) == before && !FileManager.default.fileExists(atPath: output))

        chmod(home.path, 0o700)
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: home)
        let throughLink = try runSecmail(["whoami"], environment: ["SECMAIL_HOME": link.path])
        #expect(throughLink.status == 0 && throughLink.stdout.hasPrefix("dora"), "\(throughLink.stderr)")
        // A home that names a file is said to be one, for every command, before the file is read.
        for arguments in [["whoami"], ["init", "dora"], ["seal", "--to", Users.bundle("bob").path, "-m", "x", "-o", output]] {
            let file = try runSecmail(arguments, environment: ["SECMAIL_HOME": stray.path, "SECMAIL_PASSPHRASE": "a good long passphrase"])
            #expect(file.status == 1 && file.stderr.contains("\(stray.path) is not a folder: a secmail home is a folder"), "\(arguments): \(file.stderr)")
        }

        guard geteuid() == 0 else {
            print("skipped the other owner in aHomeOpenToOthersOrNotYoursIsRefused: chown needs root")
            return
        }
        chown(home.path, 4242, 4242)
        let foreign = try runSecmail(["whoami"], environment: environment)
        #expect(foreign.status == 1 && foreign.stderr.contains("belongs to another user (uid 4242), not to you (uid 0)"), "\(foreign.stderr)")
        chown(home.path, 0, 0)
    }

    struct PTYResult: Decodable {
        let status: Int32
        let output: String
        let echo: Bool?
    }

    /// How pty_driver.py's small shell runs the command: in the foreground, continuing it as `fg`
    /// would whenever it stops; the same, but the first stop continued in the background as `bg`
    /// would; or started in the background, as with `&`.
    enum JobControl: String {
        case foreground = "fg", background = "bg", startedInBackground = "started-in-background"
    }

    /// Plays `steps` with `secmail ARGUMENTS` on a pseudo-terminal; `jobControl`: under a small
    /// shell with job control, so that Ctrl-Z stops the command and it is continued as it says.
    func pty(_ steps: [[String]], _ arguments: [String], home: URL, jobControl: JobControl? = nil) throws -> PTYResult {
        let script = String(decoding: try JSONSerialization.data(withJSONObject: steps), as: UTF8.self)
        let driver = ["python3", Self.fixtures.appendingPathComponent("pty_driver.py").path] + (jobControl.map { ["--job-control=\($0.rawValue)"] } ?? [])
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                    driver + [script, SecmailBinary.url.path] + arguments,
                                    environment: ["SECMAIL_HOME": home.path, "SECMAIL_PASSPHRASE": nil])
        return try JSONDecoder().decode(PTYResult.self, from: result.stdout)
    }

    @Test func aRelaysReasonIsShownNeutralised() async throws {
        let certs = RunningRelay.certs
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", Self.fixtures.appendingPathComponent("hostile_relay.py").path,
                            certs.appendingPathComponent("relay.pem").path, certs.appendingPathComponent("throwaway-relay.key.pem").path]
        let output = Pipe()
        server.standardOutput = output
        // Not the runner's stderr: a child holding it open would keep the test run from ending.
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { killAndReap(server) }
        let port = try #require(Int(String(decoding: output.fileHandleForReading.availableData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)))
        let home = try temporaryDirectory("hostile-relay").appendingPathComponent("home")
        let result = try await runSecmail(["monitor", "--relay", "https://localhost:\(port)", "--ca", certs.appendingPathComponent("dev-ca.pem").path],
                                          environment: ["SECMAIL_HOME": home.path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("\\u{1B}]52;c;ZXZpbA==\\u{7}"), "\(result.stderr)")
        #expect(!result.stderr.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{07}" || $0 == "\u{202E}" || $0 == "\r" })
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
    }

    /// A registered home says so; registering on another relay needs --switch-relay and says what
    /// happens to the mail left on the first.
    @Test func registeringAgainSaysSoAndSwitchingRelaysIsExplicit() async throws {
        let folder = try temporaryDirectory("register-again")
        let first = try await commands.startRelay(data: folder.appendingPathComponent("one", isDirectory: true))
        let second = try await commands.startRelay(data: folder.appendingPathComponent("two", isDirectory: true))
        let caOne = folder.appendingPathComponent("one/tls/dev-ca.pem").path, caTwo = folder.appendingPathComponent("two/tls/dev-ca.pem").path
        let erin = CLIUser.fresh("erin", in: folder)
        let registered = try await erin.register(port: first.port, ca: caOne)
        // The new identity's fingerprint is shown once, as it is made.
        let fingerprintLines = registered.stderr.split(separator: "\n").filter { $0.lowercased().contains("fingerprint: ") }
        #expect(fingerprintLines.count == 1, "\(registered.stderr)")
        let again = try await erin.run(["register", "erin", "--relay", "https://localhost:\(first.port)", "--ca", caOne])
        #expect(again.status == 0 && again.stderr.contains("already registered"), "\(again.stderr)")
        let elsewhere = try await erin.run(["register", "erin", "--relay", "https://localhost:\(second.port)", "--ca", caTwo])
        #expect(elsewhere.status == 1 && elsewhere.stderr.contains("--switch-relay") && elsewhere.stderr.contains("can no longer be read"), "\(elsewhere.stderr)")
        let switched = try await erin.run(["register", "erin", "--relay", "https://localhost:\(second.port)", "--ca", caTwo, "--switch-relay"])
        #expect(switched.status == 0 && switched.stderr.contains("Your fingerprint: "), "\(switched.stderr)")
        #expect(await commands.stop(first.process) == 0)
        #expect(await commands.stop(second.process) == 0)
    }

    /// A relay that lists a message at one size and streams more: the download stops at the
    /// listed size, nothing is kept, and the message stays on the relay; the same for the
    /// downloads `inbox --purge-unverifiable` checks.
    @Test func downloadsStopPastTheListedSize() async throws {
        let control = MailboxControlTests()
        let (_, data, relay, bob, ids) = try await control.mailbox("download-cap", texts: ["a message of some length"])
        #expect(await commands.stop(relay.process) == 0)
        let database = try RelayDatabase(path: data.appendingPathComponent("relay.sqlite").path)
        try await database.write { db in try db.execute("UPDATE envelopes SET size = 100") }
        let restarted = try await commands.startRelay(data: data)
        try bob.retarget(port: restarted.port)
        let read = try await bob.run(["read", ids[0]])
        #expect(read.status != 0)
        #expect(read.stderr.contains("listed at 100 bytes"), "\(read.stderr)")
        #expect(!FileManager.default.fileExists(atPath: bob.home.appendingPathComponent("received/\(ids[0]).sm").path))
        #expect(!contents(of: bob.home.appendingPathComponent("received")).contains { $0.hasPrefix(".") })
        let purge = try await bob.run(["inbox", "--purge-unverifiable"])
        #expect(purge.status != 0)
        #expect(purge.stderr.contains("listed at 100 bytes"), "\(purge.stderr)")
        #expect(!contents(of: bob.home.appendingPathComponent("received")).contains { $0.hasPrefix(".") })
        let listed = try await bob.run(["inbox", "--json"])
        #expect(listed.stdout.contains(ids[0]), "\(listed.stdout)")
        #expect(await commands.stop(restarted.process) == 0)
    }
}

/// Every command's help reads as sentences: no gaps left by source line breaks inside a text,
/// checked on the real binary's output.
@Suite(.threadsOfTheirOwn) struct HelpTextTests {
    /// The subcommand paths listed by `secmail --help` (and `secmail relay --help`).
    func commands() throws -> [[String]] {
        func listed(_ path: [String]) throws -> [String] {
            let help = try runSecmail(path + ["--help"], environment: [:]).stdout
            guard let start = help.range(of: "SUBCOMMANDS:") else { return [] }
            return help[start.upperBound...].split(separator: "\n").compactMap { line in
                guard line.hasPrefix("  "), !line.hasPrefix("   ") else { return nil }
                return line.split(separator: " ").first.map(String.init)
            }
        }
        var paths = [[String]()]
        for name in try listed([]) where name != "help" {
            paths.append([name])
            for sub in try listed([name]) where sub != "help" { paths.append([name, sub]) }
        }
        return paths
    }

    @Test func everyHelpTextIsFreeOfWrappingGaps() throws {
        let paths = try commands()
        #expect(paths.count > 20, "\(paths)")
        for path in paths {
            let result = try runSecmail(path + ["--help"], environment: [:])
            #expect(result.status == 0, "\(path)")
            for line in result.stdout.split(separator: "\n") {
                var text = line.drop { $0 == " " }
                // An option, argument or subcommand line: its name, a column gap, its text.
                if text.hasPrefix("-") || text.hasPrefix("<") || path.isEmpty || line.hasPrefix("  ") && !line.hasPrefix("    "),
                   let gap = text.range(of: "  ") {
                    text = text[gap.upperBound...].drop { $0 == " " }
                }
                #expect(!text.contains("  "), "secmail \(path.joined(separator: " ")) --help: \"\(line)\"")
            }
        }
        let version = try runSecmail(["--version"], environment: [:])
        #expect(version.status == 0 && version.stdout.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, "\(version.stdout)")
    }

    /// A length of time that cannot be used is a usage error that says why, not only that the
    /// value is invalid.
    @Test func refusedDurationsSayWhy() throws {
        let home = ["SECMAIL_HOME": Users.alice.home.path]
        for (arguments, reason) in [(["prune", "--older-than", "0d"], "it must be longer than zero"),
                                    (["prune", "--older-than", "40000d"], "it must be at most 36500 days"),
                                    (["prune", "--older-than", "5x"], "a plain number is in days"),
                                    (["unlock", "--idle-timeout", "8d"], "it must be at most 7 days"),
                                    (["agent", "--idle-timeout", "0"], "it must be longer than zero"),
                                    (["unlock", "--idle-timeout", "1.5h"], "a plain number is in minutes")] {
            let result = try runSecmail(arguments, environment: home)
            #expect(result.status == 64, "\(arguments)")
            #expect(result.stderr.contains("The value '\(arguments[2])' is invalid for '\(arguments[1]) <") && result.stderr.contains(reason),
                    "\(arguments): \(result.stderr)")
        }
        let accepted = try runSecmail(["prune", "--older-than", "36500d", "--dry-run", "--json"], environment: home)
        #expect(accepted.status == 0, "\(accepted.stderr)")
    }

    /// A mistyped command is named with the nearest ones, as git does; ArgumentParser said only
    /// "2 unexpected arguments: 'sned', 'bob'".
    @Test func aMistypedCommandGetsTheNearestOnes() throws {
        for (arguments, message) in [(["sned", "bob"], "'sned' is not a secmail command. Did you mean 'send'?"),
                                     (["inbx"], "'inbx' is not a secmail command. Did you mean 'inbox'?"),
                                     (["rleay", "serve"], "'rleay' is not a secmail command. Did you mean 'relay'?"),
                                     (["relay", "bakcup", "--to", "x"], "'bakcup' is not a secmail-relay command. Did you mean 'backup'?"),
                                     (["image", "optimze", "a.png"], "'optimze' is not a secmail image command. Did you mean 'optimize'?"),
                                     (["zzzz"], "Unexpected argument 'zzzz'")] {
            let result = try runSecmail(arguments, environment: [:])
            #expect(result.status == 64 && result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
    }

    @Test func whoamiShowsTheIdentityWithoutUnlockingIt() throws {
        let shown = try runSecmail(["whoami", "--json"], environment: ["SECMAIL_HOME": Users.alice.home.path])
        #expect(shown.status == 0, "\(shown.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any])
        #expect(result["name"] as? String == "alice" && result["keyVersion"] as? Int == 1)
        #expect((result["fingerprint"] as? String)?.count == 64)
        let text = try runSecmail(["whoami"], environment: ["SECMAIL_HOME": Users.alice.home.path])
        #expect(text.stdout.hasPrefix("alice  key version 1\nfingerprint  "), "\(text.stdout)")
    }

    @Test func messageTextComesFromStandardInputWhenPiped() throws {
        let folder = try temporaryDirectory("stdin-text")
        let envelope = folder.appendingPathComponent("m.smsg")
        let sealed = try runProcess(SecmailBinary.url, ["seal", "--to", Users.bundle("bob").path, "-o", envelope.path],
                                    environment: ["SECMAIL_HOME": Users.alice.home.path, "SECMAIL_PASSPHRASE": Users.alice.passphrase],
                                    input: Data("piped text\nsecond line\n".utf8))
        #expect(sealed.status == 0, "\(sealed.stderr)")
        let opened = try Users.bob.run(["open", envelope.path, "--from", Users.bundle("alice").path, "--raw", "--out", folder.path])
        #expect(opened.stdout == "piped text\nsecond line\n")
        // An empty pipe, or an empty -m, with nothing attached is a message that says nothing:
        // refused before anything is made.
        for (extra, input) in [([String](), Data()), (["-m", ""], Data("ignored".utf8))] {
            let nothing = folder.appendingPathComponent("nothing.smsg")
            let refused = try runProcess(SecmailBinary.url, ["seal", "--to", Users.bundle("bob").path, "-o", nothing.path] + extra,
                                         environment: ["SECMAIL_HOME": Users.alice.home.path, "SECMAIL_PASSPHRASE": Users.alice.passphrase],
                                         input: input)
            #expect(refused.status == 1 && refused.stderr.contains("nothing to send: give the text with -m TEXT"), "\(extra): \(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: nothing.path))
        }
        // Text over the format's 16 MiB is refused as it is read (a byte past the limit is read,
        // no more), and nothing is made.
        let long = folder.appendingPathComponent("long.smsg")
        let tooLong = try runProcess(SecmailBinary.url, ["seal", "--to", Users.bundle("bob").path, "-o", long.path],
                                     environment: ["SECMAIL_HOME": Users.alice.home.path, "SECMAIL_PASSPHRASE": Users.alice.passphrase],
                                     input: Data(repeating: UInt8(ascii: "a"), count: MessageContent.maximumTextLength + 1))
        #expect(tooLong.status == 1 && tooLong.stderr.contains("over 16 MiB; attach it as a file instead"), "\(tooLong.stderr)")
        #expect(!FileManager.default.fileExists(atPath: long.path))
    }
}
