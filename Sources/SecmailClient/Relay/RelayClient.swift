import FoundationEssentials
import Glibc
import NIOCore
import NIOHTTP1
import SecmailAPI
import SecmailCrypto
import SecmailFormat
import SecmailTLS

/// One command's conversation with a relay: one TLS context, one HTTP/1.1 connection kept alive
/// for the whole command (replaced once, transparently, when the relay closed it while idle), one
/// sign-in token obtained when a route first needs it, and the client's view of the log.
///
/// Every checkpoint the relay shows is checked against the pinned log key and must extend the
/// last one stored (P6); it replaces the stored one in memory, and reaches relay.json only through
/// `saveLogView()`, once the command's other checks passed.
public final class RelayClient {
    public let home: SecmailHome
    public let url: URL
    /// `host:port`, as errors name the relay.
    public let address: String
    let host: String
    let port: Int
    private let keyTrust: RelayKeyTrust
    private let tls: TLSContext
    private var connection: RelayHTTPConnection?
    /// TLS connections this client has opened: one per command, unless the relay closed one.
    public private(set) var connectionsOpened = 0
    /// By the signing key's bundle: a rotation ends the tokens of the key it replaced.
    private var tokens: [Fingerprint: String] = [:]
    private var cachedInfo: RelayInfo?
    /// This computer's clock minus the relay's, in seconds, as the relay's answer to `info()`
    /// showed it (its `Date` header: to the second, plus the answer's transit); nil before.
    public private(set) var clockOffset: Int64?
    /// relay.json: the pins and the last accepted checkpoint (nil before registration).
    public internal(set) var settings: RelaySettings?
    /// What relay.json holds as far as this client knows (as loaded, or as it last saved).
    var savedSettings: RelaySettings?
    /// The last verified lookup of each name in this command, for `verifiedLookup(_:reusing:)`.
    var latestLookups: [IdentityName: VerifiedLookup] = [:]
    /// Key histories proven in this command, by name, with the checkpoint they were proven under:
    /// the same tree proves the same history.
    var provenHistories: [IdentityName: (checkpoint: Checkpoint, chain: [LoggedKeyVersion])] = [:]

    /// The relay pinned in `home` (relay.json), trusted by its pinned TLS key only.
    public convenience init(home: SecmailHome) throws {
        let settings = try RelaySettings.load(from: home)
        guard let url = URL(string: settings.url) else { throw ClientError(.corruptState, "the relay URL in relay.json is damaged") }
        try self.init(home: home, url: url, trust: settings.trust, keyTrust: .pinnedAtRegistration, settings: settings)
    }

    /// The relay pinned in `home`, looked for at `url` (its address, or a new host name or port):
    /// trusted by its pinned TLS key only, as ever. With `newLogKey`, its log is the new one that
    /// key signs (`secmail relay new-log`), seen from its start. relay.json takes the address and
    /// the log key when `saveLogView()` runs (`DirectoryClient.confirmRegistration`, `followNewLog`).
    public convenience init(home: SecmailHome, at url: URL, newLogKey: String? = nil) throws {
        let saved = try RelaySettings.load(from: home)
        var moved = saved
        moved.url = url.absoluteString
        if let newLogKey {
            moved.logVerifierKey = newLogKey
            moved.checkpoint = nil
        }
        try self.init(home: home, url: url, trust: saved.trust, keyTrust: .pinnedAtRegistration, settings: moved)
        savedSettings = saved
    }

    /// A relay contacted for the first time (registration, a first `monitor`), trusted through
    /// the CA file or the key pin the user gave (`DirectoryClient.pinRelay` checks the rest).
    public convenience init(home: SecmailHome, firstContact url: URL, trusting contact: FirstContact) throws {
        try self.init(home: home, url: url, trust: contact.trust, keyTrust: contact.keyTrust, settings: nil)
    }

    private init(home: SecmailHome, url: URL, trust: TLSConfiguration.Trust, keyTrust: RelayKeyTrust, settings: RelaySettings?) throws {
        guard url.scheme == "https", let host = url.host, !host.isEmpty else {
            throw ClientError(.invalidInput, "a relay URL looks like https://host:port, not \(url.absoluteString)")
        }
        self.home = home
        self.url = url
        self.host = host
        port = url.port ?? 443
        address = "\(host.contains(":") ? "[\(host)]" : host):\(port)"
        self.keyTrust = keyTrust
        self.settings = settings
        savedSettings = settings
        do {
            tls = try TLSContext(configuration: .client(trust: trust))
        } catch let error as TLSError {
            throw ClientError(.invalidInput, "cannot use the relay's TLS settings: \(error.reason)")
        }
    }

