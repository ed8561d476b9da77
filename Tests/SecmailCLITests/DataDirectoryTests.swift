import Foundation
import SecmailTestSupport
import Testing

/// Issue 12, the data directory: one serving relay per directory, and nothing in it readable by
/// other local users.
@Suite struct DataDirectoryTests {
    let commands = RelayCommandTests()

    @Test func aSecondRelayOnTheSameDirectoryIsRefusedAndFilesArePrivate() async throws {
        let data = try temporaryDirectory("data-directory").appendingPathComponent("relay", isDirectory: true)
        // An existing directory others can read, as an operator might have made it.
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let relay = try await commands.startRelay(data: data)
        #expect(relay.output.text.contains("was open to others (mode 755); it is now 700"), "\(relay.output.text)")
        #expect(permissions(data) == 0o700)
        for file in ["relay.sqlite", "relay.sqlite-wal", "relay.sqlite-shm", "log-key.ed25519", "origin", "relay.lock"] {
            #expect(permissions(data.appendingPathComponent(file)) == 0o600, "\(file) has mode \(String(permissions(data.appendingPathComponent(file)), radix: 8))")
        }

        let second = try runSecmail(["relay", "--data", data.path, "--listen", "127.0.0.1:0"], environment: [:])
        #expect(second.status == 1)
        #expect(second.stderr.contains("another relay (process \(relay.process.processIdentifier)) is serving \(data.path)"), "\(second.stderr)")
        // Administrative commands still work beside the serving relay.
        let invite = try runSecmail(["relay", "invite", "--data", data.path], environment: [:])
        #expect(invite.status == 0, "\(invite.stderr)")
        #expect(await commands.stop(relay.process) == 0)

        // Once it stopped, the directory can be served again.
        let again = try await commands.startRelay(data: data)
        #expect(await commands.stop(again.process) == 0)
    }
}
