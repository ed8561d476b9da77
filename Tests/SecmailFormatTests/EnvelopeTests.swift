import Foundation
@testable import SecmailFormat
import SecmailCrypto
import SecmailTestSupport
import Testing

@Suite struct EnvelopeRoundTripTests {
    @Test func everyRecipientOpensAMultiRecipientEnvelope() throws {
        let attachment = try OutgoingAttachment(name: "photo.png", bytes: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3])
        let envelope = try seal(text: "to both of you", attachments: [attachment], to: [Fixtures.bob, Fixtures.carol])
        for reader in [Fixtures.bob, Fixtures.carol] {
            let (message, attachments) = try open(envelope, as: reader)
            #expect(message.text == "to both of you")
            #expect(message.header.senderName.value == "alice")
            #expect(message.header.recipients.count == 2)
            #expect(attachments.count == 1)
            #expect(attachments[0].info.name == "photo.png")
            #expect(attachments[0].info.mediaType == "image/png")
            #expect(attachments[0].bytes == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3])
        }
    }

    /// A header longer than the 16 KiB read first for it (48 recipients, about 20 KB) is read in
    /// full and opens; so does one that fits.
    @Test func aHeaderPastTheFirstReadOpens() throws {
        let bob = Fixtures.bob
        let others = try (2...48).map { number in
            try IdentityBundle.create(name: IdentityName("bob\(number)"), createdAt: Fixtures.createdAt, signingKey: bob.signingKey,
                                      encryptionKey: bob.encryptionKey.publicKey)
        }
        let sink = MemorySink()
        _ = try EnvelopeSealer().seal(text: "to many", attachments: [], from: Fixtures.alice.sender,
                                      to: others + [bob.bundle], into: sink)
        let header = try EnvelopeOpener.readHeader(MemoryEnvelopeSource(sink.bytes))
        #expect(header.encoded.count > Int(EnvelopeOpener.headerReadAhead), "\(header.encoded.count)")
        #expect(header.recipients.count == 48)
        let (message, _) = try open(sink.bytes, as: bob)
        #expect(message.text == "to many")
        #expect(try open(try seal(text: "to one"), as: bob).0.text == "to one")
    }

    /// Plaintext overhead of one attachment named "a" typed application/octet-stream with empty text.
    static let overhead = 4 + 2 + (2 + 1 + 1 + 24 + 1 + 8)

    @Test(arguments: [6, 65_535, 65_536, 65_537, 131_072, 131_073, 200_000])
    func payloadSizesAroundChunkBoundariesRoundTrip(payloadLength: Int) throws {
        let attachments: [OutgoingAttachment]
        if payloadLength == 6 {
            attachments = []
        } else {
            let bytes = try SystemRandom().bytes(count: payloadLength - Self.overhead)
            attachments = [try OutgoingAttachment(name: "a", mediaType: "application/octet-stream", bytes: bytes)]
        }
        let envelope = try seal(text: "", attachments: attachments)
        let header = try EnvelopeOpener.readHeader(MemoryEnvelopeSource(envelope))
        #expect(header.payloadLength == UInt64(payloadLength))
        #expect(header.chunkCount == UInt64(max(1, (payloadLength + 65_535) / 65_536)))
        #expect(envelope.count == header.encoded.count + Int(header.ciphertextLength) + 2 + 384)
        let (message, opened) = try open(envelope)
        #expect(message.text.isEmpty)
        #expect(opened.map(\.bytes) == attachments.map { if case .bytes(let b) = $0.source { b } else { [] } })
    }

    @Test func attachmentsStreamFromFiles() throws {
        let directory = try makeTemporaryDirectory("attachments")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("big.jpg")
        let bytes = [0xFF, 0xD8, 0xFF] + (try SystemRandom().bytes(count: 3_000_000))
        try Data(bytes).write(to: file)
        let attachment = try OutgoingAttachment(file: file)
        #expect(attachment.info.mediaType == "image/jpeg")
        #expect(attachment.info.length == 3_000_003)
        let (_, opened) = try open(try seal(attachments: [attachment]))
        #expect(opened.first?.bytes == bytes)
        #expect(opened.first?.info.name == "big.jpg")
    }

    @Test func aFileHoldingMoreThanItsSizeSaysIsRefused() throws {
        // /proc/self/status says it is empty and holds a page of text: sealed by its size, it
        // went out as an empty attachment.
        let status = URL(fileURLWithPath: "/proc/self/status")
        #expect(try FileStatus(path: status.path).size == 0)
        let error = #expect(throws: FormatError.self) { try OutgoingAttachment(file: status) }
        #expect(error?.reason.contains("holds more than the 0 bytes its size says") == true)
    }

    @Test func sealRejectsBadInput() throws {
        #expect(throws: FormatError.self) { try seal(to: []) }
        #expect(throws: FormatError.self) { try OutgoingAttachment(name: "../etc/passwd", bytes: []) }
        #expect(throws: FormatError.self) { try OutgoingAttachment(name: "a\nb", bytes: []) }
        #expect(throws: FormatError.self) { try OutgoingAttachment(file: URL(fileURLWithPath: "/nonexistent/file")) }
        #expect(throws: FormatError.self) { try OutgoingAttachment(file: URL(fileURLWithPath: "/tmp")) }
        #expect(throws: FormatError.self) { try SenderIdentity(bundle: Fixtures.alice.bundle, signingKey: Fixtures.bob.signingKey) }
    }
}

