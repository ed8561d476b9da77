import ArgumentParser
import Foundation
import SecmailClient
import SecmailCommandLine
import SecmailCrypto
import SecmailFormat
import SecmailImages
import SecmailRelay

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: RelayProgramAbstract.demo,
        discussion: "Everything happens in a temporary directory, with a relay on 127.0.0.1 that stops when the demo ends.")

    @Flag(name: .long, help: "Keep the temporary directory instead of deleting it.")
    var keep = false

    func run() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("secmail-demo-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer {
            if keep { Terminal.info("\nKept \(root.path)") } else { try? FileManager.default.removeItem(at: root) }
        }
        try await DemoRun(root: root).run()
    }
}

/// The demo's steps, each printed with what a user would want to see: sizes and fingerprints.
private struct DemoRun {
    let root: URL
    let passphrase: Passphrase

    init(root: URL) throws {
        self.root = root
        passphrase = try Passphrase("demo passphrase \(UUID().uuidString)")
    }

    func step(_ number: Int, _ text: String) { Terminal.output("\n[\(number)] \(text)\n") }
    func line(_ text: String) { Terminal.output("    \(text)\n") }
    func short(_ fingerprint: Fingerprint) -> String { String(fingerprint.grouped.prefix(39)) + "…" }

    func run() async throws {
        Terminal.output("secmail demo: everything happens under \(root.path)\n")
        let relay = try await startRelay()
        // The relay's task ends before the demo does, so that its files are closed before the
        // demo's folder is removed (a relay still closing its database while the folder was
        // removed could leave both behind).
        do {
            try await runSteps(with: relay)
        } catch {
            await relay.stop()
            throw error
        }
        await relay.stop()
    }

    func runSteps(with relay: Relay) async throws {
        let (alice, bob) = try await registerAliceAndBob(at: relay)
        let bobName = try IdentityName("bob")

        step(3, "bob looks alice up: her key is proven in the log, proven current by the log's name map, and pinned on first use")
        let found = try await withRelay(bob.home) { try await DirectoryClient(relay: $0).lookup([IdentityName("alice")]) }[0]
        line("alice, key version \(found.bundle.keyVersion): \(found.bundle.fingerprint.grouped)")

        step(4, "alice sends bob a message with an image, in the smallest lossless form bob's client reads, before encryption")
        let picture = root.appendingPathComponent("sunset.png")
        try Data(try DemoImage.png()).write(to: picture)
        // What bob's client reads, as his registration declared it: `send` decides the same way.
        let bobReads = DirectoryClient.Contact.commonReaderFeatures(
            try await withRelay(alice.home) { try await MailClient(relay: $0).verifiedRecipients([bobName]) })
        let image = try WireAttachments.prepare(WireAttachments.check(path: picture.path, asIs: false), alwaysPNG: false, readable: bobReads)
        if let summary = image.summary { line(summary) }
        let first = try await send(from: alice, to: bobName, text: "Hi Bob, the sunset from last night. — Alice", attachments: [image.attachment])
        line("message \(first.messageID): \(formatBytes(first.size)) deposited for bob")

        step(5, "bob lists his inbox and reads the message: signature verified, then decrypted")
        let reader = try Reader(keystore: bob, passphrase: passphrase, folder: root.appendingPathComponent("bob-received", isDirectory: true))
        for message in try await withRelay(bob.home, { try await MailClient(relay: $0).inbox(reader.identity) }).messages {
            line("\(message.id)  from \(message.from)  \(formatBytes(UInt64(message.size)))")
        }
        let read = try await reader.read(first.messageID)
        line("signed by \(read.sender.name) (\(short(read.sender.fingerprint))): \(read.message.text)")
        for url in read.saved.map(\.url) {
            let same = try ImagePipeline().decode(Array(try Data(contentsOf: url))).image
                .hasSamePixels(as: ImagePipeline().decode(Array(try Data(contentsOf: picture))).image)
            line("saved \(url.lastPathComponent): \(same ? "the same pixels as alice's original" : "DIFFERENT PIXELS")")
            guard same else { throw CLIFailure(.failure, "demo: the image did not arrive intact") }
        }

        try await rotateAndAudit(alice: alice, bob: bob, reader: reader)
        try await tamperWithAStoredMessage(relay: relay, from: alice, reader: reader, attachment: image.attachment)
        Terminal.output("\nDemo complete: keys verified in the log, mail confidential, signed, intact, images lossless.\n")
    }
}

extension DemoRun {
    /// The embedded relay, its task, and how the demo's users reach and trust it.
    struct Relay {
        let prepared: PreparedRelay
        let server: Task<Void, Error>
        let url: URL
        let contact: FirstContact

