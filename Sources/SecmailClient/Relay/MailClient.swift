import Foundation
import SecmailCrypto
import SecmailFormat

/// Mail through the relay: `send` (verified recipients, one multi-recipient envelope, deposit),
/// `inbox`, and `read` (fetch, verify with the verified sender key, decrypt, keep a local copy,
/// and only then delete it on the relay).
///
///     $SECMAIL_HOME/sent/ID.sm        what this user sent, as sealed
///     $SECMAIL_HOME/received/ID.sm    every message read (also the record of ids seen, P4)
public struct MailClient: Sendable {
    public let home: SecmailHome

    public init(home: SecmailHome) {
        self.home = home
    }

    var sentDirectory: URL { home.url.appendingPathComponent("sent", isDirectory: true) }
    var receivedDirectory: URL { home.url.appendingPathComponent("received", isDirectory: true) }

    public struct Sent: Sendable {
        public let messageID: MessageID
        public let size: UInt64
        public let recipients: [IdentityBundle]
    }

    /// Looks up and verifies every recipient (as `lookup` does: log, pins, rotations), seals one
    /// envelope to all of them, and deposits it.
    public func send(to names: [IdentityName], text: String, attachments: [OutgoingAttachment], sender: SenderIdentity,
                     sealProgress: EnvelopeSealer.Progress? = nil,
                     uploadProgress: (@Sendable (UInt64, UInt64) -> Void)? = nil) async throws -> Sent {
        var recipients: [IdentityBundle] = []
        for name in names {
            recipients.append(try await DirectoryClient(home: home).lookup(name).bundle)
        }
        try FileSystem.createPrivateDirectory(sentDirectory)
        let staging = sentDirectory.appendingPathComponent(".sending-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: staging) }
        let sealed: SealedEnvelope
        do {
            let file = try PositionalFile(creatingAtPath: staging.path, permissions: 0o600)
            let sink = FileSink(file: file)
            sealed = try EnvelopeSealer().seal(text: text, attachments: attachments, from: sender, to: recipients, into: sink, progress: sealProgress)
            try sink.synchronize()
        } catch let error as FormatError where error.code == .io {
            throw ClientError(.io, error.reason)
        }
        let session = try RelaySession(home: home)
        let token = try await session.authenticate(sender)
        let query = names.map { "to=\($0.value)" }.joined(separator: "&")
        _ = try DirectoryClient.expect(201, await session.connection.send(
            .POST, "/v1/messages?\(query)", body: .file(staging), bearer: token, progress: uploadProgress))
        // The relay holds it now; keep the sealed copy as the record of what was sent.
        try? AtomicRename.replace(sentDirectory.appendingPathComponent("\(sealed.header.messageID.hex).sm"), with: staging)
        return Sent(messageID: sealed.header.messageID, size: sealed.byteCount, recipients: recipients)
    }

    public struct Listing: Sendable, Decodable {
        public let id: String
        public let from: String
        public let time: Int64
        public let size: Int
    }

    /// The messages waiting in this user's mailbox.
    public func inbox(_ identity: SenderIdentity) async throws -> [Listing] {
        let session = try RelaySession(home: home)
        let token = try await session.authenticate(identity)
        let answer = try DirectoryClient.expect(200, await session.connection.send(.GET, "/v1/mailbox", bearer: token))
        struct Messages: Decodable { let messages: [Listing] }
        guard let decoded = try? JSONDecoder().decode(Messages.self, from: Data(answer.body)) else {
            throw ClientError(.verificationFailed, "the relay's mailbox listing is not the expected JSON")
        }
        return decoded.messages
    }

    public struct Read: Sendable {
        public let message: OpenedMessage
        public let sender: IdentityBundle
        public let savedFiles: [URL]
        public let notes: [String]
    }

    /// Fetches message `id`, verifies it with the sender's verified key (the key version that
    /// signed it, proven in the log), decrypts it into `outputDirectory`, stores the envelope
    /// under received/, and only then deletes it from the relay. A message id already read is
    /// refused (P4); nothing is written unless everything verified.
    public func read(_ id: MessageID, identity: SenderIdentity, keys: [RecipientKey], into outputDirectory: URL,
                     progress: EnvelopeSealer.Progress? = nil) async throws -> Read {
        try FileSystem.createPrivateDirectory(receivedDirectory)
        let stored = receivedDirectory.appendingPathComponent("\(id.hex).sm")
        guard !FileManager.default.fileExists(atPath: stored.path) else {
            throw ClientError(.verificationFailed, "message \(id) was read before (\(stored.path)); a replayed message is refused")
        }
        let session = try RelaySession(home: home)
        let token = try await session.authenticate(identity)
        let download = receivedDirectory.appendingPathComponent(".fetching-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: download) }
        _ = try DirectoryClient.expect(200, await session.connection.send(
            .GET, "/v1/mailbox/\(id.hex)", body: nil, bearer: token, saveBodyTo: download, timeout: .seconds(600)))
        let source: FileEnvelopeSource
        let header: EnvelopeHeader
        do {
            source = try FileEnvelopeSource(url: download)
            header = try EnvelopeOpener.readHeader(source)
        } catch let error as FormatError {
            throw ClientError(.verificationFailed, "message \(id) from the relay is not a valid envelope: \(error.reason)")
        }
        guard header.messageID == id else {
            throw ClientError(.verificationFailed, "the relay served message \(header.messageID) when asked for \(id)")
        }
        let sender = try await senderBundle(for: header)
        let verified = try EnvelopeOpener.verify(source, sender: sender, keys: keys, progress: progress)
        let directory = try AttachmentDirectory(outputDirectory: outputDirectory)
        let message: OpenedMessage
        do {
            message = try verified.decrypt(into: directory, progress: progress)
        } catch {
            directory.abort()
            throw error
        }
        let saved = try directory.commit()
        // The download was fsynced when it arrived (RelayConnection); the rename must be durable too.
        do {
            try AtomicRename.replace(stored, with: download)
        } catch let error as FormatError {
            throw ClientError(.io, error.reason)
        }
        try FileSystem.synchronizeDirectory(receivedDirectory)
        // Stored and verified locally: now the relay's copy may go (P9).
        _ = try DirectoryClient.expect(204, await session.connection.send(.DELETE, "/v1/mailbox/\(id.hex)", bearer: token))
        return Read(message: message, sender: sender, savedFiles: saved, notes: directory.notes)
    }

    /// The sender's bundle for the key version that signed `header`: the current one (verified
    /// like `lookup`, pins included) or, for mail signed before a rotation, the logged earlier
    /// version with that fingerprint.
    private func senderBundle(for header: EnvelopeHeader) async throws -> IdentityBundle {
        let current = try await DirectoryClient(home: home).lookup(header.senderName).bundle
        if current.fingerprint == header.senderFingerprint { return current }
        var session = try RelaySession(home: home)
        let lookup = try await session.verifiedLookup(header.senderName)
        try session.save()
        let history = try await session.verifiedHistory(header.senderName, at: lookup)
        guard let version = history.first(where: { $0.fingerprint == header.senderFingerprint }) else {
            throw ClientError(.verificationFailed, "the message claims to be signed by \(header.senderName) with key \(header.senderFingerprint.grouped), which the log does not list for \(header.senderName)")
        }
        return version
    }
}
