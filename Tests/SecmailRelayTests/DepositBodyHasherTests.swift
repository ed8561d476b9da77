import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import SecmailFormat
@testable import SecmailRelay
import SecmailRelayTestSupport
import Testing

/// The hash a large deposit's signature check uses is taken on the connection's thread as the body
/// passes (`DepositBodyHasher`): it must be the digest of exactly that request's bytes, claimed by
/// that request's serial only, and taken for large deposits alone.
@Suite struct DepositBodyHasherTests {
    static func deposit(length: Int, path: String = "/v1/messages?to=bob", serial: String? = nil) -> HTTPRequestPart {
        var fields: HTTPFields = [.contentLength: String(length)]
        if let serial { fields[DepositBodyHasher.serialField] = serial }
        return .head(HTTPRequest(method: .post, scheme: "https", authority: "localhost", path: path, headerFields: fields))
    }

    static func digest(_ bytes: [UInt8]) throws -> EnvelopePayloadDigester.Digest {
        let digester = try EnvelopePayloadDigester()
        digester.update(bytes)
        return try #require(digester.finalize())
    }

    /// Sends `bytes` through `channel` as body pieces of odd sizes, then the end.
    static func send(_ bytes: [UInt8], through channel: EmbeddedChannel) throws {
        var offset = 0, index = 0
        let sizes = [1, 16_384, 7, 300_000, 65_537]
        while offset < bytes.count {
            let end = min(bytes.count, offset + sizes[index % sizes.count])
            try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(bytes: bytes[offset..<end])))
            offset = end
            index += 1
        }
        try channel.writeInbound(HTTPRequestPart.end(nil))
    }

    /// The serial the handler wrote into the head it passed on, and the parts after it.
    static func forwardedSerial(_ channel: EmbeddedChannel) throws -> String? {
        var serial: String?
        while let part = try channel.readInbound(as: HTTPRequestPart.self) {
            if case .head(let request) = part { serial = request.headerFields[DepositBodyHasher.serialField] }
        }
        return serial
    }

    @Test func pipelinedLargeDepositsEachGetTheDigestOfTheirOwnBytes() throws {
        let hasher = DepositBodyHasher()
        let channel = EmbeddedChannel(handler: hasher)
        defer { _ = try? channel.finish() }
        let first = try RelayCurl.envelope(from: "alice", to: ["bob"], extra: 400_000).bytes
        let second = try RelayCurl.envelope(from: "alice", to: ["bob"], extra: 200_000).bytes

        // A serial the client made up is replaced by the connection's own.
        try channel.writeInbound(Self.deposit(length: first.count, serial: "2"))
        try Self.send(first, through: channel)
        #expect(try Self.forwardedSerial(channel) == "1")
        try channel.writeInbound(Self.deposit(length: second.count))
        try Self.send(second, through: channel)
        #expect(try Self.forwardedSerial(channel) == "2")

        // Claimed after both bodies ended, as a route behind a pipelined request would.
        #expect(hasher.digests.claim(serial: 2) == (try Self.digest(second)))
        #expect(hasher.digests.claim(serial: 1) == (try Self.digest(first)))
        #expect(hasher.digests.claim(serial: 1) == nil, "a digest is claimed once")
    }

    @Test func onlyLargeDepositsAreHashed() throws {
        let hasher = DepositBodyHasher()
        let channel = EmbeddedChannel(handler: hasher)
        defer { _ = try? channel.finish() }
        let small = try RelayCurl.envelope(from: "alice", to: ["bob"]).bytes
        let large = try RelayCurl.envelope(from: "alice", to: ["bob"], extra: MailboxStore.inlineLimit).bytes
        #expect(small.count <= MailboxStore.inlineLimit && large.count > MailboxStore.inlineLimit)

        let requests: [(HTTPRequestPart, [UInt8])] = [
            (Self.deposit(length: small.count), small),  // kept in memory and checked from there
            (Self.deposit(length: large.count, path: "/v1/features"), large),  // another route
            (.head(HTTPRequest(method: .put, scheme: "https", authority: "localhost", path: "/v1/messages",
                               headerFields: [.contentLength: String(large.count)])), large),  // another method
            (Self.deposit(length: large.count, path: "/v1/messages"), large),
        ]
        for (head, body) in requests {
            try channel.writeInbound(head)
            try Self.send(body, through: channel)
            _ = try Self.forwardedSerial(channel)
        }
        for serial in 1...3 { #expect(hasher.digests.claim(serial: serial) == nil, "request \(serial)") }
        #expect(hasher.digests.claim(serial: 4) == (try Self.digest(large)))
    }

    @Test func unclaimedDigestsAreBounded() throws {
        let digests = ArrivedBodyDigests()
        let digest = try Self.digest(RelayCurl.envelope(from: "alice", to: ["bob"]).bytes)
        for serial in 1...(ArrivedBodyDigests.capacity + 2) { digests.record(digest, serial: serial) }
        #expect(digests.claim(serial: 1) == nil && digests.claim(serial: 2) == nil)
        for serial in 3...(ArrivedBodyDigests.capacity + 2) { #expect(digests.claim(serial: serial) == digest) }
    }
}
