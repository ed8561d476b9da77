import FoundationEssentials
import Glibc
import SecmailFormat
import SecmailTLS

/// What a client remembers about its relay ($SECMAIL_HOME/relay.json, 0600): where it is, the
/// pins taken on first contact, and the last checkpoint it accepted (every later one must extend it).
public struct RelaySettings: Codable, Sendable, Equatable {
    public var url: String
    /// A CA file the user gave; without it the relay key pin alone is trusted.
    public var caFile: String?
    /// Hex SHA-256 of the relay's TLS public key, pinned at registration.
    public var relayKeyPin: String
    /// The log's verifier key, pinned at registration.
    public var logVerifierKey: String
    /// The last accepted signed checkpoint.
    public var checkpoint: String?

    public init(url: String, caFile: String?, relayKeyPin: String, logVerifierKey: String, checkpoint: String?) {
        self.url = url
        self.caFile = caFile
        self.relayKeyPin = relayKeyPin
        self.logVerifierKey = logVerifierKey
        self.checkpoint = checkpoint
    }

    static func url(in home: SecmailHome) -> URL { home.url.appendingPathComponent("relay.json") }

    public static func load(from home: SecmailHome) throws -> RelaySettings {
        let url = url(in: home)
        guard FileManager.default.fileExists(atPath: url.path) else {
            // The name of an identity made with `init` goes into the line to type.
            throw ClientError(.noIdentity, "no relay configured in \(home.url.path); run: secmail register \(Keystore(home: home).nameToType) --relay https://HOST:PORT --tls-pin sha256/… (or --ca CA.pem)")
        }
        do {
            return try JSONDecoder().decode(RelaySettings.self, from: Data(contentsOf: url))
        } catch {
            throw ClientError(.corruptState, "\(url.path) is damaged: \(String(describing: error))")
        }
    }

    /// Replaces relay.json durably (a new file synced, renamed over the old one, the directory
    /// synced): a crash leaves the old settings or the new ones, never none, and never an older
    /// checkpoint than the one a command reported accepting.
    public func save(to home: SecmailHome) throws {
        try home.ensureExists()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileSystem.replaceFile(Self.url(in: home), bytes: Array(try encoder.encode(self)))
    }

    /// TLS trust for this relay: always the pinned key (so a CA cannot swap in another relay).
    public var trust: TLSConfiguration.Trust {
        get throws {
            guard let pin = try? Fingerprint(hex: relayKeyPin) else {
                throw ClientError(.corruptState, "the relay key pin in relay.json is damaged")
            }
            return .pinnedPublicKey(sha256: pin.bytes)
        }
    }

    public var logVerifier: NoteVerifier {
        get throws {
            do { return try NoteVerifier(verifierKey: logVerifierKey) } catch {
                throw ClientError(.corruptState, "the pinned log key in relay.json is damaged")
            }
        }
    }
}
