import FoundationEssentials
import Glibc
import SecmailCrypto
import SecmailFormat

/// The user's own identity on disk: every key version's public bundle and its two private
/// keys, encrypted with the passphrase (PKCS#8, PBES2/scrypt) in 0600 files.
///
///     identity/current                 the current key version, e.g. "1"
///     identity/v1/bundle.smid          the public bundle (canonical binary)
///     identity/v1/signing-key.pem      encrypted PKCS#8
///     identity/v1/encryption-key.pem   encrypted PKCS#8
///
/// A rotation writes `v(N+1)` completely (and durably) before the relay hears of it, and moves
/// `current` to it only once the relay has logged it; until then `v(N+1)` is a pending rotation
/// that the next `rotate` resumes. No private key is ever deleted, so old mail stays readable.
/// A passphrase change re-encrypts every key file (Keystore+PassphraseChange.swift).
public struct Keystore: Sendable {
    public let home: SecmailHome

    public init(home: SecmailHome) {
        self.home = home
    }

    var identityDirectory: URL { home.url.appendingPathComponent("identity", isDirectory: true) }

    /// Whether an identity exists in this home.
    public var hasIdentity: Bool {
        FileManager.default.fileExists(atPath: identityDirectory.appendingPathComponent("current").path)
    }

    /// Creates a new identity (key version 1). Fails if one exists; never overwrites keys.
    /// The identity directory appears only once every file is written (rename of a staging
    /// directory), so an interrupted run leaves no half identity behind.
    public func createIdentity(
        name: IdentityName,
        passphrase: Passphrase,
        now: Int64 = Int64(Date().timeIntervalSince1970)
    ) throws -> IdentityBundle {
        guard !FileManager.default.fileExists(atPath: identityDirectory.path) else {
            throw ClientError(.identityExists, "\(home.url.path) already holds an identity; secmail never overwrites keys (use another SECMAIL_HOME for a second identity)")
        }
        try home.ensureExists()
        let (signingKey, encryptionKey) = try Self.newKeys()
        let bundle = try IdentityBundle.create(
            name: name, keyVersion: 1, createdAt: now,
            signingKey: signingKey, encryptionKey: encryptionKey.publicKey)

        let staging = home.url.appendingPathComponent("identity.partial-\(UUID().uuidString)", isDirectory: true)
        defer { try? FileManager.default.removeItem(at: staging) }
        try writeVersion(bundle: bundle, signingKey: signingKey, encryptionKey: encryptionKey,
                         passphrase: passphrase, into: staging)
        try FileSystem.createFile(staging.appendingPathComponent("current"), bytes: Array("1\n".utf8), permissions: 0o600)
        do {
            try FileManager.default.moveItem(at: staging, to: identityDirectory)
        } catch {
            throw ClientError(.io, "cannot install the identity in \(identityDirectory.path): \(String(describing: error))")
        }
        return bundle
    }

    /// Prepares the next key version: new signing and encryption keys, a bundle carrying the
    /// current signing key's continuity signature, written under `v(N+1)` (not yet current).
    /// Resumes instead when a pending rotation exists, so an interrupted rotation never leaves
    /// two different next versions.
    /// `current` is the unlocked current version (`unlockSender`); `passphrase` encrypts the new keys.
    public func prepareRotation(from current: SenderIdentity, passphrase: Passphrase,
                                now: Int64 = Int64(Date().timeIntervalSince1970)) throws -> IdentityBundle {
        if let pending = try pendingRotation() { return pending }
        guard try current.bundle == currentBundle() else {
            throw ClientError(.invalidInput, "a rotation starts from the current key version \(try currentVersion())")
        }
        let (signingKey, encryptionKey) = try Self.newKeys()
        let bundle = try IdentityBundle.create(
            name: current.bundle.name, keyVersion: current.bundle.keyVersion + 1, createdAt: now,
            signingKey: signingKey, encryptionKey: encryptionKey.publicKey,
            rotatingFrom: (current.bundle, current.signer))
        let staging = identityDirectory.appendingPathComponent("v\(bundle.keyVersion).partial-\(UUID().uuidString)", isDirectory: true)
        defer { try? FileManager.default.removeItem(at: staging) }
        try writeVersion(bundle: bundle, signingKey: signingKey, encryptionKey: encryptionKey, passphrase: passphrase, into: staging)
        do {
            try FileManager.default.moveItem(at: versionDirectory(bundle.keyVersion, in: staging), to: versionDirectory(bundle.keyVersion))
            try FileSystem.synchronize(identityDirectory)
        } catch let error as ClientError {
            throw error
        } catch {
            throw ClientError(.io, "cannot install key version \(bundle.keyVersion) in \(identityDirectory.path): \(String(describing: error))")
        }
        return bundle
    }

    /// The next key version if it was prepared but not yet made current.
    public func pendingRotation() throws -> IdentityBundle? {
        let next = try currentVersion() + 1
        guard FileManager.default.fileExists(atPath: versionDirectory(next).appendingPathComponent("bundle.smid").path) else { return nil }
        return try bundle(version: next)
    }