    /// Closes the connection (TLS close_notify).
    public func close() async {
        await connection?.close()
        connection = nil
    }

    // MARK: Requests

    /// The longest `Retry-After` a refused request waits for before it goes again, and how many
    /// times it goes again: a relay's request rates (50 a second per identity, bursts of 100)
    /// ask for a second or two, which `read --all` of hundreds of messages meets; a limit counted
    /// in hours (registrations per address) is the user's to hear about at once.
    static let longestRateLimitWait = 5
    static let rateLimitRetries = 30

    /// Sends `request` (`sendOnce`); a `429` that says, with `Retry-After`, that the same request
    /// goes through within `longestRateLimitWait` seconds is sent again after that wait. Nothing
    /// was done for a refused request, so sending it again is safe whatever it is.
    public func send(_ request: RelayRequest) async throws -> RelayResponse {
        var response = try await sendOnce(request)
        var retries = 0
        while response.status == 429, let wait = response.retryAfter, wait <= Self.longestRateLimitWait, retries < Self.rateLimitRetries {
            try await Task.sleep(for: .seconds(wait))
            response = try await sendOnce(request)
            retries += 1
        }
        return response
    }

    /// Sends `request` on the kept-alive connection, opening it first if needed. When the
    /// connection ends before the answer, the request goes once more on a new one if that cannot
    /// do anything twice (`RelayRequest.maySendAgain`). Transport failures become one sentence
    /// (`ClientError.transport`); for a request the relay carries out once that failed after it
    /// went out, a sentence of what happened, with the code `.outcomeUnknown`.
    private func sendOnce(_ request: RelayRequest) async throws -> RelayResponse {
        let current: RelayHTTPConnection, isFresh: Bool
        do {
            (current, isFresh) = try await openConnection()
        } catch {
            connection = nil
            throw ClientError.transport(error, relay: address, trust: keyTrust)
        }
        do {
            return try await current.send(request)
        } catch let error where request.maySendAgain(after: error, onFreshConnection: isFresh) {
            connection = nil
            do {
                var response = try await openConnection().connection.send(request)
                response.answersARepeat = true
                return response
            } catch let again {
                connection = nil
                guard request.relayCarriesOutOnce else { throw ClientError.transport(again, relay: address, trust: keyTrust) }
                throw ClientError(.outcomeUnknown, "\(fact(error)), and sending it again failed (\(fact(again)))")
            }
        } catch {
            connection = nil
            let failure = ClientError.transport(error, relay: address, trust: keyTrust)
            // A time-out, say: the relay may yet carry it out. (A refused answer is not an error here.)
            guard request.relayCarriesOutOnce, failure.code == .relayUnreachable else { throw failure }
            throw ClientError(.outcomeUnknown, fact(error))
        }
    }

    /// What `error` did, naming the relay, without advice: the first part of its sentence.
    private func fact(_ error: Error) -> String {
        (error as? ClientError)?.reason ?? TransportFailure(error, relay: address, trust: keyTrust).fact
    }

    /// Sends `request` and decodes the answer, which must have `status`; any other status is the
    /// relay's refusal (`ClientError.refusal`).
    public func call<Answer: Decodable>(_ request: RelayRequest, expecting status: Int = 200, as type: Answer.Type,
                                        notFound: ClientError.Code = .notRegistered) async throws -> Answer {
        try decode(Answer.self, from: try await expect(status, request, notFound: notFound), to: request)
    }

    private func decode<Answer: Decodable>(_ type: Answer.Type, from response: RelayResponse, to request: RelayRequest) throws -> Answer {
        do {
            return try JSONDecoder().decode(Answer.self, from: Data(response.body))
        } catch {
            throw ClientError(.malformedAnswer, "the relay at \(address) answered \(request.method) \(Self.route(request.path)) with something other than its API's \(Answer.self)")
        }
    }

    /// Sends `request`; the answer must have `status`.
    @discardableResult
    public func expect(_ status: Int, _ request: RelayRequest, notFound: ClientError.Code = .notRegistered) async throws -> RelayResponse {
        let response = try await send(request)
        guard response.status == status else { throw ClientError.refusal(response, relay: address, notFound: notFound) }
        return response
    }

