/// Cryptographic suites. Every stored format names its suite so that a later one
/// (X25519 + Ed25519, then post-quantum) can be added without breaking stored mail.
public enum Suite: UInt16, Sendable {
    /// RSA-3072 OAEP-SHA256 key wrap, RSA-3072 PSS-SHA256 signatures, AES-256-GCM payload,
    /// HKDF-SHA256 key schedule, SHA-256 hashes.
    case rsa3072AES256GCM = 1

    /// RSA modulus size that suite 1 requires of every key.
    static let rsaBitCount = 3072

    init(validating raw: UInt16, in subject: String) throws {
        guard let suite = Suite(rawValue: raw) else {
            throw FormatError(.unsupportedSuite, "the \(subject) uses cryptographic suite \(raw), which this secmail does not support")
        }
        self = suite
    }
}
