import Foundation
import Hummingbird
import NIOCore
import SecmailAPI
import SecmailCrypto
import SecmailFormat

/// `/v1/messages` (deposit) and `/v1/mailbox` (the authenticated owner's list, fetch, delete).
/// See docs/API.md.
struct MailboxController: Sendable {
    let mailboxes: MailboxStore
    let authenticator: Authenticator
    static let maximumRecipients = 64

    func addRoutes(to router: Router<RelayRequestContext>) {
        router.on(.deposit) { request, _ in try await deposit(request) }
        router.on(.mailbox) { request, _ in
            let owner = try await authenticatedName(request, authenticator)
            return MailboxListResponse(messages: try await mailboxes.list(owner).map {
                .init(id: $0.messageID.hex, from: $0.sender, time: $0.receivedAt, size: $0.size)
            })
        }
        router.on(.fetchMessage) { request, context in
            let owner = try await authenticatedName(request, authenticator)
            let (url, size) = try await mailboxes.envelopeFile(owner, try Self.messageID(context.parameters.require("id")))
            let file = try PositionalFile(readingAtPath: url.path)
            // Streamed in 256 KiB pieces: a large envelope never sits whole in memory.
            let body = ResponseBody(contentLength: size) { writer in
                var buffer = [UInt8](repeating: 0, count: 256 * 1024)
                var offset: UInt64 = 0
                while offset < UInt64(size) {
                    let count = try file.read(at: offset, into: &buffer, range: 0..<buffer.count)
                    guard count > 0 else { break }
                    try await writer.write(ByteBuffer(bytes: buffer[0..<count]))
                    offset += UInt64(count)
                }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: body)
        }
        router.on(.deleteMessage) { request, context in
            let owner = try await authenticatedName(request, authenticator)
            try await mailboxes.delete(owner, try Self.messageID(context.parameters.require("id")))
            return Response(status: .noContent)
        }
    }

    /// Streams the body to a file (bounded), then hands it to the store, which checks it all.
    func deposit(_ request: Request) async throws -> EditedResponse<DepositResponse> {
        let depositor = try await authenticatedName(request, authenticator)
        var names: [IdentityName] = []
        for raw in request.uri.queryParameters.getAll(Endpoint.Query.recipient) {
            let name = try IdentityName(String(raw))
            if !names.contains(name) { names.append(name) }
        }
        guard (1...Self.maximumRecipients).contains(names.count) else {
            throw APIError(status: .badRequest, code: .malformedRequest, reason: "name 1 to \(Self.maximumRecipients) recipients as ?to=NAME&to=NAME")
        }
        // Unknown recipients are refused before a byte of the body is read.
        try await mailboxes.checkRecipients(names)
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > mailboxes.maximumEnvelopeSize {
            throw RelayError(.quotaExceeded, "the envelope is \(length) bytes; this relay accepts at most \(mailboxes.maximumEnvelopeSize)")
        }
        let url = mailboxes.incomingFile()
        let hasher = try SHA256()
        var total = 0
        do {
            let file = try PositionalFile(creatingAtPath: url.path, permissions: 0o600)
            for try await buffer in request.body {
                total += buffer.readableBytes
                guard total <= mailboxes.maximumEnvelopeSize else {
                    throw RelayError(.quotaExceeded, "the envelope is larger than the \(mailboxes.maximumEnvelopeSize) bytes this relay accepts")
                }
                let bytes = Array(buffer.readableBytesView)
                hasher.update(bytes)
                try file.write(bytes[...])
            }
            try file.synchronize()
        } catch {
            try? FileManager.default.removeItem(at: url)
            throw error
        }
        let id = try await mailboxes.deposit(file: url, sha256: hasher.finalize(), recipients: names, depositor: depositor)
        return EditedResponse(status: .created, response: DepositResponse(messageId: id.hex, size: total, recipients: names.map(\.value)))
    }

    static func messageID(_ hex: String) throws -> MessageID {
        do { return try MessageID(hex: hex) } catch let error as FormatError {
            throw APIError(status: .badRequest, code: .malformedRequest, reason: error.reason)
        }
    }
}
