import Foundation
import NIOCore
import NIOHTTP1
import SecmailAPI

/// Gives the `400` that answers a request the HTTP decoder could not parse (a malformed request
/// line or header, a `Content-Length` that is not one decimal number, a head too large) the body
/// every other error has: `ErrorResponse` with the code `http` and a reason that says what was
/// wrong. Hummingbird writes that answer itself, with an empty body, once the decoder's error
/// reached it; this handler sits before Hummingbird's codec, notes the error on its way there,
/// and fills in the answer that follows it. The connection still ends with that answer.
final class MalformedRequestAnswers: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case parsing
        /// The decoder failed: its answer (Hummingbird's bodiless `400`) is still to come, after
        /// those to the requests before it.
        case awaitingAnswer(body: ByteBuffer)
        /// That answer's head went out with this body's length; the body goes before its end.
        case answering(body: ByteBuffer)
    }

    private var state = State.parsing

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let parseError = error as? HTTPParserError, case .parsing = state,
           let json = try? JSONEncoder().encode(ErrorResponse(.http, reason: Self.reason(parseError))) {
            state = .awaitingAnswer(body: context.channel.allocator.buffer(bytes: json))
        }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch (state, unwrapOutboundIn(data)) {
        // Hummingbird's answer to the error, told from an answer to an earlier request by having
        // no body: every answer of the relay's own routes with that status has one.
        case (.awaitingAnswer(let body), .head(var head)) where head.status == .badRequest && head.headers["content-length"] == ["0"]:
            head.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
            head.headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
            state = .answering(body: body)
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case (.answering(let body), .end(let trailers)):
            state = .parsing
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.write(wrapOutboundOut(.end(trailers)), promise: promise)
        default:
            context.write(data, promise: promise)
        }
    }

    /// What was wrong with the request, for the client's programmer.
    static func reason(_ error: HTTPParserError) -> String {
        switch error {
        case .invalidContentLength, .unexpectedContentLength:
            "the request's Content-Length is not one decimal number, or not allowed here"
        case .headerOverflow:
            "the request's head is larger than the relay takes"
        case .invalidMethod, .invalidURL, .invalidVersion, .invalidPath, .invalidQueryString:
            "the request line is not an HTTP/1.1 request line (METHOD /path HTTP/1.1)"
        case .invalidHeaderToken, .invalidCharactersUsed, .lfExpected:
            "a request header is malformed"
        case .invalidChunkSize:
            "the request's chunked body is malformed"
        default:
            "the request is not valid HTTP/1.1"
        }
    }
}
