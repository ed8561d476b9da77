import Foundation
import GRDB
import SecmailCrypto
import SecmailFormat
@testable import SecmailRelay
import SecmailTestSupport
import SecmailRelayTestSupport
import Testing

@Suite struct DirectoryTests {
    func makeDirectory(requiresInvite: Bool = false) throws -> (Directory, LogStore, URL) {
        let folder = try makeTemporaryDirectory("relay-directory")
        let database = try RelayDatabase(path: folder.appendingPathComponent("relay.sqlite").path)
        return (Directory(database: database, requiresInvite: requiresInvite, clock: { 1_800_000_000 }), LogStore(database: database), folder)
    }

    @Test func registrationIsLoggedAndLookupProvesIt() async throws {
        let (directory, log, folder) = try makeDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let alice = try ThrowawayIdentities.bundle("alice"), bob = try ThrowawayIdentities.bundle("bob")
        #expect(try await directory.register(alice) == 0)
        #expect(try await directory.register(bob) == 1)
        let entry = try await directory.lookup(IdentityName("Alice"))
        #expect(entry.bundle == alice)
        #expect(entry.treeSize == 2)
        #expect(MerkleProof.verifyInclusion(leafHash: MerkleHash.leaf(try await log.leaf(at: entry.logIndex)), index: entry.logIndex,
                                            size: entry.treeSize, proof: entry.inclusionProof, root: entry.rootHash))
        let logged = try DirectoryEntry(encoded: await log.leaf(at: 0))
        #expect(logged.kind == .registration && logged.bundle == alice && logged.time == 1_800_000_000)
        await #expect(throws: RelayError.self) { try await directory.lookup(IdentityName("carol")) }
    }

    @Test func aTakenNameCannotBeRegisteredAgainAndNothingIsLogged() async throws {
        let (directory, log, folder) = try makeDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await directory.register(ThrowawayIdentities.bundle("alice"))
        // Mallory's own keys under the name alice.
        let mallory = try IdentityBundle.create(
            name: IdentityName("alice"), createdAt: 0, signingKey: ThrowawayIdentities.signingKey("carol"),
            encryptionKey: ThrowawayIdentities.encryptionKey("carol").publicKey)
        let error = await #expect(throws: RelayError.self) { try await directory.register(mallory) }
        #expect(error?.code == .nameTaken)
        #expect(try await log.size() == 1)
        #expect(try await directory.lookup(IdentityName("alice")).bundle == ThrowawayIdentities.bundle("alice"))
    }

    @Test func rotationNeedsTheContinuitySignatureOfTheCurrentKey() async throws {
        let (directory, log, folder) = try makeDirectory()
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
        #expect(try await directory.lookup(alice.name).bundle == rotated)
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
        #expect(await relayErrorCode { try await directory.history(alice.name, treeSize: 3) } == .invalidRequest)
        #expect(await relayErrorCode { try await directory.history(alice.name, treeSize: 0) } == .notFound)
        #expect(try DirectoryEntry(encoded: await log.leaf(at: 1)).kind == .rotation)
        // A version-2 bundle is no registration, and an unknown name cannot rotate.
        #expect(await relayErrorCode { try await directory.register(rotated) } == .invalidRequest)
        let bobRotated = try IdentityBundle.create(
            name: IdentityName("bob"), keyVersion: 2, createdAt: 1, signingKey: newSigning, encryptionKey: newEncryption.publicKey,
            rotatingFrom: (ThrowawayIdentities.bundle("bob"), ThrowawayIdentities.signingKey("bob")))
        #expect(await relayErrorCode { try await directory.rotate(to: bobRotated) } == .notFound)
    }

    @Test func invitesAreRequiredWhenConfiguredAndUsableOnce() async throws {
        let (directory, log, folder) = try makeDirectory(requiresInvite: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let alice = try ThrowawayIdentities.bundle("alice"), bob = try ThrowawayIdentities.bundle("bob")
        #expect(await relayErrorCode { try await directory.register(alice) } == .inviteRequired)
        #expect(await relayErrorCode { try await directory.register(alice, inviteCode: String(repeating: "0", count: 32)) } == .inviteRequired)
        let code = try directory.createInvite()
        #expect(try await directory.register(alice, inviteCode: code.uppercased()) == 0)
        #expect(await relayErrorCode { try await directory.register(bob, inviteCode: code) } == .inviteRequired)
        #expect(try await log.size() == 1)
    }

    @Test func checkpointsAreSignedNotesClientsCanVerify() async throws {
        let (directory, log, folder) = try makeDirectory()
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
