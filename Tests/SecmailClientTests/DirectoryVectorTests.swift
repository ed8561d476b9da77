import Foundation
import SecmailAPI
import SecmailClient
import SecmailCrypto
import SecmailFormat
import SecmailRelay
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// docs/test-vectors/directory.json: a relay's log of four entries (alice, bob and carol
/// registered, carol rotated), its name map, and its answers to lookups (found and not found),
/// recorded from a real relay, for other implementations to test against. Here the client's own
/// verification must accept every answer and refuse altered ones.
struct DirectoryVectors {
    static let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/test-vectors/directory.json")

    let json: [String: Any]

    init() throws {
        json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.file)) as? [String: Any])
    }

    var verifier: NoteVerifier { get throws { try NoteVerifier(verifierKey: try #require(json["logKey"] as? String)) } }
    var leaves: [[UInt8]] { get throws { try (json["leaves"] as? [String] ?? []).map { Array(try #require(Data(base64Encoded: $0))) } } }

    /// The recorded answer body for `name` (found: a LookupResponse; absent: a NotRegisteredResponse).
    func answer(_ group: String, _ name: String) throws -> [UInt8] {
        let object = try #require((json[group] as? [String: Any])?[name])
        return Array(try JSONSerialization.data(withJSONObject: object))
    }
}

@Suite struct DirectoryVectorTests {
    @Test func everyRecordedAnswerVerifies() throws {
        let vectors = try DirectoryVectors()
        let verifier = try vectors.verifier
        for (name, version) in [("alice", 1), ("bob", 1), ("carol", 2)] {
            let lookup = try DirectoryVerification.verifyLookup(try vectors.answer("lookups", name), name: IdentityName(name), logVerifier: verifier)
            #expect(lookup.bundle.keyVersion == UInt32(version))
        }
        for name in ["dave", "carol.", "zz"] {
            _ = try DirectoryVerification.verifyAbsence(try vectors.answer("absent", name), name: IdentityName(name), logVerifier: verifier)
        }
    }

    @Test func theLogReplaysToEveryCommittedMapRootAndTheCheckpoint() throws {
        let vectors = try DirectoryVectors()
        var replay = NameMapReplay()
        var tree = MerkleTree()
        let roots = vectors.json["mapRoots"] as? [String] ?? []
        for (index, leaf) in try vectors.leaves.enumerated() {
            #expect(hexString(try #require(try replay.apply(leaf).mapRoot)) == roots[index])
            tree.append(leafHash: MerkleHash.leaf(leaf))
        }
        let checkpoint = try Checkpoint(text: SignedNote.open(try #require(vectors.json["checkpoint"] as? String), verifier: vectors.verifier))
        #expect(checkpoint.size == 4)
        #expect(try tree.root() == checkpoint.rootHash)
        let keys = try #require(vectors.json["mapKeys"] as? [String: String])
        for (name, key) in keys { #expect(hexString(NameMapKey.of(try IdentityName(name))) == key) }
    }

    /// Carol's superseded version 1 served with its own (valid) leaf and inclusion proof, as a
    /// relay hiding her rotation would: the map proof exposes it.
    @Test func aSupersededVersionIsRefusedEvenWithAValidInclusionProof() throws {
        let vectors = try DirectoryVectors()
        let leaves = try vectors.leaves
        var stale = try #require(try JSONSerialization.jsonObject(with: Data(try vectors.answer("lookups", "carol"))) as? [String: Any])
        let v1Leaf = leaves[2]
        let v1 = try DirectoryEntry(encoded: v1Leaf).bundle
        let tree = MerkleTree(leafHashes: leaves.map(MerkleHash.leaf))
        stale["bundle"] = Data(v1.encoded).base64EncodedString()
        stale["leaf"] = Data(v1Leaf).base64EncodedString()
        stale["keyVersion"] = 1
        stale["fingerprint"] = v1.fingerprint.hex
        stale["logIndex"] = 2
        stale["inclusionProof"] = try tree.inclusionProof(index: 2, size: 4).map { Data($0).base64EncodedString() }
        let body = Array(try JSONSerialization.data(withJSONObject: stale))
        let error = #expect(throws: ClientError.self) {
            try DirectoryVerification.verifyLookup(body, name: IdentityName("carol"), logVerifier: vectors.verifier)
        }
        #expect(error?.reason.contains("hiding a newer key") == true, "\(error?.reason ?? "")")
    }

    @Test func aForgedNotFoundIsRefused() throws {
        let vectors = try DirectoryVectors()
        // dave's absence proof, presented for alice.
        var forged = try #require(try JSONSerialization.jsonObject(with: Data(try vectors.answer("absent", "dave"))) as? [String: Any])
        forged["name"] = "alice"
        let error = #expect(throws: ClientError.self) {
            try DirectoryVerification.verifyAbsence(Array(try JSONSerialization.data(withJSONObject: forged)), name: IdentityName("alice"),
                                                    logVerifier: vectors.verifier)
        }
        #expect(error?.reason.contains("may be hiding a registered name") == true, "\(error?.reason ?? "")")
        // A bare error body, without a proof.
        let bare = Array(#"{"error":"notFound","reason":"no one"}"#.utf8)
        #expect(throws: ClientError.self) { try DirectoryVerification.verifyAbsence(bare, name: IdentityName("alice"), logVerifier: vectors.verifier) }
    }
}

/// Writes docs/test-vectors/directory.json from a real relay. Runs only with
/// SECMAIL_WRITE_FIXTURES=directory; then write the golden envelope (SECMAIL_WRITE_FIXTURES=2),
/// whose sender checkpoint is this file's.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SECMAIL_WRITE_FIXTURES"] == "directory"))
struct DirectoryVectorGenerator {
    @Test func writeDirectoryVectors() async throws {
        let relay = try await RunningRelay()
        defer { Task { await relay.stop() } }
        for name in ["alice", "bob", "carol"] {
            let bundle = try ThrowawayIdentities.bundle(name)
            let body = String(decoding: try JSONEncoder().encode(BundleRequest(bundle: Data(bundle.encoded).base64EncodedString())), as: UTF8.self)
            #expect(try await relay.curl("/v1/directory/register", method: "POST", json: body).status == 201)
        }
        let carol = try ThrowawayIdentities.bundle("carol")
        let rotated = try IdentityBundle.create(name: carol.name, keyVersion: 2, createdAt: 1_800_000_100,
                                                signingKey: RSAPrivateKey.generate(bitCount: 3072),
                                                encryptionKey: RSAPrivateKey.generate(bitCount: 3072).publicKey,
                                                rotatingFrom: (carol, ThrowawayIdentities.signingKey("carol")))
        let token = try await relay.token("carol")
        let rotation = String(decoding: try JSONEncoder().encode(BundleRequest(bundle: Data(rotated.encoded).base64EncodedString())), as: UTF8.self)
        #expect(try await relay.curl("/v1/directory/rotate", method: "POST", json: rotation, headers: ["Authorization: Bearer \(token)"]).status == 200)

        func object(_ path: String, status: Int = 200) async throws -> Any {
            let answer = try await relay.curl(path)
            #expect(answer.status == status, "\(path): \(answer.body)")
            return try JSONSerialization.jsonObject(with: Data(answer.body.utf8))
        }
        let entries = try #require(try await object("/v1/log/entries?start=0&end=4") as? [String: Any])
        let leaves = try #require(entries["leaves"] as? [String])
        let roots = try leaves.map { hexString(try #require(try LogLeaf(encoded: Array(Data(base64Encoded: $0)!)).mapRoot)) }
        var lookups: [String: Any] = [:], absent: [String: Any] = [:]
        for name in ["alice", "bob", "carol"] { lookups[name] = try await object("/v1/directory/\(name)") }
        for name in ["dave", "carol.", "zz"] { absent[name] = try await object("/v1/directory/\(name)", status: 404) }
        let vectors: [String: Any] = [
            "description": "secmail directory test vectors (docs/PROTOCOL.md, Transparency log and Name map; docs/API.md, Directory): a log of four entries (alice, bob, carol registered; carol rotated to key version 2), recorded from a relay. Every lookup answer must verify; every absence proof must prove absence.",
            "origin": relay.services.signer.origin,
            "logKey": try relay.services.signer.verifier.verifierKey,
            "checkpoint": String(try await relay.curl("/v1/log/checkpoint").body),
            "leaves": leaves,
            "mapRoots": roots,
            "mapKeys": Dictionary(uniqueKeysWithValues: try ["alice", "bob", "carol", "dave", "carol.", "zz"].map {
                ($0, hexString(NameMapKey.of(try IdentityName($0))))
            }),
            "lookups": lookups,
            "absent": absent,
        ]
        try JSONSerialization.data(withJSONObject: vectors, options: [.prettyPrinted, .sortedKeys]).write(to: DirectoryVectors.file)
    }
}
