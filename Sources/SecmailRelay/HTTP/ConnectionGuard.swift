import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import SecmailTLS

/// The deadlines one connection must keep, so that a client that sends or reads slowly on
/// purpose cannot hold a connection, and its slot, for long (issue 12).
public struct ConnectionDeadlines: Sendable, Equatable {
    /// From the first byte of a request to its complete head.
    public var header: TimeAmount
    /// A request body must arrive at `minimumBodyRate` bytes per second on average, counted over
    /// the time the relay was waiting for it (not while it held the body back itself), once
    /// that time passes `bodyGrace`.
    public var minimumBodyRate: Int
    public var bodyGrace: TimeAmount
    /// How long a response may wait for the client to read it (the channel not writable).
    public var write: TimeAmount
    /// Idle time allowed before the connection carried an authenticated request, and after.
    public var idleBeforeSignIn: TimeAmount
    public var idle: TimeAmount

    public init(header: TimeAmount = .seconds(10), minimumBodyRate: Int = 1024, bodyGrace: TimeAmount = .seconds(10),
                write: TimeAmount = .seconds(30), idleBeforeSignIn: TimeAmount = .seconds(15), idle: TimeAmount = .seconds(60)) {
        self.header = header
        self.minimumBodyRate = minimumBodyRate
        self.bodyGrace = bodyGrace
        self.write = write
        self.idleBeforeSignIn = idleBeforeSignIn
        self.idle = idle
    }
}

/// What a connection is doing, as both guard handlers see it; all on the channel's event loop.
final class ConnectionActivity {
    /// Where a connection closed for a missed deadline is reported.
    let logger: Logger
    let remoteAddress: String
    /// Where the connection's progress is told, for the relay's choice of whom to close when full.
    let connections: ConnectionLimiter?
    let ticket: ConnectionLimiter.Ticket?

    init(logger: Logger, remoteAddress: String, connections: ConnectionLimiter? = nil, ticket: ConnectionLimiter.Ticket? = nil) {
        self.logger = logger
        self.remoteAddress = remoteAddress
        self.connections = connections
        self.ticket = ticket
    }

    /// When the first byte of a request whose head has not been decoded yet arrived.
    var headStartedAt: NIODeadline?
    /// A request whose head arrived and whose end has not.
    var bodyStartedAt: NIODeadline?
    var bodyBytes = 0
    /// Time the relay spent asking for more of the body (a read outstanding, nothing arrived).
    var bodyWaited = TimeAmount.zero
    /// Since when a read has been outstanding with nothing arrived.
    var readPendingSince: NIODeadline?
    /// Requests received whose response has not ended.
    var requestsInFlight = 0
    /// When the connection last finished a response (or completed its TLS handshake).
    var idleSince = NIODeadline.now()
    /// The TLS handshake is done (before that, only its own 10 s timeout applies).
    var established = false
    /// Since when the channel has been unwritable while a response was being sent.
    var unwritableSince: NIODeadline?
    /// The connection carried a request with a bearer token that was answered below 400.
    var signedIn = false
    var pendingAuthorizedRequest = false
}

