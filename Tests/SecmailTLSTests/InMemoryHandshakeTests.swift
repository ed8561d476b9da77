import Foundation
import NIOCore
import NIOEmbedded
import SecmailTLS
import Testing

/// A client and a server channel wired back to back in memory.
final class InMemoryPair {
    let client = EmbeddedChannel()
    let server = EmbeddedChannel()
    let clientRecord = ServerRecord()
    let serverRecord = ServerRecord()

    init(client clientContext: TLSContext? = nil, server serverContext: TLSContext? = nil, host: String = "localhost") throws {
        try client.pipeline.syncOperations.addHandler(TLSHandler(context: clientContext ?? Certs.client(), serverHostname: host))
        try client.pipeline.syncOperations.addHandler(RecordingHandler(clientRecord))
        try server.pipeline.syncOperations.addHandler(TLSHandler(context: serverContext ?? Certs.server()))
        try server.pipeline.syncOperations.addHandler(RecordingHandler(serverRecord))
        try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
    }

    /// Moves ciphertext both ways until neither side has anything more to send.
    func interact() throws {
        var moved = true
        while moved {
            moved = false
            while let data = try client.readOutbound(as: ByteBuffer.self) {
                if server.isActive { try server.writeInbound(data) }
                moved = true
            }
            while let data = try server.readOutbound(as: ByteBuffer.self) {
                if client.isActive { try client.writeInbound(data) }
                moved = true
            }
        }
    }

    /// Every buffer `channel` has written so far, joined into one.
    func drainOutbound(_ channel: EmbeddedChannel) throws -> ByteBuffer {
        var joined = channel.allocator.buffer(capacity: 0)
        while var data = try channel.readOutbound(as: ByteBuffer.self) { joined.writeBuffer(&data) }
        return joined
    }

    func readAll(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let data = try channel.readInbound(as: ByteBuffer.self) { text += String(buffer: data) }
        return text
    }
}

@Suite struct InMemoryHandshakeTests {
    @Test func handshakeNegotiatesTLS13AndALPNAndDataFlowsBothWays() throws {
        let pair = try InMemoryPair(client: Certs.client(alpn: ["secmail/1", "http/1.1"]), server: Certs.server(alpn: ["secmail/1"]))
        try pair.interact()
        #expect(pair.clientRecord.events.contains(.handshakeCompleted(negotiatedProtocol: "secmail/1", version: "TLSv1.3")))
        #expect(pair.serverRecord.events.contains(.handshakeCompleted(negotiatedProtocol: "secmail/1", version: "TLSv1.3")))
        try pair.client.writeAndFlush(ByteBuffer(string: "ping")).wait()
        try pair.interact()
        #expect(try pair.readAll(pair.server) == "ping")
        try pair.server.writeAndFlush(ByteBuffer(string: "pong")).wait()
        try pair.interact()
        #expect(try pair.readAll(pair.client) == "pong")
    }

    @Test func alpnMismatchFailsTheHandshake() throws {
        let pair = try InMemoryPair(client: Certs.client(alpn: ["other/1"]), server: Certs.server(alpn: ["secmail/1"]))
        #expect(throws: TLSError.self) { try pair.interact() }
        #expect(!pair.server.isActive)
    }

    @Test func writesBeforeTheHandshakeAreHeldInOrderAndOnlyFlushedOnesAreSent() throws {
        let pair = try InMemoryPair()
        let completed = OrderRecorder()
        for word in ["one", "two"] {
            pair.client.write(ByteBuffer(string: word)).whenSuccess { completed.append(word) }
        }
        pair.client.flush()
        let three = pair.client.write(ByteBuffer(string: "three"))
        try pair.interact()
        #expect(try pair.readAll(pair.server) == "onetwo")
        #expect(completed.values == ["one", "two"])
        pair.client.flush()
        try pair.interact()
        try three.wait()
        #expect(try pair.readAll(pair.server) == "three")
    }

    @Test func applicationDataInTheSegmentThatFinishesTheHandshakeIsDelivered() throws {
        let pair = try InMemoryPair()
        pair.client.writeAndFlush(ByteBuffer(string: "early data"), promise: nil)
        try pair.server.writeInbound(pair.drainOutbound(pair.client))      // ClientHello
        try pair.client.writeInbound(pair.drainOutbound(pair.server))      // ServerHello ... Finished
        // The client's Finished and its held application data, as one segment.
        let segment = try pair.drainOutbound(pair.client)
        try pair.server.writeInbound(segment)
        #expect(try pair.readAll(pair.server) == "early data")
    }

    @Test func severalRecordsInOneReadAndRecordsSplitIntoPieces() throws {
        let pair = try InMemoryPair()
        try pair.interact()
        for word in ["alpha ", "beta ", "gamma"] {
            try pair.client.writeAndFlush(ByteBuffer(string: word)).wait()
        }
        try pair.server.writeInbound(pair.drainOutbound(pair.client))
        #expect(try pair.readAll(pair.server) == "alpha beta gamma")

        let large = String(repeating: "0123456789", count: 4_000)  // three records
        try pair.client.writeAndFlush(ByteBuffer(string: large)).wait()
        var ciphertext = try pair.drainOutbound(pair.client)
        while ciphertext.readableBytes > 0 {
            let piece = ciphertext.readSlice(length: min(7, ciphertext.readableBytes)) ?? ByteBuffer()
            try pair.server.writeInbound(piece)
        }
        #expect(try pair.readAll(pair.server) == large)
    }

