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

    @Test func registrationIsLoggedAndLookupProvesIt() throws {
        let (directory, log, folder) = try makeDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let alice = try ThrowawayIdentities.bundle("alice"), bob = try ThrowawayIdentities.bundle("bob")
        #expect(try directory.register(alice) == 0)
        #expect(try directory.register(bob) == 1)
        let entry = try directory.lookup(IdentityName("Alice"))
        #expect(entry.bundle == alice)
        #expect(entry.treeSize == 2)
        #expect(MerkleProof.verifyInclusion(leafHash: MerkleHash.leaf(try log.leaf(at: entry.logIndex)), index: entry.logIndex,
                                            size: entry.treeSize, proof: entry.inclusionProof, root: entry.rootHash))
        let logged = try DirectoryEntry(encoded: log.leaf(at: 0))
        #expect(logged.kind == .registration && logged.bundle == alice && logged.time == 1_800_000_000)
        #expect(throws: RelayError.self) { try directory.lookup(IdentityName("carol")) }
    }

    @Test func aTakenNameCannotBeRegisteredAgainAndNothingIsLogged() throws {
        let (directory, log, folder) = try makeDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        try directory.register(ThrowawayIdentities.bundle("alice"))
        // Mallory's own keys under the name alice.
        let mallory = try IdentityBundle.create(
            name: IdentityName("alice"), createdAt: 0, signingKey: ThrowawayIdentities.signingKey("carol"),
            encryptionKey: ThrowawayIdentities.encryptionKey("carol").publicKey)
        let error = #expect(throws: RelayError.self) { try directory.register(mallory) }
        #expect(error?.code == .nameTaken)
        #expect(try log.size() == 1)
        #expect(try directory.lookup(IdentityName("alice")).bundle == ThrowawayIdentities.bundle("alice"))
    }

    @Test func rotationNeedsTheContinuitySignatureOfTheCurrentKey() throws {
        let (directory, log, folder) = try makeDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let alice = try ThrowawayIdentities.bundle("alice")
        try directory.register(alice)
        let newSigning = try ThrowawayIdentities.signingKey("carol"), newEncryption = try ThrowawayIdentities.encryptionKey("carol")

        // Signed by someone other than alice's current key: refused.
        let forged = try IdentityBundle.create(
            name: alice.name, keyVersion: 2, createdAt: 1, signingKey: newSigning, encryptionKey: newEncryption.publicKey,
            rotatingFrom: (alice, ThrowawayIdentities.signingKey("bob")))
        #expect((#expect(throws: RelayError.self) { try directory.rotate(to: forged) })?.code == .invalidRequest)
        // Skipping a version: refused.
        let skipped = try IdentityBundle.create(
            name: alice.name, keyVersion: 3, createdAt: 1, signingKey: newSigning, encryptionKey: newEncryption.publicKey,
            rotatingFrom: (alice, ThrowawayIdentities.signingKey("alice")))
        #expect((#expect(throws: RelayError.self) { try directory.rotate(to: skipped) })?.code == .invalidRequest)
        #expect(try log.size() == 1)

        let rotated = try IdentityBundle.create(
            name: alice.name, keyVersion: 2, createdAt: 1, signingKey: newSigning, encryptionKey: newEncryption.publicKey,
            rotatingFrom: (alice, ThrowawayIdentities.signingKey("alice")))
        #expect(try directory.rotate(to: rotated) == 1)
        #expect(try directory.lookup(alice.name).bundle == rotated)
        let history = try directory.history(alice.name)
        #expect(history.map(\.bundle) == [alice, rotated])
        #expect(history.map(\.logIndex) == [0, 1])
        for entry in history {
            #expect(MerkleProof.verifyInclusion(leafHash: MerkleHash.leaf(entry.leafData), index: entry.logIndex, size: 2,
                                                proof: entry.inclusionProof, root: try log.root()))
        }
        // History as of an earlier log size: only what was logged by then, proven in that tree.
        let earlier = try directory.history(alice.name, treeSize: 1)
        #expect(earlier.map(\.bundle) == [alice])
        #expect(earlier[0].rootHash == (try log.root(size: 1)))
        #expect((#expect(throws: RelayError.self) { try directory.history(alice.name, treeSize: 3) })?.code == .invalidRequest)
        #expect((#expect(throws: RelayError.self) { try directory.history(alice.name, treeSize: 0) })?.code == .notFound)
        #expect(try DirectoryEntry(encoded: log.leaf(at: 1)).kind == .rotation)
        // A version-2 bundle is no registration, and an unknown name cannot rotate.
        #expect((#expect(throws: RelayError.self) { try directory.register(rotated) })?.code == .invalidRequest)
        let bobRotated = try IdentityBundle.create(
            name: IdentityName("bob"), keyVersion: 2, createdAt: 1, signingKey: newSigning, encryptionKey: newEncryption.publicKey,
            rotatingFrom: (ThrowawayIdentities.bundle("bob"), ThrowawayIdentities.signingKey("bob")))
        #expect((#expect(throws: RelayError.self) { try directory.rotate(to: bobRotated) })?.code == .notFound)
    }

    @Test func invitesAreRequiredWhenConfiguredAndUsableOnce() throws {
        let (directory, log, folder) = try makeDirectory(requiresInvite: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let alice = try ThrowawayIdentities.bundle("alice"), bob = try ThrowawayIdentities.bundle("bob")
        #expect((#expect(throws: RelayError.self) { try directory.register(alice) })?.code == .inviteRequired)
        #expect((#expect(throws: RelayError.self) { try directory.register(alice, inviteCode: String(repeating: "0", count: 32)) })?.code == .inviteRequired)
        let code = try directory.createInvite()
        #expect(try directory.register(alice, inviteCode: code.uppercased()) == 0)
        #expect((#expect(throws: RelayError.self) { try directory.register(bob, inviteCode: code) })?.code == .inviteRequired)
        #expect(try log.size() == 1)
    }

    @Test func checkpointsAreSignedNotesClientsCanVerify() throws {
        let (directory, log, folder) = try makeDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        try directory.register(ThrowawayIdentities.bundle("alice"))
        let signer = CheckpointSigner(origin: "localhost/secmail", key: try Ed25519PrivateKey.generate())
        let note = try signer.sign(size: log.size(), rootHash: log.root())
        let checkpoint = try Checkpoint(text: SignedNote.open(note, verifier: signer.verifier))
        #expect(checkpoint.size == 1)
        #expect(checkpoint.rootHash == (try log.root()))
        let stranger = try NoteVerifier(name: "localhost/secmail", publicKey: Ed25519PrivateKey.generate().publicKey)
        #expect(throws: FormatError.self) { try SignedNote.open(note, verifier: stranger) }
    }
}
