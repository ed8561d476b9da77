import Foundation
import SecmailCrypto
import NIOCore
import NIOPosix
import SecmailTLS
import SecmailTestSupport
import Testing

@Suite struct SocketTests {
    /// After a refused connection the server must hold no connection and still serve a good one.
    func expectServerHealthy(_ server: TestServer) async throws {
        #expect(await server.record.wait { $0.open == 0 }, "a connection leaked: \(server.record.open) open")
        let payload = Array("still serving".utf8)
        #expect(try await tlsEcho(port: server.port, payload: payload, context: Certs.client()) == payload)
    }

    @Test func echoOverLoopbackVerifiesTheChainAndHostName() async throws {
        let server = try await TestServer.start(context: Certs.server())
        defer { Task { await server.stop() } }
        let payload = try SystemRandom().bytes(count: 100_000)
        #expect(try await tlsEcho(port: server.port, payload: payload, context: Certs.client()) == payload)
        // The certificate also names 127.0.0.1, so an IP-address client verifies too.
        #expect(try await tlsEcho(port: server.port, payload: payload, context: Certs.client(), host: "127.0.0.1") == payload)
        #expect(await server.record.wait { $0.open == 0 })
    }

    @Test func aPinnedKeyIsAcceptedAndAnyOtherKeyRefused() async throws {
        let server = try await TestServer.start(context: Certs.server())
        defer { Task { await server.stop() } }
        let payload = Array("pinned".utf8)
        let pinned = try Certs.client(trust: .pinnedPublicKey(sha256: Certs.relayPin))
        #expect(try await tlsEcho(port: server.port, payload: payload, context: pinned, host: nil) == payload)

        var wrongPin = Certs.relayPin
        wrongPin[0] ^= 1
        let wrong = try Certs.client(trust: .pinnedPublicKey(sha256: wrongPin))
        let error = await #expect(throws: TLSError.self) {
            try await tlsEcho(port: server.port, payload: payload, context: wrong, host: nil)
        }
        #expect(error?.code == .certificateVerificationFailed)
        #expect(error?.reason.contains("pinned") == true)
        try await expectServerHealthy(server)
    }

    @Test(arguments: [
        ("wrong-host.pem", "throwaway-wrong-host.key.pem", "hostname mismatch"),
        ("unknown-ca-relay.pem", "throwaway-unknown-ca-relay.key.pem", "unable to get local issuer certificate"),
        ("expired.pem", "throwaway-expired.key.pem", "certificate has expired"),
    ])
    func clientRefusesABadServerCertificate(certificate: String, key: String, reason: String) async throws {
        let server = try await TestServer.start(context: Certs.server(certificate, key: key))
        defer { Task { await server.stop() } }
        let error = await #expect(throws: TLSError.self) {
            try await tlsEcho(port: server.port, payload: Array("x".utf8), context: Certs.client())
        }
        #expect(error?.code == .certificateVerificationFailed)
        #expect(error?.reason.contains(reason) == true, "\(String(describing: error))")
        #expect(await server.record.wait { $0.open == 0 })
    }

    @Test func serverSurvivesPlaintextTruncatedAndRandomClients() async throws {
        let server = try await TestServer.start(context: Certs.server())
        defer { Task { await server.stop() } }
        // A plaintext HTTP client, and random bytes that are not a TLS record (first byte 0x00).
        try await rawExchange(port: server.port, bytes: Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
        try await rawExchange(port: server.port, bytes: [0x00] + SystemRandom().bytes(count: 4095))
        // A truncated handshake: the first bytes of a real ClientHello, then the client hangs up.
        let pair = try InMemoryPair()
        let hello = Array(try pair.drainOutbound(pair.client).readableBytesView)
        try await rawExchange(port: server.port, bytes: Array(hello.prefix(60)), closeAfterSending: true)
        #expect(await server.record.wait { $0.tlsErrors.count >= 3 })
        #expect(server.record.tlsErrors.map(\.code) == [.handshakeFailed, .handshakeFailed, .handshakeFailed],
                "\(server.record.errors)")
        try await expectServerHealthy(server)

        // A record header promising 16 KiB that never comes: the handshake timeout ends it.
        let impatient = try await TestServer.start(context: Certs.server(handshakeTimeout: .seconds(2)))
        defer { Task { await impatient.stop() } }
        try await rawExchange(port: impatient.port, bytes: [0x16, 0x03, 0x01, 0x40, 0x00] + SystemRandom().bytes(count: 100))
        #expect(await impatient.record.wait { !$0.tlsErrors.isEmpty })
        #expect(impatient.record.tlsErrors.map(\.code) == [.handshakeTimeout], "\(impatient.record.tlsErrors)")
        #expect(await impatient.record.wait { $0.open == 0 })
    }

    @Test func autoReadOffOnBothSidesStillHandshakesAndEchoes() async throws {
        let server = try await TestServer.start(context: Certs.server(), autoRead: false) { ManualReadEchoHandler() }
        defer { Task { await server.stop() } }
        let payload = try SystemRandom().bytes(count: 300_000)
        #expect(try await tlsEcho(port: server.port, payload: payload, context: Certs.client(), autoRead: false) == payload)
    }

    @Test func aSlowReaderMakesTheWriterUnwritableInsteadOfBuffering() async throws {
        // The server never reads after the handshake: its kernel buffers fill, and the client's
        // channel must report itself unwritable while little is queued.
        let server = try await TestServer.start(context: Certs.server(), autoRead: false) { NoReadHandler() }
        defer { Task { await server.stop() } }
        let collector = CollectingHandler(expected: 1, eventLoop: eventLoopGroup.any())
        let channel = try await ClientBootstrap(group: eventLoopGroup)
            .channelOption(.writeBufferWaterMark, value: .init(low: 32 * 1024, high: 256 * 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TLSHandler(context: Certs.client(), serverHostname: "localhost"))
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: "127.0.0.1", port: server.port).get()
        _ = try await collector.handshake.futureResult.get()
        let chunk = try channel.allocator.buffer(bytes: SystemRandom().bytes(count: 64 * 1024))
        var written = 0
        while channel.isWritable, written < 256 * 1024 * 1024 {
            channel.writeAndFlush(chunk, promise: nil)
            written += chunk.readableBytes
            try await Task.sleep(nanoseconds: 1_000_000)
        }
        #expect(!channel.isWritable, "still writable after \(written) bytes")
        #expect(written < 64 * 1024 * 1024, "wrote \(written) bytes before backpressure")
        try? await channel.close()
    }
}

/// Echo for a channel with autoRead off: it asks for every read itself.
final class ManualReadEchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelActive(context: ChannelHandlerContext) { context.read(); context.fireChannelActive() }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.write(data, promise: nil) }
    func channelReadComplete(context: ChannelHandlerContext) { context.flush(); context.read() }
}

/// Never asks to read (autoRead is off): a peer that stops reading.
final class NoReadHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
}
