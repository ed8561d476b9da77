import Foundation
import SecmailRelayTestSupport
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

        let second = try await runSecmail(["relay", "--data", data.path, "--listen", "127.0.0.1:0"], environment: [:])
        #expect(second.status == 1)
        #expect(second.stderr.contains("another relay (process \(relay.process.processIdentifier)) is serving \(data.path)"), "\(second.stderr)")
        // Another directory on the port in use: one sentence, not NIO's bind error.
        let other = try temporaryDirectory("data-directory-2").appendingPathComponent("relay", isDirectory: true)
        let samePort = try await runSecmail(["relay", "--data", other.path, "--listen", "127.0.0.1:\(relay.port)"], environment: [:])
        #expect(samePort.status == 1)
        #expect(samePort.stderr == "secmail: error: cannot listen on 127.0.0.1:\(relay.port): the address is in use: is another relay (or another program) listening there? Choose another with --listen\n",
                "\(samePort.stderr)")
        // Administrative commands still work beside the serving relay.
        let invite = try await runSecmail(["relay", "invite", "--data", data.path], environment: [:])
        #expect(invite.status == 0, "\(invite.stderr)")
        #expect(await commands.stop(relay.process) == 0)

        // Once it stopped, the directory can be served again.
        let again = try await commands.startRelay(data: data)
        #expect(await commands.stop(again.process) == 0)
    }

    /// One log line per request, with what an operator needs and never a token.
    @Test func requestsAreLoggedWithoutSecrets() async throws {
        let data = try temporaryDirectory("request-log").appendingPathComponent("relay", isDirectory: true)
        let relay = try await commands.startRelay(data: data)
        let curl = RelayCurl(port: relay.port, caFile: data.appendingPathComponent("tls/dev-ca.pem"))
        let token = try await curl.registerAndAuthenticate("alice")
        #expect(try await curl.call("/v1/auth/whoami", headers: ["Authorization: Bearer \(token)"]).status == 200)
        #expect(try await curl.call("/v1/no/such/route").status == 404)
        try await Task.sleep(for: .milliseconds(300))
        let lines = relay.output.text.split(separator: "\n")
        let whoami = try #require(lines.first { $0.contains("path=/v1/auth/whoami") }, "\(relay.output.text)")
        #expect(whoami.contains("status=200") && whoami.contains("method=GET") && whoami.contains("address=127.0.0.1/32") && whoami.contains("ms="))
        #expect(lines.contains { $0.contains("path=/v1/no/such/route") && $0.contains("status=404") })
        #expect(lines.contains { $0.contains("path=/v1/directory/register") && $0.contains("status=201") && $0.contains("in=") })
        #expect(!relay.output.text.contains(token))
        #expect(await commands.stop(relay.process) == 0)

        let quiet = try await runSecmail(["relay", "--data", data.path, "--listen", "127.0.0.1:0", "--log-level", "loud"], environment: [:])
        #expect(quiet.status == 64 && quiet.stderr.contains("--log-level is one of"), "\(quiet.stderr)")
    }
}
