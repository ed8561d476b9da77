import Foundation
import SecmailAPI
import SecmailFormat
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// Issue 12, registration spam: a real relay process; bundles made with the throw-away keys
/// under chosen names, registered with curl (from 127.0.0.1, or 127.0.0.2 with --interface).
@Suite struct RegistrationLimitTests {
    let commands = RelayCommandTests()

    func register(_ name: String, port: Int, ca: String, from source: String = "127.0.0.1", invite: String? = nil) async throws -> (status: Int, body: String) {
        let bundle = try IdentityBundle.create(name: IdentityName(name), createdAt: 1, signingKey: ThrowawayIdentities.signingKey("alice"),
                                               encryptionKey: ThrowawayIdentities.encryptionKey("alice").publicKey)
        let body = String(decoding: try JSONEncoder().encode(BundleRequest(bundle: Data(bundle.encoded).base64EncodedString(), invite: invite)), as: UTF8.self)
        let result = try await runAsync("curl", ["--silent", "--show-error", "--max-time", "60", "--cacert", ca, "--interface", source,
                                                 "--write-out", "\n%{http_code}", "-X", "POST", "-H", "content-type: application/json",
                                                 "--data-binary", "@-", "https://localhost:\(port)/v1/directory/register"], input: Data(body.utf8))
        let split = try #require(result.text.lastIndex(of: "\n"), "\(result.stderr)")
        return (Int(result.text[result.text.index(after: split)...]) ?? 0, String(result.text[..<split]))
    }

    @Test func registrationsAreLimitedPerAddressAndReservedAndLookAlikeNamesRefused() async throws {
        let folder = try temporaryDirectory("registration-limits")
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        var relay = try await commands.startRelay(data: data, options: ["--registrations-per-hour-per-address", "3"])
        var ca = data.appendingPathComponent("tls/dev-ca.pem").path
        for name in ["alice", "bob", "carol"] { #expect(try await register(name, port: relay.port, ca: ca).status == 201) }
        let fourth = try await register("dave", port: relay.port, ca: ca)
        #expect(fourth.status == 429 && fourth.body.contains("registered 3 names within the hour"), "\(fourth)")
        // Another address has its own allowance; look-alikes and reserved names are refused for it too.
        #expect(try await register("dave", port: relay.port, ca: ca, from: "127.0.0.2").status == 201)
        let lookAlike = try await register("a1ice", port: relay.port, ca: ca, from: "127.0.0.2")
        #expect(lookAlike.status == 409 && lookAlike.body.contains("looks too much like alice"), "\(lookAlike)")
        let reserved = try await register("postmaster", port: relay.port, ca: ca, from: "127.0.0.2")
        #expect(reserved.status == 400 && reserved.body.contains("reserved"), "\(reserved)")
        #expect(await commands.stop(relay.process) == 0)

        // Invited registrations are the operator's choice: not held to the limit.
        let invited = folder.appendingPathComponent("invited", isDirectory: true)
        relay = try await commands.startRelay(data: invited, options: ["--require-invite", "--registrations-per-hour-per-address", "1"])
        ca = invited.appendingPathComponent("tls/dev-ca.pem").path
        for name in ["erin", "frank", "grace"] {
            let code = try runSecmail(["relay", "invite", "--data", invited.path], environment: [:]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try await register(name, port: relay.port, ca: ca, invite: code).status == 201)
        }
        #expect(await commands.stop(relay.process) == 0)
    }
}
