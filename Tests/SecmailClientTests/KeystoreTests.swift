import Foundation
import SecmailClient
import SecmailCrypto
import SecmailFormat
import SecmailTestSupport
import Testing

/// The keystore's key versions, without a relay.
@Suite struct KeystoreTests {
    let passphrase = try! Passphrase("keystore test passphrase")

    /// A reader with two key versions (the second a pending rotation, which counts: the relay may
    /// publish it before the client records it) unlocks only the version asked for: a damaged
    /// key file of another version does not stand in the way, and each unlocked key is the one
    /// its bundle names.
    @Test func onlyTheKeyVersionsAskedForAreUnlocked() async throws {
        // Seconds of key generation and scrypt, off the cooperative threads that the in-process
        // relays of tests running alongside need (CI saw one such relay starve for 30 s).
        try await onThreadOfItsOwn { [passphrase] in try Self.checkOnlyTheVersionsAskedFor(passphrase) }
    }

    static func checkOnlyTheVersionsAskedFor(_ passphrase: Passphrase) throws {
        let keystore = Keystore(home: SecmailHome(url: try makeTemporaryDirectory("keystore-versions")))
        let first = try keystore.createIdentity(name: IdentityName("dana"), passphrase: passphrase)
        let second = try keystore.prepareRotation(from: keystore.unlockSender(passphrase: passphrase), passphrase: passphrase)
        #expect(try keystore.recipientFingerprints() == [second.fingerprint, first.fingerprint])
        #expect(try keystore.unlockRecipientKeys(passphrase: passphrase).map(\.fingerprint) == [second.fingerprint, first.fingerprint])

        let damaged = keystore.home.url.appendingPathComponent("identity/v2/encryption-key.pem")
        try Data("-----BEGIN ENCRYPTED PRIVATE KEY-----\ndamaged\n-----END ENCRYPTED PRIVATE KEY-----\n".utf8).write(to: damaged)
        #expect(throws: (any Error).self) { try keystore.unlockRecipientKeys(passphrase: passphrase) }
        let onlyFirst = try keystore.unlockRecipientKeys(passphrase: passphrase, only: [first.fingerprint])
        #expect(onlyFirst.map(\.fingerprint) == [first.fingerprint])
        // The key unlocked is the first version's: it opens what is wrapped to that bundle's key.
        let contentKey = try SymmetricKey.random()
        let wrapped = try first.encryptionKey.wrap(contentKey)
        #expect(try onlyFirst[0].unwrapper.unwrapContentKey(wrapped).bytesForTransfer() == contentKey.bytesForTransfer())
    }
}
