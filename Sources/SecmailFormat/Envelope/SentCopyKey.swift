import SecmailCrypto

/// What lets a sender read a message she sent: its content key wrapped (RSA-OAEP, as in an
/// envelope) to one of her own key versions, with the names she sent it to. Kept beside the
/// sealed copy in her home (sent/ID.key), never in the envelope: the envelope lists the
/// recipients alone (P1), so a later theft of the sender's keys opens nothing that the relay, or
/// anyone who recorded the traffic, holds. The envelope's key commitment checks the key when it
/// is used, as it checks a recipient's. Layout: docs/PROTOCOL.md, "Sent-copy key".
public struct SentCopyKey: Sendable, Equatable {
    public let messageID: MessageID
    /// The sender's key version the content key is wrapped for, and the wrapped key.
    public let wrapped: EnvelopeHeader.Recipient
    /// The recipients as the sender named them (the envelope lists key fingerprints alone).
    public let recipientNames: [IdentityName]
    public let encoded: [UInt8]

    static let magic: [UInt8] = Array("SMSK".utf8)
    static let formatVersion: UInt8 = 1

    init(messageID: MessageID, wrapped: EnvelopeHeader.Recipient, recipientNames: [IdentityName]) throws {
        guard (1...EnvelopeHeader.maximumRecipients).contains(recipientNames.count) else {
            throw FormatError(.invalidField, "a sent message has 1 to \(EnvelopeHeader.maximumRecipients) recipients, not \(recipientNames.count)")
        }
        var writer = ByteWriter()
        writer.append(raw: Self.magic)
        writer.append(Self.formatVersion)
        writer.append(raw: messageID.bytes)
        writer.append(raw: wrapped.fingerprint.bytes)
        writer.append(u16Prefixed: wrapped.wrappedKey)
        writer.append(UInt16(recipientNames.count))
        for name in recipientNames {
            writer.append(u8Prefixed: Array(name.value.utf8))
        }
        try self.init(encoded: writer.bytes)
    }

    /// Parses a whole sent-copy key file.
    public init(encoded: [UInt8]) throws {
        var reader = ByteReader(encoded, subject: "sent-copy key")
        try reader.expectHeader(magic: Self.magic, version: Self.formatVersion, kind: "sent-copy key")
        messageID = try MessageID(bytes: reader.read(count: MessageID.byteCount))
        let fingerprint = try Fingerprint(bytes: reader.read(count: Fingerprint.byteCount))
        let wrappedKey = try reader.readU16Prefixed("wrapped key", allowed: 1...EnvelopeHeader.maximumWrappedKeyLength)
        wrapped = EnvelopeHeader.Recipient(fingerprint: fingerprint, wrappedKey: wrappedKey)
        let count = Int(try reader.readUInt16())
        guard (1...EnvelopeHeader.maximumRecipients).contains(count) else {
            throw FormatError(.invalidField, "the sent-copy key names \(count) recipients; 1 to \(EnvelopeHeader.maximumRecipients) are allowed")
        }
        var names: [IdentityName] = []
        for _ in 0..<count {
            let bytes = try reader.readU8Prefixed("recipient name", allowed: 1...IdentityName.maximumLength)
            guard let text = String(validating: bytes, as: UTF8.self), let name = try? IdentityName(normalised: text) else {
                throw FormatError(.invalidField, "the sent-copy key names a recipient that is not a valid normalised name")
            }
            names.append(name)
        }
        recipientNames = names
        try reader.expectEnd()
        self.encoded = encoded
    }
}
