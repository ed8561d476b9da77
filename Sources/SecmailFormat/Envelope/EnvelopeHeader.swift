import SecmailCrypto

/// The clear-text, signed front of an envelope: who sent it to which key fingerprints, when,
/// under which message id, how long the payload is, and the content key wrapped per recipient.
/// Layout: docs/PROTOCOL.md, "Envelope".
public struct EnvelopeHeader: Sendable, Equatable {
    /// One recipient: the fingerprint of the bundle the content key was wrapped for.
    public struct Recipient: Sendable, Equatable {
        public let fingerprint: Fingerprint
        /// The 32-byte content key, RSA-OAEP-encrypted to the recipient's encryption key.
        public let wrappedKey: [UInt8]
    }

    public let suite: Suite
    /// Random, 16 bytes; unique per message.
    public let messageID: MessageID
    /// Sealing time, seconds since 1970-01-01 UTC.
    public let time: Int64
    public let senderName: IdentityName
    public let senderFingerprint: Fingerprint
    /// Plaintext bytes per chunk (65536 in version 1).
    public let chunkSize: UInt32
    /// Plaintext payload length in bytes.
    public let payloadLength: UInt64
    /// HKDF output binding every recipient to the same content key (so that no two recipients
    /// can be handed different plaintexts under one signature).
    public let keyCommitment: [UInt8]
    public let recipients: [Recipient]
    /// The latest log checkpoint (signed note) the sender's client had verified when sealing,
    /// signed with the rest of the header: readers compare it with their own view of the log to
    /// detect a relay showing different users different logs. Nil when the sender had none
    /// (sealed offline) or in a version 1 envelope.
    public let senderCheckpoint: String?
    /// The canonical encoding: what the signature covers.
    public let encoded: [UInt8]

    static let magic: [UInt8] = Array("SMEV".utf8)
    static let formatVersion: UInt8 = 2
    /// Longest sender checkpoint (a signed note with a few signatures).
    public static let maximumCheckpointLength = 4096
    /// Chunk size of version 1.
    public static let chunkSize: UInt32 = 65536
    public static let maximumRecipients = 256
    static let maximumWrappedKeyLength = 1024
    /// Largest payload: 2^40 bytes (1 TiB).
    public static let maximumPayloadLength: UInt64 = 1 << 40
    /// Upper bound on an encoded header, used to read it from a file's start in one go.
    public static let maximumEncodedLength = 64 + 1 + IdentityName.maximumLength + 32 + 4 + 8 + 32 + 2
        + maximumRecipients * (Fingerprint.byteCount + 2 + maximumWrappedKeyLength) + 2 + maximumCheckpointLength

    init(
        messageID: MessageID, time: Int64, senderName: IdentityName, senderFingerprint: Fingerprint,
        payloadLength: UInt64, keyCommitment: [UInt8], recipients: [Recipient], senderCheckpoint: String?
    ) throws {
        guard (1...Self.maximumRecipients).contains(recipients.count) else {
            throw FormatError(.invalidField, "an envelope has 1 to \(Self.maximumRecipients) recipients, not \(recipients.count)")
        }
        guard payloadLength <= Self.maximumPayloadLength else {
            throw FormatError(.tooLarge, "the message is larger than the 1 TiB an envelope can carry")
        }
        var writer = ByteWriter()
        writer.append(raw: Self.magic)
        writer.append(Self.formatVersion)
        writer.append(Suite.rsa3072AES256GCM.rawValue)
        writer.append(raw: messageID.bytes)
        writer.append(time)
        writer.append(u8Prefixed: Array(senderName.value.utf8))
        writer.append(raw: senderFingerprint.bytes)
        writer.append(Self.chunkSize)
        writer.append(payloadLength)
        writer.append(raw: keyCommitment)
        writer.append(UInt16(recipients.count))
        for recipient in recipients {
            writer.append(raw: recipient.fingerprint.bytes)
            writer.append(u16Prefixed: recipient.wrappedKey)
        }
        let checkpoint = Array((senderCheckpoint ?? "").utf8)
        guard checkpoint.count <= Self.maximumCheckpointLength else {
            throw FormatError(.tooLarge, "the sender checkpoint is over \(Self.maximumCheckpointLength) bytes")
        }
        writer.append(u16Prefixed: checkpoint)
        try self.init(encoded: writer.bytes)
    }

