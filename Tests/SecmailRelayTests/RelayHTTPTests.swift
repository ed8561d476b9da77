import Foundation
import Hummingbird
import SecmailCrypto
import SecmailFormat
@testable import SecmailRelay
import SecmailTLS
import SecmailTestSupport
import SecmailRelayTestSupport
import Testing

@Suite struct RelayHTTPTests {
    func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func registration(_ bundle: IdentityBundle, invite: String? = nil) -> String {
        let body: [String: String] = invite.map { ["bundle": Data(bundle.encoded).base64EncodedString(), "invite": $0] }
            ?? ["bundle": Data(bundle.encoded).base64EncodedString()]
        return String(decoding: try! JSONSerialization.data(withJSONObject: body), as: UTF8.self)
    }

    @Test(arguments: EngineUnderTest.available) func registerLookupAndVerifyOverTLS(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine)
        defer { Task { await relay.stop() } }
        let health = try await relay.curl("/v1/health")
        #expect(health == (200, "ok\n"))

        let alice = try ThrowawayIdentities.bundle("alice"), bob = try ThrowawayIdentities.bundle("bob")
        let created = try await relay.curl("/v1/directory/register", method: "POST", json: registration(alice))
        #expect(created.status == 201, "\(created.body)")
        #expect(try json(created.body)["fingerprint"] as? String == alice.fingerprint.hex)
        #expect(try await relay.curl("/v1/directory/register", method: "POST", json: registration(bob)).status == 201)