@Suite(.threadsOfTheirOwn) struct EnvelopeRejectionTests {
    static let envelope = try! seal(
        text: "rejection tests",
        attachments: [try! OutgoingAttachment(name: "x.bin", bytes: Array(repeating: 0x5A, count: 300))])

    func expectRefusal(_ bytes: [UInt8], as reader: Fixtures.Identity = Fixtures.bob,
                       from sender: Fixtures.Identity = Fixtures.alice) -> FormatError? {
        #expect(throws: FormatError.self) { try open(bytes, as: reader, from: sender) }
    }

    @Test func anyChangedByteIsRefused() {
        let envelope = Self.envelope
        for index in envelope.indices {
            var changed = envelope
            changed[index] ^= 0x04
            #expect(throws: FormatError.self, "changed byte \(index) was accepted") { try open(changed) }
        }
    }

    @Test func everyTruncationIsRefused() {
        let envelope = Self.envelope
        for length in 0..<envelope.count {
            let error = expectRefusal(Array(envelope.prefix(length)))
            #expect(error?.code == .truncated || error?.code == .badMagic || error?.code == .trailingBytes || error?.code == .authenticationFailed,
                    "prefix \(length): \(String(describing: error))")
        }
    }

    @Test func trailingBytesAreRefused() {
        #expect(expectRefusal(Self.envelope + [0])?.code == .trailingBytes)
        #expect(expectRefusal(Self.envelope + Array(repeating: 0, count: 4096))?.code == .trailingBytes)
    }

    @Test func unknownVersionAndSuiteAreRefused() {
        var version = Self.envelope
        version[4] = 3
        #expect(expectRefusal(version)?.code == .unsupportedVersion)
        var suite = Self.envelope
        suite[6] = 2
        #expect(expectRefusal(suite)?.code == .unsupportedSuite)
        #expect(expectRefusal(Array("not an envelope at all".utf8))?.code == .badMagic)
    }

    @Test func aNonRecipientIsRefused() {
        #expect(expectRefusal(Self.envelope, as: Fixtures.carol)?.code == .notARecipient)
    }

    @Test func theWrongSenderBundleIsRefused() {
        #expect(expectRefusal(Self.envelope, from: Fixtures.carol)?.code == .senderMismatch)
    }

    @Test func aSignatureByAnotherKeyIsRefused() throws {
        // Carol writes an envelope that claims to come from alice, signed with carol's key.
        var bytes = try seal(text: "it's really alice", from: Fixtures.carol)
        let header = try EnvelopeOpener.readHeader(MemoryEnvelopeSource(bytes))
        let forgedHeader = try EnvelopeHeader(
            messageID: header.messageID, time: header.time, senderName: Fixtures.alice.bundle.name,
            senderFingerprint: Fixtures.alice.bundle.fingerprint, payloadLength: header.payloadLength,
            keyCommitment: header.keyCommitment, recipients: header.recipients, senderCheckpoint: header.senderCheckpoint)
        let payload = bytes[header.encoded.count..<(header.encoded.count + Int(header.ciphertextLength))]
        let signature = try Fixtures.carol.signingKey.signature(for: EnvelopeSealer.signatureContext + forgedHeader.encoded + SHA256.hash(payload))
        bytes = forgedHeader.encoded + payload + [UInt8(signature.count >> 8), UInt8(signature.count & 0xff)] + signature
        #expect(expectRefusal(bytes)?.code == .authenticationFailed)
    }
}

