import FoundationEssentials
import Glibc
import Synchronization
import SecmailCrypto
import SecmailFormat

/// A reader's private encryption keys, one per key version, each at hand only once a message
/// sealed to that version needs it. Unlocked with the passphrase, every version costs one scrypt
/// (about 50 ms of a core), and someone who rotated N times would otherwise pay N of them to read
/// any message; the key agent's keys are all at hand from the start.
public final class RecipientKeyring: Sendable {
    /// Every key version's bundle fingerprint, newest first.
    public let fingerprints: [Fingerprint]
    private let unlock: @Sendable (Set<Fingerprint>) throws -> [RecipientKey]
    private let atHand: Mutex<[RecipientKey]>

    /// Keys that are all at hand (the key agent's, or every version unlocked).
    public convenience init(_ keys: [RecipientKey]) {
        self.init(fingerprints: keys.map(\.fingerprint), atHand: keys) { _ in [] }
    }

    /// `atHand` now; `unlock` gives the keys of the versions asked for when a message needs them.
    public init(fingerprints: [Fingerprint], atHand: [RecipientKey], unlock: @escaping @Sendable (Set<Fingerprint>) throws -> [RecipientKey]) {
        self.fingerprints = fingerprints
        self.atHand = Mutex(atHand)
        self.unlock = unlock
    }

    /// The keys of the `listed` versions (those a message is sealed to), unlocking any not at hand.
    public func keys(for listed: [Fingerprint]) throws -> [RecipientKey] {
        let missing = Set(listed).subtracting(atHand.withLock { $0.map(\.fingerprint) })
        if !missing.isEmpty {
            let unlocked = try unlock(missing)
            atHand.withLock { $0 += unlocked }
        }
        return atHand.withLock { $0.filter { listed.contains($0.fingerprint) } }
    }

    /// The keys of the versions `source`'s header lists (or the sender's `sentCopyKey`), from
    /// `sender` (read from the header before anything is verified: a message not for this reader
    /// unlocks nothing).
    public func keys(for source: EnvelopeSource, from sender: IdentityBundle, sentCopyKey: SentCopyKey? = nil) throws -> [RecipientKey] {
        try keys(for: EnvelopeOpener.readerKeys(in: source, sender: sender, among: fingerprints, sentCopyKey: sentCopyKey))
    }
}

extension Keystore {
    /// The current identity for signing and a keyring with the current version's encryption key,
    /// both unlocked at once (two scrypts on two cores); older versions are unlocked with the
    /// same passphrase only when a message sealed to one of them is opened.
    public func unlockSenderAndKeyring(passphrase: Passphrase) throws -> (SenderIdentity, RecipientKeyring) {
        let current = try currentBundle().fingerprint
        let (sender, currentKeys) = try concurrently({ try unlockSender(passphrase: passphrase) }, { [self] in
            try unlockRecipientKeys(passphrase: passphrase, only: [current])
        })
        let keyring = RecipientKeyring(fingerprints: try recipientFingerprints(), atHand: currentKeys) { [self] wanted in
            try unlockRecipientKeys(passphrase: passphrase, only: wanted)
        }
        return (sender, keyring)
    }
}