    /// Parses a complete header; `encoded` must hold exactly the header.
    public init(encoded: [UInt8]) throws {
        var reader = ByteReader(encoded, subject: "envelope header")
        try self.init(reading: &reader)
        try reader.expectEnd()
    }

    /// Parses a header from the start of `reader`, leaving it at the first payload byte.
    init(reading reader: inout ByteReader) throws {
        let start = reader.offset
        let version = try reader.expectHeader(magic: Self.magic, versions: 1...Self.formatVersion, kind: "envelope")
        suite = try Suite(validating: reader.readUInt16(), in: "envelope")
        messageID = try MessageID(bytes: reader.read(count: MessageID.byteCount))
        time = try reader.readInt64()
        let nameBytes = try reader.readU8Prefixed("sender name", allowed: 1...IdentityName.maximumLength)
        guard let nameText = String(validating: nameBytes, as: UTF8.self),
              let name = try? IdentityName(nameText), name.value == nameText else {
            throw FormatError(.invalidField, "the envelope's sender name is not a valid normalised name")
        }
        senderName = name
        senderFingerprint = try Fingerprint(bytes: reader.read(count: Fingerprint.byteCount))
        chunkSize = try reader.readUInt32()
        guard chunkSize == Self.chunkSize else {
            throw FormatError(.invalidField, "the envelope's chunk size is \(chunkSize); version 1 uses \(Self.chunkSize)")
        }
        payloadLength = try reader.readUInt64()
        guard payloadLength <= Self.maximumPayloadLength else {
            throw FormatError(.tooLarge, "the envelope claims a payload over 1 TiB")
        }
        keyCommitment = try reader.read(count: PayloadKeys.commitmentByteCount)
        let count = Int(try reader.readUInt16())
        guard (1...Self.maximumRecipients).contains(count) else {
            throw FormatError(.invalidField, "the envelope has \(count) recipients; 1 to \(Self.maximumRecipients) are allowed")
        }
        var recipients: [Recipient] = []
        var seen = Set<Fingerprint>()
        for _ in 0..<count {
            let fingerprint = try Fingerprint(bytes: reader.read(count: Fingerprint.byteCount))
            let wrapped = try reader.readU16Prefixed("wrapped key", allowed: 1...Self.maximumWrappedKeyLength)
            guard seen.insert(fingerprint).inserted else {
                throw FormatError(.invalidField, "the envelope lists one recipient twice")
            }
            recipients.append(Recipient(fingerprint: fingerprint, wrappedKey: wrapped))
        }
        self.recipients = recipients
        if version >= 2 {
            let checkpoint = try reader.readU16Prefixed("sender checkpoint", allowed: 0...Self.maximumCheckpointLength)
            guard let text = String(validating: checkpoint, as: UTF8.self) else {
                throw FormatError(.invalidField, "the envelope's sender checkpoint is not UTF-8")
            }
            senderCheckpoint = text.isEmpty ? nil : text
        } else {
            senderCheckpoint = nil
        }
        encoded = Array(reader.slice(from: start))
    }

    /// Bytes of ciphertext that follow the header: every chunk plus its 16-byte tag.
    public var ciphertextLength: UInt64 {
        payloadLength + UInt64(chunkCount) * UInt64(AESGCM.tagByteCount)
    }

    /// Number of chunks; an empty payload still has one (empty, final) chunk.
    public var chunkCount: UInt64 {
        max(1, (payloadLength + UInt64(chunkSize) - 1) / UInt64(chunkSize))
    }
}

/// A message id: 16 random bytes, shown as 32 hex digits.
public struct MessageID: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]
    public static let byteCount = 16

    public init(bytes: [UInt8]) throws {
        guard bytes.count == Self.byteCount else {
            throw FormatError(.invalidField, "a message id is \(Self.byteCount) bytes, not \(bytes.count)")
        }
        self.bytes = bytes
    }

    /// Parses the 32 hex digits `hex` prints.
    public init(hex text: String) throws {
        guard let bytes = hexDecoded(text), bytes.count == Self.byteCount else {
            throw FormatError(.invalidField, "a message id is \(2 * Self.byteCount) hex digits")
        }
        try self.init(bytes: bytes)
    }

    public var hex: String { hexEncoded(bytes) }

    public var description: String { hex }
}
