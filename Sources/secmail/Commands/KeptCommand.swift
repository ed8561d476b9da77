import ArgumentParser
import FoundationEssentials
import Glibc
import SecmailClient
import SecmailCommandLine
import SecmailFormat

struct KeptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kept",
        abstract: "List the mail kept in your home: messages you sent and messages you read.",
        discussion: """
            Newest first: the id, whom it went to or came from, when it was signed, its size; with a \
            name, only the mail sent to or read from that contact. \
            `secmail read ID` shows any of them again, without the relay; `secmail prune` removes \
            old ones. Nothing is decrypted to list them, and no passphrase is asked.
            """)

    @Argument(help: ArgumentHelp("Only the mail exchanged with this contact (sent to or read from).", valueName: "name"),
              completion: HomeOptions.contactNames)
    var contact: String?

    @Flag(name: .long, help: "Only the messages you sent.")
    var sent = false

    @Flag(name: .long, help: "Only the messages you read.")
    var read = false

    @Flag(name: .long, help: "Print a JSON array of {id, sent, from, to, unnamedRecipients, time, size, opens} on standard output.")
    var json = false

    @OptionGroup var homeOptions: HomeOptions

    func validate() throws {
        if sent, read { throw ValidationError("give --sent or --read, not both (neither lists both)") }
    }

    func run() throws {
        let keystore = try Keystore(home: homeOptions.secmailHome)
        _ = try keystore.currentBundle()
        let name = try contact.map { text in try userInput { try IdentityName(text) } }
        let entries = KeptMail(home: keystore.home).entries().filter { entry in
            guard !(sent && !entry.wasSent), !(read && entry.wasSent) else { return false }
            guard let name else { return true }
            return entry.wasSent ? entry.recipients.contains(name) : entry.sender == name
        }
        if json {
            try Terminal.output(jsonText(entries.map { entry in
                ["id": entry.id.hex, "sent": entry.wasSent, "from": entry.sender.value, "to": entry.recipients.map(\.value),
                 "unnamedRecipients": entry.unnamedRecipients, "time": entry.time, "size": entry.size, "opens": entry.opens] as [String: Any]
            }))
            return
        }
        guard !entries.isEmpty else {
            let with = name.map { " \(sent ? "to" : read ? "from" : "with") \($0)" } ?? ""
            let typo = name.map { ContactPins(home: keystore.home).suggestion(for: $0) } ?? ""
            Terminal.info((sent ? "No messages sent\(with)" : read ? "No messages read\(with)" : "No mail kept\(with)") + (typo.isEmpty ? "." : typo))
            return
        }
        let correspondents = entries.map { entry in
            guard entry.wasSent else { return "from \(entry.sender.value)" }
            let unnamed = entry.unnamedRecipients > 0 ? [counted(entry.unnamedRecipients, "recipient key", "recipient keys")] : []
            return "to " + (entry.recipients.map(\.value) + unnamed).joined(separator: ", ")
        }
        // Padded to the longest, so that the columns line up.
        let width = correspondents.map(\.count).max() ?? 0
        for (entry, who) in zip(entries, correspondents) {
            let padded = leftAligned(who, width: width)
            Terminal.output("\(entry.id.hex)  \(padded)  \(HumanTime.describe(entry.time))  \(formatBytes(entry.size))\(entry.opens ? "" : "  (cannot be opened)")\n")
        }
        let unopenable = entries.filter { !$0.opens }.count
        if unopenable > 0 {
            Terminal.info("\(counted(unopenable, "message", "messages")) marked so went out before secmail kept you the key to your own copy; only their recipients can open them.")
        }
        if Terminal.stderrIsTerminal {
            Terminal.info("Show one again with `secmail read ID` (its first 4 or more digits will do).")
        }
    }
}
