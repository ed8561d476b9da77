import Foundation
@testable import SecmailFormat
import SecmailCrypto
import Testing

/// Writes the committed fixtures. Runs only with SECMAIL_WRITE_FIXTURES=1; the normal test run
/// reads what is committed. Regenerating changes every golden byte: do it only on a format change.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SECMAIL_WRITE_FIXTURES"] == "1"))
struct FixtureGenerator {
    @Test func writeThrowawayIdentitiesAndGoldenEnvelope() throws {
        try FileManager.default.createDirectory(at: Fixtures.keyDirectory, withIntermediateDirectories: true)
        for name in Fixtures.names {
            let signing = try RSAPrivateKey.generate(bitCount: 3072)
            let encryption = try RSAPrivateKey.generate(bitCount: 3072)
            let bundle = try IdentityBundle.create(name: IdentityName(name), createdAt: Fixtures.createdAt,
                                                   signingKey: signing, encryptionKey: encryption.publicKey)
            try Data(signing.encryptedPEM(passphrase: Fixtures.passphrase).utf8)
                .write(to: Fixtures.keyDirectory.appendingPathComponent("\(name)-signing.key.pem"))
            try Data(encryption.encryptedPEM(passphrase: Fixtures.passphrase).utf8)
                .write(to: Fixtures.keyDirectory.appendingPathComponent("\(name)-encryption.key.pem"))
            try Data(bundle.armored.utf8).write(to: Fixtures.directory.appendingPathComponent("\(name).id"))
        }
    }
}

@Suite(.enabled(if: ProcessInfo.processInfo.environment["SECMAIL_WRITE_FIXTURES"] == "2"))
struct GoldenGenerator {
    /// Writes docs/test-vectors/golden-envelope-v2.smsg and .json; the sender checkpoint is the
    /// signed checkpoint of docs/test-vectors/directory.json (written first, by the client tests'
    /// generator).
    @Test func writeGoldenEnvelope() throws {
        let directory = try JSONSerialization.jsonObject(
            with: Data(contentsOf: Fixtures.publishedVectors.appendingPathComponent("directory.json"))) as! [String: Any]
        let checkpoint = directory["checkpoint"] as! String
        let envelope = try Fixtures.sealGolden(senderCheckpoint: checkpoint)
        try Data(envelope).write(to: Fixtures.publishedVectors.appendingPathComponent("golden-envelope-v2.smsg"))
        let (message, attachments) = try open(envelope)
        let header = message.header
        let payloadStart = header.encoded.count
        let payload = Array(envelope[payloadStart..<payloadStart + Int(header.ciphertextLength)])
        let expected: [String: Any] = [
            "messageId": header.messageID.hex,
            "time": header.time,
            "sender": header.senderName.value,
            "senderFingerprint": header.senderFingerprint.hex,
            "recipientFingerprints": header.recipients.map(\.fingerprint.hex),
            "payloadLength": header.payloadLength,
            "chunkCount": header.chunkCount,
            "keyCommitment": hexString(header.keyCommitment),
            "contentKey": hexString(Array(16..<48).map { UInt8($0) }),
            "payloadCiphertextSHA256": hexString(SHA256.hash(payload)),
            "text": message.text,
            "senderCheckpoint": checkpoint,
            "attachments": attachments.map { ["name": $0.info.name, "mediaType": $0.info.mediaType,
                                              "length": $0.info.length, "sha256": hexString(SHA256.hash($0.bytes))] },
        ]
        let json = try JSONSerialization.data(withJSONObject: expected, options: [.prettyPrinted, .sortedKeys])
        try json.write(to: Fixtures.publishedVectors.appendingPathComponent("golden-envelope-v2.json"))
    }
}

@Suite(.enabled(if: ProcessInfo.processInfo.environment["SECMAIL_WRITE_FIXTURES"] == "3"))
struct SentCopyKeyGenerator {
    /// Writes docs/test-vectors/golden-envelope-v2.sent-key: the golden envelope's content key
    /// wrapped for its sender, alice, as `secmail send` keeps it beside her copy. Only the wrap is
    /// random (RSA-OAEP); the envelope is left as committed.
    @Test func writeGoldenSentCopyKey() throws {
        let golden = Golden.v2
        let header = try EnvelopeOpener.readHeader(MemoryEnvelopeSource(golden.bytes))
        let contentKeyHex = try #require(golden.expected["contentKey"] as? String)
        let contentKey = SymmetricKey(bytes: try #require(hexDecoded(contentKeyHex)))
        let key = try SentCopyKey(
            messageID: header.messageID,
            wrapped: EnvelopeHeader.Recipient(fingerprint: Fixtures.alice.bundle.fingerprint,
                                              wrappedKey: try Fixtures.alice.bundle.encryptionKey.wrap(contentKey)),
            recipientNames: [Fixtures.bob.bundle.name, Fixtures.carol.bundle.name])
        try Data(key.encoded).write(to: Golden.sentCopyKeyFile)
    }
}