/// Attacks by insiders who hold keys: a recipient forwarding, or a sender (or a bug) that
/// signs bytes the payload cipher must still refuse.
@Suite struct EnvelopeInsiderTests {
    static let contentKey = SymmetricKey(bytes: Array(16..<48))  // what CountingRandom yields second

    /// Rebuilds an envelope with a new header and payload, signed by `signer`.
    func assemble(_ header: EnvelopeHeader, _ payload: [UInt8], signer: RSAPrivateKey = Fixtures.alice.signingKey) throws -> [UInt8] {
        let signature = try signer.signature(for: EnvelopeSealer.signatureContext + header.encoded + SHA256.hash(payload))
        return header.encoded + payload + [UInt8(signature.count >> 8), UInt8(signature.count & 0xff)] + signature
    }

    func parts(_ envelope: [UInt8]) throws -> (EnvelopeHeader, [UInt8], [UInt8]) {
        let header = try EnvelopeOpener.readHeader(MemoryEnvelopeSource(envelope))
        let start = header.encoded.count, end = start + Int(header.ciphertextLength)
        return (header, Array(envelope[start..<end]), Array(envelope[end...]))
    }

    @Test func surreptitiousForwardingIsRefused() throws {
        // Bob knows the content key of alice's message to him and re-wraps it for carol,
        // keeping alice's signature. Carol must refuse: the signature names bob's key.
        let original = try seal(text: "for bob only", random: CountingRandom())
        #expect(try open(original).0.text == "for bob only")
        let (header, payload, trailer) = try parts(original)
        let forwarded = try EnvelopeHeader(
            messageID: header.messageID, time: header.time, senderName: header.senderName,
            senderFingerprint: header.senderFingerprint, payloadLength: header.payloadLength,
            keyCommitment: header.keyCommitment,
            recipients: [.init(fingerprint: Fixtures.carol.bundle.fingerprint,
                               wrappedKey: try Fixtures.carol.bundle.encryptionKey.wrap(Self.contentKey))],
            senderCheckpoint: header.senderCheckpoint)
        let error = #expect(throws: FormatError.self) { try open(forwarded.encoded + payload + trailer, as: Fixtures.carol) }
        #expect(error?.code == .authenticationFailed)
    }

    @Test func differentKeysForDifferentRecipientsAreRefused() throws {
        // A malicious sender wraps a different content key for carol (to show her different
        // content under the same signature). The key commitment catches it.
        let original = try seal(text: "same for all?", to: [Fixtures.bob, Fixtures.carol], random: CountingRandom())
        let (header, payload, _) = try parts(original)
        let other = try SymmetricKey.random()
        let recipients = try header.recipients.map { recipient in
            recipient.fingerprint == Fixtures.carol.bundle.fingerprint
                ? EnvelopeHeader.Recipient(fingerprint: recipient.fingerprint, wrappedKey: try Fixtures.carol.bundle.encryptionKey.wrap(other))
                : recipient
        }
        let rewritten = try EnvelopeHeader(
            messageID: header.messageID, time: header.time, senderName: header.senderName,
            senderFingerprint: header.senderFingerprint, payloadLength: header.payloadLength,
            keyCommitment: header.keyCommitment, recipients: recipients, senderCheckpoint: header.senderCheckpoint)
        let envelope = try assemble(rewritten, payload)
        #expect(try open(envelope, as: Fixtures.bob).0.text == "same for all?")
        let error = #expect(throws: FormatError.self) { try open(envelope, as: Fixtures.carol) }
        #expect(error?.code == .authenticationFailed)
        #expect(error?.reason.contains("commitment") == true)
    }