    /// Makes the pending version current (after the relay logged it).
    public func commitRotation(_ bundle: IdentityBundle) throws {
        guard try pendingRotation() == bundle else {
            throw ClientError(.corruptState, "key version \(bundle.keyVersion) is not the pending rotation in \(identityDirectory.path)")
        }
        try FileSystem.replaceFile(identityDirectory.appendingPathComponent("current"), bytes: Array("\(bundle.keyVersion)\n".utf8))
    }

    /// Holds `keys.lock` in the home while its keys change (a rotation, a passphrase change), so
    /// that two commands never change them at once: a rotation writing its new version under the
    /// old passphrase while a passphrase change re-encrypts the others would leave a keystore
    /// under two passphrases. Released when the returned lock goes, or the process ends. A lock
    /// held elsewhere is waited for up to two seconds: a lock just released may still be held a
    /// moment by a child process that is starting (it shares the lock until its exec closes it).
    public func lockForKeyChange() throws -> ExclusiveFileLock {
        try home.lock("keys.lock", waitingUpTo: .seconds(2), holderIs: "changing the keys of")
    }

    /// Removes a pending version the relay refused (it never became current or public).
    public func discardPendingRotation() throws {
        guard let pending = try pendingRotation() else { return }
        do {
            try FileManager.default.removeItem(at: versionDirectory(pending.keyVersion))
        } catch {
            throw ClientError(.io, "cannot remove the refused key version in \(versionDirectory(pending.keyVersion).path): \(String(describing: error))")
        }
    }

    /// Removes the identity `bundle` (key version 1, as `createIdentity` just made it) after a
    /// relay refused to register it, for its name: its keys never left this computer, and a
    /// home holding them could register no other name.
    public func discardUnregisteredIdentity(_ bundle: IdentityBundle) throws {
        guard bundle.keyVersion == 1, try allBundles() == [bundle] else {
            preconditionFailure("only a new identity that was never registered is discarded")
        }
        // Out of the way in one step, so that no half-removed identity is ever seen.
        let discarded = home.url.appendingPathComponent("identity.partial-\(UUID().uuidString)", isDirectory: true)
        do {
            try FileManager.default.moveItem(at: identityDirectory, to: discarded)
            try FileManager.default.removeItem(at: discarded)
        } catch {
            throw ClientError(.io, "cannot remove the unregistered identity in \(identityDirectory.path): \(String(describing: error))")
        }
    }

    /// The current key version's public bundle (no passphrase needed).
    public func currentBundle() throws -> IdentityBundle {
        try bundle(version: currentVersion())
    }

    /// The identity's name, nil where the home holds no (readable) identity: for what only
    /// sets one's own name apart (one's own pin among the contacts).
    public var ownName: IdentityName? {
        try? currentBundle().name
    }

    /// The identity's name for a command line that an error message offers to type, "NAME"
    /// where the home holds no (readable) identity.
    public var nameToType: String {
        ownName?.value ?? "NAME"
    }

    /// Every key version's bundle, oldest first, with a pending rotation last.
    public func allBundles() throws -> [IdentityBundle] {
        try (1...currentVersion()).map { try bundle(version: $0) } + [pendingRotation()].compactMap { $0 }
    }

    /// The current bundle and its private signing key, for sealing.
    /// `version`: an earlier key version's, to log again a rotation it signed (a relay restored
    /// from a backup made before it); the current one's by default.
    public func unlockSender(passphrase: Passphrase, version wanted: UInt32? = nil) throws -> SenderIdentity {
        let version = try wanted ?? currentVersion()
        let signingKey = try privateKey(version: version, role: .signing, passphrase: passphrase)
        return try SenderIdentity(bundle: bundle(version: version), signingKey: signingKey)
    }

    /// The private encryption keys of every version, newest first, for opening mail.
    /// A pending rotation's keys are included: the relay may have published that version before
    /// this client recorded it as current.
    /// With `only`, just the versions whose bundle fingerprint is in it (each key is one scrypt).
    public func unlockRecipientKeys(passphrase: Passphrase, only wanted: Set<Fingerprint>? = nil) throws -> [RecipientKey] {
        try recipientVersions().compactMap { version in
            let fingerprint = try bundle(version: version).fingerprint
            guard wanted?.contains(fingerprint) ?? true else { return nil }
            let key = try privateKey(version: version, role: .encryption, passphrase: passphrase)
            return RecipientKey(fingerprint: fingerprint, encryptionKey: key)
        }
    }

    /// `unlockSender` and `unlockRecipientKeys` at once, on two cores: each key's scrypt is a
    /// separate ~50 ms of one core.
    public func unlockSenderAndRecipientKeys(passphrase: Passphrase) throws -> (SenderIdentity, [RecipientKey]) {
        try concurrently({ try unlockSender(passphrase: passphrase) }, { [self] in try unlockRecipientKeys(passphrase: passphrase) })
    }

