
/// A passphrase that protects private keys at rest. Kept as UTF-8 bytes that are wiped when the
/// last copy of the passphrase goes away.
public struct Passphrase: Sendable {
    /// Owns the bytes, so that they are wiped once, when no copy of the passphrase is left.
    private final class Storage: @unchecked Sendable {
        // @unchecked: written in init, read afterwards, wiped in deinit when nobody can read it.
        var bytes: [UInt8]
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        deinit { SecretBytes.wipe(&bytes) }
    }

    private let storage: Storage

    /// The UTF-8 bytes; never logged or printed.
    var bytes: [UInt8] { storage.bytes }

    /// Number of characters (extended grapheme clusters), for strength rules.
    public var characterCount: Int { String(decoding: bytes, as: UTF8.self).count }

    /// Longest passphrase accepted, in bytes.
    public static let maximumByteCount = 1024

    /// A passphrase from text; rejects empty text, NUL characters and overlong input.
    public init(_ text: String) throws {
        try self.init(utf8Bytes: Array(text.utf8))
    }

    /// A passphrase from UTF-8 bytes (received from a client by the key agent), with the checks
    /// of `init(_:)` and a check that the bytes are UTF-8.
    public init(utf8Bytes bytes: [UInt8]) throws {
        guard !bytes.isEmpty else {
            throw CryptoError(.invalidParameter, "the passphrase is empty")
        }
        guard !bytes.contains(0) else {
            throw CryptoError(.invalidParameter, "the passphrase contains a NUL character")
        }
        guard bytes.count <= Self.maximumByteCount else {
            throw CryptoError(.invalidParameter, "the passphrase is longer than \(Self.maximumByteCount) bytes")
        }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw CryptoError(.invalidParameter, "the passphrase is not UTF-8 text")
        }
        storage = Storage(bytes)
    }

    /// Runs `body` over the UTF-8 bytes, to hand the passphrase to the key agent; `body` must not
    /// keep them.
    public func withUTF8Bytes<R>(_ body: ([UInt8]) throws -> R) rethrows -> R {
        try body(storage.bytes)
    }

    /// Whether two passphrases are the same bytes (a new one typed twice).
    public func bytesEqual(_ other: Passphrase) -> Bool {
        bytes == other.bytes
    }
}
