import FoundationEssentials
import Glibc
import NIOCore
import NIOHTTP1

/// One HTTP request to a relay.
public struct RelayRequest: Sendable {
    /// What a request carries.
    public enum Body: Sendable {
        case json(Data)
        /// Bytes in memory, sent as application/octet-stream.
        case binary(Data)
        /// A file, streamed in 256 KiB pieces as application/octet-stream (an envelope).
        case file(URL)
    }

    public var method: HTTPMethod
    public var path: String
    public var body: Body?
    public var bearer: String?
    /// Where a `200` answer's body goes instead of memory: a new file (0600), complete when the
    /// answer returns, without the in-memory size limit. Written to disk as it arrives but not
    /// synced: whoever keeps the file makes it durable (`read` does so once the message checked
    /// out, so the disk writes overlap the checks).
    public var saveBodyTo: URL?
    /// The saved body is only checked and removed (a scratch file): left to the page cache.
    public var savedBodyIsScratch = false
    /// How long the whole exchange may take; uploads get a minute plus a second per MiB more.
    public var timeout: TimeAmount = .seconds(30)
    /// Bytes sent so far and in all, during a file upload.
    public var uploadProgress: (@Sendable (UInt64, UInt64) -> Void)?
    /// Bytes received so far and the announced length, during a download to a file.
    public var downloadProgress: (@Sendable (UInt64, UInt64) -> Void)?
    /// The most a download to a file may bring (a message's listed size): a longer answer, or
    /// one announced longer, is cut off and refused.
    public var maximumDownloadSize: UInt64?
    /// Set for a request the relay carries out at most once however often it arrives (a deposit:
    /// each message id is accepted once per recipient). When its connection breaks after it
    /// went out, it is sent once more on a new connection (`RelayResponse.answersARepeat`), and a
    /// failure that leaves unknown whether the relay carried it out says so (`.outcomeUnknown`).
    public var relayCarriesOutOnce = false

    public init(_ method: HTTPMethod, _ path: String, body: Body? = nil, bearer: String? = nil) {
        self.method = method
        self.path = path
        self.body = body
        self.bearer = bearer
    }

    /// A request whose body is `value` as JSON.
    public init(_ method: HTTPMethod, _ path: String, json value: some Encodable, bearer: String? = nil) throws {
        self.init(method, path, body: .json(try JSONEncoder().encode(value)), bearer: bearer)
    }

    /// Whether to send it once more, on a new connection, after `error` ended the connection it
    /// went out on. One the relay carries out once: whenever the connection broke. One that does
    /// the same when sent twice (GET, HEAD, DELETE): when the relay closed a kept-alive connection
    /// before answering (its idle timeout). Anything else: never.
    func maySendAgain(after error: Error, onFreshConnection isFresh: Bool) -> Bool {
        if relayCarriesOutOnce { return RelayTransportError.meansConnectionBroke(error) }
        let isIdempotent = method == .GET || method == .HEAD || method == .DELETE
        return !isFresh && isIdempotent && RelayTransportError.meansClosedBeforeAnswer(error)
    }
}

/// A relay's answer.
public struct RelayResponse: Sendable {
    public let status: Int
    /// The body, unless it went to `RelayRequest.saveBodyTo`.
    public let body: [UInt8]
    /// SHA-256 of the relay certificate's public key, as seen in this connection's handshake.
    public let relayKeyPin: [UInt8]?
    /// The DNS names the relay's certificate is issued for (from the same handshake).
    public var relayDNSNames: [String] = []
    /// The relay's clock when it answered (its `Date` header), in seconds since 1970.
    public var date: Int64?
    /// For a `429`: the seconds the relay asked to wait before the same request (`Retry-After`,
    /// in seconds; nil when it gave none, or a date).
    public var retryAfter: Int?
    /// Whether this answers the request sent a second time, after the connection of the first
    /// broke (`RelayRequest.relayCarriesOutOnce`): the relay may have carried out the first.
    public var answersARepeat = false
}
