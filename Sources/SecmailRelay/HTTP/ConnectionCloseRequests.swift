import NIOCore
import NIOHTTP1

/// Honours every way a client asks for its connection to end with a response (RFC 9112 §9.3):
/// an HTTP/1.0 request without `Connection: keep-alive`, and a `close` token written in any case
/// or among others (`Connection: Close`, `keep-alive, close`). Hummingbird ends a connection only
/// for a header that is exactly `close`, and the HTTP version is gone once its codec converted the
/// head; so this sits before that codec and rewrites such a head to say exactly that, and tells
/// the client in the answer (`Connection: close`). Without it an HTTP/1.0 client that reads to
/// the end of the connection waited the whole idle timeout for an answer it already had.
final class ConnectionCloseRequests: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// For each request not answered yet, oldest first: whether its connection ends with the answer.
    private var closing: [Bool] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        let closes = !head.isKeepAlive
        closing.append(closes)
        if closes { head.headers.replaceOrAdd(name: "connection", value: "close") }
        context.fireChannelRead(wrapInboundOut(.head(head)))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Hummingbird's own 400 for an unparsable request comes with no head read before it; an
        // interim (1xx) answer is not the one the connection may end with.
        guard case .head(var head) = unwrapOutboundIn(data), head.status.code >= 200, !closing.isEmpty else {
            context.write(data, promise: promise)
            return
        }
        if closing.removeFirst() { head.headers.replaceOrAdd(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(head)), promise: promise)
    }
}