    /// What the relay is and accepts (`GET /v1/relay`), asked once per command. It is the first
    /// request of most commands: it proves the relay is there before any expensive work.
    public func info() async throws -> RelayInfo {
        if let cachedInfo { return cachedInfo }
        let request = RelayRequest(.GET, Endpoint.relayInfo.path())
        let response = try await expect(200, request)
        let info = try decode(RelayInfo.self, from: response, to: request)
        if let date = response.date { clockOffset = Int64(Date().timeIntervalSince1970) - date }
        // Mail commands ask this first: a relay that started a new log is said as such, before
        // the sign-in fails on the origin it signs.
        if settings != nil, case let pinned = try logVerifier().name, info.origin != pinned {
            throw newLog(info.origin, pinned: pinned)
        }
        cachedInfo = info
        return info
    }

    /// A bearer token for `identity`'s name, signed in once per command (P8): the relay's nonce
    /// signed with the current signing key. A challenge that expired before its answer arrived
    /// (the machine slept, say) is replaced by a new one, once.
    public func token(for identity: SenderIdentity) async throws -> String {
        let name = identity.bundle.name
        if let token = tokens[identity.bundle.fingerprint] { return token }
        guard let pin = try settings.map({ try Fingerprint(hex: $0.relayKeyPin).bytes }) else {
            throw ClientError(.noIdentity, "no relay is pinned in \(home.url.path) yet")
        }
        let origin = try logVerifier().name
        for attempt in 1...2 {
            let challenge = try await call(try RelayRequest(.POST, Endpoint.challenge.path(), json: ChallengeRequest(name: name.value)),
                                           as: ChallengeResponse.self)
            let request = try RelayRequest(.POST, Endpoint.token.path(),
                                           json: SignIn.answer(challenge, as: identity, origin: origin, relayKeyPin: pin))
            let response = try await send(request)
            if response.status != 200, (try? JSONDecoder().decode(ErrorResponse.self, from: Data(response.body)))?.code == .challengeExpired {
                if attempt == 1 { continue }
                break
            }
            guard response.status == 200 else {
                let refusal = ClientError.refusal(response, relay: address, notFound: .notRegistered)
                guard refusal.code == .keyNotCurrent else { throw refusal }
                // Two copies of one home, one of them rotated: the other is left with a retired key.
                throw ClientError(.keyNotCurrent, "the relay at \(address) does not take this home's key version \(identity.bundle.keyVersion) as \(name)'s current signing key. If \(name)'s keys were rotated from another copy of this home, copy that copy's identity folder over \(home.url.appendingPathComponent("identity").path); if not, `secmail audit` names the log entries for \(name) that this home did not make")
            }
            let answer = try decode(TokenResponse.self, from: response, to: request)
            tokens[identity.bundle.fingerprint] = answer.token
            return answer.token
        }
        throw ClientError(.relayRefused, "the relay at \(address) let two sign-in challenges for \(name) expire before they were answered; is this machine's clock or the relay's jumping?")
    }

    /// Whether `name` is registered, as the relay says (unverified: a hint that spares making
    /// keys for a name that is taken; registration itself is what counts).
    public func isRegistered(_ name: IdentityName) async throws -> Bool {
        let response = try await send(RelayRequest(.GET, Endpoint.lookup.path(name.value)))
        switch response.status {
        case 200: return true
        case 404: return false
        default: throw ClientError.refusal(response, relay: address, notFound: .notRegistered)
        }
    }

    private func openConnection() async throws -> (connection: RelayHTTPConnection, isFresh: Bool) {
        if let connection, await connection.isReusable, !isAboutToTimeOut(connection) { return (connection, false) }
        let opened = try await RelayHTTPConnection.open(host: host, port: port, tls: tls)
        connection = opened
        connectionsOpened += 1
        return (opened, true)
    }

    /// Whether `connection` has been idle for most of the idle time the relay announced (the
    /// shorter one until this client signed in): the relay may be closing it as a request goes
    /// out, and a request that is not idempotent could not be sent again, so a new connection is
    /// the safer choice.
    private func isAboutToTimeOut(_ connection: RelayHTTPConnection) -> Bool {
        guard let limits = cachedInfo?.limits else { return false }
        let seconds = tokens.isEmpty ? limits.idleTimeoutBeforeSignInSeconds : limits.idleTimeoutSeconds
        let idleLimit = Duration.seconds(seconds)
        return ContinuousClock.now - connection.idleSince > max(idleLimit / 2, idleLimit - .seconds(2))
    }

    /// The route of a path, without its query (errors name routes, not whole URLs).
    private static func route(_ path: String) -> String {
        String(path.prefix { $0 != "?" })
    }
}
