import ArgumentParser
import Foundation
import SecmailClient
import SecmailCrypto
import SecmailFormat

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Show secmail end to end in a temporary directory: three identities, a message with attachments, verification, and tampering refused.")

    @Flag(name: .long, help: "Keep the temporary directory instead of deleting it.")
    var keep = false

    func run() async throws {
        try await reportingFailures {
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("secmail-demo-\(UUID().uuidString)", isDirectory: true)
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            defer {
                if keep { Terminal.info("\nKept \(root.path)") } else { try? FileManager.default.removeItem(at: root) }
            }
            try runDemo(in: root)
        }
    }

    private func step(_ number: Int, _ text: String) {
        Terminal.output("\n[\(number)] \(text)\n")
    }

    private func line(_ text: String) {
        Terminal.output("    \(text)\n")
    }

    private func runDemo(in root: URL) throws {
        Terminal.output("secmail demo: everything happens under \(root.path)\n")
        let passphrase = try Passphrase("demo passphrase \(UUID().uuidString)")

        step(1, "Create identities for alice, bob and carol (two RSA-3072 keys each, encrypted at rest with scrypt)")
        var bundles: [String: IdentityBundle] = [:]
        var keystores: [String: Keystore] = [:]
        for name in ["alice", "bob", "carol"] {
            let keystore = Keystore(home: SecmailHome(url: root.appendingPathComponent(name, isDirectory: true)))
            let started = Date()
            let bundle = try keystore.createIdentity(name: IdentityName(name), passphrase: passphrase)
            bundles[name] = bundle
            keystores[name] = keystore
            line("\(name.padding(toLength: 6, withPad: " ", startingAt: 0)) \(bundle.fingerprint.grouped.prefix(39))…  (\(String(format: "%.1f", Date().timeIntervalSince(started))) s)")
        }
        guard let alice = bundles["alice"], let bob = bundles["bob"], let aliceStore = keystores["alice"],
              let bobStore = keystores["bob"], let carolStore = keystores["carol"] else { return }
        line("alice's public identity, exported, is \(alice.armored.count) characters of armored text")

        step(2, "alice seals a message with two attachments for bob")
        let files = root.appendingPathComponent("outbox", isDirectory: true)
        try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
        let notes = files.appendingPathComponent("notes.txt")
        try Data("Meeting moved to Thursday, 10:00.\n".utf8).write(to: notes)
        let data = files.appendingPathComponent("measurements.bin")
        try Data(SystemRandom().bytes(count: 3 << 20)).write(to: data)
        let envelopeURL = root.appendingPathComponent("message.smsg")
        let sender = try aliceStore.unlockSender(passphrase: passphrase)
        let started = Date()
        let sealed = try AtomicFile.write(to: envelopeURL) { sink in
            try EnvelopeSealer().seal(
                text: "Hi Bob, the figures are attached. — Alice",
                attachments: [OutgoingAttachment(file: notes), OutgoingAttachment(file: data)],
                from: sender, to: [bob], into: sink)
        }
        line("message id \(sealed.header.messageID)")
        line("envelope \(formatBytes(sealed.byteCount)) (payload \(formatBytes(sealed.header.payloadLength)), \(sealed.header.chunkCount) chunks of 64 KiB) in \(String(format: "%.0f", Date().timeIntervalSince(started) * 1000)) ms")

        step(3, "bob verifies alice's signature, then decrypts")
        let inbox = root.appendingPathComponent("bob-received", isDirectory: true)
        let verified = try EnvelopeOpener.verify(
            FileEnvelopeSource(url: envelopeURL), sender: alice, keys: bobStore.unlockRecipientKeys(passphrase: passphrase))
        let directory = try AttachmentDirectory(outputDirectory: inbox)
        let opened = try verified.decrypt(into: directory)
        let saved = try directory.commit()
        line("signed by \(opened.header.senderName) (\(opened.header.senderFingerprint.grouped.prefix(39))…)")
        line("text: \(opened.text)")
        for (info, url) in zip(opened.attachments, saved) {
            let original = files.appendingPathComponent(info.name)
            let same = try Data(contentsOf: original) == Data(contentsOf: url)
            line("saved \(info.name) (\(info.mediaType), \(formatBytes(info.length))): \(same ? "identical to the original" : "DIFFERENT")")
            guard same else { throw CLIFailure(.failure, "demo: \(info.name) did not round-trip") }
        }

        step(4, "the relay (or anyone) changes one byte: bob refuses the envelope")
        var tampered = try Data(contentsOf: envelopeURL)
        tampered[tampered.count / 2] ^= 0x01
        let tamperedURL = root.appendingPathComponent("tampered.smsg")
        try tampered.write(to: tamperedURL)
        try expectRefusal {
            _ = try EnvelopeOpener.verify(FileEnvelopeSource(url: tamperedURL), sender: alice,
                                          keys: bobStore.unlockRecipientKeys(passphrase: passphrase))
        }

        step(5, "carol, not a recipient, cannot open it")
        try expectRefusal {
            _ = try EnvelopeOpener.verify(FileEnvelopeSource(url: envelopeURL), sender: alice,
                                          keys: carolStore.unlockRecipientKeys(passphrase: passphrase))
        }

        step(6, "bob checks the envelope against the wrong sender (carol's identity): refused")
        try expectRefusal {
            _ = try EnvelopeOpener.verify(FileEnvelopeSource(url: envelopeURL), sender: bundles["carol"] ?? alice,
                                          keys: bobStore.unlockRecipientKeys(passphrase: passphrase))
        }
        Terminal.output("\nDemo complete: confidentiality, integrity and authenticity held.\n")
    }

    private func expectRefusal(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch {
            line("refused: \(classify(error).1)")
            return
        }
        throw CLIFailure(.failure, "demo: a forged or foreign envelope was accepted")
    }
}
