/// The bytes a client signs, with its identity's current RSA-PSS signing key, to prove to a
/// relay that it owns a name (challenge-response, then a short-lived token). The relay's log
/// origin, the SHA-256 of the TLS public key the client saw on its connection (its SPKI pin) and
/// the name are inside, so a signature made for one relay is useless at another, even one whose
/// origin is the same, and a signature for one name is useless for another.
public enum AuthChallenge {
    static let context = Array("secmail auth challenge v2".utf8) + [0]

    /// `"secmail auth challenge v2" 00 ‖ bytes16(origin) ‖ u8[32] relay key pin ‖ bytes8(name) ‖ bytes16(nonce)`.
    public static func signedMessage(origin: String, relayKeyPin: [UInt8], name: IdentityName, nonce: [UInt8]) -> [UInt8] {
        precondition(relayKeyPin.count == 32, "a relay key pin is a SHA-256")
        var writer = ByteWriter()
        writer.append(raw: context)
        writer.append(u16Prefixed: Array(origin.utf8.prefix(Int(UInt16.max))))
        writer.append(raw: relayKeyPin)
        writer.append(u8Prefixed: Array(name.value.utf8))
        writer.append(u16Prefixed: nonce)
        return writer.bytes
    }
}
