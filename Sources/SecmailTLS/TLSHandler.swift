import NIOCore

/// Events the handler sends up the pipeline.
public enum TLSEvent: Sendable, Equatable {
    /// The handshake finished; application data can flow.
    case handshakeCompleted(negotiatedProtocol: String?, version: String)
    /// Both sides sent close_notify.
    case shutdownCompleted
}

/// Drives an OpenSSL TLS connection (client or server) inside a NIO pipeline: ciphertext below,
/// plaintext above.
///
/// Writes issued before the handshake completes are held in order; `flush` is honoured as given;
/// each write's promise completes when the ciphertext that carries its last byte is written. All
/// output OpenSSL produces while reading (session tickets, KeyUpdate replies, alerts) is flushed.
/// With autoRead off, the handler issues the reads the handshake and shutdown need, and keeps
/// reading while a user read has produced no plaintext yet. `close` sends close_notify and waits a
/// bounded time for the peer's. An EOF without close_notify on an established connection is
/// reported as `TLSError.uncleanShutdown`. Backpressure: ciphertext goes to the channel as soon as
/// it is flushed, so the channel's writability reflects it; nothing is buffered here after a flush.
public final class TLSHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private struct PendingWrite {
        var data: ByteBuffer
        var promise: EventLoopPromise<Void>?
    }

    private let session: TLSSession
    private let configuration: TLSConfiguration
    private var state = TLSConnectionState()
    private var pendingWrites = CircularBuffer<PendingWrite>()
    /// How many of `pendingWrites` (from the front) a flush has covered.
    private var flushedWriteCount = 0
    private var handshakeTimer: Scheduled<Void>?
    private var shutdownTimer: Scheduled<Void>?
    private var closePromise: EventLoopPromise<Void>?
    private var userReadPending = false
    /// SHA-256 of the peer's public key (SubjectPublicKeyInfo), set when the handshake completes:
    /// what a client records to pin the server on first contact.
    public private(set) var peerPublicKeyPin: [UInt8]?
    /// The DNS names the peer's certificate is issued for, set with `peerPublicKeyPin`.
    public private(set) var peerDNSNames: [String] = []
    private var deliveredPlaintext = false

    /// Plaintext per SSL_write: three full records. Their ciphertext (48 KiB plus record
    /// overhead) fits a 64 KiB buffer; a 64 KiB slice would need a 128 KiB buffer, which glibc
    /// serves with mmap, and the page faults of a fresh mapping per slice halved bulk throughput.
    static let writeSlice = 3 * TLSSession.maximumRecordPlaintext

    /// A handler for one connection. Clients name the server they expect (DNS name or IP
    /// address); it is checked against the certificate unless the trust is a pinned key.
    public init(context: TLSContext, serverHostname: String? = nil) throws {
        session = try TLSSession(context: context, serverHostname: serverHostname)
        configuration = context.configuration
    }

    // MARK: Lifecycle

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        let report = state.channelInactive()
        cancelTimers()
        switch report {
        case .handshakeInterrupted:
            context.fireErrorCaught(TLSError(.handshakeFailed, "the connection closed during the TLS handshake"))
        case .uncleanShutdown:
            context.fireErrorCaught(TLSError(.uncleanShutdown, "the connection closed without a TLS close_notify: data may have been truncated"))
        case .none:
            break
        }
        failPendingWrites(TLSError(.closed, "the connection closed before the write was sent"))
        closePromise?.succeed()
        closePromise = nil
        context.fireChannelInactive()
    }

    private func start(context: ChannelHandlerContext) {
        guard state.start() else { return }
        // A channel that does not read a socket (a test's) has no such option, and needs none.
        try? context.channel.syncOptions?.setOption(.recvAllocator, value: Self.receiveAllocator)
        let timeout = configuration.handshakeTimeout
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        handshakeTimer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = bound.value
            guard handler.state.phase == .handshaking else { return }
            handler.fail(context: context, TLSError(.handshakeTimeout, "the TLS handshake did not finish within \(timeout.nanoseconds / 1_000_000) ms"))
        }
        advanceHandshake(context: context)
        // The handshake needs reads even when the user turned autoRead off.
        context.read()
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state.inputStep != .ignore else { return }
        session.withInput(unwrapInboundIn(data)) {
            if state.inputStep == .continueHandshake { advanceHandshake(context: context) }
            if state.inputStep == .readApplicationData { readPlaintext(context: context) }
        }
    }

    /// The peer's FIN. A TLS stream ends with close_notify; input that ends without one was
    /// abandoned or truncated (a client that just closed its socket), so the connection closes at
    /// once instead of holding its slot until an idle timeout. After close_notify the FIN is the
    /// ordinary end and passes on.
    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed, !state.peerSentCloseNotify {
            closeNow(context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        if deliveredPlaintext {
            deliveredPlaintext = false
            userReadPending = false
            context.fireChannelReadComplete()
        }
        // During an established connection, a read that brought no application data (a
        // ticket, a partial record) has not satisfied the user's read yet.
        if state.needsRead(userReadPending: userReadPending) { context.read() }
    }

    public func read(context: ChannelHandlerContext) {
        userReadPending = true
        context.read()
    }

    private func advanceHandshake(context: ChannelHandlerContext) {
        switch session.handshake() {
        case .inProgress:
            flushOutput(context: context)
        case .complete:
            handshakeTimer?.cancel()
            handshakeTimer = nil
            state.handshakeCompleted()
            peerPublicKeyPin = session.peerPublicKeyPin
            peerDNSNames = session.peerDNSNames
            flushOutput(context: context)
            context.fireUserInboundEventTriggered(
                TLSEvent.handshakeCompleted(negotiatedProtocol: session.negotiatedProtocol, version: session.protocolVersion))
            writeFlushedPending(context: context)
        case .failed(let error):
            // The alert OpenSSL queued goes out before the connection closes.
            flushOutput(context: context)
            fail(context: context, error)
        }
    }

    /// Plaintext handed on at most per buffer: sixteen records, what one socket read of
    /// `receiveAllocator`'s largest size carries, so that a bulk transfer passes the HTTP codec
    /// and the request body stream in a few large pieces. Each buffer is sized to the input left
    /// (`plaintextBuffer`), so a small request gets a small one.
    static let readGather = 16 * TLSSession.maximumRecordPlaintext

    /// Socket reads of up to 256 KiB (NIO's default stops at 64 KiB), growing only while reads
    /// fill them. With `readGather`, a bulk transfer is handed up in a quarter as many pieces:
    /// on the 2-core test machine our TLS pair's bulk figure went from about 1,380 to 1,560 MB/s
    /// (interleaved runs), the relay's CPU per 64 MiB deposit from 80 to 70 ms (medians).
    static let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 256 * 1024)

    /// An empty buffer for the plaintext of the input left: room for all of it (plaintext is
    /// shorter than its ciphertext) and a record more (OpenSSL may hold the start of one from an
    /// earlier read), at most `readGather`.
    private func plaintextBuffer(context: ChannelHandlerContext) -> ByteBuffer {
        context.channel.allocator.buffer(capacity: min(Self.readGather, session.unreadInput + TLSSession.maximumRecordPlaintext))
    }

    private func readPlaintext(context: ChannelHandlerContext) {
        var buffer = plaintextBuffer(context: context)
        readLoop: while true {
            if buffer.writableBytes < TLSSession.maximumRecordPlaintext {
                guard deliver(&buffer, context: context) else { return }
                buffer = plaintextBuffer(context: context)
            }
            switch session.read(into: &buffer) {
            case .data:
                continue readLoop
            case .wantRead:
                break readLoop
            case .closeNotify:
                guard deliver(&buffer, context: context) else { return }
                state.receivedCloseNotify()
                peerClosed(context: context)
                return
            case .failed(let error):
                // What decrypted before the bad record is passed on; then the connection fails.
                guard deliver(&buffer, context: context) else { return }
                flushOutput(context: context)
                fail(context: context, error)
                return
            }
        }
        guard deliver(&buffer, context: context) else { return }
        // Reading can produce output: KeyUpdate replies, alerts.
        flushOutput(context: context)
    }

    /// Passes `buffer`'s plaintext, if any, up the pipeline. False when a read handler closed the
    /// channel in response.
    private func deliver(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) -> Bool {
        guard buffer.readableBytes > 0 else { return true }
        deliveredPlaintext = true
        context.fireChannelRead(wrapInboundOut(buffer))
        buffer = ByteBuffer()
        return state.phase != .closed
    }

    /// The peer sent close_notify: answer with ours and close.
    private func peerClosed(context: ChannelHandlerContext) {
        session.shutdown()
        flushOutput(context: context)
        if deliveredPlaintext {
            deliveredPlaintext = false
            context.fireChannelReadComplete()
        }
        context.fireUserInboundEventTriggered(TLSEvent.shutdownCompleted)
        closeNow(context: context)
    }

    // MARK: Outbound

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard state.acceptsWrites else {
            promise?.fail(TLSError(.closed, "the TLS connection is closing; the write was not sent"))
            return
        }
        pendingWrites.append(PendingWrite(data: unwrapOutboundIn(data), promise: promise))
    }

    public func flush(context: ChannelHandlerContext) {
        flushedWriteCount = pendingWrites.count
        if state.isEstablished { writeFlushedPending(context: context) }
    }

    private func writeFlushedPending(context: ChannelHandlerContext) {
        guard flushedWriteCount > 0 else { return }
        while flushedWriteCount > 0, let write = pendingWrites.popFirst() {
            flushedWriteCount -= 1
            var data = write.data
            do {
                repeat {
                    let slice = data.readSlice(length: min(Self.writeSlice, data.readableBytes)) ?? data
                    let sealed = try session.seal(slice.readableBytesView, allocator: context.channel.allocator)
                    let isLast = data.readableBytes == 0
                    if let output = sealed {
                        context.write(wrapOutboundOut(output), promise: isLast ? write.promise : nil)
                    } else if isLast {
                        write.promise?.succeed()
                    }
                } while data.readableBytes > 0
            } catch {
                write.promise?.fail(error)
                fail(context: context, error as? TLSError ?? TLSError(.protocolError, "\(error)"))
                return
            }
        }
        context.flush()
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // Closing the output is how NIOAsyncChannel ends a connection whose last response is
        // written (Hummingbird after a `Connection: close` request): it sends close_notify like a
        // whole close, and the connection then ends when the peer answers with its own or the
        // shutdown timeout passes. Refused, the connection stayed open until an idle timeout.
        // Closing the input alone has no TLS meaning.
        guard mode != .input else {
            promise?.fail(ChannelError.operationUnsupported)
            return
        }
        switch state.requestClose() {
        case .closeChannel:
            chainClosePromise(promise, context: context)
            closeNow(context: context)
        case .sendCloseNotify:
            chainClosePromise(promise, context: context)
            writeFlushedPending(context: context)
            failPendingWrites(TLSError(.closed, "the connection was closed before this write was flushed"))
            if session.shutdown() || state.peerSentCloseNotify {
                flushOutput(context: context)
                closeNow(context: context)
                return
            }
            flushOutput(context: context)
            let timeout = configuration.shutdownTimeout
            let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
            shutdownTimer = context.eventLoop.scheduleTask(in: timeout) {
                // No close_notify from the peer in time: close the connection anyway.
                bound.value.handler.closeNow(context: bound.value.context)
            }
            context.read()
        case .joinPendingClose:
            chainClosePromise(promise, context: context)
        case .alreadyClosed:
            context.close(mode: mode, promise: promise)
        }
    }

    /// Sends a TLS 1.3 KeyUpdate that also asks the peer to update its keys.
    public func requestKeyUpdate(context: ChannelHandlerContext) throws {
        guard state.isEstablished else { throw TLSError(.protocolError, "KeyUpdate needs an established connection") }
        try session.requestKeyUpdate()
        flushOutput(context: context)
    }

    // MARK: Helpers

    private func flushOutput(context: ChannelHandlerContext) {
        guard let output = session.takeOutput(allocator: context.channel.allocator) else { return }
        context.writeAndFlush(wrapOutboundOut(output), promise: nil)
    }

    private func chainClosePromise(_ promise: EventLoopPromise<Void>?, context: ChannelHandlerContext) {
        guard let promise else { return }
        if let existing = closePromise {
            existing.futureResult.cascade(to: promise)
        } else {
            closePromise = promise
        }
    }

    private func fail(context: ChannelHandlerContext, _ error: TLSError) {
        guard state.reportsErrors else { return }
        context.fireErrorCaught(error)
        closeNow(context: context)
    }

    private func closeNow(context: ChannelHandlerContext) {
        guard state.issueClose() else { return }
        cancelTimers()
        failPendingWrites(TLSError(.closed, "the connection closed before the write was sent"))
        let promise = closePromise
        closePromise = nil
        context.close(mode: .all, promise: promise)
    }

    private func cancelTimers() {
        handshakeTimer?.cancel()
        handshakeTimer = nil
        shutdownTimer?.cancel()
        shutdownTimer = nil
    }

    private func failPendingWrites(_ error: TLSError) {
        while let write = pendingWrites.popFirst() {
            write.promise?.fail(error)
        }
        flushedWriteCount = 0
    }
}

@available(*, unavailable)
extension TLSHandler: Sendable {}
