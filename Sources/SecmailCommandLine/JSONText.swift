/// A command's `--json` answer: objects (keys sorted), arrays, strings, integers, fractions and
/// booleans, indented by two spaces, one value to a line, empty containers as `[]` and `{}`;
/// slashes and non-ASCII characters as they are, other control characters escaped.
package func jsonText(_ value: Any) throws -> String {
    var text = ""
    try JSONText.append(value, to: &text, indent: "")
    return text + "\n"
}

package enum JSONText {
    package static func append(_ value: Any, to text: inout String, indent: String) throws {
        switch value {
        case let string as String:
            appendString(string, to: &text)
        case let flag as Bool:
            text += flag ? "true" : "false"
        case let integer as any BinaryInteger:
            text += "\(integer)"
        case let number as Double:
            guard number.isFinite else { throw CLIFailure(.failure, "a JSON number must be finite, not \(number)") }
            text += number == number.rounded() && abs(number) < 1e15 ? "\(Int64(number))" : "\(number)"
        case let object as [String: Any]:
            guard !object.isEmpty else { text += "{}"; return }
            let inner = indent + "  "
            text += "{\n"
            for (index, key) in object.keys.sorted(by: keyPrecedes).enumerated() {
                text += inner
                appendString(key, to: &text)
                text += " : "
                try append(object[key]!, to: &text, indent: inner)
                text += index == object.count - 1 ? "\n" : ",\n"
            }
            text += indent + "}"
        case let array as [Any]:
            guard !array.isEmpty else { text += "[]"; return }
            let inner = indent + "  "
            text += "[\n"
            for (index, element) in array.enumerated() {
                text += inner
                try append(element, to: &text, indent: inner)
                text += index == array.count - 1 ? "\n" : ",\n"
            }
            text += indent + "]"
        default:
            throw CLIFailure(.failure, "no JSON form for a value of type \(type(of: value))")
        }
    }

    /// The order of JSONSerialization's sorted keys, which compares as Foundation's `compare` with
    /// numeric, case-insensitive options does: other characters before digits, digits before
    /// letters, a run of digits by its value, letters without regard to case (and only then by
    /// their code points).
    package static func keyPrecedes(_ first: String, _ second: String) -> Bool {
        enum Piece: Comparable {
            case other(UInt32), number(UInt64, digits: Int), letter(Character)
        }
        func pieces(_ key: String) -> [Piece] {
            var result: [Piece] = []
            var scalars = key.unicodeScalars[...]
            while let scalar = scalars.first {
                if ("0"..."9").contains(scalar) {
                    let run = scalars.prefix { ("0"..."9").contains($0) }
                    scalars = scalars.dropFirst(run.count)
                    result.append(.number(UInt64(String(String.UnicodeScalarView(run)).suffix(18)) ?? 0, digits: run.count))
                } else {
                    scalars = scalars.dropFirst()
                    let isLetter = scalar.properties.isAlphabetic
                    result.append(isLetter ? .letter(Character(String(scalar).lowercased())) : .other(scalar.value))
                }
            }
            return result
        }
        let (left, right) = (pieces(first), pieces(second))
        return left == right ? first < second : left.lexicographicallyPrecedes(right)
    }

    private static func appendString(_ string: String, to text: inout String) {
        text += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case "\u{08}": text += "\\b"
            case "\u{0C}": text += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
    }
}