        /// Stops the relay and waits for its task to end.
        func stop() async {
            server.cancel()
            _ = await server.result
        }
    }

    /// Bob's side of reading: his keys, unlocked once, and the folder his attachments go to.
    struct Reader {
        let keystore: Keystore
        let identity: SenderIdentity
        let keyring: RecipientKeyring
        let folder: URL

        init(keystore: Keystore, passphrase: Passphrase, folder: URL) throws {
            self.keystore = keystore
            (identity, keyring) = try keystore.unlockSenderAndKeyring(passphrase: passphrase)
            self.folder = folder
        }

        func read(_ id: MessageID, into folder: URL? = nil) async throws -> MailClient.Read {
            try await withRelay(keystore.home) {
                try await MailClient(relay: $0).read(id, identity: identity, keyring: keyring, into: folder ?? self.folder)
            }
        }
    }

    func startRelay() async throws -> Relay {
        step(1, "Start a relay on 127.0.0.1 (TLS 1.3, SQLite, key directory with a transparency log)")
        let prepared = try PreparedRelay.prepare(RelayConfiguration(dataDirectory: root.appendingPathComponent("relay", isDirectory: true), port: 0))
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let server = Task { try await prepared.run(quiet: true) { continuation.yield($0) } }
        var port = 0
        for await bound in ports {
            port = bound
            break
        }
        guard port > 0, let url = URL(string: "https://localhost:\(port)") else {
            server.cancel()
            throw CLIFailure(.failure, "demo: the embedded relay did not start")
        }
        line("listening on \(url.absoluteString)")
        line("TLS key pin sha256/\(hexEncoded(prepared.publicKeyPin)), log key \(prepared.logVerifierKey)")
        let contact = try FirstContact(caFile: nil, relayKeyPin: hexEncoded(prepared.publicKeyPin), logVerifierKey: prepared.logVerifierKey)
        return Relay(prepared: prepared, server: server, url: url, contact: contact)
    }

    func registerAliceAndBob(at relay: Relay) async throws -> (alice: Keystore, bob: Keystore) {
        step(2, "alice and bob create identities (two RSA-3072 keys each, scrypt-encrypted) and register, trusting the relay by the TLS key pin and log key it printed")
        var stores: [Keystore] = []
        for name in ["alice", "bob"] {
            let keystore = Keystore(home: SecmailHome(url: root.appendingPathComponent(name, isDirectory: true)))
            let started = Date()
            let bundle = try keystore.createIdentity(name: IdentityName(name), passphrase: passphrase)
            _ = try await withRelay(keystore.home, client: RelayClient(home: keystore.home, firstContact: relay.url, trusting: relay.contact)) {
                try await DirectoryClient(relay: $0).pinRelay(relay.contact)
                return try await DirectoryClient(relay: $0).register(bundle, invite: nil)
            }
            stores.append(keystore)
            line("\(name.padding(toLength: 6, withPad: " ", startingAt: 0)) \(short(bundle.fingerprint))  (\(String(format: "%.1f", Date().timeIntervalSince(started))) s)")
        }
        return (stores[0], stores[1])
    }

