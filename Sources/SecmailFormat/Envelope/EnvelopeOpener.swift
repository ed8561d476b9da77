import SecmailCrypto

/// A private encryption key (in this process or in the key agent) together with the fingerprint
/// of the bundle that published it. A reader passes every key version it holds, so mail to an
/// older version stays readable.
public struct RecipientKey: Sendable {
    public let fingerprint: Fingerprint
    public let unwrapper: any KeyUnwrapper

    public init(fingerprint: Fingerprint, unwrapper: any KeyUnwrapper) {
        self.fingerprint = fingerprint
        self.unwrapper = unwrapper
    }

    public init(fingerprint: Fingerprint, encryptionKey: RSAPrivateKey) {
        self.init(fingerprint: fingerprint, unwrapper: encryptionKey)
    }
}

/// Receives decrypted attachments during the second pass of opening.
public protocol ContentSink: AnyObject {
    func beginAttachment(_ info: AttachmentInfo, index: Int) throws
    func write(_ bytes: ArraySlice<UInt8>) throws
    func endAttachment() throws
}

/// The decrypted message: its text and what its attachments were.
public struct OpenedMessage: Sendable {
    public let header: EnvelopeHeader
    public let text: String
    public let attachments: [AttachmentInfo]
}

/// Keeps decrypted attachments in memory (tests and small messages).
public final class MemoryContentSink: ContentSink {
    public private(set) var attachments: [(info: AttachmentInfo, bytes: [UInt8])] = []
    public init() {}
    public func beginAttachment(_ info: AttachmentInfo, index: Int) throws { attachments.append((info, [])) }
    public func write(_ bytes: ArraySlice<UInt8>) throws { attachments[attachments.count - 1].bytes.append(contentsOf: bytes) }
    public func endAttachment() throws {}
}

/// Takes attachments and keeps nothing (the text of a message whose files cannot be saved).
public final class DiscardingContentSink: ContentSink {
    public init() {}
    public func beginAttachment(_ info: AttachmentInfo, index: Int) throws {}
    public func write(_ bytes: ArraySlice<UInt8>) throws {}
    public func endAttachment() throws {}
}

/// An envelope whose sender signature, size and key commitment have all been checked (pass one).
/// Only such a value can decrypt, so no unauthenticated byte ever reaches a `ContentSink`.
public struct VerifiedEnvelope {
    public let header: EnvelopeHeader
    public let sender: IdentityBundle
    /// The recipient fingerprint whose key opened it.
    public let openedAs: Fingerprint
    let keys: PayloadKeys
    let source: EnvelopeSource
    let payloadOffset: UInt64

    /// Pass two: decrypts the payload chunk by chunk, handing attachments to `sink` and
    /// returning the text. Each chunk is authenticated again by AES-GCM as it is decrypted.
    public func decrypt(into sink: ContentSink, progress: EnvelopeSealer.Progress? = nil) throws -> OpenedMessage {
        let cursor = PlaintextCursor(cipher: keys.cipher, source: source, header: header, payloadOffset: payloadOffset)
        let (text, attachments) = try MessageContentDecoder.decode(cursor, payloadLength: header.payloadLength, into: sink, progress: progress)
        return OpenedMessage(header: header, text: text, attachments: attachments)
    }
}

/// The plaintext of a payload, handed out in order: what the message structure is read from.
/// The signature proves who wrote it, not that it is well formed: every field is checked here.
package protocol PlaintextReader: AnyObject {
    /// Plaintext bytes handed out so far.
    var plaintextBytesConsumed: UInt64 { get }
    /// Passes the next `count` bytes to `body`, a piece at a time; fails if the payload ends first.
    func forward(_ count: UInt64, to body: (ArraySlice<UInt8>) throws -> Void) throws
    /// Fails unless every plaintext byte has been handed out.
    func expectEnd() throws
}

extension PlaintextReader {
    /// Exactly `count` bytes (for small fields).
    func take(_ count: Int) throws -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(count)
        try forward(UInt64(count)) { result.append(contentsOf: $0) }
        return result
    }
}

