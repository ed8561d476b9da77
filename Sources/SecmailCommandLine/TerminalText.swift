import FoundationEssentials
import Glibc
import SecmailFormat

/// The one way untrusted text (message text, attachment names, relay answers, anything a sender or
/// a relay chose) reaches a terminal: control and format characters (Unicode Cc and Cf: C0, DEL,
/// C1, bidi overrides and isolates, zero-width characters) and line or paragraph separators are
/// shown escaped as `\u{…}`, so text cannot move the cursor, recolour, retitle the window, write the
/// clipboard, reorder what is shown, or forge secmail's own lines. `--raw` and `--json` output bypass
/// it: they are for programs, and JSON escapes by itself.
package enum TerminalText {
    /// `text` with every such character escaped; with `keepingLineBreaks`, "\n" and "\t" pass
    /// (a message's text has lines), and so does a "\r\n" line end (text from Windows), shown as
    /// "\n": a carriage return right before a line feed moves nothing over what was printed. Every
    /// other "\r" is escaped: alone, it would let the rest of a line overwrite its start.
    package static func neutralised(_ text: String, keepingLineBreaks: Bool = false) -> String {
        var result = String.UnicodeScalarView()
        let scalars = Array(text.unicodeScalars)
        for (index, scalar) in scalars.enumerated() {
            if keepingLineBreaks, scalar == "\n" || scalar == "\t" {
                result.append(scalar)
            } else if keepingLineBreaks, scalar == "\r", index + 1 < scalars.count, scalars[index + 1] == "\n" {
                continue
            } else if MessageContent.isControlOrFormat(scalar) {
                result.append(contentsOf: "\\u{\(String(scalar.value, radix: 16, uppercase: true))}".unicodeScalars)
            } else {
                result.append(scalar)
            }
        }
        return String(result)
    }

    /// A message's text as shown to people: neutralised, every line behind "│ " so that no line of
    /// it can pass for one of secmail's (such as the "Verified: …" line), ending with a newline.
    package static func framedMessage(_ text: String) -> String {
        guard !text.isEmpty else { return "" }
        let body = text.hasSuffix("\n") ? String(text.dropLast()) : text
        return neutralised(body, keepingLineBreaks: true).split(separator: "\n", omittingEmptySubsequences: false)
            .map { "│ " + $0 + "\n" }.joined()
    }

    /// `word` as one shell word, to be typed back: as it is when it holds only characters no shell
    /// treats specially, else in single quotes; neutralised, for it may come from anywhere.
    package static func shellWord(_ word: String) -> String {
        let plain = !word.isEmpty && word.unicodeScalars.allSatisfy {
            $0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-/+=:,@%".unicodeScalars.contains($0)
        }
        return neutralised(plain ? word : "'" + word.replacing("'", with: #"'\''"#) + "'")
    }
}
