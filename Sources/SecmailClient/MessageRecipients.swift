import FoundationEssentials
import Glibc
import SecmailFormat

/// Whom a message was sealed to, as far as this home can tell: the envelope names its recipients
/// by key fingerprint only (signed by the sender, so the list is the sender's), and a recipient
/// is told by name where the key is one of this home's own key versions or a pinned contact's.
public struct MessageRecipients: Sendable, Equatable {
    /// This home's name, when one of its key versions is among them.
    public let you: IdentityName?
    /// The other recipients whose keys are pinned contacts' keys, in the envelope's order.
    public let contacts: [IdentityName]
    /// The other recipients whose keys this home does not know (not pinned, or an earlier or
    /// later version than the one pinned).
    public let unnamed: Int

    /// The recipients of `header`, told with the own keys of `keystore` and the pins of its home.
    /// The pins are read only when the message has recipients besides this home.
    public init(of header: EnvelopeHeader, keystore: Keystore) throws {
        try self.init(of: header, ownKeys: Set(keystore.recipientFingerprints()), ownName: { try keystore.currentBundle().name },
                      pinnedNames: { try Self.pinnedNames(in: keystore.home) })
    }

    /// The recipients of `header`, told with `ownKeys` (this home's key versions, named
    /// `ownName`) and `pinnedNames` (`pinnedNames(in:)`), each asked for only when needed: a
    /// caller naming the recipients of many messages reads them once.
    public init(of header: EnvelopeHeader, ownKeys: Set<Fingerprint>, ownName: () throws -> IdentityName,
                pinnedNames: () throws -> [Fingerprint: IdentityName]) rethrows {
        let others = header.recipients.map(\.fingerprint).filter { !ownKeys.contains($0) }
        you = others.count < header.recipients.count ? try ownName() : nil
        guard !others.isEmpty else {
            contacts = []
            unnamed = 0
            return
        }
        let pinned = try pinnedNames()
        contacts = others.compactMap { pinned[$0] }
        unnamed = others.count - contacts.count
    }

    /// The pinned contacts of `home` by the fingerprint of their pinned key.
    public static func pinnedNames(in home: SecmailHome) throws -> [Fingerprint: IdentityName] {
        Dictionary(try ContactPins(home: home).all().map { ($0.fingerprint, $0.name) }) { first, _ in first }
    }

    /// The recipients known by name, this home's first.
    public var names: [IdentityName] { (you.map { [$0] } ?? []) + contacts }

    /// "carol, dave and 1 recipient not among your contacts", for the recipients besides this
    /// home; nil when there are none.
    public var others: String? {
        var parts = contacts.map(\.value)
        if unnamed > 0 { parts.append("\(unnamed) recipient\(unnamed == 1 ? "" : "s") not among your contacts") }
        guard let last = parts.popLast() else { return nil }
        return parts.isEmpty ? last : parts.joined(separator: ", ") + " and " + last
    }
}