/// Reads the message structure (text, then attachments with their names, media types, encodings
/// and lengths) from a payload's plaintext, streaming attachment bytes to a sink.
package enum MessageContentDecoder {
    /// The text and the attachments' descriptions; `payloadLength` is the header's, which no
    /// attachment may claim more than.
    package static func decode(_ reader: some PlaintextReader, payloadLength: UInt64, into sink: ContentSink,
                               progress: EnvelopeSealer.Progress? = nil) throws -> (text: String, attachments: [AttachmentInfo]) {
        let textLength = try integer(reader.take(4))
        guard textLength <= UInt64(MessageContent.maximumTextLength) else {
            throw FormatError(.invalidField, "the message text is longer than \(MessageContent.maximumTextLength >> 20) MiB")
        }
        var textBytes = try reader.take(Int(textLength))
        defer { SecretBytes.wipe(&textBytes) }
        guard let text = String(validating: textBytes, as: UTF8.self) else {
            throw FormatError(.invalidField, "the message text is not valid UTF-8")
        }
        let count = Int(try integer(reader.take(2)))
        guard count <= MessageContent.maximumAttachments else {
            throw FormatError(.invalidField, "the message has \(count) attachments, over the limit of \(MessageContent.maximumAttachments)")
        }
        var infos: [AttachmentInfo] = []
        for index in 0..<count {
            let nameLength = Int(try integer(reader.take(2)))
            guard let name = String(validating: try reader.take(nameLength), as: UTF8.self) else {
                throw FormatError(.invalidField, "attachment \(index + 1)'s name is not UTF-8")
            }
            let typeLength = Int(try integer(reader.take(1)))
            guard let mediaType = String(validating: try reader.take(typeLength), as: UTF8.self) else {
                throw FormatError(.invalidField, "attachment \(index + 1)'s media type is not UTF-8")
            }
            let rawEncoding = try reader.take(1)[0]
            guard let encoding = AttachmentEncoding(rawValue: rawEncoding) else {
                throw FormatError(.unsupportedVersion, "attachment \(index + 1) uses encoding \(rawEncoding), unknown to this secmail")
            }
            let length = try integer(reader.take(8))
            guard length <= payloadLength - reader.plaintextBytesConsumed else {
                throw FormatError(.invalidField, "attachment \(index + 1) claims more bytes than the payload holds")
            }
            let info = try AttachmentInfo(name: name, mediaType: mediaType, encoding: encoding, length: length)
            try sink.beginAttachment(info, index: index)
            try reader.forward(length) { piece in
                try sink.write(piece)
                progress?(reader.plaintextBytesConsumed, payloadLength)
            }
            try sink.endAttachment()
            infos.append(info)
        }
        try reader.expectEnd()
        return (text, infos)
    }

    private static func integer(_ bytes: [UInt8]) -> UInt64 {
        bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// Opens envelopes in two passes. Pass one (`verify`) parses the header, checks the exact size,
/// the sender, that the reader is a recipient, the sender's RSA-PSS signature over the header
/// and the ciphertext hash, and the key commitment, without decrypting anything. Pass two
/// (`VerifiedEnvelope.decrypt`) then decrypts.
public enum EnvelopeOpener {
    static let hashBlockSize = 1 << 20

    /// Parses just the header, for showing who an envelope claims to be from.
    public static func readHeader(_ source: EnvelopeSource) throws -> EnvelopeHeader {
        try parseHeader(source).header
    }

    /// Pass one. `sender` is the bundle the reader trusts for the claimed sender; `keys` are
    /// the reader's private keys (every version). The sender of a message reads her kept copy
    /// with its `sentCopyKey`, which stands in for a recipient entry.
    public static func verify(
        _ source: EnvelopeSource,
        sender: IdentityBundle,
        keys: [RecipientKey],
        sentCopyKey: SentCopyKey? = nil,
        progress: EnvelopeSealer.Progress? = nil
    ) throws -> VerifiedEnvelope {
        let (header, payloadOffset) = try parseHeader(source)
        try checkLayout(header, payloadOffset: payloadOffset, source: source, sender: sender)
        let entries = wrappedKeys(header, sentCopyKey: sentCopyKey)
        let mine = keys.compactMap { key in
            entries.first { $0.fingerprint == key.fingerprint }.map { (key, $0) }
        }
        guard let (key, entry) = mine.first else { throw notARecipient(header) }
        // The private-key operation (often a round trip to the key agent) does not depend on the
        // payload, so it runs on the other core while the payload is hashed for the signature
        // check. Its outcome is looked at only once the signature verified: a forged envelope is
        // reported as forged, and nothing is decrypted with a key from an unverified header.
        let unwrapper = key.unwrapper, wrappedKey = entry.wrappedKey
        let (_, unwrapped) = try concurrently({
            try checkSignature(header, payloadOffset: payloadOffset, source: source, sender: sender, payloadDigest: nil, progress: progress)
        }, {
            Result { try unwrapper.unwrapContentKey(wrappedKey) }
        })
        let contentKey: SymmetricKey
        do {
            contentKey = try unwrapped.get()
        } catch {
            throw FormatError(.authenticationFailed, "the content key wrapped for you could not be decrypted with your key")
        }
        let keys = try PayloadKeys(contentKey: contentKey, messageID: header.messageID)
        guard constantTimeEqual(keys.commitment, header.keyCommitment) else {
            throw FormatError(.authenticationFailed, "the content key wrapped for you does not match the envelope's key commitment")
        }
        return VerifiedEnvelope(header: header, sender: sender, openedAs: key.fingerprint, keys: keys,
                                source: source, payloadOffset: payloadOffset)
    }

    /// What pass one checks before it needs a private key — the header parses, the file holds
    /// exactly header, payload and signature, the header names `sender` — and which of
    /// `fingerprints` (the reader's key versions) the envelope is sealed to, in that order. A
    /// reader then unlocks only those keys, and hears that a message is not for them (or not from
    /// `sender`) before any passphrase is asked. Nothing is verified yet.
    public static func readerKeys(in source: EnvelopeSource, sender: IdentityBundle, among fingerprints: [Fingerprint],
                                  sentCopyKey: SentCopyKey? = nil) throws -> [Fingerprint] {
        let (header, payloadOffset) = try parseHeader(source)
        try checkLayout(header, payloadOffset: payloadOffset, source: source, sender: sender)
        let entries = wrappedKeys(header, sentCopyKey: sentCopyKey)
        let listed = fingerprints.filter { fingerprint in entries.contains { $0.fingerprint == fingerprint } }
        guard !listed.isEmpty else { throw notARecipient(header) }
        return listed
    }

    /// The content key's wraps a reader may use: the envelope's recipient entries, and the
    /// sender's kept key when it is this message's and was kept for the key version that signed
    /// it. A key kept for another message is ignored, and so is one under this id in an
    /// envelope someone else signed (a recipient of the sender's message knows its content key,
    /// and could seal something of theirs with it); a wrong key fails the key commitment.
    private static func wrappedKeys(_ header: EnvelopeHeader, sentCopyKey: SentCopyKey?) -> [EnvelopeHeader.Recipient] {
        guard let sentCopyKey, sentCopyKey.messageID == header.messageID,
              sentCopyKey.wrapped.fingerprint == header.senderFingerprint else { return header.recipients }
        return header.recipients + [sentCopyKey.wrapped]
    }

    private static func notARecipient(_ header: EnvelopeHeader) -> FormatError {
        FormatError(.notARecipient, "this message was not encrypted to your key; it lists \(header.recipients.count) other recipient key(s)")
    }

    /// The sender's signature alone, without decrypting anything (what a relay checks at deposit,
    /// where it holds no recipient key): the header parses, the size is exactly header, payload
    /// and signature, the header names `sender`, and the signature over the header and the
    /// ciphertext's hash verifies with its key. Returns the header. With `payloadDigest` (made
    /// by an `EnvelopePayloadDigester` from the very bytes `source` holds, as they arrived) the
    /// ciphertext is not read again; a digest of another part of the envelope is not used.
    @discardableResult
    public static func verifySignature(_ source: EnvelopeSource, sender: IdentityBundle,
                                       payloadDigest: EnvelopePayloadDigester.Digest? = nil) throws -> EnvelopeHeader {
        let (header, payloadOffset) = try parseHeader(source)
        try checkLayout(header, payloadOffset: payloadOffset, source: source, sender: sender)
        let digest = payloadDigest.flatMap { $0.payloadOffset == payloadOffset && $0.payloadLength == header.ciphertextLength ? $0.sha256 : nil }
        try checkSignature(header, payloadOffset: payloadOffset, source: source, sender: sender, payloadDigest: digest, progress: nil)
        return header
    }

    /// The file must hold exactly the header, the payload and a length-prefixed signature, and
    /// the header must name `sender` (its name and key fingerprint).
    private static func checkLayout(_ header: EnvelopeHeader, payloadOffset: UInt64, source: EnvelopeSource, sender: IdentityBundle) throws {
        let ciphertextLength = header.ciphertextLength
        let trailerOffset = payloadOffset + ciphertextLength
        let lengthField = try source.read(at: trailerOffset, count: 2)
        guard lengthField.count == 2 else {
            throw FormatError(.truncated, "the envelope is truncated: it should hold \(ciphertextLength) payload bytes and a signature, but has \(source.byteCount) bytes in all")
        }
        let expectedSize = trailerOffset + 2 + (UInt64(lengthField[0]) << 8 | UInt64(lengthField[1]))
        guard source.byteCount >= expectedSize else {
            throw FormatError(.truncated, "the envelope is truncated: \(source.byteCount) of \(expectedSize) bytes")
        }
        guard source.byteCount == expectedSize else {
            throw FormatError(.trailingBytes, "the envelope has \(source.byteCount - expectedSize) unexpected bytes after its signature")
        }
        guard header.senderFingerprint == sender.fingerprint, header.senderName == sender.name else {
            throw FormatError(.senderMismatch, "the envelope says it is from \(header.senderName) with key \(header.senderFingerprint.grouped), not from the given bundle (\(sender.name), \(sender.fingerprint.grouped))")
        }
    }

    /// Checks the signature with `sender`'s signing key over the header and the payload
    /// ciphertext's hash (`payloadDigest`, or hashed here from `source`).
    private static func checkSignature(_ header: EnvelopeHeader, payloadOffset: UInt64, source: EnvelopeSource, sender: IdentityBundle,
                                       payloadDigest: [UInt8]?, progress: EnvelopeSealer.Progress?) throws {
        let trailerOffset = payloadOffset + header.ciphertextLength
        let digest = try payloadDigest ?? hashPayload(header, payloadOffset: payloadOffset, source: source, progress: progress)
        let lengthField = try source.read(at: trailerOffset, count: 2)
        let signature = try source.read(at: trailerOffset + 2, count: Int(UInt64(lengthField[0]) << 8 | UInt64(lengthField[1])))
        let signed = EnvelopeSealer.signatureContext + header.encoded + digest
        guard sender.signingKey.isValidSignature(signature, for: signed) else {
            throw FormatError(.authenticationFailed, "the signature does not verify: the envelope was changed after \(sender.name) signed it, or \(sender.name) did not sign it")
        }
    }

    /// SHA-256 of the payload ciphertext, read from `source` in blocks.
    private static func hashPayload(_ header: EnvelopeHeader, payloadOffset: UInt64, source: EnvelopeSource,
                                    progress: EnvelopeSealer.Progress?) throws -> [UInt8] {
        let ciphertextLength = header.ciphertextLength
        let trailerOffset = payloadOffset + ciphertextLength
        let hasher = try SHA256()
        var block = [UInt8](repeating: 0, count: Int(min(UInt64(hashBlockSize), max(ciphertextLength, 1))))
        var offset = payloadOffset
        while offset < trailerOffset {
            let count = Int(min(UInt64(block.count), trailerOffset - offset))
            guard try source.read(at: offset, into: &block, range: 0..<count) == count else {
                throw FormatError(.truncated, "the envelope ended while its payload was being read")
            }
            hasher.update(block[0..<count])
            offset += UInt64(count)
            progress?(offset - payloadOffset, ciphertextLength)
        }
        return hasher.finalize()
    }

    private static func parseHeader(_ source: EnvelopeSource) throws -> (header: EnvelopeHeader, payloadOffset: UInt64) {
        // No header is longer than its envelope, nor than the largest header (275 KB, for 256
        // recipients); most fit in a few KiB (about 1 KB a recipient). So the first 16 KiB are
        // read, and up to the bound only for a header that runs past them: `open` reads the
        // header three times (readHeader, readerKeys, verify), each into a zeroed buffer.
        func parse(first count: UInt64) throws -> (header: EnvelopeHeader, payloadOffset: UInt64) {
            var reader = ByteReader(try source.read(at: 0, count: Int(count)), subject: "envelope header")
            return (try EnvelopeHeader(reading: &reader), UInt64(reader.offset))
        }
        let bound = min(UInt64(EnvelopeHeader.maximumEncodedLength), source.byteCount)
        let readAhead = min(bound, Self.headerReadAhead)
        if readAhead < bound {
            do {
                return try parse(first: readAhead)
            } catch let error as FormatError where error.code == .truncated {
                // A longer header: read up to the bound below.
            }
        }
        return try parse(first: bound)
    }

    /// How much of an envelope is read first for its header.
    static let headerReadAhead: UInt64 = 16 << 10
}
