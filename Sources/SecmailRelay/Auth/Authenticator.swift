import Foundation
import SecmailCrypto
import SecmailFormat

/// Challenge-response authentication (P8): a single-use nonce, signed by the name's current
/// signing key, is exchanged for a short-lived bearer token. Only SHA-256 of a token is stored.
public struct Authenticator: Sendable {
    let database: RelayDatabase
    let origin: String
    /// SHA-256 of the relay's TLS public key, which a client's signature must cover.
    let relayKeyPin: [UInt8]
    let clock: @Sendable () -> Int64
    public static let challengeLifetime: Int64 = 60
    public static let tokenLifetime: Int64 = 15 * 60

    /// Authenticated requests per identity.
    let identityLimiter: RateLimiter
    /// Sessions found valid before (nil: every token is looked up; see `SessionCache`). The same
    /// object must be given to the `Directory`, which ends a name's sessions when its keys rotate.
    let sessions: SessionCache?

    public init(database: RelayDatabase, origin: String, relayKeyPin: [UInt8], perIdentity: RateLimiter.Limit = .init(perSecond: 50, burst: 100),
                sessions: SessionCache? = nil, clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) {
        self.database = database
        self.origin = origin
        self.relayKeyPin = relayKeyPin
        self.clock = clock
        self.sessions = sessions
        identityLimiter = RateLimiter(perIdentity)
    }

    /// A fresh nonce for `name` (which must be registered), valid for a minute, usable once.
    public func challenge(for name: IdentityName) async throws -> [UInt8] {
        let nonce = try SystemRandom().bytes(count: 32)
        let now = clock()
        try await database.write { db in
            guard try db.isRegistered(name.value) else {
                throw RelayError(.notFound, "no one is registered as \(name) on this relay")
            }
            try db.execute("DELETE FROM challenges WHERE expires_at < ?", [now])
            try db.execute("INSERT INTO challenges (nonce, name, expires_at) VALUES (?, ?, ?)", [Data(nonce), name.value, now + Self.challengeLifetime])
        }
        return nonce
    }

    /// Checks `signature` over the challenge for `nonce` with `name`'s current signing key and
    /// returns a bearer token. The nonce is consumed whether or not the signature verifies. The
    /// RSA check runs outside any transaction; a valid answer then costs one commit, which
    /// consumes the nonce (only if no concurrent answer did), confirms that the key checked is
    /// still the current one (a rotation in between ends the sign-in) and stores the token's hash.
    public func redeem(name: IdentityName, nonce: [UInt8], signature: [UInt8]) async throws -> (token: String, expiresIn: Int64) {
        let now = clock()
        let stored: (name: String, expiresAt: Int64, bundle: Data?)? = try await database.read { db in
            guard let row = try db.fetchRow("SELECT name, expires_at FROM challenges WHERE nonce = ?", [Data(nonce)]) else {
                return nil
            }
            let bundle = try db.latestBundleEncoding(of: try row.get("name"))
            return (try row.get("name"), try row.get("expires_at"), bundle)
        }
        do {
            guard let stored, stored.name == name.value else {
                throw RelayError(.forbidden, "unknown or already used challenge")
            }
            guard stored.expiresAt >= now else {
                throw RelayError(.challengeExpired, "the challenge expired; ask for a new one")
            }
            guard let bundleData = stored.bundle else {
                throw RelayError(.notFound, "no one is registered as \(name) on this relay")
            }
            let bundle = try IdentityBundle(encoded: Array(bundleData))
            let message = AuthChallenge.signedMessage(origin: origin, relayKeyPin: relayKeyPin, name: name, nonce: nonce)
            guard bundle.signingKey.isValidSignature(signature, for: message) else {
                throw RelayError(.notCurrentKey, "the signature does not verify with \(name)'s current signing key (key version \(bundle.keyVersion))")
            }
        } catch {
            if stored != nil { try await consume(nonce) }
            throw error
        }
        let verifiedBundle = stored?.bundle
        let token = hexEncoded(try SystemRandom().bytes(count: 32))
        try await database.write { db in
            guard try db.consumeChallenge(nonce) else { throw RelayError(.forbidden, "unknown or already used challenge") }
            let current = try db.latestBundleEncoding(of: name.value)
            guard current == verifiedBundle else {
                throw RelayError(.notCurrentKey, "the keys of \(name) were rotated during sign-in; sign in with the current key")
            }
            try db.execute("DELETE FROM sessions WHERE expires_at < ?", [now])
            try db.execute("INSERT INTO sessions (token_hash, name, expires_at) VALUES (?, ?, ?)", [Self.hash(of: token), name.value, now + Self.tokenLifetime])
        }
        return (token, Self.tokenLifetime)
    }

    /// Removes a challenge after a failed answer: a nonce is good for one attempt.
    private func consume(_ nonce: [UInt8]) async throws {
        try await database.write { db in _ = try db.consumeChallenge(nonce) }
    }

    /// The name a valid, unexpired token belongs to: from the session cache when it holds the
    /// session, else read (and then kept there).
    public func authenticate(token: String) async throws -> IdentityName {
        if let cached = cachedName(owning: token) { return cached }
        let generation = sessions?.generation
        return try await database.read { db in try name(owning: token, in: db, keepingFrom: generation) }
    }

    /// The name a valid, unexpired token belongs to, looked up within `db` (a route that reads
    /// more in the same transaction saves a trip to the database's thread and back). With
    /// `keepingFrom`, the session cache's generation taken before the read began, the session
    /// found is kept in the cache.
    func name(owning token: String, in db: any StorageTransaction, keepingFrom generation: UInt64? = nil) throws -> IdentityName {
        let tokenHash = Self.hash(of: token)
        guard let row = try db.fetchRow("SELECT name, expires_at FROM sessions WHERE token_hash = ?", [tokenHash]),
              case let expiresAt: Int64 = try row.get("expires_at"), expiresAt >= clock() else {
            throw RelayError(.unauthorized, "missing, unknown or expired token; authenticate again")
        }
        let name = try IdentityName(try row.get("name") as String)
        if let generation { sessions?.keep(name, expiresAt: expiresAt, for: tokenHash, readAt: generation) }
        return name
    }

    /// The name an unexpired token belongs to, if the session cache holds it (nil: ask the database).
    func cachedName(owning token: String) -> IdentityName? {
        sessions?.name(for: Self.hash(of: token), now: clock())
    }

    /// What `sessions` stores for a token.
    private static func hash(of token: String) -> Data {
        Data(SHA256.hash(Array(token.utf8)))
    }
}