        // Lookup: the bundle, its inclusion proof and a signed checkpoint a client can verify.
        // Names in the API are lower-case: an upper-case one is refused, not normalised.
        for (path, body) in [("/v1/directory/Alice", nil), ("/v1/directory/Alice/history", nil), ("/v1/auth/challenge", #"{"name":"Alice"}"#)] {
            let refused = try await relay.curl(path, method: body == nil ? "GET" : "POST", json: body)
            #expect(refused.status == 400 && refused.body.contains("invalidField"), "\(path): \(refused.body)")
        }
        let found = try await relay.curl("/v1/directory/alice")
        #expect(found.status == 200)
        let entry = try json(found.body)
        let bundle = try IdentityBundle(encoded: Array(try #require(Data(base64Encoded: entry["bundle"] as? String ?? ""))))
        #expect(bundle == alice)
        let verifier = try relay.services.signer.verifier
        let checkpoint = try Checkpoint(text: SignedNote.open(try #require(entry["checkpoint"] as? String), verifier: verifier))
        let proof = try (entry["inclusionProof"] as? [String] ?? []).map { Array(try #require(Data(base64Encoded: $0))) }
        let leaf = try DirectoryEntry(kind: .registration, time: 0, bundle: alice, mapRoot: nil)
        let index = UInt64(entry["logIndex"] as? Int ?? -1)
        #expect(checkpoint.size == 2)
        // The leaf's time is the relay's, so take the logged leaf and check it carries this bundle.
        let logged = try await relay.services.log.leaf(at: index)
        #expect(try DirectoryEntry(encoded: logged).bundle == leaf.bundle)
        #expect(MerkleProof.verifyInclusion(leafHash: MerkleHash.leaf(logged), index: index, size: checkpoint.size,
                                            proof: proof, root: checkpoint.rootHash))

        let history = try await relay.curl("/v1/directory/alice/history")
        #expect((try json(history.body)["versions"] as? [[String: Any]])?.first?["logIndex"] as? Int == 0)
        #expect(try await relay.curl("/v1/directory/alice/history?treeSize=9").status == 400)
        #expect(try await relay.curl("/v1/directory/alice/history?treeSize=x").status == 400)
        let entries = try json(try await relay.curl("/v1/log/entries?start=1&end=5").body)
        #expect(entries["start"] as? Int == 1)
        #expect((entries["leaves"] as? [String])?.compactMap { Data(base64Encoded: $0) } == [Data(try await relay.services.log.leaf(at: 1))])
        #expect(try await relay.curl("/v1/log/entries?start=2&end=1").status == 400)
        #expect(try await relay.curl("/v1/log/entries?start=18446744073709551615&end=18446744073709551615").status == 200)
        let consistency = try await relay.curl("/v1/log/consistency?from=1&to=2")
        #expect(consistency.status == 200)
        let checkpointNote = try await relay.curl("/v1/log/checkpoint")
        #expect(try Checkpoint(text: SignedNote.open(checkpointNote.body, verifier: verifier)).size == 2)
    }

    @Test(arguments: EngineUnderTest.available) func refusalsHaveClearStatusesAndStoreNothing(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine)
        defer { Task { await relay.stop() } }
        let alice = try ThrowawayIdentities.bundle("alice")
        #expect(try await relay.curl("/v1/directory/register", method: "POST", json: registration(alice)).status == 201)

        let taken = try await relay.curl("/v1/directory/register", method: "POST", json: registration(alice))
        #expect(taken.status == 409)
        #expect(try json(taken.body)["error"] as? String == "nameTaken")
        #expect(try await relay.curl("/v1/directory/nobody").status == 404)
        #expect(try await relay.curl("/v1/directory/Bad%20Name").status == 400)
        #expect(try await relay.curl("/v1/directory/register", method: "POST", json: "{not json").status == 400)
        #expect(try await relay.curl("/v1/directory/register", method: "POST", json: "{\"bundle\":\"AAAA\"}").status == 400)
        let huge = "{\"bundle\":\"" + String(repeating: "A", count: 200_000) + "\"}"
        #expect(try await relay.curl("/v1/directory/register", method: "POST", json: huge).status == 413)
        #expect(try await relay.curl("/v1/log/consistency?from=2&to=1").status == 400)
        #expect(try await relay.services.log.size() == 1)
    }

    /// P8: only the owner rotates. No token, another user's token, or a bundle not continuity-signed
    /// by the current key is refused, and the log does not grow.
    @Test(arguments: EngineUnderTest.available) func rotationNeedsTheOwnersTokenAndContinuity(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine)
        defer { Task { await relay.stop() } }
        let alice = try ThrowawayIdentities.bundle("alice"), bob = try ThrowawayIdentities.bundle("bob")
        for bundle in [alice, bob] {
            #expect(try await relay.curl("/v1/directory/register", method: "POST", json: registration(bundle)).status == 201)
        }
        let newSigning = try RSAPrivateKey.generate(bitCount: 3072), newEncryption = try RSAPrivateKey.generate(bitCount: 3072)
        let bobV2 = try IdentityBundle.create(name: bob.name, keyVersion: 2, createdAt: 1, signingKey: newSigning,
                                              encryptionKey: newEncryption.publicKey,
                                              rotatingFrom: (bob, try ThrowawayIdentities.signingKey("bob")))
        // Signed by carol's key, not bob's: a rotation anyone could forge without the continuity check.
        let forgedV2 = try IdentityBundle.create(name: bob.name, keyVersion: 2, createdAt: 1, signingKey: newSigning,
                                                 encryptionKey: newEncryption.publicKey,
                                                 rotatingFrom: (bob, try ThrowawayIdentities.signingKey("carol")))
        let aliceToken = try await relay.token("alice")
        let bobToken = try await relay.token("bob")

        func rotate(_ bundle: IdentityBundle, token: String?) async throws -> (status: Int, body: String) {
            try await relay.curl("/v1/directory/rotate", method: "POST", json: registration(bundle), headers: token.map { ["Authorization: Bearer \($0)"] } ?? [])
        }
        let anonymous = try await rotate(bobV2, token: nil)
        #expect(anonymous.status == 401)
        let wrongOwner = try await rotate(bobV2, token: aliceToken)
        #expect(wrongOwner.status == 403)
        #expect(try json(wrongOwner.body)["reason"] as? String == "this token belongs to alice; it cannot rotate the keys of bob")
        let forged = try await rotate(forgedV2, token: bobToken)
        #expect(forged.status == 400)
        #expect((try json(forged.body)["reason"] as? String)?.contains("does not verify with version 1's key") == true)
        #expect(try await relay.services.log.size() == 2)

        let rotated = try await rotate(bobV2, token: bobToken)
        #expect(rotated.status == 200, "\(rotated.body)")
        #expect(try json(rotated.body)["keyVersion"] as? Int == 2)
        #expect(try await relay.services.directory.lookup(bob.name).entry?.bundle == bobV2)
        #expect(try await relay.services.log.size() == 3)
    }

    @Test(arguments: EngineUnderTest.available) func readerFeaturesAreDeclaredByTheOwnerAndShownInLookups(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine)
        defer { Task { await relay.stop() } }
        #expect(try await relay.curl("/v1/directory/register", method: "POST", json: registration(try ThrowawayIdentities.bundle("alice"))).status == 201)
        let token = try await relay.token("alice")
        let before = try await relay.curl("/v1/directory/alice")
        #expect(before.status == 200)
        let beforeFeatures = try json(before.body)["readerFeatures"]
        #expect(beforeFeatures == nil)  // never declared: an older client
        let anonymous = try await relay.curl("/v1/features", method: "PUT", json: #"{"features":["deflate"]}"#)
        #expect(anonymous.status == 401)
        for bad in [#"{"features":["Deflate"]}"#, #"{"features":["deflate","deflate"]}"#, #"{"features":[""]}"#,
                    #"{"features":"deflate"}"#, #"{"features":["deflate""#, #"{"features":["a,b"]}"#,
                    "{\"features\":[\"\(String(repeating: "x", count: 33))\"]}",
                    "{\"features\":[" + (0..<17).map { "\"f\($0)\"" }.joined(separator: ",") + "]}"] {
            let refused = try await relay.curl("/v1/features", method: "PUT", json: bad, headers: ["Authorization: Bearer \(token)"])
            #expect(refused.status == 400, "\(bad): \(refused.status) \(refused.body)")
        }
        let declared = try await relay.curl("/v1/features", method: "PUT", json: #"{"features":["deflate","some-future-thing"]}"#,
                                            headers: ["Authorization: Bearer \(token)"])
        #expect(declared.status == 200, "\(declared.body)")
        let shown = try await relay.curl("/v1/directory/alice")
        #expect(try json(shown.body)["readerFeatures"] as? [String] == ["deflate", "some-future-thing"])
        // A new declaration replaces the old one; an empty list says "nothing beyond the base format".
        let emptied = try await relay.curl("/v1/features", method: "PUT", json: #"{"features":[]}"#, headers: ["Authorization: Bearer \(token)"])
        #expect(emptied.status == 200)
        let shownEmpty = try await relay.curl("/v1/directory/alice")
        #expect(try json(shownEmpty.body)["readerFeatures"] as? [String] == [])

        // A registration may carry its client's list (the same rules): the first message to the
        // new name can use it. A malformed list refuses the registration before anything is logged.
        let bob = Data(try ThrowawayIdentities.bundle("bob").encoded).base64EncodedString()
        for bad in [#"["Deflate"]"#, #"["jxl","jxl"]"#, #""jxl""#, "[" + (0..<17).map { "\"f\($0)\"" }.joined(separator: ",") + "]"] {
            let refused = try await relay.curl("/v1/directory/register", method: "POST", json: #"{"bundle":"\#(bob)","readerFeatures":\#(bad)}"#)
            #expect(refused.status == 400, "\(bad): \(refused.status) \(refused.body)")
        }
        #expect(try await relay.services.log.size() == 1)
        let registered = try await relay.curl("/v1/directory/register", method: "POST", json: #"{"bundle":"\#(bob)","readerFeatures":["deflate","jxl"]}"#)
        #expect(registered.status == 201, "\(registered.body)")
        #expect(try json(try await relay.curl("/v1/directory/bob").body)["readerFeatures"] as? [String] == ["deflate", "jxl"])
    }

    @Test(arguments: EngineUnderTest.available) func invitesGateRegistration(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine, requiresInvite: true)
        defer { Task { await relay.stop() } }
        let alice = try ThrowawayIdentities.bundle("alice")
        #expect(try await relay.curl("/v1/directory/register", method: "POST", json: registration(alice)).status == 403)
        let code = try relay.services.directory.createInvite()
        #expect(try await relay.curl("/v1/directory/register", method: "POST", json: registration(alice, invite: code)).status == 201)
    }
}
