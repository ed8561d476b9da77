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

    @Test func registerLookupAndVerifyOverTLS() async throws {
        let relay = try await RunningRelay()
        defer { Task { await relay.stop() } }
        let health = try await relay.curl("/v1/health")
        #expect(health == (200, "ok\n"))

        let alice = try ThrowawayIdentities.bundle("alice"), bob = try ThrowawayIdentities.bundle("bob")
        let created = try await relay.curl("/v1/directory/register", method: "POST", json: registration(alice))
        #expect(created.status == 201, "\(created.body)")
        #expect(try json(created.body)["fingerprint"] as? String == alice.fingerprint.hex)
        #expect(try await relay.curl("/v1/directory/register", method: "POST", json: registration(bob)).status == 201)

        // Lookup: the bundle, its inclusion proof and a signed checkpoint a client can verify.
        let found = try await relay.curl("/v1/directory/Alice")
        #expect(found.status == 200)
        let entry = try json(found.body)
        let bundle = try IdentityBundle(encoded: Array(try #require(Data(base64Encoded: entry["bundle"] as? String ?? ""))))
        #expect(bundle == alice)
        let verifier = try relay.services.signer.verifier
        let checkpoint = try Checkpoint(text: SignedNote.open(try #require(entry["checkpoint"] as? String), verifier: verifier))
        let proof = try (entry["inclusionProof"] as? [String] ?? []).map { Array(try #require(Data(base64Encoded: $0))) }
        let leaf = try DirectoryEntry(kind: .registration, time: 0, bundle: alice)
        let index = UInt64(entry["logIndex"] as? Int ?? -1)
        #expect(checkpoint.size == 2)
        // The leaf's time is the relay's, so take the logged leaf and check it carries this bundle.
        let logged = try relay.services.log.leaf(at: index)
        #expect(try DirectoryEntry(encoded: logged).bundle == leaf.bundle)
        #expect(MerkleProof.verifyInclusion(leafHash: MerkleHash.leaf(logged), index: index, size: checkpoint.size,
                                            proof: proof, root: checkpoint.rootHash))

        let history = try await relay.curl("/v1/directory/alice/history")
        #expect((try json(history.body)["bundles"] as? [String])?.count == 1)
        let consistency = try await relay.curl("/v1/log/consistency?from=1&to=2")
        #expect(consistency.status == 200)
        let checkpointNote = try await relay.curl("/v1/log/checkpoint")
        #expect(try Checkpoint(text: SignedNote.open(checkpointNote.body, verifier: verifier)).size == 2)
    }

    @Test func refusalsHaveClearStatusesAndStoreNothing() async throws {
        let relay = try await RunningRelay()
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
        #expect(try relay.services.log.size() == 1)
    }

    @Test func invitesGateRegistration() async throws {
        let relay = try await RunningRelay(requiresInvite: true)
        defer { Task { await relay.stop() } }
        let alice = try ThrowawayIdentities.bundle("alice")
        #expect(try await relay.curl("/v1/directory/register", method: "POST", json: registration(alice)).status == 403)
        let code = try relay.services.directory.createInvite()
        #expect(try await relay.curl("/v1/directory/register", method: "POST", json: registration(alice, invite: code)).status == 201)
    }
}
