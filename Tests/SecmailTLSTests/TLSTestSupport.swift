import Foundation
import NIOCore
import NIOPosix
import SecmailTLS

/// The committed development certificates in certs/.
enum Certs {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("certs", isDirectory: true)

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static func server(_ certificate: String = "relay.pem", key: String = "throwaway-relay.key.pem",
                       alpn: [String] = [], minimum: TLSConfiguration.MinimumVersion = .tls13,
                       handshakeTimeout: TimeAmount = .seconds(10)) throws -> TLSContext {
        var configuration = TLSConfiguration.server(certificateChainFile: path(certificate), privateKeyFile: path(key))
        configuration.applicationProtocols = alpn
        configuration.minimumVersion = minimum
        configuration.handshakeTimeout = handshakeTimeout
        return try TLSContext(configuration: configuration)
    }

    static func client(trust: TLSConfiguration.Trust = .certificateAuthorities(file: path("dev-ca.pem")),
                       alpn: [String] = [], handshakeTimeout: TimeAmount = .seconds(10)) throws -> TLSContext {
        var configuration = TLSConfiguration.client(trust: trust)
        configuration.applicationProtocols = alpn
        configuration.handshakeTimeout = handshakeTimeout
        return try TLSContext(configuration: configuration)
    }

    static var relayPin: [UInt8] {
        let hex = (try? String(contentsOfFile: path("relay.spki-sha256"), encoding: .utf8)) ?? ""
        var bytes: [UInt8] = []
        var iterator = hex.trimmingCharacters(in: .whitespacesAndNewlines).makeIterator()
        while let high = iterator.next(), let low = iterator.next(), let h = high.hexDigitValue, let l = low.hexDigitValue {
            bytes.append(UInt8(h << 4 | l))
        }
        return bytes
    }
}

let eventLoopGroup = MultiThreadedEventLoopGroup.singleton
/// The stress test's own threads, so that its load cannot starve other tests' event loops.
let stressEventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)

/// What a test server saw: open connections, errors, TLS events.
final class ServerRecord: @unchecked Sendable {
    // @unchecked: every field is guarded by `lock`.
    private let lock = NSLock()
    private var _open = 0
    private var _accepted = 0
    private var _errors: [Error] = []
    private var _events: [TLSEvent] = []

    var open: Int { lock.withLock { _open } }
    var accepted: Int { lock.withLock { _accepted } }
    var errors: [Error] { lock.withLock { _errors } }
    var tlsErrors: [TLSError] { errors.compactMap { $0 as? TLSError } }
    var events: [TLSEvent] { lock.withLock { _events } }

    func opened() { lock.withLock { _open += 1; _accepted += 1 } }
    func closed() { lock.withLock { _open -= 1 } }
    func record(_ error: Error) { lock.withLock { _errors.append(error) } }
    func record(_ event: TLSEvent) { lock.withLock { _events.append(event) } }

    /// Waits (up to `seconds`) until `condition` holds.
    func wait(seconds: Double = 10, until condition: (ServerRecord) -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(self) { return true }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return condition(self)
    }
}

/// Counts connections and records errors and TLS events; sits above the TLS handler.
final class RecordingHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let record: ServerRecord
    init(_ record: ServerRecord) { self.record = record }
    func channelActive(context: ChannelHandlerContext) { record.opened(); context.fireChannelActive() }
    func channelInactive(context: ChannelHandlerContext) { record.closed(); context.fireChannelInactive() }
    func errorCaught(context: ChannelHandlerContext, error: Error) { record.record(error); context.fireErrorCaught(error) }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSEvent { record.record(event) }
        context.fireUserInboundEventTriggered(event)
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.fireChannelRead(data) }
}

/// Writes back whatever it reads.
final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.write(data, promise: nil) }
    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// Answers any request with a fixed HTTP/1.1 response, then closes (for curl).
final class HTTPHelloHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let body = "hello from secmail TLS\n"
        let response = "HTTP/1.1 200 OK\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n\(body)"
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: response))).whenComplete { _ in
            bound.value.close(promise: nil)
        }
    }
}

/// A TLS server on 127.0.0.1 with a free port.
struct TestServer {
    let channel: Channel
    let record: ServerRecord
    var port: Int { channel.localAddress?.port ?? 0 }

