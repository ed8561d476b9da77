import FoundationEssentials
import Glibc
import SecmailCrypto
import SecmailFormat

/// Changing the passphrase that encrypts the keystore's private keys.
///
/// Every key file of every key version (a pending rotation's too) is encrypted anew, and all of
/// them are staged before any is replaced:
///
///     identity/passphrase-change.partial-UUID/   being written; never read, removed by the next change
///     identity/passphrase-change/v1-signing-key.pem, v1-encryption-key.pem, …
///                                                 committed: each file is then renamed over its original
///
/// Renaming the staging folder to `passphrase-change` is the commit point. A change interrupted
/// after it is finished before any private key is next read (`privateKey`), by whichever command
/// comes first; one interrupted before it never happened. So every key always opens with one
/// passphrase: the old one, or the new one once the change is committed.
extension Keystore {
    /// Re-encrypts every private key with `new`. All must open with `old` before anything is
    /// written: a wrong passphrase, or an older key version under another one, changes nothing.
    /// - Returns: how many key files were encrypted anew.
    @discardableResult
    public func changePassphrase(from old: Passphrase, to new: Passphrase) throws -> Int {
        let keyChange = try lockForKeyChange()
        defer { withExtendedLifetime(keyChange) {} }
        try finishInterruptedPassphraseChange()
        try removeAbandonedPassphraseChanges()
        // Each key's scrypt is a separate ~50 ms of one core: a version's two keys at once.
        var encrypted: [(name: String, pem: String)] = []
        for version in try recipientVersions() {
            let (signing, encryption) = try concurrently({ try privateKey(version: version, role: .signing, passphrase: old) },
                                                         { [self] in try privateKey(version: version, role: .encryption, passphrase: old) })
            let (signingPEM, encryptionPEM) = try concurrently({ try signing.encryptedPEM(passphrase: new) },
                                                               { try encryption.encryptedPEM(passphrase: new) })
            encrypted += [(Self.stagedName(version: version, role: .signing), signingPEM),
                          (Self.stagedName(version: version, role: .encryption), encryptionPEM)]
        }
        let staging = identityDirectory.appendingPathComponent("\(Self.stagingPrefix)\(UUID().uuidString)", isDirectory: true)
        defer { try? FileManager.default.removeItem(at: staging) }
        try FileSystem.createPrivateDirectory(staging)
        for (name, pem) in encrypted {
            try FileSystem.createDurableFile(staging.appendingPathComponent(name), bytes: Array(pem.utf8), permissions: 0o600)
        }
        try FileSystem.synchronize(staging)
        do {
            try AtomicRename.replace(passphraseChangeDirectory, with: staging)
        } catch let error as FormatError {
            throw ClientError(.io, "cannot commit the passphrase change: \(error.reason)")
        }
        try FileSystem.synchronize(identityDirectory)
        try finishInterruptedPassphraseChange()
        return encrypted.count
    }

    /// Moves every committed, re-encrypted key file over its original, then removes the folder.
    /// One stat when there is nothing to finish. Two commands finishing at once both succeed:
    /// a file the other already moved is skipped.
    func finishInterruptedPassphraseChange() throws {
        let journal = passphraseChangeDirectory
        guard (try? FileStatus(path: journal.path)) != nil else { return }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: journal.path)
        } catch {
            return  // finished and removed by another command meanwhile
        }
        var touched: Set<UInt32> = []
        for name in names {
            guard let (version, role) = Self.stagedKey(named: name) else { continue }
            let source = journal.appendingPathComponent(name)
            do {
                try AtomicRename.replace(keyFile(version: version, role: role), with: source)
                touched.insert(version)
            } catch let error as FormatError {
                guard (try? FileStatus(path: source.path)) == nil else {
                    throw ClientError(.io, "cannot finish the passphrase change: \(error.reason)")
                }
            }
        }
        for version in touched { try FileSystem.synchronize(versionDirectory(version)) }
        try? FileManager.default.removeItem(at: journal)
        try FileSystem.synchronize(identityDirectory)
    }

    /// Staging folders of changes that never reached their commit point.
    private func removeAbandonedPassphraseChanges() throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: identityDirectory.path)) ?? []
        for name in names where name.hasPrefix(Self.stagingPrefix) {
            try? FileManager.default.removeItem(at: identityDirectory.appendingPathComponent(name))
        }
    }

    var passphraseChangeDirectory: URL { identityDirectory.appendingPathComponent("passphrase-change", isDirectory: true) }

    private static let stagingPrefix = "passphrase-change.partial-"

    /// `v3-signing-key.pem`: the file that replaces key version 3's signing key.
    static func stagedName(version: UInt32, role: KeyRole) -> String {
        "v\(version)-\(role.rawValue)-key.pem"
    }

    private static func stagedKey(named name: String) -> (UInt32, KeyRole)? {
        KeyRole.allCases.lazy.compactMap { role -> (UInt32, KeyRole)? in
            let suffix = "-\(role.rawValue)-key.pem"
            guard name.hasPrefix("v"), name.hasSuffix(suffix),
                  let version = UInt32(name.dropFirst().dropLast(suffix.count)), version >= 1 else { return nil }
            return (version, role)
        }.first
    }
}
