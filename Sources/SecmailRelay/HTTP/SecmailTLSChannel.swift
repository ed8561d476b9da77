import HummingbirdCore
import Logging
import NIOCore
import SecmailTLS

/// Puts our OpenSSL `TLSHandler` in front of Hummingbird's HTTP/1.1 child channel (DESIGN:
/// HummingbirdTLS is not used, since it brings a second TLS stack), after a per-address
/// connection cap, with the `RequestByteObserver` of the connection's deadlines between TLS and
/// HTTP.
struct SecmailTLSChannel<BaseChannel: ServerChildChannel>: ServerChildChannel {
    typealias Value = BaseChannel.Value

    let baseChannel: BaseChannel
    let context: TLSContext
    let connections: ConnectionLimiter

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        guard let group = connections.acquire(channel.remoteAddress) else {
            // Refused before the TLS handshake: an over-cap client costs no crypto.
            logger.notice("refused a connection: \(connections.perGroup) already open from its address",
                          metadata: ["address": .string(connections.grouping.group(of: channel.remoteAddress))])
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(ConnectionCapReached(group: connections.grouping.group(of: channel.remoteAddress),
                                                                           cap: connections.perGroup))
        }
        let connections = connections
        channel.closeFuture.whenComplete { _ in connections.release(group) }
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(TLSHandler(context: context))
            let activity = ConnectionActivity(logger: logger, remoteAddress: channel.remoteAddress?.ipAddress ?? "unknown")
            try channel.pipeline.syncOperations.addHandler(RequestByteObserver(activity: activity))
        }.flatMap {
            baseChannel.setup(channel: channel, logger: logger)
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
    static func secmailTLS(context: TLSContext, deadlines: ConnectionDeadlines, connections: ConnectionLimiter) -> HTTPServerBuilder {
        .init { responder in
            SecmailTLSChannel(baseChannel: HTTP1Channel(responder: responder,
                                                        configuration: .init(additionalChannelHandlers: [ConnectionGuard(deadlines: deadlines)],
                                                                             idleTimeout: deadlines.idle)),
                              context: context, connections: connections)
        }
    }
}
