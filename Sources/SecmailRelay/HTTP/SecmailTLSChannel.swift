import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import SecmailTLS

/// A relay connection's child channel: a per-address connection cap, our OpenSSL `TLSHandler`
/// (DESIGN: HummingbirdTLS is not used, since it brings a second TLS stack), the
/// `RequestByteObserver` of the connection's deadlines between TLS and HTTP, NIO's HTTP/1.1
/// codec with `ConnectionCloseRequests` and `MalformedRequestAnswers` before Hummingbird's
/// part codec, `ConnectionGuard`'s deadlines, Hummingbird's idle-state handler, and the
/// connection handed to Hummingbird's responder as an async channel. It builds the HTTP/1.1
/// pipeline itself, as Hummingbird's `HTTP1Channel` would, for the one setting that one does
/// not offer: how many request parts may wait for the route handler (`requestPartsWaiting`).
struct SecmailTLSChannel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let certificate: ServingCertificate
    let connections: ConnectionLimiter
    let deadlines: ConnectionDeadlines

    /// Request parts (each at most `TLSHandler.readGather`, 256 KiB, of body) the connection
    /// reads ahead of its route handler before it stops reading, and how few let it read again.
    /// With NIO's default, 10 and 2 (640 KiB of 64 KiB parts, as they were then), the connection's
    /// thread stopped whenever the deposit's request task, hashing, fell a little behind, and both
    /// then waited for the other: 64 MiB deposits on the 2-core test machine, interleaved runs of
    /// 10–15 rounds, median 0.61–0.66 of the TLS bulk figure with the default, 0.68 with 16,
    /// 0.67–0.71 with 32, 0.67–0.71 with 64 (64 KiB parts), the cores busier (0.78 to 0.83). With
    /// 256 KiB parts, 8 and 2 hold as many bytes as 32 and 8 did, and bound what one connection
    /// holds waiting at 2 MiB.
    static let requestPartsWaiting = NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark(lowWatermark: 2, highWatermark: 8)

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
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(TLSHandler(context: certificate.current))
            let activity = ConnectionActivity(logger: logger, remoteAddress: channel.remoteAddress?.ipAddress ?? "unknown",
                                              connections: connections, ticket: ticket)
            try pipeline.addHandler(RequestByteObserver(activity: activity))
            // Hummingbird's HTTP1Channel settings: its own part codec answers errors and
            // validates outbound headers, so NIO's handlers for those are left out; at most
            // 1,000 header fields.
            var headerLimits = NIOHTTPDecoderLimitConfiguration()
            headerLimits.maxHeaderFieldCount = 1000
            try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false,
                                                     withOutboundHeaderValidation: false, withEncoderConfiguration: .init(),
                                                     withDecoderLimitConfiguration: headerLimits)
            // Before the part codec, where the request head still has its HTTP version.
            try pipeline.addHandler(ConnectionCloseRequests())
            try pipeline.addHandler(MalformedRequestAnswers())
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandler(ConnectionGuard(deadlines: deadlines))
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: .nanoseconds(deadlines.idle.nanoseconds), logger: logger))
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel,
                                       configuration: .init(backPressureStrategy: Self.requestPartsWaiting, isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 over secmail's OpenSSL TLS, each connection held to `deadlines` (`ConnectionGuard`)
    /// and to `connections`' per-address cap.
    static func secmailTLS(certificate: ServingCertificate, deadlines: ConnectionDeadlines, connections: ConnectionLimiter) -> HTTPServerBuilder {
        .init { responder in
            SecmailTLSChannel(responder: responder, certificate: certificate, connections: connections, deadlines: deadlines)
        }
    }
}