/// Before the HTTP decoder: notes when the bytes of a new request start arriving (the header
/// deadline counts from there).
final class RequestByteObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let activity: ConnectionActivity

    init(activity: ConnectionActivity) {
        self.activity = activity
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if activity.bodyStartedAt == nil, activity.headStartedAt == nil, unwrapInboundIn(data).readableBytes > 0 {
            activity.headStartedAt = .now()
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSEvent {
            activity.established = true
            activity.idleSince = .now()
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// After the HTTP codec: enforces `ConnectionDeadlines` with one check a second, and closes the
/// connection when one is missed. The relay's own idle timeout (Hummingbird's) stays as a
/// backstop; this one is shorter before sign-in. It shares `ConnectionActivity` with the
/// `RequestByteObserver` in front of the codec, found in the pipeline when added.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private(set) var activity = ConnectionActivity(logger: Logger(label: "secmail-relay"), remoteAddress: "unknown")
    let deadlines: ConnectionDeadlines
    private var ticker: RepeatedTask?

    init(deadlines: ConnectionDeadlines) {
        self.deadlines = deadlines
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if let observer = try? context.pipeline.syncOperations.handler(type: RequestByteObserver.self) {
            activity = observer.activity
        }
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        ticker = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            let (handler, context) = bound.value
            if let missed = handler.missedDeadline(at: .now()) {
                handler.ticker?.cancel()
                handler.activity.logger.notice("closed a connection: \(missed)", metadata: ["address": .string(handler.activity.remoteAddress)])
                context.close(promise: nil)
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        ticker?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        ticker?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let since = activity.readPendingSince {
            if activity.bodyStartedAt != nil { activity.bodyWaited = activity.bodyWaited + (.now() - since) }
            activity.readPendingSince = nil
        }
        switch unwrapInboundIn(data) {
        case .head(let request):
            activity.headStartedAt = nil
            activity.bodyStartedAt = .now()
            activity.bodyBytes = 0
            activity.bodyWaited = .zero
            activity.requestsInFlight += 1
            activity.pendingAuthorizedRequest = request.headerFields[.authorization] != nil
            if activity.pendingAuthorizedRequest, let ticket = activity.ticket { activity.connections?.noteAuthenticatedRequest(ticket) }
        case .body(let buffer):
            activity.bodyBytes += buffer.readableBytes
        case .end:
            activity.bodyStartedAt = nil
        }
        context.fireChannelRead(data)
    }

    /// A read the handlers behind this one asked for: from now on, slowness is the client's.
    /// (While the request's handler does not consume the body, no read comes through.)
    func read(context: ChannelHandlerContext) {
        if activity.readPendingSince == nil { activity.readPendingSince = .now() }
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let response):
            if activity.pendingAuthorizedRequest, response.status.code < 400 { activity.signedIn = true }
            // A refused credential protects nothing: the connection may be closed for room again.
            if response.status.code == 401, let ticket = activity.ticket { activity.connections?.noteProgress(ticket) }
        case .body:
            break
        case .end:
            activity.requestsInFlight = max(0, activity.requestsInFlight - 1)
            activity.idleSince = .now()
            if let ticket = activity.ticket { activity.connections?.noteProgress(ticket) }
        }
        context.write(data, promise: promise)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        activity.unwritableSince = context.channel.isWritable ? nil : .now()
        context.fireChannelWritabilityChanged()
    }

    /// Which deadline the connection has missed at `now`, if any.
    func missedDeadline(at now: NIODeadline) -> String? {
        // A head is waited for only between requests: one pipelined behind a request in progress
        // is held back by the HTTP pipelining handler, not by the client.
        if activity.requestsInFlight == 0, let started = activity.headStartedAt, now - started > deadlines.header {
            return "the request head did not arrive within \(deadlines.header.seconds) s"
        }
        if activity.bodyStartedAt != nil {
            let waited = activity.bodyWaited + (activity.readPendingSince.map { now - $0 } ?? .zero)
            if waited > deadlines.bodyGrace,
               Double(activity.bodyBytes) < Double(deadlines.minimumBodyRate) * Double(waited.nanoseconds) / 1e9 {
                return "the request body arrived slower than \(deadlines.minimumBodyRate) bytes a second"
            }
        }
        if let since = activity.unwritableSince, now - since > deadlines.write {
            return "the client did not read its answer within \(deadlines.write.seconds) s"
        }
        if activity.established, activity.requestsInFlight == 0, activity.headStartedAt == nil {
            let limit = activity.signedIn ? deadlines.idle : deadlines.idleBeforeSignIn
            if now - activity.idleSince > limit { return "idle for \(limit.seconds) s" }
        }
        return nil
    }
}

extension TimeAmount {
    var seconds: Int64 { nanoseconds / 1_000_000_000 }
}
