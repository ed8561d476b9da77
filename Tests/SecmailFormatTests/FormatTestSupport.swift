import Foundation
@testable import SecmailFormat
import SecmailCrypto
@_exported import SecmailTestSupport

/// Deterministic "randomness" for golden vectors: 0x00, 0x01, 0x02, ... across calls.
final class CountingRandom: RandomSource, @unchecked Sendable {
    private var next: UInt8 = 0
    private let lock = NSLock()
    func bytes(count: Int) throws -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        return (0..<count).map { _ in defer { next &+= 1 }; return next }
    }
}

/// Throw-away test identities (alice, bob, carol) whose keys are committed under
/// Fixtures/throwaway-test-keys, encrypted with `passphrase`. Never use them for anything real.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures", isDirectory: true)
    /// docs/test-vectors: the vectors published for other implementations.
    static let publishedVectors = directory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/test-vectors", isDirectory: true)
    static let keyDirectory = directory.appendingPathComponent("throwaway-test-keys", isDirectory: true)
    static let passphrase = try! Passphrase("throwaway test passphrase")
    static let names = ["alice", "bob", "carol"]
    static let createdAt: Int64 = 1_800_000_000

    struct Identity {
        let bundle: IdentityBundle
        let signingKey: RSAPrivateKey
        let encryptionKey: RSAPrivateKey
        var sender: SenderIdentity { try! SenderIdentity(bundle: bundle, signingKey: signingKey) }
        var recipientKey: RecipientKey { RecipientKey(fingerprint: bundle.fingerprint, encryptionKey: encryptionKey) }
    }

    static func load(_ name: String) throws -> Identity {
        func key(_ role: String) throws -> RSAPrivateKey {
            let pem = try String(contentsOf: keyDirectory.appendingPathComponent("\(name)-\(role).key.pem"), encoding: .utf8)
            return try RSAPrivateKey(encryptedPEM: pem, passphrase: passphrase)
        }
        let bundle = try IdentityBundle(armoredOrBinary: Array(Data(contentsOf: directory.appendingPathComponent("\(name).id"))))
        return Identity(bundle: bundle, signingKey: try key("signing"), encryptionKey: try key("encryption"))
    }

    // Loaded once per test process (scrypt makes each key load take ~50 ms).
    static let alice = try! load("alice")
    static let bob = try! load("bob")
    static let carol = try! load("carol")

    /// The golden message's content.
    static let goldenText = "Golden vector: envelope v2, suite 1.\nHälsningar — 🐝"
    static func goldenAttachments() throws -> [OutgoingAttachment] {
        [
            try OutgoingAttachment(name: "hello.txt", mediaType: "text/plain", bytes: Array("hello, bob and carol\n".utf8)),
            // 70,000 bytes: the payload spans two chunks.
            try OutgoingAttachment(name: "pattern.bin", bytes: (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }),
        ]
    }
    static let goldenTime: Int64 = 1_800_000_123

    /// The golden envelope, sealed again with the same randomness, time and sender checkpoint.
    static func sealGolden(senderCheckpoint: String) throws -> [UInt8] {
        let sink = MemorySink()
        _ = try EnvelopeSealer(random: CountingRandom(), clock: { goldenTime }).seal(
            text: goldenText, attachments: goldenAttachments(), from: alice.sender,
            to: [bob.bundle, carol.bundle], senderCheckpoint: senderCheckpoint, into: sink)
        return sink.bytes
    }
}

/// Seals `text`/`attachments` from alice to `recipients` in memory.
func seal(
    text: String = "hi", attachments: [OutgoingAttachment] = [], from sender: Fixtures.Identity = Fixtures.alice,
    to recipients: [Fixtures.Identity] = [Fixtures.bob], random: RandomSource = SystemRandom()
) throws -> [UInt8] {
    let sink = MemorySink()
    _ = try EnvelopeSealer(random: random).seal(text: text, attachments: attachments, from: sender.sender,
                                                to: recipients.map(\.bundle), into: sink)
    return sink.bytes
}

/// Verifies and decrypts in memory as `reader`, expecting `sender`.
func open(
    _ envelope: [UInt8], as reader: Fixtures.Identity = Fixtures.bob, from sender: Fixtures.Identity = Fixtures.alice
) throws -> (OpenedMessage, [(info: AttachmentInfo, bytes: [UInt8])]) {
    let verified = try EnvelopeOpener.verify(MemoryEnvelopeSource(envelope), sender: sender.bundle, keys: [reader.recipientKey])
    let sink = MemoryContentSink()
    let message = try verified.decrypt(into: sink)
    return (message, sink.attachments)
}
