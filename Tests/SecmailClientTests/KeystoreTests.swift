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

    /// Every key of every version (a pending rotation's too) moves to the new passphrase; the old
    /// one opens nothing; a wrong old passphrase changes no byte.
    @Test func aPassphraseChangeReencryptsEveryKeyOrNone() async throws {
        try await onThreadOfItsOwn { [passphrase] in
            let keystore = Keystore(home: SecmailHome(url: try makeTemporaryDirectory("keystore-passphrase")))
            let first = try keystore.createIdentity(name: IdentityName("dana"), passphrase: passphrase)
            let second = try keystore.prepareRotation(from: keystore.unlockSender(passphrase: passphrase), passphrase: passphrase)
            let identity = keystore.home.url.appendingPathComponent("identity")
            let files = ["v1/signing-key.pem", "v1/encryption-key.pem", "v2/signing-key.pem", "v2/encryption-key.pem"].map { identity.appendingPathComponent($0) }
            let before = try files.map { try Data(contentsOf: $0) }

            let wrong = try Passphrase("not the keystore passphrase")
            let renewed = try Passphrase("the renewed keystore passphrase")
            #expect(throws: CryptoError.self) { try keystore.changePassphrase(from: wrong, to: renewed) }
            #expect(try files.map { try Data(contentsOf: $0) } == before)

            #expect(try keystore.changePassphrase(from: passphrase, to: renewed) == 4)
            #expect(try files.map { try Data(contentsOf: $0) }.allSatisfy { !before.contains($0) })
            #expect(try files.allSatisfy { try FileStatus(path: $0.path).permissions == 0o600 })
            #expect(try keystore.unlockRecipientKeys(passphrase: renewed).map(\.fingerprint) == [second.fingerprint, first.fingerprint])
            #expect(try keystore.unlockSender(passphrase: renewed).bundle == first)
            #expect(throws: CryptoError.self) { try keystore.unlockSender(passphrase: passphrase) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: identity.path).sorted() == ["current", "v1", "v2"])
        }
    }

    /// A change interrupted after its commit point (some files moved, the rest still in
    /// `passphrase-change/`) is finished by the next command that reads a key; the staging of one
    /// interrupted before it is never read and goes with the next change.
    @Test func anInterruptedPassphraseChangeIsFinishedOrForgotten() async throws {
        try await onThreadOfItsOwn { [passphrase] in
            let keystore = Keystore(home: SecmailHome(url: try makeTemporaryDirectory("keystore-passphrase-crash")))
            let bundle = try keystore.createIdentity(name: IdentityName("dana"), passphrase: passphrase)
            let identity = keystore.home.url.appendingPathComponent("identity")
            let renewed = try Passphrase("the renewed keystore passphrase")
            // Committed, with the signing key already moved into place and the encryption key not.
            let journal = identity.appendingPathComponent("passphrase-change")
            try FileManager.default.createDirectory(at: journal, withIntermediateDirectories: false)
            for role in ["signing", "encryption"] {
                let original = identity.appendingPathComponent("v1/\(role)-key.pem")
                let key = try RSAPrivateKey(encryptedPEM: String(decoding: try Data(contentsOf: original), as: UTF8.self), passphrase: passphrase)
                let reencrypted = Data(try key.encryptedPEM(passphrase: renewed).utf8)
                let destination = role == "signing" ? original : journal.appendingPathComponent("v1-\(role)-key.pem")
                try reencrypted.write(to: destination)
                chmod(destination.path, 0o600)
            }
            // Not committed: never read.
            let abandoned = identity.appendingPathComponent("passphrase-change.partial-abandoned")
            try FileManager.default.createDirectory(at: abandoned, withIntermediateDirectories: false)
            try Data("junk".utf8).write(to: abandoned.appendingPathComponent("v1-signing-key.pem"))

            #expect(try keystore.unlockRecipientKeys(passphrase: renewed).map(\.fingerprint) == [bundle.fingerprint])
            #expect(!FileManager.default.fileExists(atPath: journal.path))
            #expect(try keystore.unlockSender(passphrase: renewed).bundle == bundle)
            #expect(throws: CryptoError.self) { try keystore.unlockRecipientKeys(passphrase: passphrase) }

            try keystore.changePassphrase(from: renewed, to: passphrase)
            #expect(try FileManager.default.contentsOfDirectory(atPath: identity.path).sorted() == ["current", "v1"])
            #expect(try keystore.unlockSender(passphrase: passphrase).bundle == bundle)
        }
    }

    /// Keys change one command at a time: while another holds the home's key lock (a rotation
    /// under way), a passphrase change is refused, naming the holder; once released, it runs.
    @Test func keysChangeOneCommandAtATime() async throws {
        try await onThreadOfItsOwn { [passphrase] in
            let keystore = Keystore(home: SecmailHome(url: try makeTemporaryDirectory("keystore-lock")))
            _ = try keystore.createIdentity(name: IdentityName("dana"), passphrase: passphrase)
            let renewed = try Passphrase("the renewed keystore passphrase")
            do {
                let held = try keystore.lockForKeyChange()
                let refused = #expect(throws: ClientError.self) { try keystore.changePassphrase(from: passphrase, to: renewed) }
                #expect(refused?.code == .homeBusy && refused?.reason.contains("process \(getpid())") == true, "\(refused?.reason ?? "")")
                withExtendedLifetime(held) {}
            }
            #expect(try keystore.changePassphrase(from: passphrase, to: renewed) == 2)
        }
    }
}