    @Test func reorderedChunksAreRefusedEvenWhenSigned() throws {
        let bytes = try SystemRandom().bytes(count: 3 * 65_536)
        let original = try seal(attachments: [try OutgoingAttachment(name: "r.bin", bytes: bytes)])
        let (header, payload, _) = try parts(original)
        #expect(header.chunkCount == 4)
        let size = 65_536 + 16
        let swapped = Array(payload[size..<2 * size]) + Array(payload[0..<size]) + Array(payload[(2 * size)...])
        let error = #expect(throws: FormatError.self) { try open(assemble(header, swapped)) }
        #expect(error?.code == .authenticationFailed)
    }

    @Test func droppingTheFinalChunkIsRefusedEvenWhenSigned() throws {
        // Text spanning three chunks, so the reader decrypts chunk 1 before any length check.
        let text = String(repeating: "0123456789abcdef", count: 2 * 4_096 + 10)
        let original = try seal(text: text)
        let (header, payload, _) = try parts(original)
        #expect(header.chunkCount == 3)
        // Claim a two-chunk payload: chunk 1 was sealed as non-final, so it must not open as final.
        let shorter = try EnvelopeHeader(
            messageID: header.messageID, time: header.time, senderName: header.senderName,
            senderFingerprint: header.senderFingerprint, payloadLength: 2 * 65_536,
            keyCommitment: header.keyCommitment, recipients: header.recipients, senderCheckpoint: header.senderCheckpoint)
        let error = #expect(throws: FormatError.self) { try open(assemble(shorter, Array(payload.prefix(2 * (65_536 + 16))))) }
        #expect(error?.code == .authenticationFailed)
        #expect(error?.reason.contains("chunk 1") == true)
    }

    @Test func chunkNoncesBindIndexAndFinality() throws {
        let keys = try PayloadKeys(contentKey: SymmetricKey.random(), messageID: MessageID(bytes: Array(0..<16)))
        let sealed = try keys.cipher.seal([1, 2, 3], nonce: PayloadKeys.nonce(chunk: 5, isFinal: false))
        #expect(try keys.cipher.open(sealed, nonce: PayloadKeys.nonce(chunk: 5, isFinal: false)) == [1, 2, 3])
        #expect(throws: CryptoError.self) { try keys.cipher.open(sealed, nonce: PayloadKeys.nonce(chunk: 5, isFinal: true)) }
        #expect(throws: CryptoError.self) { try keys.cipher.open(sealed, nonce: PayloadKeys.nonce(chunk: 4, isFinal: false)) }
        #expect(PayloadKeys.nonce(chunk: 0x0102, isFinal: true) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1])
    }
}

@Suite struct EnvelopePayloadDigesterTests {
    /// The digest of `envelope` fed in pieces of `piece` bytes.
    func streamedDigest(_ envelope: [UInt8], piece: Int) throws -> EnvelopePayloadDigester.Digest? {
        let digester = try EnvelopePayloadDigester()
        for start in stride(from: 0, to: envelope.count, by: piece) {
            digester.update(Array(envelope[start..<min(envelope.count, start + piece)]))
        }
        return digester.finalize()
    }

