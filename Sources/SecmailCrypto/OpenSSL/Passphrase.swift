
/// A passphrase that protects private keys at rest. Kept as UTF-8 bytes so that it can be wiped.
public struct Passphrase: Sendable {
    /// The UTF-8 bytes; never logged or printed.
    let bytes: [UInt8]

    /// Number of characters (extended grapheme clusters), for strength rules.
    public var characterCount: Int { String(decoding: bytes, as: UTF8.self).count }

    /// Longest passphrase accepted, in bytes.
    public static let maximumByteCount = 1024

    /// A passphrase from text; rejects empty text, NUL characters and overlong input.
    public init(_ text: String) throws {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else {
            throw CryptoError(.invalidParameter, "the passphrase is empty")
        }
        guard !bytes.contains(0) else {
            throw CryptoError(.invalidParameter, "the passphrase contains a NUL character")
        }
        guard bytes.count <= Self.maximumByteCount else {
            throw CryptoError(.invalidParameter, "the passphrase is longer than \(Self.maximumByteCount) bytes")
        }
        self.bytes = bytes
    }

    /// Whether two passphrases are the same bytes (a new one typed twice).
    public func bytesEqual(_ other: Passphrase) -> Bool {
        bytes == other.bytes
    }
}
