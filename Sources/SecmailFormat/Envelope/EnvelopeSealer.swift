import FoundationEssentials
import Glibc
import SecmailCrypto

/// The sender's side of sealing: the published bundle and its signing key (in this process or
/// in the key agent).
public struct SenderIdentity: Sendable {
    public let bundle: IdentityBundle
    public let signer: any MessageSigner

    /// Pairs a bundle with its signing key; fails if the key is not the bundle's.
    public init(bundle: IdentityBundle, signer: any MessageSigner) throws {
        guard try signer.signs(for: bundle) else {
            throw FormatError(.invalidField, "the signing key does not belong to \(bundle.name)'s bundle")
        }
        self.bundle = bundle
        self.signer = signer
    }

    public init(bundle: IdentityBundle, signingKey: RSAPrivateKey) throws {
        try self.init(bundle: bundle, signer: signingKey)
    }
}

/// What sealing produced.
public struct SealedEnvelope: Sendable {
    public let header: EnvelopeHeader
    /// Total bytes written to the sink.
    public let byteCount: UInt64
    /// The content key wrapped for the sender's own key, when she asked to keep a copy she can
    /// read (`keepingCopyFor`); it is not in the envelope.
    public let sentCopyKey: SentCopyKey?
}

/// Seals a message for one or more recipients: a fresh content key wrapped for each of them,
/// the payload encrypted in 64 KiB chunks, and the whole signed by the sender. Streams: memory
/// use does not grow with attachment size.
public struct EnvelopeSealer: Sendable {
    /// Reports plaintext bytes sealed so far out of the total.
    public typealias Progress = (_ done: UInt64, _ total: UInt64) -> Void

    let random: RandomSource
    let clock: @Sendable () -> Int64

    static let signatureContext: [UInt8] = Array("secmail envelope v1 signature".utf8) + [0]

    /// A sealer with the system CSPRNG and clock. Tests inject both to build golden vectors.
    public init(
        random: RandomSource = SystemRandom(),
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) {
        self.random = random
        self.clock = clock
    }

    /// Seals `text` and `attachments` from `sender` to `recipients` into `sink`, with the
    /// sender's latest verified log checkpoint (`senderCheckpoint`, a signed note) when it has one.
    /// With `keeper` (the sender's own bundle), the content key is also wrapped for that key,
    /// outside the envelope: `SealedEnvelope.sentCopyKey`, for the sender's kept copy.
    public func seal(
        text: String,
        attachments: [OutgoingAttachment] = [],
        from sender: SenderIdentity,
        to recipients: [IdentityBundle],
        keepingCopyFor keeper: IdentityBundle? = nil,
        senderCheckpoint: String? = nil,
        into sink: ByteSink,
        progress: Progress? = nil
    ) throws -> SealedEnvelope {
        let textBytes = Array(text.utf8)
        let unique = try Self.checked(textByteCount: textBytes.count, attachmentCount: attachments.count, recipients: recipients)
        let infos = attachments.map(\.info)
        let payloadLength = MessageContent.plaintextLength(textByteCount: textBytes.count, attachments: infos)
        let messageID = try MessageID(bytes: random.bytes(count: MessageID.byteCount))
        let contentKey = try SymmetricKey.random(count: 32, using: random)
        let keys = try PayloadKeys(contentKey: contentKey, messageID: messageID)
        let wrapped = try unique.map { bundle in
            EnvelopeHeader.Recipient(fingerprint: bundle.fingerprint, wrappedKey: try bundle.encryptionKey.wrap(contentKey))
        }
        let header = try EnvelopeHeader(
            messageID: messageID, time: clock(), senderName: sender.bundle.name,
            senderFingerprint: sender.bundle.fingerprint, payloadLength: payloadLength,
            keyCommitment: keys.commitment, recipients: wrapped, senderCheckpoint: senderCheckpoint)
        try sink.write(header.encoded)

        let writer = try ChunkWriter(cipher: keys.cipher, totalLength: payloadLength,
                                     chunkSize: Int(header.chunkSize), sink: sink)
        var textField = ByteWriter()
        textField.append(UInt32(textBytes.count))
        try writer.append(textField.bytes)
        try writer.append(textBytes)
        var countField = ByteWriter()
        countField.append(UInt16(attachments.count))
        try writer.append(countField.bytes)
        for attachment in attachments {
            try writer.append(MessageContent.encodeHeader(of: attachment.info))
            try stream(attachment, into: writer) { progress?(writer.plaintextBytesAppended, payloadLength) }
        }
        let ciphertextHash = try writer.finish()
        progress?(payloadLength, payloadLength)
        sink.payloadWritten()

        let signature = try sender.signer.sign(Self.signatureContext + header.encoded + ciphertextHash)
        var trailer = ByteWriter()
        trailer.append(u16Prefixed: signature)
        try sink.write(trailer.bytes)
        try sink.finish()
        let sentCopyKey = try keeper.map { keeper in
            try SentCopyKey(messageID: messageID, wrapped: EnvelopeHeader.Recipient(fingerprint: keeper.fingerprint,
                                                                                   wrappedKey: try keeper.encryptionKey.wrap(contentKey)),
                            recipientNames: unique.map(\.name))
        }
        return SealedEnvelope(
            header: header,
            byteCount: UInt64(header.encoded.count) + writer.ciphertextBytesWritten + UInt64(trailer.bytes.count),
            sentCopyKey: sentCopyKey)
    }

    /// What a message may hold, checked before anything is sealed; returns the recipients with
    /// each key named once.
    private static func checked(textByteCount: Int, attachmentCount: Int, recipients: [IdentityBundle]) throws -> [IdentityBundle] {
        guard textByteCount <= MessageContent.maximumTextLength else {
            throw FormatError(.tooLarge, "the message text is over \(MessageContent.maximumTextLength >> 20) MiB; attach it as a file instead")
        }
        guard attachmentCount <= MessageContent.maximumAttachments else {
            throw FormatError(.tooLarge, "at most \(MessageContent.maximumAttachments) attachments fit in one message")
        }
        var unique: [IdentityBundle] = []
        for bundle in recipients where !unique.contains(where: { $0.fingerprint == bundle.fingerprint }) {
            unique.append(bundle)
        }
        guard !unique.isEmpty else {
            throw FormatError(.invalidField, "a message needs at least one recipient")
        }
        return unique
    }

    private func stream(_ attachment: OutgoingAttachment, into writer: ChunkWriter, onBlock: () -> Void) throws {
        switch attachment.source {
        case .bytes(let bytes):
            try writer.append(bytes)
        case .file(let url):
            let file = try PositionalFile(readingAtPath: url.path)
            guard try file.size() == attachment.info.length else {
                throw FormatError(.io, "attachment \(url.path) changed size before it was sealed")
            }
            try writer.append(from: file, count: attachment.info.length, onProgress: onBlock)
            guard try file.size() == attachment.info.length else {
                throw FormatError(.io, "attachment \(url.path) changed size while it was being sealed")
            }
        }
    }
}