    func rotateAndAudit(alice: Keystore, bob: Keystore, reader: Reader) async throws {
        step(6, "alice rotates her keys: the new ones are signed by the old ones and logged")
        let rotated = try await withRelay(alice.home) { try await DirectoryClient(relay: $0).rotate(alice, passphrase: passphrase) }
        line("alice, key version \(rotated.keyVersion): \(rotated.fingerprint.grouped)")

        step(7, "alice sends again; bob's client follows the rotation (continuity checked in the log)")
        let second = try await send(from: alice, to: IdentityName("bob"), text: "New keys, same alice.")
        let secondRead = try await reader.read(second.messageID)
        line("verified with alice's key version \(secondRead.sender.keyVersion): \(secondRead.message.text)")
        let audit = try await withRelay(alice.home) { try await DirectoryClient(relay: $0).audit(alice) }
        line("alice's audit: \(audit.ownEntries.count) log entries for her name, \(audit.foreignEntries.count) not made by her; the name map holds her version \(audit.currentInMap?.keyVersion ?? 0)")
        let monitored = try await withRelay(bob.home) { try await DirectoryClient(relay: $0).monitor() }
        line("bob monitors the whole log: \(monitored.treeSize) entries, \(monitored.names) names, every name map root follows from the log")
    }

    func tamperWithAStoredMessage(relay: Relay, from alice: Keystore, reader: Reader, attachment: OutgoingAttachment) async throws {
        step(8, "the relay changes one byte of a stored message: bob refuses it and nothing is written")
        // With the picture it is larger than 64 KiB, so the relay keeps it as a file (smaller
        // envelopes live in its database) that the demo can edit as a dishonest relay would.
        let bobName = try IdentityName("bob")
        let third = try await send(from: alice, to: bobName, text: "This one will be tampered with.", attachments: [attachment])
        guard case .file(let stored, _) = try await relay.prepared.services.mailboxes.storedEnvelope(bobName, third.messageID) else {
            throw CLIFailure(.failure, "demo: the relay stored the message in its database, not as a file")
        }
        var bytes = try Data(contentsOf: stored)
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: stored)
        do {
            _ = try await reader.read(third.messageID, into: root.appendingPathComponent("tampered", isDirectory: true))
            throw CLIFailure(.failure, "demo: a tampered message was accepted")
        } catch let error as CLIFailure {
            throw error
        } catch {
            line("refused: \(classify(error).1)")
        }
    }
}

extension DemoRun {
    /// `secmail send` as the demo does it: recipients verified, then sealed and deposited.
    func send(from keystore: Keystore, to name: IdentityName, text: String,
              attachments: [OutgoingAttachment] = []) async throws -> MailClient.Sent {
        let sender = try keystore.unlockSender(passphrase: passphrase)
        return try await withRelay(keystore.home) { relay in
            let mail = MailClient(relay: relay)
            let recipients = try await mail.verifiedRecipients([name]).map(\.bundle)
            return try await mail.send(to: recipients, text: text, attachments: attachments, sender: sender)
        }
    }
}

/// The demo's picture: a synthetic sunset, made here so the demo needs no files.
enum DemoImage {
    static func png(width: Int = 480, height: Int = 320) throws -> [UInt8] {
        var samples = [UInt8](repeating: 255, count: width * height * 4)
        var state: UInt32 = 2024
        for y in 0..<height {
            for x in 0..<width {
                state = state &* 1_664_525 &+ 1_013_904_223
                let grain = Int(state >> 29)
                let sky = y * 255 / height
                let dx = x - width / 2, dy = y - height * 2 / 3
                let sun = dx * dx + dy * dy < (height / 6) * (height / 6)
                let index = (y * width + x) * 4
                samples[index] = UInt8(sun ? 255 : min(255, 120 + sky / 2 + grain))
                samples[index + 1] = UInt8(sun ? 210 : max(0, 60 + sky / 3 - grain))
                samples[index + 2] = UInt8(sun ? 80 : max(0, 160 - sky / 2 + grain))
            }
        }
        let image = RGBAImage(width: width, height: height, bitDepth: 8, samples: samples)
        return try PNGOptimizer(effort: .fast).optimize(image).bytes
    }
}
