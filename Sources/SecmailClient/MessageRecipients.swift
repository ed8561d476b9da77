import Foundation
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
        let own = Set(try keystore.recipientFingerprints())
        let others = header.recipients.map(\.fingerprint).filter { !own.contains($0) }
        you = others.count < header.recipients.count ? try keystore.currentBundle().name : nil
        guard !others.isEmpty else {
            contacts = []
            unnamed = 0
            return
        }
        let pinned = Dictionary(try ContactPins(home: keystore.home).all().map { ($0.fingerprint, $0.name) }) { first, _ in first }
        contacts = others.compactMap { pinned[$0] }
        unnamed = others.count - contacts.count
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
