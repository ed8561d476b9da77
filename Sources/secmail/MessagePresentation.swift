import Foundation
import SecmailClient
import SecmailFormat

/// A verified, decrypted message as `open` and `read` show it.
struct ShownMessage {
    let header: EnvelopeHeader
    /// The sender's key version, where the log told it (`read`); `open` knows only the bundle given.
    let keyVersion: UInt32?
    let text: String
    let saved: [(info: AttachmentInfo, url: URL)]
    let notes: [String]

    /// For people: the verification line on stderr, the text framed on stdout (exact with `raw`),
    /// then each saved file and each note. The text comes after the verification line and behind
    /// its frame, so nothing in it can pass for that line.
    func show(raw: Bool) {
        let version = keyVersion.map { "key version \($0), " } ?? ""
        Terminal.info("Verified: signed by \(header.senderName) (\(version)\(header.senderFingerprint.grouped)) at \(HumanTime.describe(header.time))")
        if raw {
            Terminal.output(text.hasSuffix("\n") || text.isEmpty ? text : text + "\n")
        } else {
            Terminal.output(TerminalText.framedMessage(text))
        }
        for (info, url) in saved {
            // The file as saved: a compressed attachment inflated, an image converted to PNG (its
            // type is then no longer the one the attachment declared; a note says what it became).
            let size = (try? FileStatus(path: url.path))?.size ?? info.length
            let savedExtension = url.pathExtension.lowercased()
            if SavedFileName.split(info.name).ext.lowercased() != savedExtension, !savedExtension.isEmpty {
                Terminal.info("Saved \(info.name) as \(savedExtension.uppercased()) (\(formatBytes(size))) to \(url.path)")
            } else {
                Terminal.info("Saved \(info.name) (\(info.mediaType), \(formatBytes(size))) to \(url.path)")
            }
        }
        for note in notes { Terminal.info(note) }
    }

    /// For programs: exact text, epoch seconds.
    var json: [String: Any] {
        var result: [String: Any] = [
            "id": header.messageID.hex, "from": header.senderName.value, "fingerprint": header.senderFingerprint.hex,
            "time": header.time, "text": text, "files": saved.map(\.url.path), "notes": notes,
        ]
        if let keyVersion { result["keyVersion"] = keyVersion }
        return result
    }
}
