import Foundation
import SecmailCrypto
import SecmailFormat
@testable import SecmailRelay
import SecmailTLS
import SecmailTestSupport
import SecmailRelayTestSupport
import Testing

/// A clock tests can move.
final class TestClock: @unchecked Sendable {
    // @unchecked: `now` is guarded by `lock`.
    private let lock = NSLock()
    private var value: Int64 = 1_800_000_000
    var now: Int64 { lock.withLock { value } }
    func advance(_ seconds: Int64) { lock.withLock { value += seconds } }
}

@Suite struct AuthenticatorTests {
    let origin = "localhost/secmail"
    /// The SHA-256 of the TLS key of the relay under test (any 32 bytes: no TLS here).
    let relayKeyPin = [UInt8](repeating: 0x5A, count: 32)

    func setUp(_ engine: EngineUnderTest) async throws -> (Authenticator, TestClock, URL) {
        let folder = try makeTemporaryDirectory("relay-auth")
        let database = try await engine.database(in: folder)
        let clock = TestClock()
        let directory = Directory(database: database, clock: { clock.now })
        try await directory.register(ThrowawayIdentities.bundle("alice"))
        try await directory.register(ThrowawayIdentities.bundle("bob"))
        return (Authenticator(database: database, origin: origin, relayKeyPin: relayKeyPin, clock: { clock.now }), clock, folder)
    }

    func sign(_ nonce: [UInt8], as signer: String, for name: String, origin: String? = nil, relayKeyPin: [UInt8]? = nil) throws -> [UInt8] {
        try ThrowawayIdentities.signingKey(signer).signature(
            for: AuthChallenge.signedMessage(origin: origin ?? self.origin, relayKeyPin: relayKeyPin ?? self.relayKeyPin,
                                             name: IdentityName(name), nonce: nonce))
    }

    @Test(arguments: EngineUnderTest.available) func aSignedChallengeGivesATokenForThatNameOnly(engine: EngineUnderTest) async throws {
        let (auth, _, folder) = try await setUp(engine)
        defer { try? FileManager.default.removeItem(at: folder) }
        let alice = try IdentityName("alice")
        let nonce = try await auth.challenge(for: alice)
        let token = try await auth.redeem(name: alice, nonce: nonce, signature: sign(nonce, as: "alice", for: "alice")).token
        #expect(try await auth.authenticate(token: token) == alice)
        #expect(await relayErrorCode { _ = try await auth.authenticate(token: token + "0") } == .unauthorized)
    }

    /// The signature is checked outside any transaction, so two valid answers to one nonce may
    /// be checked at once: only one of them gets a token.
    @Test(arguments: EngineUnderTest.available) func oneNonceAnsweredTwiceAtOnceGivesOneToken(engine: EngineUnderTest) async throws {
        let (auth, _, folder) = try await setUp(engine)
        defer { try? FileManager.default.removeItem(at: folder) }
        let alice = try IdentityName("alice")
        let nonce = try await auth.challenge(for: alice)
        let signature = try sign(nonce, as: "alice", for: "alice")
        let attempts = (0..<4).map { _ in Task { try await auth.redeem(name: alice, nonce: nonce, signature: signature).token } }
        var tokens: [String] = [], refusals: [RelayError.Code] = []
        for attempt in attempts {
            do { tokens.append(try await attempt.value) } catch let error as RelayError { refusals.append(error.code) }
        }
        #expect(tokens.count == 1)
        #expect(refusals == [.forbidden, .forbidden, .forbidden])
    }

    @Test(arguments: EngineUnderTest.available) func forgedReplayedExpiredAndCrossNameProofsAreRefused(engine: EngineUnderTest) async throws {
        let (auth, clock, folder) = try await setUp(engine)
        defer { try? FileManager.default.removeItem(at: folder) }
        let alice = try IdentityName("alice"), bob = try IdentityName("bob")

        // Bob's key cannot answer alice's challenge: it is not alice's current key.
        let first = try await auth.challenge(for: alice)
        #expect(await relayErrorCode { _ = try await auth.redeem(name: alice, nonce: first, signature: sign(first, as: "bob", for: "alice")) } == .notCurrentKey)
        // The nonce was consumed by that attempt: even alice cannot reuse it.
        #expect(await relayErrorCode { _ = try await auth.redeem(name: alice, nonce: first, signature: sign(first, as: "alice", for: "alice")) } == .forbidden)
        // A challenge issued for bob cannot be redeemed as alice, even with alice's signature.
        let bobs = try await auth.challenge(for: bob)
        await #expect(throws: RelayError.self) { try await auth.redeem(name: alice, nonce: bobs, signature: sign(bobs, as: "alice", for: "alice")) }
        // A signature made for another relay does not verify here.
        let other = try await auth.challenge(for: alice)
        await #expect(throws: RelayError.self) { try await auth.redeem(name: alice, nonce: other, signature: sign(other, as: "alice", for: "alice", origin: "evil/secmail")) }
        // An expired challenge, and an expired token.
        let late = try await auth.challenge(for: alice)
        clock.advance(Authenticator.challengeLifetime + 1)
        #expect(await relayErrorCode { _ = try await auth.redeem(name: alice, nonce: late, signature: sign(late, as: "alice", for: "alice")) } == .challengeExpired)
        let fresh = try await auth.challenge(for: alice)
        let token = try await auth.redeem(name: alice, nonce: fresh, signature: sign(fresh, as: "alice", for: "alice")).token
        clock.advance(Authenticator.tokenLifetime + 1)
        #expect(await relayErrorCode { _ = try await auth.authenticate(token: token) } == .unauthorized)
        // No challenge for an unknown name.
        #expect(await relayErrorCode { _ = try await auth.challenge(for: IdentityName("nobody")) } == .notFound)
    }
}

extension RelayHTTPTests {
    @Test(arguments: EngineUnderTest.available) func challengeResponseOverHTTPGivesABearerToken(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine)
        defer { Task { await relay.stop() } }
        #expect(try await relay.curl("/v1/directory/register", method: "POST", json: registration(ThrowawayIdentities.bundle("alice"))).status == 201)
        let challenge = try json(try await relay.curl("/v1/auth/challenge", method: "POST", json: "{\"name\":\"alice\"}").body)
        let nonce = Array(try #require(Data(base64Encoded: challenge["nonce"] as? String ?? "")))
        let signature = try ThrowawayIdentities.signingKey("alice").signature(
            for: AuthChallenge.signedMessage(origin: "localhost/secmail",
                                             relayKeyPin: DevelopmentCertificates.publicKeyPin(certificateFile: RunningRelay.certs.appendingPathComponent("relay.pem")),
                                             name: IdentityName("alice"), nonce: nonce))
        let body = "{\"name\":\"alice\",\"nonce\":\"\(Data(nonce).base64EncodedString())\",\"signature\":\"\(Data(signature).base64EncodedString())\"}"
        let issued = try await relay.curl("/v1/auth/token", method: "POST", json: body)
        #expect(issued.status == 200, "\(issued.body)")
        let token = try json(issued.body)["token"] as? String ?? ""
        let whoami = try await run("curl", ["--silent", "--max-time", "60", "--cacert", RunningRelay.certs.appendingPathComponent("dev-ca.pem").path,
                                            "-H", "Authorization: Bearer \(token)", "https://localhost:\(relay.port)/v1/auth/whoami"])
        #expect(try json(whoami.text)["name"] as? String == "alice")
        #expect(try await relay.curl("/v1/auth/whoami").status == 401)
        #expect(try await relay.curl("/v1/auth/token", method: "POST", json: body).status == 403)  // the nonce is spent
    }
}
