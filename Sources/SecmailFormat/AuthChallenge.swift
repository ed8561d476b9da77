/// The bytes a client signs, with its identity's current RSA-PSS signing key, to prove to a
/// relay that it owns a name (challenge-response, then a short-lived token). The relay's origin
/// and the name are inside, so a signature for one relay or name is useless for another.
public enum AuthChallenge {
    static let context = Array("secmail auth challenge v1".utf8) + [0]

    public static func signedMessage(origin: String, name: IdentityName, nonce: [UInt8]) -> [UInt8] {
        var writer = ByteWriter()
        writer.append(raw: context)
        writer.append(u16Prefixed: Array(origin.utf8.prefix(Int(UInt16.max))))
        writer.append(u8Prefixed: Array(name.value.utf8))
        writer.append(u16Prefixed: nonce)
        return writer.bytes
    }
}
