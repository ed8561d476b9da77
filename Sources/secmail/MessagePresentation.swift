import FoundationEssentials
import Glibc
import SecmailClient
import SecmailCommandLine
import SecmailFormat

/// A verified, decrypted message as `open` and `read` show it.
struct ShownMessage {
    let header: EnvelopeHeader
    /// The sender's key version, where the log told it (`read`); `open` knows only the bundle given.
    let keyVersion: UInt32?
    let text: String
    let saved: [SavedAttachment]
    /// About the message as a whole (read before, signed long ago).
    let notes: [String]
    /// Whom it was sealed to, as far as this home can tell; nil where a note says it (a copy of
    /// a message this home sent, read again).
    var recipients: MessageRecipients? = nil

    /// For people: the verification line on stderr, the text framed on stdout (exact with `raw`),
    /// then one line for each saved file (what became of it, if it changed on the way) and each
    /// note. The text comes after the verification line and behind its frame, so nothing in it
    /// can pass for that line.
    func show(raw: Bool) {
        let version = keyVersion.map { "key version \($0), " } ?? ""
        Terminal.info("Verified: signed by \(header.senderName) (\(version)\(header.senderFingerprint.grouped)) at \(HumanTime.describe(header.time))")
        if let recipients, let others = recipients.others {
            Terminal.info("\(recipients.you == nil ? "To" : "Also to"): \(others)")
        }
        if raw {
            Terminal.output(text.hasSuffix("\n") || text.isEmpty ? text : text + "\n")
        } else {
            Terminal.output(TerminalText.framedMessage(text))
        }
        for file in saved {
            // The size as saved: a compressed attachment inflated, an image converted to PNG.
            let size = formatBytes((try? FileStatus(path: file.url.path))?.size ?? file.info.length)
            if let sentence = file.sentence {
                Terminal.info("\(sentence) (\(size)) to \(file.url.path)")
            } else {
                Terminal.info("Saved \(file.info.name) (\(file.info.mediaType), \(size)) to \(file.url.path)")
            }
        }
        for note in notes { Terminal.info(note) }
    }

    /// For programs: exact text, epoch seconds.
    var json: [String: Any] {
        var result: [String: Any] = [
            "id": header.messageID.hex, "from": header.senderName.value, "fingerprint": header.senderFingerprint.hex,
            "time": header.time, "text": text, "files": saved.map(\.url.path), "notes": notes + saved.compactMap(\.sentence),
        ]
        if let keyVersion { result["keyVersion"] = keyVersion }
        if let recipients {
            result["to"] = recipients.names.map(\.value)
            result["unnamedRecipients"] = recipients.unnamed
        }
        return result
    }
}
