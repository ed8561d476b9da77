internal import COpenSSL

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

    /// Asks on the controlling terminal with echo off (OpenSSL's UI layer, as `openssl pkey` does).
    /// With `confirm`, asks twice and fails if the two answers differ.
    public static func prompt(_ prompt: String, confirm: Bool) throws -> Passphrase {
        var buffer = [CChar](repeating: 0, count: maximumByteCount + 1)
        defer { buffer.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) } }
        OpenSSLErrorQueue.clear()
        let status = EVP_read_pw_string_min(&buffer, 1, Int32(maximumByteCount), prompt, confirm ? 1 : 0)
        guard status == 0 else {
            let message = OpenSSLErrorQueue.drain()
            if status == -1 {
                throw CryptoError(.passphraseUnavailable, "could not read a passphrase from the terminal; set SECMAIL_PASSPHRASE or use --passphrase-file", openSSLMessage: message)
            }
            throw CryptoError(.invalidParameter, confirm ? "the passphrases did not match or were empty" : "no passphrase was entered", openSSLMessage: message)
        }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return try Passphrase(text)
    }
}
