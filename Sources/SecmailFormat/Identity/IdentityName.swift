/// A user name in the directory: 1 to 64 characters from a-z, 0-9, '.', '_' and '-', starting
/// with a letter or digit. Input is lower-cased first, so "Alice" and "alice" are one name;
/// the narrow alphabet rules out look-alike (homoglyph) names.
public struct IdentityName: Sendable, Hashable, CustomStringConvertible {
    /// The normalised name.
    public let value: String

    /// Longest name in bytes.
    public static let maximumLength = 64

    /// Normalises and validates `text`.
    public init(_ text: String) throws {
        let lowered = String(text.lowercased())
        let scalars = Array(lowered.unicodeScalars)
        guard !scalars.isEmpty, scalars.count <= Self.maximumLength else {
            throw FormatError(.invalidField, "a name must be 1 to \(Self.maximumLength) characters long")
        }
        for scalar in scalars {
            let allowed = ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar)
                || scalar == "." || scalar == "_" || scalar == "-"
            guard allowed else {
                throw FormatError(.invalidField, "the name \"\(text)\" contains '\(scalar)'; use only a-z, 0-9, '.', '_' and '-'")
            }
        }
        guard let first = scalars.first, ("a"..."z").contains(first) || ("0"..."9").contains(first) else {
            throw FormatError(.invalidField, "a name must start with a letter or a digit")
        }
        value = lowered
    }

    /// Validates `text`, which must already be normalised (lower-case): what a protocol field or
    /// URL carries, where "Alice" is an error rather than alice.
    public init(normalised text: String) throws {
        try self.init(text)
        guard value == text else {
            throw FormatError(.invalidField, "\"\(text)\" is not a normalised name; names are lower-case: \(value)")
        }
    }

    public var description: String { value }

    /// The name with look-alike spellings folded together (in the spirit of Unicode TR39's
    /// skeletons, for this narrow alphabet): "rn" reads as "m" and "vv" as "w"; 0 as o; 1 and i
    /// as l; '.', '_' and '-' as one mark, doubled marks as one, trailing marks dropped. Two
    /// names with one skeleton are too easily mistaken for each other to both be registered.
    public var skeleton: String {
        var folded = value.replacing("rn", with: "m").replacing("vv", with: "w")
        folded = String(folded.map { character -> Character in
            switch character {
            case "0": "o"
            case "1", "i": "l"
            case "_", "-": "."
            default: character
            }
        })
        while folded.contains("..") { folded = folded.replacing("..", with: ".") }
        while folded.hasSuffix(".") { folded.removeLast() }
        return folded
    }

    /// Names no one may register: the addresses people expect to reach an operator, and ones
    /// that would pass for the relay itself.
    public static let reserved: Set<String> = [
        "postmaster", "hostmaster", "webmaster", "abuse", "root", "admin", "administrator", "security", "support",
        "noreply", "no-reply", "mailer-daemon", "secmail", "relay", "system", "operator",
    ]

    /// True when this name is, or looks like, a reserved one.
    public var isReserved: Bool {
        Self.reserved.contains { (try? IdentityName($0))?.skeleton == skeleton }
    }
}
