import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SecmailTLS

/// HTTP/1.1 requests to a relay over secmail's TLS: one connection per request, a response size
/// limit, a timeout, and the relay's TLS key pin reported with every response.
public struct RelayConnection: Sendable {
    public let host: String
    public let port: Int
    let tls: TLSContext
    let group: EventLoopGroup
    /// Longest response body accepted.
    public static let maximumResponseSize = 16 << 20

    public struct Response: Sendable {
        public let status: Int
        public let body: [UInt8]
        /// SHA-256 of the relay certificate's public key, as seen in this handshake.
        public let relayKeyPin: [UInt8]?
    }

    /// A connection to `url` (https://host:port) trusting the relay as `trust` says.
    public init(url: URL, trust: TLSConfiguration.Trust, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        guard url.scheme == "https", let host = url.host else {
            throw ClientError(.invalidInput, "a relay URL looks like https://host:port, not \(url.absoluteString)")
        }
        self.host = host
        port = url.port ?? 443
        tls = try TLSContext(configuration: .client(trust: trust))
        self.group = group
    }

    public func send(_ method: HTTPMethod, _ path: String, json: Data? = nil, bearer: String? = nil,
                     timeout: TimeAmount = .seconds(30)) async throws -> Response {
        let loop = group.next()
        let collector = ResponseCollector(promise: loop.makePromise())
        let hostname = host
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.seconds(10))
            .channelInitializer { [tls] channel in
                channel.eventLoop.makeCompletedFuture {
                    let tlsHandler = try TLSHandler(context: tls, serverHostname: hostname)
                    collector.tlsHandler = tlsHandler
                    try channel.pipeline.syncOperations.addHandler(tlsHandler)
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            throw ClientError(.io, "cannot connect to the relay at \(host):\(port): \(error)")
        }
        var headers = HTTPHeaders([("Host", "\(host):\(port)"), ("Connection", "close"), ("User-Agent", "secmail")])
        if let json {
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(json.count))
        }
        if let bearer { headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let json { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: json))), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let timer = loop.scheduleTask(in: timeout) {
            collector.fail(ClientError(.io, "the relay did not answer within \(timeout.nanoseconds / 1_000_000_000) s"))
        }
        defer { timer.cancel() }
        do {
            let response = try await collector.promise.futureResult.get()
            try? await channel.close()
            return response
        } catch let error as TLSError {
            try? await channel.close()
            throw ClientError(.io, "TLS with the relay failed: \(error)")
        } catch {
            try? await channel.close()
            throw error
        }
    }
}

/// Collects one HTTP response; lives on its channel's event loop.
final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: touched only on the channel's event loop (and `promise` is thread-safe).
    typealias InboundIn = HTTPClientResponsePart
    let promise: EventLoopPromise<RelayConnection.Response>
    var tlsHandler: TLSHandler?
    private var status = 0
    private var body: [UInt8] = []
    private var done = false

    init(promise: EventLoopPromise<RelayConnection.Response>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
        case .body(let buffer):
            guard body.count + buffer.readableBytes <= RelayConnection.maximumResponseSize else {
                fail(ClientError(.io, "the relay's response is larger than \(RelayConnection.maximumResponseSize) bytes"))
                context.close(promise: nil)
                return
            }
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard !done else { return }
            done = true
            promise.succeed(RelayConnection.Response(status: status, body: body, relayKeyPin: tlsHandler?.peerPublicKeyPin))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(ClientError(.io, "the relay closed the connection before answering"))
        context.fireChannelInactive()
    }

    func fail(_ error: Error) {
        guard !done else { return }
        done = true
        promise.fail(error)
    }
}
