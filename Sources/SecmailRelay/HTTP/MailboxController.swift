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
    let uploads: UploadBudget
    let fetchReadAhead: FetchReadAhead
    static let maximumRecipients = 64

    func addRoutes(to router: Router<RelayRequestContext>) {
        router.on(.deposit) { request, context in try await deposit(request, context: context) }
        router.on(.mailbox) { request, _ in
            let owner = try await authenticatedName(request, authenticator)
            let query = request.uri.queryParameters
            var limit = MailboxListResponse.pageLimit
            if let raw = query[Endpoint.Query.limit[...]] {
                guard let asked = Int(String(raw)), (1...MailboxListResponse.pageLimit).contains(asked) else {
                    throw APIError(status: .badRequest, code: .malformedRequest, reason: "limit is 1 to \(MailboxListResponse.pageLimit)")
                }
                limit = asked
            }
            let page = try await mailboxes.list(owner, after: query[Endpoint.Query.after[...]].map(String.init), limit: limit)
            return MailboxListResponse(messages: page.messages.map {
                .init(id: $0.messageID.hex, from: $0.sender, time: $0.receivedAt, size: $0.size)
            }, next: page.next, usage: .init(bytes: page.usedBytes, quota: mailboxes.mailboxQuota))
        }
        router.on(.fetchMessage) { request, context in
            let owner = try await authenticatedName(request, authenticator)
            let id = try Self.messageID(context.parameters.require("id"))
            let body: ResponseBody
            switch try await mailboxes.storedEnvelope(owner, id) {
            case .inline(let bytes):
                body = ResponseBody(byteBuffer: ByteBuffer(bytes: bytes))
            case .file(let url, let size):
                // Streamed in pieces read on NIO's thread pool straight into the buffers that go
                // out: no blocked request task, never the whole envelope in memory.
                do {
                    body = try OutgoingEnvelopeFile(url: url, size: size, readAhead: fetchReadAhead, connectionLoop: context.connectionLoop).body
                } catch {
                    throw RelayError(.notFound, "message \(id) was deleted while it was being fetched")
                }
            case .chunks(let envelopeID, let size, let count):
                // One chunk (1 MiB) per read transaction, written out before the next is read.
                body = ResponseBody(contentLength: size) { [connectionLoop = context.connectionLoop] writer in
                    var paced = PacedBodyWriter(loop: connectionLoop)
                    for index in 0..<count {
                        try await paced.write(ByteBuffer(bytes: try await mailboxes.chunk(index, of: envelopeID)), to: &writer)
                    }
                    try await writer.finish(nil)
                }
            }
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: body)
        }
        router.on(.deleteMessage) { request, context in
            let owner = try await authenticatedName(request, authenticator)
            try await mailboxes.delete(owner, try Self.messageID(context.parameters.require("id")))
            return Response(status: .noContent)
        }
    }

    /// Takes a small body into memory or streams a larger one to a file (bounded), then hands it
    /// to the store, which checks it all.
    func deposit(_ request: Request, context: RelayRequestContext) async throws -> EditedResponse<DepositResponse> {
        let token = try bearerToken(request)
        let recipients = request.uri.queryParameters.getAll(Endpoint.Query.recipient).map { String($0) }
        let claimed = try request.uri.queryParameters[Endpoint.Query.messageID[...]].map { try Self.messageID(String($0)) }
        let contentLength = request.headers[.contentLength]
        let depositor: IdentityName, names: [IdentityName], declared: Int
        if let small = contentLength.flatMap({ Int($0) }), small <= MailboxStore.inlineLimit,
           let signedIn = authenticator.cachedName(owning: token) {
            // A small envelope from a session seen before: its recipients and their mailboxes'
            // room are checked in the commit that stores it (as they are for every deposit), so
            // the deposit goes to the database once. At most 64 KiB is read before a refusal.
            try authenticator.identityLimiter.take(signedIn.value, what: signedIn.value)
            depositor = signedIn
            (names, declared) = try Self.depositTerms(recipients: recipients, contentLength: contentLength,
                                                      maximumSize: mailboxes.maximumEnvelopeSize)
        } else {
            // Everything that can be refused is refused before a byte of the body is read: a
            // missing or oversized length, unknown recipients, a mailbox without room (or without
            // room for this sender), too many uploads at once. The token and the mailboxes are
            // read in one transaction (each trip to the database's thread and back costs a
            // loaded relay more than the reads themselves).
            let generation = authenticator.sessions?.generation
            (depositor, names, declared) = try await mailboxes.database.read { [authenticator, mailboxes] db in
                let depositor = try authenticator.name(owning: token, in: db, keepingFrom: generation)
                try authenticator.identityLimiter.take(depositor.value, what: depositor.value)
                let (names, declared) = try Self.depositTerms(recipients: recipients, contentLength: contentLength,
                                                              maximumSize: mailboxes.maximumEnvelopeSize)
                try mailboxes.admit(declared, to: names, from: depositor, claimed: claimed, in: db)
                return (depositor, names, declared)
            }
        }
        try uploads.reserve(declared, for: depositor.value)
        defer { uploads.release(declared, for: depositor.value) }
        let id: MessageID, total: Int
        if declared <= MailboxStore.inlineLimit {
            // A small envelope is kept in memory and stored in its database row.
            let bytes: [UInt8]
            do {
                bytes = Array(try await request.body.collect(upTo: MailboxStore.inlineLimit).readableBytesView)
            } catch is NIOTooManyBytesError {
                throw RelayError(.invalidRequest, "the body is longer than its Content-Length of \(declared) bytes")
            } catch {
                throw Self.brokenOff(declared: declared, received: nil)
            }
            id = try await mailboxes.deposit(bytes: bytes, recipients: names, depositor: depositor, claimed: claimed)
            total = bytes.count
        } else {
            (id, total) = try await depositFile(request.body, declared: declared, recipients: names, depositor: depositor, claimed: claimed)
        }
        return EditedResponse(status: .created, response: DepositResponse(messageId: id.hex, size: total, recipients: names.map(\.value)))
    }

    /// A body that stopped coming: the client went away (closed or reset its connection) or sent
    /// what is not HTTP/1.1 in the middle of it. The request's failure, not the relay's, so it is
    /// a `400` logged like any refusal; nothing of it is kept.
    static func brokenOff(declared: Int, received: Int?) -> RelayError {
        let got = received.map { "after \($0) of its \(declared) bytes" } ?? "before its Content-Length of \(declared) bytes"
        return RelayError(.invalidRequest, "the body broke off \(got): the connection closed or failed")
    }

    /// The distinct recipients a deposit names and its declared length, refused when there are
    /// none or too many, or the length is missing or over `maximumSize`.
    static func depositTerms(recipients: [String], contentLength: String?, maximumSize: Int) throws -> ([IdentityName], Int) {
        var names: [IdentityName] = []
        for raw in recipients {
            let name = try IdentityName(normalised: raw)
            if !names.contains(name) { names.append(name) }
        }
        guard (1...maximumRecipients).contains(names.count) else {
            throw APIError(status: .badRequest, code: .malformedRequest, reason: "name 1 to \(maximumRecipients) recipients as ?to=NAME&to=NAME")
        }
        guard let declared = contentLength.flatMap({ Int($0) }), declared > 0 else {
            throw APIError(status: .lengthRequired, code: .malformedRequest, reason: "a deposit needs a Content-Length (the envelope's size)")
        }
        if declared > maximumSize {
            throw RelayError(.quotaExceeded, "the envelope is \(declared) bytes; this relay accepts at most \(maximumSize)")
        }
        return (names, declared)
    }

    /// Streams a larger envelope to a file written behind the request (IncomingEnvelopeFile),
    /// bounded by its declared length, then deposits it, its signature checked against the hash
    /// taken as it arrived. Returns its id and size.
    func depositFile(_ body: RequestBody, declared: Int, recipients: [IdentityName], depositor: IdentityName,
                     claimed: MessageID?) async throws -> (MessageID, Int) {
        let incoming = try IncomingEnvelopeFile(url: mailboxes.incomingFile(), declared: declared)
        let payloadDigest: EnvelopePayloadDigester.Digest?
        do {
            var pieces = body.makeAsyncIterator()
            while true {
                let next: ByteBuffer?
                do { next = try await pieces.next() } catch { throw Self.brokenOff(declared: declared, received: incoming.size) }
                guard let buffer = next else { break }
                guard incoming.size + buffer.readableBytes <= declared else {
                    throw RelayError(.invalidRequest, "the body is longer than its Content-Length of \(declared) bytes")
                }
                try await incoming.append(buffer)
            }
            payloadDigest = try await incoming.finish()
        } catch {
            try? FileManager.default.removeItem(at: incoming.url)
            throw error
        }
        let id = try await mailboxes.deposit(file: incoming.url, payloadDigest: payloadDigest, recipients: recipients,
                                             depositor: depositor, claimed: claimed)
        return (id, incoming.size)
    }

    static func messageID(_ hex: String) throws -> MessageID {
        do { return try MessageID(hex: hex) } catch let error as FormatError {
            throw APIError(status: .badRequest, code: .malformedRequest, reason: error.reason)
        }
    }
}