    @Test func plaintextIsHandedUpInPiecesOfSixteenRecordsInBuffersSizedToTheInput() throws {
        let pair = try InMemoryPair()
        try pair.interact()
        func piecesReceived(_ plaintext: ByteBuffer) throws -> [ByteBuffer] {
            try pair.client.writeAndFlush(plaintext).wait()
            try pair.server.writeInbound(pair.drainOutbound(pair.client))
            var pieces: [ByteBuffer] = []
            while let piece = try pair.server.readInbound(as: ByteBuffer.self) { pieces.append(piece) }
            return pieces
        }
        // 1 MiB in one read: four pieces of sixteen full records, not sixteen of four.
        let large = ByteBuffer(repeating: 0x5A, count: 1 << 20)
        let pieces = try piecesReceived(large)
        #expect(pieces.map(\.readableBytes) == Array(repeating: 256 * 1024, count: 4))
        #expect(pieces.reduce(into: ByteBuffer()) { joined, piece in var piece = piece; joined.writeBuffer(&piece) } == large)
        // A short message gets a buffer of about a record, not one for sixteen.
        let short = try piecesReceived(ByteBuffer(string: "ping"))
        #expect(short.map { String(buffer: $0) } == ["ping"])
        #expect(short.allSatisfy { $0.capacity <= 32 * 1024 })
    }

    @Test func closeNotifyTravelsBothWaysAndBothSidesClose() throws {
        let pair = try InMemoryPair()
        try pair.interact()
        let closed = pair.client.close()
        try pair.interact()
        try closed.wait()
        #expect(!pair.client.isActive)
        #expect(!pair.server.isActive)
        #expect(pair.serverRecord.events.contains(.shutdownCompleted))
        #expect(pair.serverRecord.errors.isEmpty)
        #expect(pair.clientRecord.errors.isEmpty)
    }

    @Test func closeWaitsForThePeersCloseNotifyOnlyForABoundedTime() throws {
        let pair = try InMemoryPair()
        try pair.interact()
        let closed = pair.client.close()
        // The server never answers (its close_notify is never delivered).
        _ = try pair.drainOutbound(pair.client)
        pair.client.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(pair.client.isActive)
        pair.client.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!pair.client.isActive)
        try closed.wait()
    }

    @Test func writesAfterCloseFail() throws {
        let pair = try InMemoryPair()
        try pair.interact()
        pair.client.close(promise: nil)
        #expect(throws: TLSError.self) { try pair.client.writeAndFlush(ByteBuffer(string: "late")).wait() }
    }

    @Test func eofWithoutCloseNotifyIsAnUncleanShutdown() throws {
        let pair = try InMemoryPair()
        try pair.interact()
        pair.server.pipeline.fireChannelInactive()
        #expect(pair.serverRecord.tlsErrors.map(\.code) == [.uncleanShutdown])
    }

    @Test func aHandshakeThatStallsTimesOut() throws {
        let server = EmbeddedChannel()
        let record = ServerRecord()
        try server.pipeline.syncOperations.addHandler(TLSHandler(context: Certs.server()))
        try server.pipeline.syncOperations.addHandler(RecordingHandler(record))
        try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        server.embeddedEventLoop.advanceTime(by: .seconds(9))
        #expect(server.isActive)
        server.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!server.isActive)
        #expect(record.tlsErrors.map(\.code) == [.handshakeTimeout])
    }

    @Test func garbageInsteadOfAHandshakeIsRefused() throws {
        for garbage in [Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8), (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 97 &+ 13) }] {
            let server = EmbeddedChannel()
            let record = ServerRecord()
            try server.pipeline.syncOperations.addHandler(TLSHandler(context: Certs.server()))
            try server.pipeline.syncOperations.addHandler(RecordingHandler(record))
            try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            #expect(throws: TLSError.self) { try server.writeInbound(ByteBuffer(bytes: garbage)) }
            #expect(!server.isActive)
            #expect(record.tlsErrors.first?.code == .handshakeFailed)
        }
    }

    @Test func keyUpdateIsAnsweredAndDataKeepsFlowing() throws {
        let pair = try InMemoryPair()
        try pair.interact()
        let handler = try pair.client.pipeline.syncOperations.handler(type: TLSHandler.self)
        let context = try pair.client.pipeline.syncOperations.context(handlerType: TLSHandler.self)
        try handler.requestKeyUpdate(context: context)
        try pair.interact()
        try pair.client.writeAndFlush(ByteBuffer(string: "after update")).wait()
        try pair.server.writeAndFlush(ByteBuffer(string: "reply")).wait()
        try pair.interact()
        #expect(try pair.readAll(pair.server) == "after update")
        #expect(try pair.readAll(pair.client) == "reply")
    }
}

/// Records strings in the order they arrive, from any thread.
final class OrderRecorder: @unchecked Sendable {
    // @unchecked: `stored` is guarded by `lock`.
    private let lock = NSLock()
    private var stored: [String] = []
    var values: [String] { lock.withLock { stored } }
    func append(_ value: String) { lock.withLock { stored.append(value) } }
}
