import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypesHTTP1
import SecmailTLS

/// Puts our OpenSSL `TLSHandler` in front of Hummingbird's HTTP/1.1 child channel (DESIGN:
/// HummingbirdTLS is not used, since it brings a second TLS stack), after a per-address
/// connection cap, with the `RequestByteObserver` of the connection's deadlines between TLS and
/// HTTP, and `ConnectionCloseRequests` and `MalformedRequestAnswers` before Hummingbird's HTTP
/// codec.
struct SecmailTLSChannel<BaseChannel: ServerChildChannel>: ServerChildChannel {
    typealias Value = BaseChannel.Value

    let baseChannel: BaseChannel
    let certificate: ServingCertificate
    let connections: ConnectionLimiter

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let admission = connections.acquireOrRefuse(channel.remoteAddress, close: { channel.close(promise: nil) })
        guard let ticket = admission.ticket else {
            // Refused before the TLS handshake: an over-cap client costs no crypto.
            let group = connections.grouping.group(of: channel.remoteAddress)
            let why = switch admission.refusal {
            case .groupFull: "\(connections.perGroup) already open from its address"
            case .tooFast: "its address opens connections faster than \(Int(connections.openings?.limit.perSecond ?? 0)) a second"
            default: "all \(connections.capacity) are busy"
            }
            logger.notice("refused a connection: \(why)", metadata: ["address": .string(group)])
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(ConnectionRefused(group: group, reason: why))
        }
        let connections = connections
        channel.closeFuture.whenComplete { _ in connections.release(ticket) }
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(TLSHandler(context: certificate.current))
            let activity = ConnectionActivity(logger: logger, remoteAddress: channel.remoteAddress?.ipAddress ?? "unknown",
                                              connections: connections, ticket: ticket)
            try channel.pipeline.syncOperations.addHandler(RequestByteObserver(activity: activity))
        }.flatMap {
            baseChannel.setup(channel: channel, logger: logger)
        }.flatMapThrowing { value in
            // Before Hummingbird's codec, where the request head still has its HTTP version.
            let codec = try channel.pipeline.syncOperations.handler(type: HTTP1ToHTTPServerCodec.self)
            try channel.pipeline.syncOperations.addHandler(ConnectionCloseRequests(), position: .before(codec))
            try channel.pipeline.syncOperations.addHandler(MalformedRequestAnswers(), position: .before(codec))
            return value
        }
    }

    func handle(value: BaseChannel.Value, logger: Logger) async {
        await baseChannel.handle(value: value, logger: logger)
    }
}

extension SecmailTLSChannel: HTTPChannelHandler where BaseChannel: HTTPChannelHandler {
    var responder: HTTPChannelHandler.Responder { baseChannel.responder }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 over secmail's OpenSSL TLS, each connection held to `deadlines` (`ConnectionGuard`)
    /// and to `connections`' per-address cap.
    static func secmailTLS(certificate: ServingCertificate, deadlines: ConnectionDeadlines, connections: ConnectionLimiter) -> HTTPServerBuilder {
        .init { responder in
            SecmailTLSChannel(baseChannel: HTTP1Channel(responder: responder,
                                                        configuration: .init(additionalChannelHandlers: [ConnectionGuard(deadlines: deadlines)],
                                                                             idleTimeout: deadlines.idle)),
                              certificate: certificate, connections: connections)
        }
    }
}
