import SecmailCrypto

/// SHA-256 of an identity bundle's canonical encoding: what names a key version everywhere.
public struct Fingerprint: Sendable, Hashable, CustomStringConvertible {
    /// The 32 digest bytes.
    public let bytes: [UInt8]

    public static let byteCount = 32

    /// Wraps 32 bytes.
    public init(bytes: [UInt8]) throws {
        guard bytes.count == Self.byteCount else {
            throw FormatError(.invalidField, "a fingerprint is \(Self.byteCount) bytes, not \(bytes.count)")
        }
        self.bytes = bytes
    }

    /// The fingerprint of `encoding`.
    init(of encoding: [UInt8]) {
        bytes = SHA256.hash(encoding)
    }

    /// Lower-case hex, 64 characters.
    public var hex: String { hexEncoded(bytes) }

    /// Hex in groups of four, for reading aloud and comparing by eye.
    public var grouped: String {
        var groups: [String] = []
        let characters = Array(hex)
        for start in stride(from: 0, to: characters.count, by: 4) {
            groups.append(String(characters[start..<start + 4]))
        }
        return groups.joined(separator: " ")
    }

    /// Parses 64 hex digits; spaces and colons are ignored, so a grouped form pastes back.
    public init(hex text: String) throws {
        let digits = text.filter { $0 != " " && $0 != ":" }
        guard digits.count == 64 else {
            throw FormatError(.invalidField, "a fingerprint is 64 hex digits, got \(digits.count)")
        }
        guard let bytes = hexDecoded(digits) else {
            throw FormatError(.invalidField, "a fingerprint has only hex digits 0-9 and a-f")
        }
        try self.init(bytes: bytes)
    }

    public var description: String { grouped }
}

/// The bytes that the hexadecimal `text` spells (ASCII digits, either case), or nil when it holds
/// anything else or an odd number of digits.
public func hexDecoded(_ text: some StringProtocol) -> [UInt8]? {
    var bytes: [UInt8] = []
    var high: UInt8?
    for unit in text.utf8 {
        let value: UInt8
        switch unit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): value = unit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): value = unit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): value = unit - UInt8(ascii: "A") + 10
        default: return nil
        }
        if let first = high {
            bytes.append(first << 4 | value)
            high = nil
        } else {
            high = value
        }
    }
    return high == nil ? bytes : nil
}

/// Lower-case hexadecimal of `bytes`.
public func hexEncoded(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0f)]] })
}
