import Foundation
@testable import SecmailFormat
import SecmailCrypto
import Testing

/// A committed golden envelope and its expected fields.
struct Golden: Sendable, CustomTestStringConvertible {
    let file: URL
    let bytes: [UInt8]
    let expected: [String: any Sendable]

    init(_ file: URL) {
        self.file = file
        bytes = Array(try! Data(contentsOf: file))
        let json = file.deletingPathExtension().appendingPathExtension("json")
        expected = try! JSONSerialization.jsonObject(with: Data(contentsOf: json)) as! [String: any Sendable]
    }

    /// Version 1 (Tests fixtures): still read. Version 2 (docs/test-vectors, published): what is sealed now.
    static let v1 = Golden(Fixtures.directory.appendingPathComponent("golden-envelope-v1.smsg"))
    static let v2 = Golden(Fixtures.publishedVectors.appendingPathComponent("golden-envelope-v2.smsg"))
    static let all = [v1, v2]
    /// The key that opens v2 for its sender, alice (docs/PROTOCOL.md, "Sent-copy key").
    static let sentCopyKeyFile = Fixtures.publishedVectors.appendingPathComponent("golden-envelope-v2.sent-key")

    var testDescription: String { file.lastPathComponent }
}

/// The committed golden envelopes (alice to bob and carol, fixed randomness and time) pin the
/// byte format. RSA-OAEP and RSA-PSS are randomised by design, so the wrapped keys and the
/// signature differ on every seal; everything else must match byte for byte.
@Suite struct GoldenVectorTests {
    @Test(arguments: Golden.all) func goldenEnvelopeOpensToTheExpectedContent(_ golden: Golden) throws {
        let expected = golden.expected
        for reader in [Fixtures.bob, Fixtures.carol] {
            let (message, attachments) = try open(golden.bytes, as: reader)
            #expect(message.text == expected["text"] as? String)
            #expect(message.header.messageID.hex == expected["messageId"] as? String)
            #expect(message.header.time == expected["time"] as? Int64)
            #expect(message.header.payloadLength == expected["payloadLength"] as? UInt64)
            #expect(message.header.senderCheckpoint == expected["senderCheckpoint"] as? String)
            let expectedAttachments = try #require(expected["attachments"] as? [[String: Any]])
            #expect(attachments.count == expectedAttachments.count)
            for (got, want) in zip(attachments, expectedAttachments) {
                #expect(got.info.name == want["name"] as? String)
                #expect(got.info.mediaType == want["mediaType"] as? String)
                #expect(hexString(SHA256.hash(got.bytes)) == want["sha256"] as? String)
            }
        }
    }

    @Test(arguments: Golden.all) func goldenHeaderReencodesIdentically(_ golden: Golden) throws {
        let header = try EnvelopeOpener.readHeader(MemoryEnvelopeSource(golden.bytes))
        #expect(try EnvelopeHeader(encoded: header.encoded).encoded == Array(golden.bytes.prefix(header.encoded.count)))
        #expect(header.recipients.map(\.fingerprint.hex) == golden.expected["recipientFingerprints"] as? [String])
        #expect(hexString(header.keyCommitment) == golden.expected["keyCommitment"] as? String)
    }

