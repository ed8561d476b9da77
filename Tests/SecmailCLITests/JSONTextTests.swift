import Foundation
import Testing
import SecmailCommandLine

/// `jsonText` writes what Foundation's JSONSerialization wrote for the CLI's `--json` answers
/// (pretty-printed, sorted keys, slashes unescaped), with empty containers on one line.
@Suite struct JSONTextTests {
    func serialized(_ value: Any) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    @Test func matchesJSONSerializationByteForByte() throws {
        let values: [Any] = [
            ["name": "alice", "keyVersion": 3, "agentUnlocked": false, "home": "/tmp/a b/ç"],
            [["id": "00ff", "size": UInt64(1) << 40, "time": Int64(-5)], ["nested": ["a", "b"], "ok": true]],
            ["text": "quote \" backslash \\ slash / tab \t newline \n return \r bell \u{07} esc \u{1B} del \u{7F} bidi \u{202E} 🙂"],
            ["seconds": 0.004, "ratio": 12.5, "whole": 3.0, "negative": -0.25, "big": 123_456.789],
            ["zeta": 1, "alpha": 2, "Beta": 3, "_under": 4, "10": 5, "9": 6, "keys": 7, "keyVersion": 8, "a2": 9, "a10": 10, "A1": 11, "a-b": 12],
        ]
        for value in values {
            let (ours, foundations) = (try jsonText(value), try serialized(value))
            #expect(ours == foundations, "ours:\n\(ours)Foundation's:\n\(foundations)")
        }
    }

    @Test func writesEmptyContainersOnOneLine() throws {
        #expect(try jsonText([Any]()) == "[]\n")
        #expect(try jsonText([String: Any]()) == "{}\n")
        #expect(try jsonText(["saved": [Any](), "fields": [String: Any]()]) == "{\n  \"fields\" : {},\n  \"saved\" : []\n}\n")
    }

    @Test func refusesValuesWithoutAJSONForm() {
        #expect(throws: CLIFailure.self) { try jsonText(["when": Date()]) }
        #expect(throws: CLIFailure.self) { try jsonText(["x": Double.nan]) }
    }

    @Test func decimalsAndColumnsAsPrintfShowsThem() {
        for (value, places) in [(0.004, 2), (12.345678, 1), (1234.5678, 2), (-3.21, 1), (0, 1), (99.4, 0), (1_048_575.0 / 1_048_576, 1)] {
            #expect(decimal(value, places: places) == String(format: "%.\(places)f", value), "\(value)")
        }
        #expect(decimal(-0.01, places: 1) == "0.0")
        #expect(rightAligned(7, width: 3) == "  7" && rightAligned(100, width: 3) == "100" && rightAligned(1000, width: 3) == "1000")
        #expect(leftAligned("bob", width: 5) == "bob  " && leftAligned("alexandra", width: 5) == "alexa")
    }
}
