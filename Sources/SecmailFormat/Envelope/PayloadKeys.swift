import SecmailCrypto

/// The key schedule of envelope version 1. From the random 32-byte content key and the message
/// id (as salt) HKDF-SHA256 derives the AES-256-GCM payload key and a public key commitment.
struct PayloadKeys {
    static let commitmentByteCount = 32
    static let payloadKeyInfo = Array("secmail v1 payload key".utf8)
    static let commitmentInfo = Array("secmail v1 key commitment".utf8)

    let cipher: AESGCM
    let commitment: [UInt8]

    init(contentKey: SymmetricKey, messageID: MessageID) throws {
        let payloadKey = try HKDF.deriveKey(from: contentKey, salt: messageID.bytes, info: Self.payloadKeyInfo)
        cipher = try AESGCM(key: payloadKey)
        commitment = try HKDF.deriveBytes(from: contentKey, salt: messageID.bytes, info: Self.commitmentInfo,
                                          count: Self.commitmentByteCount)
    }

    /// The STREAM nonce: an 88-bit big-endian chunk counter, then 0x01 on the last chunk and
    /// 0x00 otherwise, so reordering, truncation and splicing all fail authentication.
    static func nonce(chunk index: UInt64, isFinal: Bool) -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: 12)
        for byte in 0..<8 {
            nonce[10 - byte] = UInt8(truncatingIfNeeded: index >> (8 * UInt64(byte)))
        }
        nonce[11] = isFinal ? 1 : 0
        return nonce
    }
}

/// Constant-time comparison of two byte strings of public length.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in a.indices { difference |= a[index] ^ b[index] }
    return difference == 0
}
