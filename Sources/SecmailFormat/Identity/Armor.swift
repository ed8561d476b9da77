import FoundationEssentials
import Glibc

/// The text-safe form of binary objects: PEM-like, base64 in 64-character lines.
///
///     -----BEGIN SECMAIL IDENTITY-----
///     U01JRAEAAQVhbGljZQ...
///     -----END SECMAIL IDENTITY-----
public enum Armor {
    /// The label of an identity bundle.
    public static let identityLabel = "SECMAIL IDENTITY"

    /// Wraps `bytes` in BEGIN/END lines with `label`.
    public static func encode(_ bytes: [UInt8], label: String) -> String {
        let base64 = Data(bytes).base64EncodedString()
        var lines = ["-----BEGIN \(label)-----"]
        var index = base64.startIndex
        while index < base64.endIndex {
            let end = base64.index(index, offsetBy: 64, limitedBy: base64.endIndex) ?? base64.endIndex
            lines.append(String(base64[index..<end]))
            index = end
        }
        lines.append("-----END \(label)-----")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Extracts the bytes inside the one block labelled `label`. Text outside the block is not
    /// allowed except blank lines, so a pasted bundle cannot smuggle a second one. Lines end in
    /// LF or CRLF; spaces and tabs around them are ignored. (Read as ASCII bytes: going through
    /// Foundation's Unicode trimming cost a visible part of every command that reads a bundle.)
    public static func decode(_ text: String, label: String) throws -> [UInt8] {
        let lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .map(trimmedLine)
            .filter { !$0.isEmpty }
        guard lines.first == "-----BEGIN \(label)-----" else {
            throw FormatError(.badMagic, "expected a -----BEGIN \(label)----- block")
        }
        guard lines.count >= 2, lines.last == "-----END \(label)-----" else {
            throw FormatError(.truncated, "the \(label) block has no -----END \(label)----- line")
        }
        let body = lines[1..<(lines.count - 1)].joined()
        guard let data = Data(base64Encoded: body), !data.isEmpty else {
            throw FormatError(.invalidField, "the \(label) block is not valid base64")
        }
        return Array(data)
    }

    /// A line without its CR and the spaces and tabs around it.
    private static func trimmedLine(_ line: Substring.UTF8View.SubSequence) -> String {
        let isBlank: (UInt8) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }
        guard let first = line.firstIndex(where: { !isBlank($0) }), let last = line.lastIndex(where: { !isBlank($0) }) else { return "" }
        return String(decoding: line[first...last], as: UTF8.self)
    }
}

extension IdentityBundle {
    /// The armored text form (what `secmail export` writes).
    public var armored: String {
        Armor.encode(encoded, label: Armor.identityLabel)
    }

    /// Parses either the armored text form or the raw binary encoding.
    public init(armoredOrBinary bytes: [UInt8]) throws {
        if bytes.starts(with: Self.magic) {
            try self.init(encoded: bytes)
        } else {
            try self.init(encoded: Armor.decode(String(decoding: bytes, as: UTF8.self), label: Armor.identityLabel))
        }
    }
}
