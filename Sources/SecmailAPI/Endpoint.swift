import FoundationEssentials
import Glibc

/// One route of the relay's HTTP API (docs/API.md): its method and its path template, in which
/// `:name` marks a path parameter (Hummingbird's syntax, so the relay registers exactly these).
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    public let method: String
    public let template: String

    init(_ method: String, _ template: String) {
        self.method = method
        self.template = template
    }

    public var description: String { "\(method) \(template)" }

    public static let health = Endpoint("GET", "/v1/health")
    /// What the relay is and what it accepts (`RelayInfo`).
    public static let relayInfo = Endpoint("GET", "/v1/relay")

    public static let register = Endpoint("POST", "/v1/directory/register")
    public static let rotate = Endpoint("POST", "/v1/directory/rotate")
    public static let lookup = Endpoint("GET", "/v1/directory/:name")
    public static let history = Endpoint("GET", "/v1/directory/:name/history")

    public static let challenge = Endpoint("POST", "/v1/auth/challenge")
    public static let token = Endpoint("POST", "/v1/auth/token")
    public static let whoami = Endpoint("GET", "/v1/auth/whoami")
    /// What the signed-in user's client can read (`ReaderFeaturesBody`).
    public static let readerFeatures = Endpoint("PUT", "/v1/features")

    public static let deposit = Endpoint("POST", "/v1/messages")
    public static let mailbox = Endpoint("GET", "/v1/mailbox")
    public static let fetchMessage = Endpoint("GET", "/v1/mailbox/:id")
    public static let deleteMessage = Endpoint("DELETE", "/v1/mailbox/:id")

    public static let logKey = Endpoint("GET", "/v1/log/key")
    public static let checkpoint = Endpoint("GET", "/v1/log/checkpoint")
    public static let consistency = Endpoint("GET", "/v1/log/consistency")
    public static let entries = Endpoint("GET", "/v1/log/entries")

    /// Every route the relay serves.
    public static let all: [Endpoint] = [
        health, relayInfo, register, rotate, lookup, history, challenge, token, whoami, readerFeatures,
        deposit, mailbox, fetchMessage, deleteMessage, logKey, checkpoint, consistency, entries,
    ]

    /// The names of query parameters.
    public enum Query {
        /// `history`: the log size the versions are proven in.
        public static let treeSize = "treeSize"
        /// `deposit`: a recipient (repeated for several).
        public static let recipient = "to"
        /// `deposit`, optional: the envelope's message id (32 hex digits). An id accepted before
        /// for a recipient is then refused before the body is read (a repeated deposit), and the
        /// envelope must carry this id.
        public static let messageID = "message"
        /// `consistency`: the two log sizes.
        public static let from = "from", to = "to"
        /// `entries`: the first leaf index and the end (exclusive).
        public static let start = "start", end = "end"
        /// `mailbox`: the cursor a page answered with, and the most messages to list.
        public static let after = "after", limit = "limit"
    }

    /// The request path with `parameters` filling the template's `:name` segments in order, and
    /// `query` appended (values percent-encoded).
    public func path(_ parameters: String..., query: [(String, String)] = []) -> String {
        var remaining = parameters[...]
        let segments = template.split(separator: "/", omittingEmptySubsequences: false).map { segment -> String in
            guard segment.hasPrefix(":") else { return String(segment) }
            precondition(!remaining.isEmpty, "\(self) needs a value for \(segment)")
            return Self.encode(remaining.removeFirst())
        }
        precondition(remaining.isEmpty, "\(self) takes \(parameters.count - remaining.count) path parameters")
        let path = segments.joined(separator: "/")
        guard !query.isEmpty else { return path }
        return path + "?" + query.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&")
    }

    /// `value` with every UTF-8 byte but RFC 3986's unreserved characters percent-encoded.
    private static func encode(_ value: String) -> String {
        let hexDigits = Array("0123456789ABCDEF".utf8)
        var encoded: [UInt8] = []
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                encoded.append(byte)
            default:
                encoded += [UInt8(ascii: "%"), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: encoded, as: UTF8.self)
    }
}
