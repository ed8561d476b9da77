import FoundationEssentials
import Glibc
import SecmailFormat

/// `$SECMAIL_HOME/reader-features`: the relay and the list of reader features (`ReaderFeature`)
/// this client last declared there, so that it declares them again only when either changed (an
/// upgraded client, another relay). Declared at registration and, when they changed, on the
/// reading commands.
struct DeclaredReaderFeatures {
    let home: SecmailHome
    /// `host:port` of the relay declared to.
    let relayAddress: String

    /// What this client declares: everything it reads.
    var features: [String] { ReaderFeature.supported.map(\.rawValue) }

    private var record: URL { home.url.appendingPathComponent("reader-features") }
    private var contents: [UInt8] { Array("\(relayAddress)\n\(features.joined(separator: ","))\n".utf8) }

    /// Whether the relay already holds this client's list.
    var isCurrent: Bool { (try? FileSystem.read(record)) == contents }

    /// Records that the relay now holds this client's list.
    func remember() throws {
        try FileSystem.replaceFile(record, bytes: contents)
    }
}
