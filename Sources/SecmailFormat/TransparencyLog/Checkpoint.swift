import FoundationEssentials
import Glibc

/// A transparency log checkpoint in the C2SP tlog-checkpoint format (c2sp.org/tlog-checkpoint):
///
///     <origin>\n<tree size in decimal>\n<base64 root hash>\n[<extension line>\n ...]
///
/// It is the body of a signed note (`SignedNote`).
public struct Checkpoint: Sendable, Equatable {
    /// The log's unique name, e.g. "relay.example.org/secmail".
    public let origin: String
    public let size: UInt64
    public let rootHash: [UInt8]
    /// Optional further lines, kept verbatim.
    public let extensions: [String]

    public init(origin: String, size: UInt64, rootHash: [UInt8], extensions: [String] = []) throws {
        guard Self.isValidLine(origin), !origin.isEmpty, !origin.contains("+"),
              !origin.unicodeScalars.contains(where: { $0.properties.isWhitespace }) else {
            throw FormatError(.invalidField, "a checkpoint origin is non-empty, with no spaces, '+' or control characters")
        }
        guard rootHash.count == 32 else {
            throw FormatError(.invalidField, "a checkpoint root hash is 32 bytes")
        }
        guard extensions.allSatisfy({ !$0.isEmpty && Self.isValidLine($0) }) else {
            throw FormatError(.invalidField, "a checkpoint extension line is non-empty, with no control characters")
        }
        self.origin = origin
        self.size = size
        self.rootHash = rootHash
        self.extensions = extensions
    }

    /// The note text.
    public var text: String {
        ([origin, String(size), Data(rootHash).base64EncodedString()] + extensions).map { $0 + "\n" }.joined()
    }

    /// Parses a checkpoint note text strictly: canonical decimal, exactly 32 base64 bytes.
    public init(text: String) throws {
        guard text.hasSuffix("\n") else {
            throw FormatError(.truncated, "a checkpoint ends with a newline")
        }
        let lines = text.dropLast().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 3 else {
            throw FormatError(.truncated, "a checkpoint has an origin, a size and a root hash line")
        }
        let sizeLine = lines[1]
        guard let size = UInt64(sizeLine), String(size) == sizeLine else {
            throw FormatError(.invalidField, "the checkpoint size \"\(sizeLine)\" is not a canonical decimal number")
        }
        guard let root = Data(base64Encoded: lines[2]), root.count == 32, root.base64EncodedString() == lines[2] else {
            throw FormatError(.invalidField, "the checkpoint root hash is not the base64 of 32 bytes")
        }
        try self.init(origin: lines[0], size: size, rootHash: Array(root), extensions: Array(lines[3...]))
    }

    private static func isValidLine(_ line: String) -> Bool {
        !line.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }
}
