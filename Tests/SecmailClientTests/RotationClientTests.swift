import Foundation
import SecmailClient
import SecmailCrypto
import SecmailFormat
import SecmailRelay
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// Rotation through the client library against an in-process relay over TLS: the cases a user
/// cannot easily produce at the command line (an interrupted rotation, a refused one).
@Suite struct RotationClientTests {
    let passphrase = try! Passphrase("rotation test passphrase")

    /// A keystore registered on `relay`.
    func registeredHome(_ name: String, on relay: RunningRelay) async throws -> Keystore {
        let home = SecmailHome(url: try makeTemporaryDirectory("rotation-\(name)"))
        let keystore = Keystore(home: home)
        // Key generation off the cooperative threads, which the in-process relay needs.
        let bundle = try await onThreadOfItsOwn { [passphrase] in try keystore.createIdentity(name: IdentityName(name), passphrase: passphrase) }
        let contact = try FirstContact(caFile: RunningRelay.certs.appendingPathComponent("dev-ca.pem").path, relayKeyPin: nil, logVerifierKey: nil)
        let client = try RelayClient(home: home, firstContact: URL(string: "https://localhost:\(relay.port)")!, trusting: contact)
        try await DirectoryClient(relay: client).pinRelay(contact)
        _ = try await DirectoryClient(relay: client).register(bundle, invite: nil)
        await client.close()
        return keystore
    }

    @Test(arguments: EngineUnderTest.available) func anInterruptedRotationIsResumedWithTheSameKeys(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine)
        defer { Task { await relay.stop() } }
        let keystore = try await registeredHome("alice", on: relay)
        let v1 = try keystore.currentBundle()
        // The process dies after writing version 2, before the relay hears of it.
        let pending = try await onThreadOfItsOwn { [passphrase] in
            try keystore.prepareRotation(from: keystore.unlockSender(passphrase: passphrase), passphrase: passphrase)
        }
        #expect(try keystore.currentBundle() == v1)
        #expect(try keystore.allBundles() == [v1, pending])
        // Its keys already open mail, in case the relay published it.
        #expect(try keystore.unlockRecipientKeys(passphrase: passphrase).map(\.fingerprint) == [pending.fingerprint, v1.fingerprint])

        let rotated = try await DirectoryClient(relay: RelayClient(home: keystore.home)).rotate(keystore, passphrase: passphrase)
        #expect(rotated == pending)
        #expect(try keystore.currentBundle() == pending)
        #expect(try keystore.pendingRotation() == nil)
        #expect(try await relay.services.directory.lookup(IdentityName("alice")).entry?.bundle == pending)
        // The owner's own pin follows, and the audit recognises both versions as the owner's.
        #expect(try ContactPins(home: keystore.home).pinned(IdentityName("alice")) == pending)
        let report = try await DirectoryClient(relay: RelayClient(home: keystore.home)).audit(keystore)
        #expect(report.ownEntries.map(\.logIndex) == [0, 1])
        #expect(report.foreignEntries.isEmpty)
    }

    @Test(arguments: EngineUnderTest.available) func aRefusedRotationLeavesTheKeystoreAsItWas(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine)
        defer { Task { await relay.stop() } }
        let keystore = try await registeredHome("bob", on: relay)
        let v1 = try keystore.currentBundle()
        // Version 2 reaches the relay from elsewhere (say, a restored backup of this home), so
        // this home's current key no longer authenticates.
        let elsewhere = try IdentityBundle.create(
            name: v1.name, keyVersion: 2, createdAt: 0, signingKey: ThrowawayIdentities.signingKey("carol"),
            encryptionKey: ThrowawayIdentities.encryptionKey("carol").publicKey,
            rotatingFrom: (v1, keystore.unlockSender(passphrase: passphrase).signer))
        try await relay.services.directory.rotate(to: elsewhere)

        let refused = await #expect(throws: ClientError.self) {
            try await DirectoryClient(relay: RelayClient(home: keystore.home)).rotate(keystore, passphrase: passphrase)
        }
        #expect(refused?.code == .keyNotCurrent, "\(refused?.code.rawValue ?? "")")
        #expect(refused?.reason.contains("current signing key") == true, "\(refused?.reason ?? "")")
        #expect(try keystore.currentBundle() == v1)
        #expect(try keystore.pendingRotation() == nil)
        #expect(try keystore.allBundles() == [v1])
    }
}