    /// The bundle fingerprints of the keys `unlockRecipientKeys` unlocks, in the same order.
    public func recipientFingerprints() throws -> [Fingerprint] {
        try recipientVersions().map { try bundle(version: $0).fingerprint }
    }

    /// Every key version with private keys in the keystore, newest first (a pending rotation's too).
    func recipientVersions() throws -> [UInt32] {
        let newest = try currentVersion() + (pendingRotation() == nil ? 0 : 1)
        return (1...newest).reversed()
    }

    // MARK: Files

    func versionDirectory(_ version: UInt32, in root: URL? = nil) -> URL {
        (root ?? identityDirectory).appendingPathComponent("v\(version)", isDirectory: true)
    }

    func currentVersion() throws -> UInt32 {
        guard hasIdentity else {
            throw ClientError(.noIdentity, "no identity in \(home.url.path); create one on a relay with the `secmail register NAME --relay …` line that `secmail relay` prints, or for files only with `secmail init NAME`")
        }
        // ASCII digits and a newline, read on every command: parsed without Foundation's string
        // trimming, whose first use costs a visible part of a short command.
        var text = try FileSystem.read(identityDirectory.appendingPathComponent("current"))[...]
        let whitespace: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]
        while let first = text.first, whitespace.contains(first) { text = text.dropFirst() }
        while let last = text.last, whitespace.contains(last) { text = text.dropLast() }
        guard let version = UInt32(String(decoding: text, as: UTF8.self)), version >= 1 else {
            throw ClientError(.corruptState, "\(identityDirectory.path)/current does not hold a key version")
        }
        return version
    }

    func bundle(version: UInt32) throws -> IdentityBundle {
        let url = versionDirectory(version).appendingPathComponent("bundle.smid")
        do {
            return try IdentityBundle(encoded: FileSystem.read(url))
        } catch let error as FormatError {
            throw ClientError(.corruptState, "\(url.path) is damaged: \(error.reason)")
        }
    }

    /// A private key, decrypted with `passphrase`. A file that is not an encrypted key is named:
    /// "not an encrypted PKCS#8 private key" alone does not say which of the files it is.
    /// A passphrase change interrupted after its commit point is finished first.
    func privateKey(version: UInt32, role: KeyRole, passphrase: Passphrase) throws -> RSAPrivateKey {
        try finishInterruptedPassphraseChange()
        let url = keyFile(version: version, role: role)
        try FileSystem.checkPrivate(url)
        let pem = String(decoding: try FileSystem.read(url), as: UTF8.self)
        do {
            return try RSAPrivateKey(encryptedPEM: pem, passphrase: passphrase)
        } catch let error as CryptoError where error.code != .wrongPassphrase {
            throw ClientError(.corruptState, "the \(role.rawValue) key of key version \(version) (\(url.path)) cannot be used: \(error.description)")
        }
    }

    /// The two private keys of a key version: one signs, the other unwraps content keys.
    enum KeyRole: String, CaseIterable {
        case signing, encryption
    }

    func keyFile(version: UInt32, role: KeyRole, in root: URL? = nil) -> URL {
        versionDirectory(version, in: root).appendingPathComponent("\(role.rawValue)-key.pem")
    }

    private func writeVersion(
        bundle: IdentityBundle, signingKey: RSAPrivateKey, encryptionKey: RSAPrivateKey,
        passphrase: Passphrase, into root: URL
    ) throws {
        let directory = versionDirectory(bundle.keyVersion, in: root)
        try FileSystem.createPrivateDirectory(directory)
        try FileSystem.createDurableFile(directory.appendingPathComponent("bundle.smid"), bytes: bundle.encoded, permissions: 0o600)
        // Each key's scrypt is a separate ~50 ms of one core: both at once.
        let (signingPEM, encryptionPEM) = try concurrently({ try signingKey.encryptedPEM(passphrase: passphrase) },
                                                           { try encryptionKey.encryptedPEM(passphrase: passphrase) })
        try FileSystem.createDurableFile(keyFile(version: bundle.keyVersion, role: .signing, in: root), bytes: Array(signingPEM.utf8), permissions: 0o600)
        try FileSystem.createDurableFile(keyFile(version: bundle.keyVersion, role: .encryption, in: root), bytes: Array(encryptionPEM.utf8), permissions: 0o600)
        try FileSystem.synchronize(directory)
    }

    /// A new signing key and a new encryption key (RSA-3072, never one key for both), made at once
    /// on two cores: a new identity or key version waits for the slower of two prime searches
    /// (each ~0.3-2 s, at random), not for both in turn.
    private static func newKeys() throws -> (signing: RSAPrivateKey, encryption: RSAPrivateKey) {
        try concurrently({ try RSAPrivateKey.generate(bitCount: 3072) }, { try RSAPrivateKey.generate(bitCount: 3072) })
    }
}
