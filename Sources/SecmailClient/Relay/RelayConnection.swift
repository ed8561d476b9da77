import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SecmailFormat
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
        try await send(method, path, body: json.map { .json($0) }, bearer: bearer, timeout: timeout)
    }

    /// What a request carries.
    public enum RequestBody: Sendable {
        case json(Data)
        /// A file, streamed in 256 KiB pieces (an envelope).
        case file(URL)
        /// Bytes in memory, sent as application/octet-stream.
        case binary(Data)
    }

    /// Sends a request. With `saveBodyTo`, a 200 response's body is written to that new file
    /// (0600) instead of memory, without the in-memory size limit. `progress` reports uploaded bytes.
    public func send(_ method: HTTPMethod, _ path: String, body: RequestBody?, bearer: String? = nil, saveBodyTo: URL? = nil,
                     timeout: TimeAmount = .seconds(30), progress: (@Sendable (UInt64, UInt64) -> Void)? = nil) async throws -> Response {
        let loop = group.next()
        let collector = ResponseCollector(promise: loop.makePromise())
        if let saveBodyTo {
            do {
                collector.download = BackgroundWriter(file: try PositionalFile(creatingAtPath: saveBodyTo.path, permissions: 0o600))
            } catch let error as FormatError {
                throw ClientError(.io, error.reason)
            }
        }
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
        var uploadFile: PositionalFile?
        var uploadSize: UInt64 = 0
        switch body {
        case .json(let json):
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(json.count))
        case .file(let url):
            do {
                let file = try PositionalFile(readingAtPath: url.path)
                uploadSize = try file.size()
                uploadFile = file
            } catch let error as FormatError {
                try? await channel.close()
                throw ClientError(.io, error.reason)
            }
            headers.add(name: "Content-Type", value: "application/octet-stream")
            headers.add(name: "Content-Length", value: String(uploadSize))
        case .binary(let data):
            headers.add(name: "Content-Type", value: "application/octet-stream")
            headers.add(name: "Content-Length", value: String(data.count))
        case nil:
            break
        }
        if let bearer { headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
        // Large transfers get a minute plus a second per MiB.
        let deadline = uploadFile == nil ? timeout : .seconds(60 + Int64(uploadSize >> 20))
        let timer = loop.scheduleTask(in: deadline) {
            collector.fail(ClientError(.io, "the relay did not answer within \(timeout.nanoseconds / 1_000_000_000) s"))
        }
        defer { timer.cancel() }
        do {
            try await channel.writeAndFlush(HTTPClientRequestPart.head(head)).get()
            switch body {
            case .json(let data), .binary(let data):
                try await channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: data)))).get()
            default:
                break
            }
            if let uploadFile {
                // One piece in flight at a time: the socket's pace is the upload's pace.
                var buffer = [UInt8](repeating: 0, count: 256 * 1024)
                var offset: UInt64 = 0
                while offset < uploadSize {
                    let count = try uploadFile.read(at: offset, into: &buffer, range: 0..<buffer.count)
                    guard count > 0 else { throw ClientError(.io, "\(uploadFile.path) shrank while it was being sent") }
                    try await channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: buffer[0..<count])))).get()
                    offset += UInt64(count)
                    progress?(offset, uploadSize)
                }
            }
            try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        } catch {
            // The relay may answer (and close) before taking the whole body, e.g. 413 or 404, and
            // a failed handshake (an unpinned key) closes the channel under the write: the
            // response collector's outcome is then the better account, so it is used below.
            let failure = (error as? ClientError) ?? ClientError(.io, "sending to the relay failed: \(error)")
            loop.execute { collector.fail(failure) }  // the collector lives on its event loop
        }
        do {
            let response = try await collector.promise.futureResult.get()
            try? await channel.close()
            return try finishDownload(response, collector)
        } catch let error as TLSError {
            try? await channel.close()
            throw ClientError(.io, "TLS with the relay failed: \(error)")
        } catch {
            try? await channel.close()
            throw error
        }
    }
}

extension RelayConnection {
    /// Makes a downloaded body durable (fsync), or reports why it could not be written.
    func finishDownload(_ response: Response, _ collector: ResponseCollector) throws -> Response {
        guard let download = collector.download, response.status == 200 else { return response }
        do {
            try download.synchronize()
        } catch let error as FormatError {
            throw ClientError(.io, error.reason)
        }
        return response
    }
}

/// Collects one HTTP response; lives on its channel's event loop.
final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: touched only on the channel's event loop (and `promise` is thread-safe).
    typealias InboundIn = HTTPClientResponsePart
    let promise: EventLoopPromise<RelayConnection.Response>
    var tlsHandler: TLSHandler?
    /// Where a 200 response's body goes instead of memory.
    var download: BackgroundWriter?
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
            if status == 200, let download {
                do {
                    try download.write(Array(buffer.readableBytesView)[...])
                } catch {
                    fail(ClientError(.io, "cannot save the relay's answer: \(error)"))
                    context.close(promise: nil)
                }
                return
            }
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