    @Test func aStreamedDigestVerifiesTheSignatureWithoutAnotherRead() throws {
        let large = try seal(text: "streamed", attachments: [try OutgoingAttachment(name: "x.bin", bytes: (0..<200_000).map { UInt8($0 % 251) })])
        let small = try seal(text: "tiny")
        for envelope in [large, small] {
            let reference = try #require(try streamedDigest(envelope, piece: envelope.count))
            for piece in [1, 7, 100, 4096, 65_536] {
                #expect(try streamedDigest(envelope, piece: piece) == reference, "pieces of \(piece)")
            }
            #expect(try EnvelopeOpener.verifySignature(MemoryEnvelopeSource(envelope), sender: Fixtures.alice.bundle, payloadDigest: reference)
                .senderName.value == "alice")
            // A digest of other bytes fails the signature; one of another part of the envelope is
            // not used (the payload is hashed from the envelope instead).
            let wrong = EnvelopePayloadDigester.Digest(payloadOffset: reference.payloadOffset, payloadLength: reference.payloadLength,
                                                       sha256: SHA256.hash([1, 2, 3]))
            #expect((#expect(throws: FormatError.self) {
                try EnvelopeOpener.verifySignature(MemoryEnvelopeSource(envelope), sender: Fixtures.alice.bundle, payloadDigest: wrong)
            })?.code == .authenticationFailed)
            let elsewhere = EnvelopePayloadDigester.Digest(payloadOffset: 0, payloadLength: reference.payloadLength, sha256: wrong.sha256)
            #expect(throws: Never.self) {
                try EnvelopeOpener.verifySignature(MemoryEnvelopeSource(envelope), sender: Fixtures.alice.bundle, payloadDigest: elsewhere)
            }
        }
        // A changed payload byte streams to a digest that fails; a header that does not parse, or a
        // payload cut short, gives no digest at all.
        var changed = large
        changed[changed.count - 600] ^= 1
        let changedDigest = try #require(try streamedDigest(changed, piece: 4096))
        #expect(throws: FormatError.self) {
            try EnvelopeOpener.verifySignature(MemoryEnvelopeSource(changed), sender: Fixtures.alice.bundle, payloadDigest: changedDigest)
        }
        #expect(try streamedDigest(Array(repeating: 0x42, count: 5000), piece: 100) == nil)
        #expect(try streamedDigest(Array(large.prefix(large.count / 2)), piece: 4096) == nil)
    }
}

@Suite struct MessageIDTests {
    @Test func hexRoundTripsAndAnythingElseIsRefused() throws {
        let id = try MessageID(bytes: Array(0..<16).map { UInt8($0 * 17) })
        #expect(id.hex == "00112233445566778899aabbccddeeff")
        #expect(try MessageID(hex: id.hex) == id)
        #expect(try MessageID(hex: id.hex.uppercased()) == id)
        for bad in ["", String(id.hex.dropLast()), id.hex + "0", "zz" + id.hex.dropFirst(2), "+0" + id.hex.dropFirst(2),
                    String(id.hex.dropLast(2)) + " f", "\u{FF10}" + id.hex.dropFirst()] {
            #expect(throws: FormatError.self, "\(bad)") { try MessageID(hex: bad) }
        }
    }
}

