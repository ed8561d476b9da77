// TLS benchmark peer, release build. scripts/bench-tls.sh runs it beside openssl s_server/s_time.
//   secmail-tls-bench serve CERT KEY BODY_MIB      answers any request with "HTTP/1.0 200 ok" and
//                                                  BODY_MIB MiB, then close_notify (as s_server -WWW)
//   secmail-tls-bench download PORT CA SECONDS     repeated GETs over new connections; prints MB/s
//   secmail-tls-bench handshakes PORT CA SECONDS   new full handshakes, one after another; prints /s
import Foundation
import NIOCore
import NIOPosix
import SecmailTLS

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

/// Serves the body to whoever asks, honouring writability so memory stays bounded.
final class BodyServer: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: used on its channel's event loop only.
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let block: ByteBuffer
    var remainingBlocks: Int
    var started = false

    init(block: ByteBuffer, blocks: Int) {
        self.block = block
        remainingBlocks = blocks
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !started else { return }
        started = true
        context.write(wrapOutboundOut(context.channel.allocator.buffer(string: "HTTP/1.0 200 ok\r\nContent-type: application/octet-stream\r\n\r\n")), promise: nil)
        pump(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if started { pump(context: context) }
        context.fireChannelWritabilityChanged()
    }

    private func pump(context: ChannelHandlerContext) {
        while context.channel.isWritable, remainingBlocks > 0 {
            remainingBlocks -= 1
            context.write(wrapOutboundOut(block), promise: nil)
        }
        context.flush()
        if remainingBlocks == 0 {
            remainingBlocks = -1
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// Counts received bytes and completes when the server closes.
final class Downloader: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    var received = 0
    let done: EventLoopPromise<Int>
    init(done: EventLoopPromise<Int>) { self.done = done }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSEvent.handshakeCompleted = event as? TLSEvent ?? .shutdownCompleted {
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: "GET /blob HTTP/1.0\r\n\r\n")), promise: nil)
        }
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { received += unwrapInboundIn(data).readableBytes }
    func channelInactive(context: ChannelHandlerContext) { done.succeed(received) }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// Completes on handshake, then closes.
final class HandshakeOnly: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let done: EventLoopPromise<Void>
    init(done: EventLoopPromise<Void>) { self.done = done }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSEvent.handshakeCompleted = event as? TLSEvent ?? .shutdownCompleted {
            done.succeed()
            context.close(promise: nil)
        }
    }
    func errorCaught(context: ChannelHandlerContext, error: Error) { done.fail(error); context.close(promise: nil) }
    func channelInactive(context: ChannelHandlerContext) { done.fail(TLSError(.closed, "closed before the handshake")) }
}

func clientContext(ca: String) throws -> TLSContext {
    try TLSContext(configuration: .client(trust: .certificateAuthorities(file: ca)))
}

func connect(port: Int, context: TLSContext, handler: ChannelHandler & Sendable) async throws -> Channel {
    try await ClientBootstrap(group: group)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(TLSHandler(context: context, serverHostname: "localhost"))
                try channel.pipeline.syncOperations.addHandler(handler)
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
}

let arguments = CommandLine.arguments
guard arguments.count >= 5 else {
    FileHandle.standardError.write(Data("usage: secmail-tls-bench serve CERT KEY BODY_MIB | download PORT CA SECONDS | handshakes PORT CA SECONDS\n".utf8))
    exit(64)
}

switch arguments[1] {
case "serve":
    let context = try TLSContext(configuration: .server(certificateChainFile: arguments[2], privateKeyFile: arguments[3]))
    let blocks = Int(arguments[4]) ?? 64
    let block = ByteBuffer(repeating: 0x5A, count: 1 << 20)
    let server = try await ServerBootstrap(group: group)
        .serverChannelOption(.backlog, value: 512)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.writeBufferWaterMark, value: .init(low: 1 << 20, high: 4 << 20))
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(TLSHandler(context: context))
                try channel.pipeline.syncOperations.addHandler(BodyServer(block: block, blocks: blocks))
            }
        }
        .bind(host: "127.0.0.1", port: 0).get()
    FileHandle.standardOutput.write(Data("PORT \(server.localAddress?.port ?? 0)\n".utf8))
    try await server.closeFuture.get()

case "download":
    let port = Int(arguments[2]) ?? 0, seconds = Double(arguments[4]) ?? 5
    let context = try clientContext(ca: arguments[3])
    let start = Date()
    var bytes = 0, connections = 0
    while Date().timeIntervalSince(start) < seconds {
        let done = group.next().makePromise(of: Int.self)
        _ = try await connect(port: port, context: context, handler: Downloader(done: done))
        bytes += try await done.futureResult.get()
        connections += 1
    }
    let elapsed = Date().timeIntervalSince(start)
    print(String(format: "download connections=%d bytes=%ld seconds=%.2f mbps=%.1f", connections, bytes, elapsed, Double(bytes) / elapsed / 1e6))

case "handshakes":
    let port = Int(arguments[2]) ?? 0, seconds = Double(arguments[4]) ?? 5
    let context = try clientContext(ca: arguments[3])
    let loop = group.next()
    let finished = loop.makePromise(of: Int.self)
    let deadline = NIODeadline.now() + .nanoseconds(Int64(seconds * 1e9))
    let start = Date()
    // Chained on the event loop: each connection starts as soon as the previous handshake
    // completed; that connection's close (close_notify both ways) finishes in the background,
    // as s_time's does.
    @Sendable func handshake(_ count: Int) {
        guard NIODeadline.now() < deadline else { return finished.succeed(count) }
        let done = loop.makePromise(of: Void.self)
        ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TLSHandler(context: context, serverHostname: "localhost"))
                    try channel.pipeline.syncOperations.addHandler(HandshakeOnly(done: done))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .whenFailure { done.fail($0) }
        done.futureResult.whenComplete { result in
            switch result {
            case .success: handshake(count + 1)
            case .failure(let error): finished.fail(error)
            }
        }
    }
    loop.execute { handshake(0) }
    let count = try await finished.futureResult.get()
    let elapsed = Date().timeIntervalSince(start)
    print(String(format: "handshakes count=%d seconds=%.2f per_second=%.1f", count, elapsed, Double(count) / elapsed))

default:
    FileHandle.standardError.write(Data("unknown mode \(arguments[1])\n".utf8))
    exit(64)
}
