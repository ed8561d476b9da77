import Foundation
import SecmailCrypto
import SecmailFormat
@testable import SecmailRelay
import SecmailTestSupport
import SecmailRelayTestSupport
import Testing

@Suite struct DirectoryTests {
    func makeDirectory(_ engine: EngineUnderTest, requiresInvite: Bool = false, sharesKeys: Bool = false) async throws -> (Directory, LogStore, URL) {
        let folder = try makeTemporaryDirectory("relay-directory")
        let database = try await engine.database(in: folder)
        return (Directory(database: database, requiresInvite: requiresInvite, sharesKeys: sharesKeys, clock: { 1_800_000_000 }),
                LogStore(database: database), folder)
    }

    @Test(arguments: EngineUnderTest.available) func registrationIsLoggedAndLookupProvesIt(engine: EngineUnderTest) async throws {
        let (directory, log, folder) = try await makeDirectory(engine)
        defer { try? FileManager.default.removeItem(at: folder) }
        let alice = try ThrowawayIdentities.bundle("alice"), bob = try ThrowawayIdentities.bundle("bob")
        #expect(try await directory.register(alice) == 0)
        #expect(try await directory.register(bob) == 1)
        let entry = try #require(try await directory.lookup(IdentityName("alice")).entry)
        #expect(entry.bundle == alice)
        #expect(entry.treeSize == 2)
        #expect(MerkleProof.verifyInclusion(leafHash: MerkleHash.leaf(try await log.leaf(at: entry.logIndex)), index: entry.logIndex,
                                            size: entry.treeSize, proof: entry.inclusionProof, root: entry.rootHash))
        let logged = try DirectoryEntry(encoded: await log.leaf(at: 0))
        #expect(logged.kind == .registration && logged.bundle == alice && logged.time == 1_800_000_000)
        #expect(try await directory.lookup(IdentityName("carol")).entry == nil)
    }

    /// Every registration and rotation moves the log and the map together: the leaf commits the
    /// map root, and replaying the log gives the same map; a lookup proves the current version
    /// and a miss proves absence.
    @Test(arguments: EngineUnderTest.available) func theLogCommitsTheNameMapAndLookupsProveIt(engine: EngineUnderTest) async throws {
        let (directory, log, folder) = try await makeDirectory(engine)
        defer { try? FileManager.default.removeItem(at: folder) }
        let alice = try ThrowawayIdentities.bundle("alice")
        try await directory.register(alice)
        try await directory.register(ThrowawayIdentities.bundle("bob"))
        let rotated = try IdentityBundle.create(
            name: alice.name, keyVersion: 2, createdAt: 1, signingKey: ThrowawayIdentities.signingKey("carol"),
            encryptionKey: ThrowawayIdentities.encryptionKey("carol").publicKey, rotatingFrom: (alice, ThrowawayIdentities.signingKey("alice")))
        try await directory.rotate(to: rotated)
        var replay = NameMapReplay()
        for leaf in try await log.leaves(start: 0, end: 3) { try replay.apply(leaf) }

        let found = try await directory.lookup(alice.name)
        let evidence = found.evidence
        let head = try LogLeaf(encoded: try #require(evidence.headLeaf))
        #expect(head.mapRoot == (try replay.root()))
        #expect(MerkleProof.verifyInclusion(leafHash: MerkleHash.leaf(try #require(evidence.headLeaf)), index: 2, size: 3,
                                            proof: evidence.headInclusionProof, root: evidence.rootHash))
        let current = NameMapValue(keyVersion: 2, logIndex: 2, fingerprint: rotated.fingerprint)
        #expect(evidence.mapProof.terminal == .found(valueHash: current.hash))
        #expect(evidence.mapProof.root(for: NameMapKey.of(alice.name)) == head.mapRoot)

        let missing = try await directory.lookup(IdentityName("carol"))
        #expect(missing.entry == nil)
        #expect(missing.evidence.mapProof.provesAbsence)
        #expect(missing.evidence.mapProof.root(for: NameMapKey.of(try IdentityName("carol"))) == head.mapRoot)
    }

    /// A log written before the name map (version 1 leaves) gets one map head at start-up,
    /// committing the map of its names; nothing else changes.
    @Test(arguments: EngineUnderTest.available) func aLogWithoutAMapGetsOneMapHeadLeaf(engine: EngineUnderTest) async throws {
        let (directory, log, folder) = try await makeDirectory(engine)
        defer { try? FileManager.default.removeItem(at: folder) }
        let bundles = try ["alice", "bob"].map(ThrowawayIdentities.bundle)
        try await directory.database.write { db in
            for bundle in bundles {
                let leaf = try DirectoryEntry(kind: .registration, time: 7, bundle: bundle, mapRoot: nil)
                let index = try LogStore.append(leaf.encoded, time: 7, in: db)
                try db.execute("INSERT INTO identities (name, key_version, bundle, fingerprint, log_index, created_at) VALUES (?, 1, ?, ?, ?, 7)", [bundle.name.value, Data(bundle.encoded), Data(bundle.fingerprint.bytes), Int64(index)])
            }
        }
        #expect(try directory.commitMapIfMissing())
        #expect(try !directory.commitMapIfMissing())
        #expect(try await log.size() == 3)
        var replay = NameMapReplay()
        for leaf in try await log.leaves(start: 0, end: 3) { try replay.apply(leaf) }
        let head = try LogLeaf(encoded: try await log.leaf(at: 2))
        guard case .mapHead(let mapHead) = head else { Issue.record("leaf 2 is \(head)"); return }
        #expect(mapHead.mapRoot == (try replay.root()))
        let bob = try await directory.lookup(IdentityName("bob"))
        #expect(bob.entry?.bundle == bundles[1])
        #expect(bob.evidence.mapProof.root(for: NameMapKey.of(try IdentityName("bob"))) == mapHead.mapRoot)
        // The next registration is a version 2 leaf, continuing the same map.
        try await directory.register(ThrowawayIdentities.bundle("carol"))
        try replay.apply(try await log.leaf(at: 3))
    }

    /// Concurrent registrations share group commits, each in its own savepoint: all are logged
    /// once, one taken name among them is refused alone, and the log and map still agree.
    @Test(arguments: EngineUnderTest.available) func concurrentRegistrationsShareCommitsAndKeepTheLogAndMapInStep(engine: EngineUnderTest) async throws {
        // Many names need many keys; shared keys are allowed here as in the load tests.
        let (directory, log, folder) = try await makeDirectory(engine, sharesKeys: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let signing = try ThrowawayIdentities.signingKey("alice"), encryption = try ThrowawayIdentities.encryptionKey("alice").publicKey
        let bundles = try (0..<24).map { index in
            try IdentityBundle.create(name: IdentityName("user\(index)"), createdAt: 1, signingKey: signing, encryptionKey: encryption)
        }
        let duplicate = try IdentityBundle.create(name: IdentityName("user3"), createdAt: 2, signingKey: signing, encryptionKey: encryption)
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for bundle in bundles + [duplicate] {
                group.addTask { (try? await directory.register(bundle)) != nil }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 }.count == 24)
        #expect(try await log.size() == 24)
        let groups = await directory.recentCommitGroupSizes()
        #expect(groups.reduce(0, +) == 25)
        #expect(groups.contains { $0 > 1 }, "no two registrations shared a commit: \(groups)")
        var replay = NameMapReplay()
        for leaf in try await log.leaves(start: 0, end: 24) { try replay.apply(leaf) }
        #expect(replay.values.count == 24)
        let head = try await directory.lookup(IdentityName("user23")).evidence
        #expect(try LogLeaf(encoded: try #require(head.headLeaf)).mapRoot == (try replay.root()))
    }

    @Test(arguments: EngineUnderTest.available) func aTakenNameCannotBeRegisteredAgainAndNothingIsLogged(engine: EngineUnderTest) async throws {
        let (directory, log, folder) = try await makeDirectory(engine)
        defer { try? FileManager.default.removeItem(at: folder) }
        try await directory.register(ThrowawayIdentities.bundle("alice"))
        // Mallory's own keys under the name alice.
        let mallory = try IdentityBundle.create(
            name: IdentityName("alice"), createdAt: 0, signingKey: ThrowawayIdentities.signingKey("carol"),
            encryptionKey: ThrowawayIdentities.encryptionKey("carol").publicKey)
        let error = await #expect(throws: RelayError.self) { try await directory.register(mallory) }
        #expect(error?.code == .nameTaken)
        #expect(try await log.size() == 1)
        #expect(try await directory.lookup(IdentityName("alice")).entry?.bundle == ThrowawayIdentities.bundle("alice"))
    }

    /// A key belongs to the first name that logged it: another name may not register or rotate
    /// to it (either key of the pair), while a name may keep one of its own keys in a rotation.
    /// A relay whose names predate the rule learns their keys at start-up.
    @Test(arguments: EngineUnderTest.available) func aKeyBelongsToOneName(engine: EngineUnderTest) async throws {
        let (directory, log, folder) = try await makeDirectory(engine)
        defer { try? FileManager.default.removeItem(at: folder) }
        let alice = try ThrowawayIdentities.bundle("alice"), bob = try ThrowawayIdentities.bundle("bob")
        try await directory.register(alice)
        try await directory.register(bob)
        let aliceSigning = try ThrowawayIdentities.signingKey("alice")
        let malloryWithAlicesKeys = try IdentityBundle.create(name: IdentityName("mallory"), createdAt: 1, signingKey: aliceSigning,
                                                              encryptionKey: ThrowawayIdentities.encryptionKey("alice").publicKey)
        let error = await #expect(throws: RelayError.self) { try await directory.register(malloryWithAlicesKeys) }
        #expect(error?.code == .conflict && error?.reason.contains("already belongs to alice") == true, "\(String(describing: error))")
        // Only the encryption key shared (carol's signing key is nobody's yet).
        let halfShared = try IdentityBundle.create(name: IdentityName("mallory"), createdAt: 1, signingKey: ThrowawayIdentities.signingKey("carol"),
                                                   encryptionKey: ThrowawayIdentities.encryptionKey("bob").publicKey)
        #expect(await relayErrorCode { try await directory.register(halfShared) } == .conflict)
        // Alice may not rotate to bob's signing key; she may keep her own with a new encryption key.
        let toBobs = try IdentityBundle.create(name: alice.name, keyVersion: 2, createdAt: 1, signingKey: ThrowawayIdentities.signingKey("bob"),
                                               encryptionKey: ThrowawayIdentities.encryptionKey("carol").publicKey, rotatingFrom: (alice, aliceSigning))
        #expect(await relayErrorCode { try await directory.rotate(to: toBobs) } == .conflict)
        #expect(try await log.size() == 2)
        let keepsHers = try IdentityBundle.create(name: alice.name, keyVersion: 2, createdAt: 1, signingKey: aliceSigning,
                                                  encryptionKey: ThrowawayIdentities.encryptionKey("carol").publicKey, rotatingFrom: (alice, aliceSigning))
        #expect(try await directory.rotate(to: keepsHers) == 2)
        // Carol's encryption key is alice's now: carol's own bundle is refused.
        #expect(await relayErrorCode { try await directory.register(ThrowawayIdentities.bundle("carol")) } == .conflict)

        // A database from before V007: the owners are rebuilt from the logged bundles at start-up.
        try await directory.database.write { db in try db.execute("DELETE FROM key_owners") }
        try directory.backfillRegistrationIndexes()
        #expect(await relayErrorCode { try await directory.register(malloryWithAlicesKeys) } == .conflict)
        #expect(await relayErrorCode { try await directory.register(halfShared) } == .conflict)
        #expect(try await log.size() == 3)
    }

    @Test(arguments: EngineUnderTest.available) func rotationNeedsTheContinuitySignatureOfTheCurrentKey(engine: EngineUnderTest) async throws {
        let (directory, log, folder) = try await makeDirectory(engine)
        defer { try? FileManager.default.removeItem(at: folder) }
        let alice = try ThrowawayIdentities.bundle("alice")
        try await directory.register(alice)
        let newSigning = try ThrowawayIdentities.signingKey("carol"), newEncryption = try ThrowawayIdentities.encryptionKey("carol")

        // Signed by someone other than alice's current key: refused.
        let forged = try IdentityBundle.create(
            name: alice.name, keyVersion: 2, createdAt: 1, signingKey: newSigning, encryptionKey: newEncryption.publicKey,
            rotatingFrom: (alice, ThrowawayIdentities.signingKey("bob")))
        #expect(await relayErrorCode { try await directory.rotate(to: forged) } == .invalidRequest)
        // Skipping a version: refused.
        let skipped = try IdentityBundle.create(
            name: alice.name, keyVersion: 3, createdAt: 1, signingKey: newSigning, encryptionKey: newEncryption.publicKey,
            rotatingFrom: (alice, ThrowawayIdentities.signingKey("alice")))
        #expect(await relayErrorCode { try await directory.rotate(to: skipped) } == .invalidRequest)
        #expect(try await log.size() == 1)

        let rotated = try IdentityBundle.create(
            name: alice.name, keyVersion: 2, createdAt: 1, signingKey: newSigning, encryptionKey: newEncryption.publicKey,
            rotatingFrom: (alice, ThrowawayIdentities.signingKey("alice")))
        #expect(try await directory.rotate(to: rotated) == 1)
        #expect(try await directory.lookup(alice.name).entry?.bundle == rotated)
        let history = try await directory.history(alice.name)
        #expect(history.map(\.bundle) == [alice, rotated])
        #expect(history.map(\.logIndex) == [0, 1])
        for entry in history {
            #expect(MerkleProof.verifyInclusion(leafHash: MerkleHash.leaf(entry.leafData), index: entry.logIndex, size: 2,
                                                proof: entry.inclusionProof, root: try await log.root()))
        }
        // History as of an earlier log size: only what was logged by then, proven in that tree.
        let earlier = try await directory.history(alice.name, treeSize: 1)
        #expect(earlier.map(\.bundle) == [alice])
        #expect(earlier[0].rootHash == (try await log.root(size: 1)))
        #expect(await relayErrorCode { _ = try await directory.history(alice.name, treeSize: 3) } == .invalidRequest)
        #expect(await relayErrorCode { _ = try await directory.history(alice.name, treeSize: 0) } == .notFound)
        #expect(try DirectoryEntry(encoded: await log.leaf(at: 1)).kind == .rotation)
        // A version-2 bundle is no registration, and an unknown name cannot rotate.
        #expect(await relayErrorCode { try await directory.register(rotated) } == .invalidRequest)
        let bobRotated = try IdentityBundle.create(
            name: IdentityName("bob"), keyVersion: 2, createdAt: 1, signingKey: newSigning, encryptionKey: newEncryption.publicKey,
            rotatingFrom: (ThrowawayIdentities.bundle("bob"), ThrowawayIdentities.signingKey("bob")))
        #expect(await relayErrorCode { try await directory.rotate(to: bobRotated) } == .notFound)
    }

    @Test(arguments: EngineUnderTest.available) func invitesAreRequiredWhenConfiguredAndUsableOnce(engine: EngineUnderTest) async throws {
        let (directory, log, folder) = try await makeDirectory(engine, requiresInvite: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let alice = try ThrowawayIdentities.bundle("alice"), bob = try ThrowawayIdentities.bundle("bob")
        #expect(await relayErrorCode { try await directory.register(alice) } == .inviteRequired)
        #expect(await relayErrorCode { try await directory.register(alice, inviteCode: String(repeating: "0", count: 32)) } == .inviteRequired)
        let code = try directory.createInvite()
        #expect(try await directory.register(alice, inviteCode: code.uppercased()) == 0)
        #expect(await relayErrorCode { try await directory.register(bob, inviteCode: code) } == .inviteRequired)
        #expect(try await log.size() == 1)
    }

    @Test(arguments: EngineUnderTest.available) func checkpointsAreSignedNotesClientsCanVerify(engine: EngineUnderTest) async throws {
        let (directory, log, folder) = try await makeDirectory(engine)
        defer { try? FileManager.default.removeItem(at: folder) }
        try await directory.register(ThrowawayIdentities.bundle("alice"))
        let signer = CheckpointSigner(origin: "localhost/secmail", key: try Ed25519PrivateKey.generate())
        let note = try signer.sign(size: await log.size(), rootHash: await log.root())
        let checkpoint = try Checkpoint(text: SignedNote.open(note, verifier: signer.verifier))
        #expect(checkpoint.size == 1)
        #expect(checkpoint.rootHash == (try await log.root()))
        let stranger = try NoteVerifier(name: "localhost/secmail", publicKey: Ed25519PrivateKey.generate().publicKey)
        #expect(throws: FormatError.self) { try SignedNote.open(note, verifier: stranger) }
    }
}
