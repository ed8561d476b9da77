import HTTPTypes
import NIOCore
import NIOHTTPTypes
import SecmailAPI
import SecmailFormat
import Synchronization

/// After the HTTP codec: hashes the body of every deposit too large to be kept in memory, on the
/// connection's thread, as each piece leaves TLS (`EnvelopePayloadDigester`: the hash the sender's
/// signature covers, which the check at deposit needs). The piece is then still in the core's
/// cache from its decryption, and the request task is left with handing batches to the file's
/// queue. 64 MiB deposits, interleaved runs of the same client against relays hashing on the
/// request task and here (25 and 30 rounds): median 0.47 → 0.54 of the TLS bulk figure.
///
/// Each request head gets the connection's next serial in `serialField` (replacing whatever the
/// client put there), and the finished digest is kept under that serial in `digests` before the
/// body's end goes on: a route that has read its body to the end finds its digest there, even
/// with pipelined requests behind it. A route that finds none verifies from the file.
final class DepositBodyHasher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    /// The request head field carrying the serial, for the route to claim its digest with.
    static let serialField = HTTPField.Name("Secmail-Relay-Request-Serial")!

    let digests = ArrivedBodyDigests()
    private var serial = 0
    private var digester: EnvelopePayloadDigester?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(var request):
            serial += 1
            digester = Self.isLargeDeposit(request) ? try? EnvelopePayloadDigester() : nil
            request.headerFields[Self.serialField] = String(serial)
            context.fireChannelRead(wrapInboundOut(.head(request)))
        case .body(let buffer):
            if let digester { buffer.withUnsafeReadableBytes { digester.update($0) } }
            context.fireChannelRead(data)
        case .end:
            if let digester {
                digests.record(digester.finalize(), serial: serial)
                self.digester = nil
            }
            context.fireChannelRead(data)
        }
    }

    /// A deposit (`Endpoint.deposit`) whose declared length sends it to a file rather than a row
    /// (`MailboxStore.inlineLimit`): the requests `MailboxController.depositFile` serves.
    static func isLargeDeposit(_ request: HTTPRequest) -> Bool {
        guard request.method.rawValue == Endpoint.deposit.method,
              let path = request.path, path.split(separator: "?", maxSplits: 1).first == Endpoint.deposit.template[...],
              let length = request.headerFields[.contentLength].flatMap({ Int($0) }) else { return false }
        return length > MailboxStore.inlineLimit
    }
}

/// The body digests a connection's `DepositBodyHasher` finished, by request serial, until their
/// routes claim them; shared between the connection's thread and its request tasks.
final class ArrivedBodyDigests: Sendable {
    /// Digests kept unclaimed at most (a route that failed before claiming leaves its own behind).
    static let capacity = 4
    private let finished = Mutex<[(serial: Int, digest: EnvelopePayloadDigester.Digest?)]>([])

    func record(_ digest: EnvelopePayloadDigester.Digest?, serial: Int) {
        finished.withLock { finished in
            if finished.count == Self.capacity { finished.removeFirst() }
            finished.append((serial, digest))
        }
    }

    /// The digest of request `serial`'s body, once: nil when its body has not ended, its header
    /// did not parse, or it was never hashed.
    func claim(serial: Int) -> EnvelopePayloadDigester.Digest? {
        finished.withLock { finished in
            guard let index = finished.firstIndex(where: { $0.serial == serial }) else { return nil }
            return finished.remove(at: index).digest
        }
    }
}