    @Test func resealingWithTheSameRandomnessReproducesEveryDeterministicByte() throws {
        let golden = Golden.v2
        let fresh = try Fixtures.sealGolden(senderCheckpoint: try #require(golden.expected["senderCheckpoint"] as? String))
        let goldenHeader = try EnvelopeOpener.readHeader(MemoryEnvelopeSource(golden.bytes))
        let freshHeader = try EnvelopeOpener.readHeader(MemoryEnvelopeSource(fresh))
        #expect(freshHeader.messageID == goldenHeader.messageID)
        #expect(freshHeader.time == goldenHeader.time)
        #expect(freshHeader.keyCommitment == goldenHeader.keyCommitment)
        #expect(freshHeader.payloadLength == goldenHeader.payloadLength)
        #expect(freshHeader.recipients.map(\.fingerprint) == goldenHeader.recipients.map(\.fingerprint))
        // The header is identical but for its wrapped keys.
        func withoutWrappedKeys(_ h: EnvelopeHeader) -> [UInt8] {
            var reader = ByteWriter()
            reader.append(raw: h.encoded.prefix(4 + 1 + 2 + 16 + 8 + 1 + h.senderName.value.utf8.count + 32 + 4 + 8 + 32))
            for recipient in h.recipients { reader.append(raw: recipient.fingerprint.bytes) }
            reader.append(raw: Array((h.senderCheckpoint ?? "").utf8))
            return reader.bytes
        }
        #expect(withoutWrappedKeys(freshHeader) == withoutWrappedKeys(goldenHeader))
        // The payload ciphertext is identical byte for byte.
        let length = Int(goldenHeader.ciphertextLength)
        let goldenPayload = Array(golden.bytes[goldenHeader.encoded.count..<goldenHeader.encoded.count + length])
        let freshPayload = Array(fresh[freshHeader.encoded.count..<freshHeader.encoded.count + length])
        #expect(freshPayload == goldenPayload)
        #expect(hexString(SHA256.hash(goldenPayload)) == golden.expected["payloadCiphertextSHA256"] as? String)
    }

    @Test func keyCommitmentMatchesOpensslHKDF() throws {
        let expected = Golden.v2.expected
        // An independent implementation of the key schedule: `openssl kdf HKDF`.
        let result = try run("openssl", ["kdf", "-keylen", "32", "-kdfopt", "digest:SHA256",
                                         "-kdfopt", "hexkey:\(expected["contentKey"] as? String ?? "")",
                                         "-kdfopt", "hexsalt:\(expected["messageId"] as? String ?? "")",
                                         "-kdfopt", "info:secmail v1 key commitment", "HKDF"])
        let output = result.text
        #expect(result.status == 0)
        let opensslHex = output.lowercased().filter { $0.isHexDigit }
        #expect(opensslHex == expected["keyCommitment"] as? String)
    }

    /// Whether python3 with the `cryptography` package is here for the reference reader.
    static let referenceReaderAvailable: Bool = {
        let available = (try? run("python3", ["-c", "import cryptography"]))?.status == 0
        if !available {
            print("python3 with the cryptography package is absent: skipping the reference-reader test")
        }
        return available
    }()

    /// Runs the reference reader on `envelope` from alice, as carol, or with `sentCopyKey` as
    /// alice, its sender.
    func runReferenceReader(_ envelope: URL, sentCopyKey: URL? = nil) async throws -> (status: Int32, output: String) {
        let root = Fixtures.directory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let reader = sentCopyKey == nil ? "carol" : "alice"
        let result = try await run("python3", [root.appendingPathComponent("scripts/reference_open.py").path, envelope.path,
                                               Fixtures.directory.appendingPathComponent("alice.id").path,
                                               Fixtures.directory.appendingPathComponent("\(reader).id").path,
                                               Fixtures.keyDirectory.appendingPathComponent("\(reader)-encryption.key.pem").path,
                                               "throwaway test passphrase"] + (sentCopyKey.map { [$0.path] } ?? []))
        return (result.status, result.text)
    }

    /// The committed sent-copy key parses to what it was made from, encodes back to its bytes,
    /// and opens the golden envelope for its sender, with our opener and with the reference
    /// reader; a key with one byte of its wrap changed opens nothing.
    @Test func goldenSentCopyKeyOpensTheGoldenEnvelopeForItsSender() async throws {
        let golden = Golden.v2
        let bytes = Array(try Data(contentsOf: Golden.sentCopyKeyFile))
        let key = try SentCopyKey(encoded: bytes)
        #expect(key.messageID.hex == golden.expected["messageId"] as? String)
        #expect(key.wrapped.fingerprint == Fixtures.alice.bundle.fingerprint)
        #expect(key.recipientNames.map(\.value) == ["bob", "carol"])
        #expect(try SentCopyKey(messageID: key.messageID, wrapped: key.wrapped, recipientNames: key.recipientNames).encoded == bytes)
        let verified = try EnvelopeOpener.verify(MemoryEnvelopeSource(golden.bytes), sender: Fixtures.alice.bundle,
                                                 keys: [Fixtures.alice.recipientKey], sentCopyKey: key)
        #expect(try verified.decrypt(into: MemoryContentSink()).text == golden.expected["text"] as? String)

        guard Self.referenceReaderAvailable else { return }
        let (status, output) = try await runReferenceReader(golden.file, sentCopyKey: Golden.sentCopyKeyFile)
        #expect(status == 0, "\(output)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(result["text"] as? String == golden.expected["text"] as? String)
        var changed = bytes
        changed[60] ^= 1
        let damaged = try makeTemporaryDirectory("sent-key").appendingPathComponent("damaged.sent-key")
        try Data(changed).write(to: damaged)
        defer { try? FileManager.default.removeItem(at: damaged) }
        await #expect(try runReferenceReader(golden.file, sentCopyKey: damaged).status == 2)
    }

    /// scripts/reference_open.py implements docs/PROTOCOL.md independently (Python's
    /// `cryptography`, none of our code): it must open the golden envelope to the same content
    /// and refuse a changed one.
    @Test(.enabled(if: GoldenVectorTests.referenceReaderAvailable, "python3 with the cryptography package is absent"), arguments: Golden.all)
    func independentReaderFromTheSpecificationAgrees(_ golden: Golden) async throws {
        let expected = golden.expected
        let (status, output) = try await runReferenceReader(golden.file)
        #expect(status == 0)
        let result = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(result["text"] as? String == expected["text"] as? String)
        #expect(result["keyCommitment"] as? String == expected["keyCommitment"] as? String)
        #expect(result["messageId"] as? String == expected["messageId"] as? String)
        let theirs = (result["attachments"] as? [[String: Any]])?.map { $0["sha256"] as? String }
        let ours = (expected["attachments"] as? [[String: Any]])?.map { $0["sha256"] as? String }
        #expect(theirs != nil && theirs == ours)

        var changed = golden.bytes
        changed[changed.count - 100] ^= 1
        let tampered = try makeTemporaryDirectory("tampered").appendingPathComponent("tampered.smsg")
        try Data(changed).write(to: tampered)
        defer { try? FileManager.default.removeItem(at: tampered) }
        await #expect(try runReferenceReader(tampered).status == 2)
    }
}
