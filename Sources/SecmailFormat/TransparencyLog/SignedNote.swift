import FoundationEssentials
import Glibc
import SecmailCrypto

/// Signed notes (c2sp.org/signed-note, as Go's golang.org/x/mod/sumdb/note) with Ed25519 keys:
///
///     <text, each line ending in \n>
///     \n
///     — <key name> <base64(4-byte key ID || 64-byte signature)>\n
///
/// The key ID is the first 4 bytes of SHA-256(name || "\n" || 0x01 || public key).
public enum SignedNote {
    /// Ed25519's signature type byte in key IDs and verifier keys.
    static let ed25519Type: UInt8 = 0x01
    static let signaturePrefix = "\u{2014} "

    /// The 4-byte key ID of an Ed25519 key called `name`.
    public static func keyID(name: String, publicKey: Ed25519PublicKey) throws -> [UInt8] {
        Array(SHA256.hash(Array(name.utf8) + [0x0A, ed25519Type] + (try publicKey.rawRepresentation)).prefix(4))
    }

    /// Signs `text` (which must end in a newline) and returns the whole note.
    public static func sign(_ text: String, name: String, key: Ed25519PrivateKey) throws -> String {
        try checkText(text)
        try checkName(name)
        let id = try keyID(name: name, publicKey: key.publicKey)
        let signature = try key.signature(for: Array(text.utf8))
        return text + "\n" + signaturePrefix + name + " " + Data(id + signature).base64EncodedString() + "\n"
    }

    /// Returns the text of `note` if it carries a valid signature by `verifier`. Signature lines
    /// by other keys are ignored; a line that names this key but does not verify is an error.
    public static func open(_ note: String, verifier: NoteVerifier) throws -> String {
        // The last blank line: the signatures follow it.
        let utf8 = note.utf8
        guard let blank = utf8.indices.dropLast().last(where: { utf8[$0] == 10 && utf8[utf8.index(after: $0)] == 10 }) else {
            throw FormatError(.truncated, "not a signed note: no blank line before the signatures")
        }
        let text = String(note[note.startIndex...blank])
        let signatureBlock = note[utf8.index(blank, offsetBy: 2)...]
        try checkText(text)
        guard signatureBlock.hasSuffix("\n") else {
            throw FormatError(.truncated, "the signed note's last line has no newline")
        }
        var verified = false
        for line in signatureBlock.dropLast().split(separator: "\n", omittingEmptySubsequences: false) {
            guard line.hasPrefix(signaturePrefix) else {
                throw FormatError(.invalidField, "a signed note line does not start with an em dash and a space")
            }
            let parts = line.dropFirst(signaturePrefix.count).split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, let blob = Data(base64Encoded: String(parts[1])), blob.count > 4 else {
                throw FormatError(.invalidField, "a signed note signature line is malformed")
            }
            guard String(parts[0]) == verifier.name, Array(blob.prefix(4)) == verifier.keyID else { continue }
            guard blob.count == 68, verifier.publicKey.isValidSignature(Array(blob.dropFirst(4)), for: Array(text.utf8)) else {
                throw FormatError(.authenticationFailed, "the signature of \(verifier.name) on this note does not verify")
            }
            verified = true
        }
        guard verified else {
            throw FormatError(.authenticationFailed, "the note carries no signature by \(verifier.name)")
        }
        return text
    }

    static func checkText(_ text: String) throws {
        guard !text.isEmpty, text.hasSuffix("\n"),
              !text.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\n") || $0.value == 0x7F }) else {
            throw FormatError(.invalidField, "a note's text is non-empty, ends in a newline and has no other control characters")
        }
    }

    static func checkName(_ name: String) throws {
        guard !name.isEmpty, !name.contains("+"), !name.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 }) else {
            throw FormatError(.invalidField, "a key name is non-empty, with no spaces, '+' or control characters")
        }
    }
}

/// A trusted note-signing key, in the verifier-key text form `<name>+<hex key ID>+<base64(0x01 || key)>`.
public struct NoteVerifier: Sendable {
    public let name: String
    public let keyID: [UInt8]
    public let publicKey: Ed25519PublicKey

    public init(name: String, publicKey: Ed25519PublicKey) throws {
        try SignedNote.checkName(name)
        self.name = name
        self.publicKey = publicKey
        keyID = try SignedNote.keyID(name: name, publicKey: publicKey)
    }

    /// Parses the verifier-key text form, checking that the key ID matches the key.
    public init(verifierKey: String) throws {
        // Names contain no '+', but base64 key material often does: split at the first two only.
        let parts = verifierKey.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1].count == 8, let idValue = UInt32(parts[1], radix: 16),
              let material = Data(base64Encoded: String(parts[2])), material.count == 33,
              material.first == SignedNote.ed25519Type else {
            throw FormatError(.invalidField, "not an Ed25519 verifier key (name+hash+base64)")
        }
        try self.init(name: String(parts[0]), publicKey: Ed25519PublicKey(rawRepresentation: Array(material.dropFirst())))
        let stated = [UInt8(idValue >> 24), UInt8(idValue >> 16 & 0xff), UInt8(idValue >> 8 & 0xff), UInt8(idValue & 0xff)]
        guard stated == keyID else {
            throw FormatError(.authenticationFailed, "the verifier key's hash does not match its key")
        }
    }

    /// The verifier-key text form.
    public var verifierKey: String {
        get throws {
            name + "+" + hexEncoded(keyID) + "+" + Data([SignedNote.ed25519Type] + (try publicKey.rawRepresentation)).base64EncodedString()
        }
    }
}
