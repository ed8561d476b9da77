import FoundationEssentials
import Glibc
import NIOCore
import NIOHTTP1
import NIOPosix
import SecmailFormat
import SecmailTLS

/// One HTTP/1.1 connection to a relay over secmail's TLS, kept alive for as many requests as the
/// relay allows, one at a time. Used by one task at a time (a `RelayClient`, a benchmark lane).
public final class RelayHTTPConnection {
    public let host: String
    public let port: Int
    private let channel: Channel
    private let reader: ResponseReader
    /// When the last answer ended (or the connection opened).
    public private(set) var idleSince = ContinuousClock.now

    /// Opens a connection and completes the TLS handshake (so a wrong relay key fails here).
    /// `localAddress` binds the connection's own end (load tests: clients as from several hosts).
    public static func open(host: String, port: Int, tls: TLSContext, localAddress: SocketAddress? = nil,
                            group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> RelayHTTPConnection {
        let loop = group.next()
        // The reader comes out of the channel's initializer through this promise: a handshake
        // that fails at once may tear the pipeline down before anyone could look the reader up.
        let installed = loop.makePromise(of: ResponseReader.self)
        var bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let tlsHandler = try TLSHandler(context: tls, serverHostname: host)
                    let reader = ResponseReader(tlsHandler: tlsHandler, eventLoop: channel.eventLoop)
                    try channel.pipeline.syncOperations.addHandler(tlsHandler)
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(reader)
                    installed.succeed(reader)
                }
            }
        if let localAddress { bootstrap = bootstrap.bind(to: localAddress) }
        let channel: Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            installed.fail(error)  // no effect if the initializer ran
            throw RelayTransportError.cannotConnect(error)
        }
        let reader = try await installed.futureResult.get()
        do {
            try await reader.handshake.futureResult.get()
        } catch {
            try? await channel.close()
            throw error
        }
        return RelayHTTPConnection(host: host, port: port, channel: channel, reader: reader)
    }

    private init(host: String, port: Int, channel: Channel, reader: ResponseReader) {
        self.host = host
        self.port = port
        self.channel = channel
        self.reader = reader
    }

    deinit {
        channel.close(promise: nil)
    }

    /// Whether another request can go on this connection (the relay may have closed it since).
    public var isReusable: Bool {
        get async {
            guard channel.isActive else { return false }
            return (try? await channel.eventLoop.submit { [reader] in reader.isReusable }.get()) ?? false
        }
    }

    /// Sends `request` and returns the relay's answer (any status). Transport failures throw
    /// `RelayTransportError`, `TLSError` or the channel's own error, for `ClientError.transport`.
    /// `saveBodyTo` is there afterwards only when the answer is a `200`: what this attempt
    /// created is removed otherwise, so that the request may go again (after a `429`, or on a
    /// new connection).
    public func send(_ request: RelayRequest) async throws -> RelayResponse {
        let upload = try UploadSource(request.body)
        let download: BackgroundWriter?
        do {
            download = try request.saveBodyTo.map { url in
                BackgroundWriter(file: try PositionalFile(creatingAtPath: url.path, permissions: 0o600, scratch: request.savedBodyIsScratch,
                                                          expectedLength: request.maximumDownloadSize ?? 0))
            }
        } catch {
            throw RelayTransportError.cannotSave(error)
        }
        var downloadSaved = false
        defer {
            if download != nil, !downloadSaved, let url = request.saveBodyTo { try? FileManager.default.removeItem(at: url) }
        }
        let loop = channel.eventLoop
        let answer = try await loop.submit { [reader] in
            reader.begin(eventLoop: loop, download: download, downloadProgress: request.downloadProgress,
                         downloadLimit: request.maximumDownloadSize)
        }.get()
        // A minute plus a second per MiB for uploads; as asked otherwise.
        let timeout = upload.size > (1 << 20) ? max(request.timeout, .seconds(60 + Int64(upload.size >> 20))) : request.timeout
        let timer = loop.scheduleTask(in: timeout) { [reader, channel] in
            if let context = try? channel.pipeline.syncOperations.context(handler: reader) {
                reader.fail(RelayTransportError.timedOut(seconds: timeout.nanoseconds / 1_000_000_000), context: context)
            }
        }
        defer { timer.cancel() }
        var wroteEverything = false
        do {
            writeHead(of: request, upload: upload)
            try await writeBody(upload, progress: request.uploadProgress)
            try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
            wroteEverything = true
        } catch {
            // The relay may answer and close before taking the whole body (a refusal), and a
            // broken connection fails the writes: the answer, if any, is the better account.
            channel.close(promise: nil)
        }
        let response = try await answer.get()
        idleSince = .now
        if !wroteEverything { channel.close(promise: nil) }
        if let download, response.status == 200 {
            do {
                try download.finish()
            } catch {
                throw RelayTransportError.cannotSave(error)
            }
            downloadSaved = true
        }
        return response
    }

    /// Sends close_notify and closes.
    public func close() async {
        try? await channel.close()
    }

    /// Queues the request head; the body's or the end's flush sends it.
    private func writeHead(of request: RelayRequest, upload: UploadSource) {
        var headers = HTTPHeaders([("Host", "\(host):\(port)"), ("User-Agent", "secmail")])
        if let contentType = upload.contentType {
            headers.add(name: "Content-Type", value: contentType)
        }
        if request.body != nil || request.method == .POST {
            headers.add(name: "Content-Length", value: String(upload.size))
        }
        if let bearer = request.bearer { headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        let head = HTTPRequestHead(version: .http1_1, method: request.method, uri: request.path, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
    }

    /// The pieces a file is sent in. Each finished piece wakes the sending task and each new one
    /// the connection's thread; on two cores shared with the relay those wakeups cost more than
    /// the bytes: in 64 MiB deposits, 1 MiB pieces instead of 256 KiB took the median deposit from
    /// 0.58 to 0.62 of the TLS bulk figure (three interleaved pairs of runs, 15 rounds each way;
    /// rounds at 0.70 or more: 2 → 5), for 2 MiB held while sending instead of 512 KiB.
    static let uploadPieceSize = 1 << 20

    private func writeBody(_ upload: UploadSource, progress: (@Sendable (UInt64, UInt64) -> Void)?) async throws {
        switch upload {
        case .none:
            return
        case .bytes(let data, _):
            try await channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: data)))).get()
        case .file(let file, let size):
            // Two pieces in flight: the next is read and queued while the socket takes the one
            // before, so the connection never waits for the file (and memory stays bounded, the
            // socket's pace being the upload's pace). Each piece is read straight into the
            // buffer that goes to the connection: one copy of the file fewer (about 13 ms of CPU
            // per 64 MiB under perf on the 2-core test machine, where the relay shares the cores).
            let pieceSize = Self.uploadPieceSize
            var offset: UInt64 = 0
            var previous: EventLoopFuture<Void>?
            while offset < size {
                // Never past the size announced in Content-Length, even if the file has grown.
                let wanted = Int(min(UInt64(pieceSize), size - offset))
                var piece = channel.allocator.buffer(capacity: wanted)
                let count = try piece.writeWithUnsafeMutableBytes(minimumWritableBytes: wanted) { free in
                    try file.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: free.prefix(wanted)))
                }
                guard count > 0 else { throw RelayTransportError.cannotSave("\(file.path) shrank while it was being sent", diskFull: false) }
                let written: EventLoopFuture<Void> = channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(piece)))
                try await previous?.get()
                previous = written
                offset += UInt64(count)
                progress?(offset, size)
            }
            try await previous?.get()
        }
    }
}

/// A request body, ready to send: its bytes or its open file, its size and content type.
private enum UploadSource {
    case none
    case bytes(Data, contentType: String)
    case file(PositionalFile, size: UInt64)

    init(_ body: RelayRequest.Body?) throws {
        switch body {
        case nil: self = .none
        case .json(let data): self = .bytes(data, contentType: "application/json")
        case .binary(let data): self = .bytes(data, contentType: "application/octet-stream")
        case .file(let url):
            let file = try PositionalFile(readingAtPath: url.path)
            self = .file(file, size: try file.size())
        }
    }

    var size: UInt64 {
        switch self {
        case .none: 0
        case .bytes(let data, _): UInt64(data.count)
        case .file(_, let size): size
        }
    }

    var contentType: String? {
        switch self {
        case .none: nil
        case .bytes(_, let contentType): contentType
        case .file: "application/octet-stream"
        }
    }
}