    static func start(
        context: TLSContext, autoRead: Bool = true, group: EventLoopGroup = eventLoopGroup,
        application: @escaping @Sendable () -> ChannelHandler = { EchoHandler() }
    ) async throws -> TestServer {
        let record = ServerRecord()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: autoRead)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TLSHandler(context: context))
                    try channel.pipeline.syncOperations.addHandler(RecordingHandler(record))
                    try channel.pipeline.syncOperations.addHandler(application())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TestServer(channel: channel, record: record)
    }

    func stop() async {
        try? await channel.close()
    }
}

/// Collects what a client receives and completes when `expected` bytes arrived or on error.
final class CollectingHandler: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: touched only on the channel's event loop.
    typealias InboundIn = ByteBuffer
    let expected: Int
    let isComplete: ([UInt8]) -> Bool
    let done: EventLoopPromise<[UInt8]>
    let handshake: EventLoopPromise<TLSEvent>
    private var received: [UInt8] = []
    private var manualRead: Bool

    init(expected: Int, eventLoop: EventLoop, manualRead: Bool = false, until isComplete: (([UInt8]) -> Bool)? = nil) {
        self.expected = expected
        self.isComplete = isComplete ?? { $0.count >= expected }
        done = eventLoop.makePromise()
        handshake = eventLoop.makePromise()
        self.manualRead = manualRead
    }

    func channelActive(context: ChannelHandlerContext) {
        if manualRead { context.read() }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received.append(contentsOf: unwrapInboundIn(data).readableBytesView)
        if isComplete(received) { done.succeed(received) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if manualRead, !isComplete(received) { context.read() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSEvent, case .handshakeCompleted = event { handshake.succeed(event) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        handshake.fail(error)
        done.fail(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let closed = TLSError(.closed, "closed after \(received.count) of \(expected) bytes")
        handshake.fail(closed)
        done.fail(closed)
    }
}

/// Connects with TLS, sends `payload`, and returns the first `payload.count` bytes received.
func tlsEcho(
    port: Int, payload: [UInt8], context: TLSContext, host: String? = "localhost", autoRead: Bool = true,
    timeout: TimeAmount = .seconds(30), group: EventLoopGroup = eventLoopGroup, until isComplete: (([UInt8]) -> Bool)? = nil
) async throws -> [UInt8] {
    let loop = group.next()
    let collector = CollectingHandler(expected: payload.count, eventLoop: loop, manualRead: !autoRead, until: isComplete)
    let channel = try await ClientBootstrap(group: loop)
        .channelOption(.autoRead, value: autoRead)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(TLSHandler(context: context, serverHostname: host))
                try channel.pipeline.syncOperations.addHandler(collector)
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
    let timer = channel.eventLoop.scheduleTask(in: timeout) {
        collector.done.fail(TLSError(.handshakeTimeout, "test timed out"))
    }
    defer { timer.cancel() }
    // Written at once: the handler holds it until the handshake completes. The write's own
    // promise is not awaited: if the handshake fails it fails with `.closed`, while the
    // collector reports the error that caused it.
    channel.writeAndFlush(channel.allocator.buffer(bytes: payload), promise: nil)
    do {
        let received = try await collector.done.futureResult.get()
        try? await channel.close()
        return isComplete == nil ? Array(received.prefix(payload.count)) : received
    } catch {
        try? await channel.close()
        throw error
    }
}

/// Opens a plain TCP connection, sends `bytes`, and waits for the server to close it.
/// The bytes are written from `channelActive`, on the event loop, so that the exchange does not
/// depend on how soon the awaiting task is scheduled (the test pool may be busy for seconds).
func rawExchange(port: Int, bytes: [UInt8], closeAfterSending: Bool = false) async throws {
    let channel = try await ClientBootstrap(group: eventLoopGroup)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(RawSender(bytes: bytes, closeAfterSending: closeAfterSending))
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
    let closed = channel.eventLoop.makePromise(of: Void.self)
    channel.closeFuture.cascade(to: closed)
    let timer = channel.eventLoop.scheduleTask(in: .seconds(30)) { closed.fail(TLSError(.handshakeTimeout, "server did not close")) }
    defer { timer.cancel() }
    try await closed.futureResult.get()
}

/// Sends fixed bytes as soon as the connection is up; ignores what comes back.
final class RawSender: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let bytes: [UInt8]
    let closeAfterSending: Bool
    init(bytes: [UInt8], closeAfterSending: Bool) {
        self.bytes = bytes
        self.closeAfterSending = closeAfterSending
    }
    func channelActive(context: ChannelHandlerContext) {
        // The server may refuse and reset the connection while this is still being written.
        let written = context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: bytes)))
        if closeAfterSending {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            written.whenComplete { _ in bound.value.close(promise: nil) }
        }
        context.fireChannelActive()
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
