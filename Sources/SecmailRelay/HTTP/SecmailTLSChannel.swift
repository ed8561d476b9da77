import HummingbirdCore
import Logging
import NIOCore
import SecmailTLS

/// Puts our OpenSSL `TLSHandler` in front of Hummingbird's HTTP/1.1 child channel (DESIGN:
/// HummingbirdTLS is not used, since it brings a second TLS stack).
struct SecmailTLSChannel<BaseChannel: ServerChildChannel>: ServerChildChannel {
    typealias Value = BaseChannel.Value

    let baseChannel: BaseChannel
    let context: TLSContext

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(TLSHandler(context: context))
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
    /// HTTP/1.1 over secmail's OpenSSL TLS; idle connections close after `idleTimeout`.
    static func secmailTLS(context: TLSContext, idleTimeout: TimeAmount = .seconds(60)) -> HTTPServerBuilder {
        .init { responder in
            SecmailTLSChannel(baseChannel: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: idleTimeout)),
                              context: context)
        }
    }
}
