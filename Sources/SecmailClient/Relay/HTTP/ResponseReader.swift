import NIOCore
import NIOHTTP1
import SecmailCrypto
import SecmailFormat
import SecmailTLS

/// Reads a relay's HTTP/1.1 answers on one kept-alive connection, one exchange at a time, and
/// reports the TLS handshake. Lives on its channel's event loop; every promise it creates is
/// completed by an answer, an error, or the channel going away, whichever comes first.
final class ResponseReader: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: touched only on the channel's event loop (promises are thread-safe).
    typealias InboundIn = HTTPClientResponsePart

    /// Longest answer body kept in memory.
    static let maximumBodySize = 16 << 20

    /// One request's answer as it arrives. A class: the body grows in place, where a struct
    /// copied out of `exchange` and written back would copy the whole body on every append.
    private final class Exchange {
        let promise: EventLoopPromise<RelayResponse>
        let download: BackgroundWriter?
        let downloadProgress: (@Sendable (UInt64, UInt64) -> Void)?
        let downloadLimit: UInt64?
        var status = 0
        var announcedLength: UInt64 = 0
        var date: Int64?
        var retryAfter: Int?
        var received: UInt64 = 0
        var body: [UInt8] = []
        /// Downloaded buffers not yet handed to `download`, as the TLS layer filled them (never
        /// copied: the writer writes them where they lie), gathered up to `downloadPiece` bytes
        /// for one queue hop instead of one per read.
        var pendingDownload: [ByteBuffer] = []
        var pendingDownloadBytes = 0
        var keepAlive = true
        var hasHead = false

        init(promise: EventLoopPromise<RelayResponse>, download: BackgroundWriter?,
             downloadProgress: (@Sendable (UInt64, UInt64) -> Void)?, downloadLimit: UInt64?) {
            self.promise = promise
            self.download = download
            self.downloadProgress = downloadProgress
            self.downloadLimit = downloadLimit
        }
    }

    static let downloadPiece = 256 * 1024

    let tlsHandler: TLSHandler
    /// Completed when the TLS handshake finishes or fails.
    let handshake: EventLoopPromise<Void>
    private var exchange: Exchange?
    /// The connection can carry another request: open, no `Connection: close`, no broken exchange.
    private(set) var isReusable = true

    init(tlsHandler: TLSHandler, eventLoop: EventLoop) {
        self.tlsHandler = tlsHandler
        handshake = eventLoop.makePromise()
    }

    /// Starts waiting for the answer to the request about to be written.
    func begin(eventLoop: EventLoop, download: BackgroundWriter?,
               downloadProgress: (@Sendable (UInt64, UInt64) -> Void)?, downloadLimit: UInt64?) -> EventLoopFuture<RelayResponse> {
        eventLoop.preconditionInEventLoop()
        guard isReusable, exchange == nil else {
            return eventLoop.makeFailedFuture(RelayTransportError.closedBeforeAnswer)
        }
        let promise = eventLoop.makePromise(of: RelayResponse.self)
        exchange = Exchange(promise: promise, download: download, downloadProgress: downloadProgress, downloadLimit: downloadLimit)
        return promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let current = exchange else {
            // An answer nobody asked for: the conversation is out of step.
            isReusable = false
            context.close(promise: nil)
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            current.status = Int(head.status.code)
            current.keepAlive = head.isKeepAlive
            current.hasHead = true
            current.announcedLength = head.headers.first(name: "Content-Length").flatMap { UInt64($0) } ?? 0
            current.date = head.headers.first(name: "Date").flatMap(HTTPDate.seconds)
            current.retryAfter = head.headers.first(name: "Retry-After").flatMap { Int($0) }.flatMap { $0 >= 0 ? $0 : nil }
            if current.status == 200, current.download != nil, let limit = current.downloadLimit, current.announcedLength > limit {
                fail(RelayTransportError.downloadTooLarge(announced: current.announcedLength, limit: limit), context: context)
            }
        case .body(let buffer):
            current.received += UInt64(buffer.readableBytes)
            if current.status == 200, current.download != nil {
                if let limit = current.downloadLimit, current.received > limit {
                    fail(RelayTransportError.downloadTooLarge(announced: current.received, limit: limit), context: context)
                    return
                }
                current.pendingDownload.append(buffer)
                current.pendingDownloadBytes += buffer.readableBytes
                if current.pendingDownloadBytes >= Self.downloadPiece {
                    guard writePendingDownload(of: current, context: context) else { return }
                }
                current.downloadProgress?(current.received, current.announcedLength)
            } else {
                guard current.body.count + buffer.readableBytes <= Self.maximumBodySize else {
                    fail(RelayTransportError.answerTooLarge(limit: Self.maximumBodySize), context: context)
                    return
                }
                current.body.append(contentsOf: buffer.readableBytesView)
            }
        case .end:
            if current.status == 200, current.download != nil {
                guard writePendingDownload(of: current, context: context) else { return }
            }
            exchange = nil
            if !current.keepAlive {
                isReusable = false
                context.close(promise: nil)
            }
            current.promise.succeed(RelayResponse(status: current.status, body: current.body, relayKeyPin: tlsHandler.peerPublicKeyPin,
                                                         relayDNSNames: tlsHandler.peerDNSNames, date: current.date, retryAfter: current.retryAfter))
        }
    }

    /// Hands the gathered download bytes to the file's writer; false (and the exchange failed)
    /// when the file cannot take them.
    private func writePendingDownload(of current: Exchange, context: ChannelHandlerContext) -> Bool {
        guard let download = current.download, !current.pendingDownload.isEmpty else { return true }
        do {
            try download.write(contentsOf: current.pendingDownload)
        } catch {
            fail(RelayTransportError.cannotSave(error), context: context)
            return false
        }
        current.pendingDownload.removeAll(keepingCapacity: true)
        current.pendingDownloadBytes = 0
        return true
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSEvent { handshake.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(error, context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        isReusable = false
        let closed: RelayTransportError = exchange?.hasHead == true ? .closedDuringAnswer : .closedBeforeAnswer
        finish(with: closed)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        isReusable = false
        finish(with: RelayTransportError.closedBeforeAnswer)
    }

    /// Fails whatever is waiting, with `error`, and closes: after an error the conversation
    /// cannot be trusted to be in step.
    func fail(_ error: Error, context: ChannelHandlerContext) {
        isReusable = false
        finish(with: error)
        context.close(promise: nil)
    }

    private func finish(with error: Error) {
        handshake.fail(error)  // no effect once the handshake succeeded
        if let current = exchange {
            exchange = nil
            current.promise.fail(error)
        }
    }
}

/// How a conversation with the relay broke, before it is put into words for a person
/// (`ClientError.transport`).
enum RelayTransportError: Error {
    /// Connecting failed (refused, unreachable, unknown host, timed out).
    case cannotConnect(Error)
    /// The relay closed the connection before an answer began.
    case closedBeforeAnswer
    /// A download brought, or announced, more than it may (`RelayRequest.maximumDownloadSize`).
    case downloadTooLarge(announced: UInt64, limit: UInt64)
    /// The relay closed the connection in the middle of its answer.
    case closedDuringAnswer
    /// No complete answer within the time allowed.
    case timedOut(seconds: Int64)
    /// An answer body held in memory grew past the limit.
    case answerTooLarge(limit: Int)
    /// A downloaded body could not be written (`diskFull`: for want of space).
    case cannotSave(String, diskFull: Bool)

    /// A downloaded body could not be written, for `error`'s reason.
    static func cannotSave(_ error: Error) -> RelayTransportError {
        .cannotSave("\(error)", diskFull: (error as? FormatError)?.code == .noSpace)
    }
}

/// A received buffer's bytes, written to a file where they lie (`BackgroundWriter`).
extension ByteBuffer: ContiguousByteStorage {
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeReadableBytes(body)
    }
}