/// The sender's kept key (sent/ID.key): the content key wrapped for her own key, outside the
/// envelope, which lists the recipients alone.
@Suite struct SentCopyKeyTests {
    func sealKeeping(_ text: String) throws -> (envelope: [UInt8], key: SentCopyKey) {
        let sink = MemorySink()
        let sealed = try EnvelopeSealer().seal(text: text, from: Fixtures.alice.sender, to: [Fixtures.bob.bundle],
                                               keepingCopyFor: Fixtures.alice.bundle, into: sink)
        return (sink.bytes, try #require(sealed.sentCopyKey))
    }

    func openAsSender(_ envelope: [UInt8], key: SentCopyKey) throws -> OpenedMessage {
        let source = MemoryEnvelopeSource(envelope)
        let listed = try EnvelopeOpener.readerKeys(in: source, sender: Fixtures.alice.bundle,
                                                   among: [Fixtures.alice.bundle.fingerprint], sentCopyKey: key)
        #expect(listed == [Fixtures.alice.bundle.fingerprint])
        let verified = try EnvelopeOpener.verify(source, sender: Fixtures.alice.bundle, keys: [Fixtures.alice.recipientKey], sentCopyKey: key)
        return try verified.decrypt(into: MemoryContentSink())
    }

    @Test func theSenderOpensHerCopyWithTheKeptKeyAndTheEnvelopeListsOnlyTheRecipients() throws {
        let (envelope, key) = try sealKeeping("for bob, and for me to read again")
        let header = try EnvelopeOpener.readHeader(MemoryEnvelopeSource(envelope))
        #expect(header.recipients.map(\.fingerprint) == [Fixtures.bob.bundle.fingerprint])
        #expect(key.messageID == header.messageID && key.wrapped.fingerprint == Fixtures.alice.bundle.fingerprint)
        #expect(key.recipientNames.map(\.value) == ["bob"])
        #expect(try SentCopyKey(encoded: key.encoded) == key)

        #expect(try openAsSender(envelope, key: key).text == "for bob, and for me to read again")
        #expect(try open(envelope, as: Fixtures.bob).0.text == "for bob, and for me to read again")
        // Without the kept key the sender is no recipient.
        let refused = #expect(throws: FormatError.self) { try open(envelope, as: Fixtures.alice) }
        #expect(refused?.code == .notARecipient)
    }

    @Test func aKeyOfAnotherMessageOpensNothing() throws {
        let (envelope, key) = try sealKeeping("one")
        let (_, otherKey) = try sealKeeping("two")
        // Kept for another message: not used at all.
        #expect(throws: FormatError.self) { try openAsSender(envelope, key: otherKey) }
        // Another message's content key under this message's id: the key commitment refuses it.
        var relabelled = otherKey.encoded
        relabelled.replaceSubrange(5..<(5 + MessageID.byteCount), with: key.messageID.bytes)
        let forged = try SentCopyKey(encoded: relabelled)
        let error = #expect(throws: FormatError.self) { try openAsSender(envelope, key: forged) }
        #expect(error?.code == .authenticationFailed, "\(String(describing: error))")
    }

    /// A recipient of alice's message knows its content key and id, and can seal something of
    /// theirs under both (the same randomness gives both envelopes one id and content key here).
    /// Alice's kept key does not open that envelope: it is kept for envelopes she signed.
    @Test func aKeptKeyOpensOnlyWhatItsKeeperSigned() throws {
        let aliceSink = MemorySink(), bobSink = MemorySink()
        let kept = try #require(try EnvelopeSealer(random: CountingRandom()).seal(
            text: "from alice", from: Fixtures.alice.sender, to: [Fixtures.bob.bundle], keepingCopyFor: Fixtures.alice.bundle,
            into: aliceSink).sentCopyKey)
        _ = try EnvelopeSealer(random: CountingRandom()).seal(text: "from bob, with alice's key", from: Fixtures.bob.sender,
                                                              to: [Fixtures.carol.bundle], into: bobSink)
        let bobsHeader = try EnvelopeOpener.readHeader(MemoryEnvelopeSource(bobSink.bytes))
        #expect(bobsHeader.messageID == kept.messageID)
        let refused = #expect(throws: FormatError.self) {
            try EnvelopeOpener.verify(MemoryEnvelopeSource(bobSink.bytes), sender: Fixtures.bob.bundle,
                                      keys: [Fixtures.alice.recipientKey], sentCopyKey: kept)
        }
        #expect(refused?.code == .notARecipient, "\(String(describing: refused))")
        #expect(try openAsSender(aliceSink.bytes, key: kept).text == "from alice")
    }

    @Test func aDamagedKeyFileIsRefused() throws {
        let (_, key) = try sealKeeping("x")
        let bytes = key.encoded
        #expect(throws: FormatError.self) { try SentCopyKey(encoded: bytes + [0]) }
        for length in [0, 4, 5, 21, 53, bytes.count - 1] {
            #expect(throws: FormatError.self, "\(length)") { try SentCopyKey(encoded: Array(bytes.prefix(length))) }
        }
        var wrongMagic = bytes
        wrongMagic[0] ^= 1
        #expect(throws: FormatError.self) { try SentCopyKey(encoded: wrongMagic) }
        var upperCaseName = bytes
        upperCaseName[upperCaseName.count - 3] = UInt8(ascii: "B")
        #expect(throws: FormatError.self) { try SentCopyKey(encoded: upperCaseName) }
    }
}
