import Foundation
import SecmailAPI
import SecmailCrypto
import SecmailFormat
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// Issue 12, registration spam: a real relay process; bundles made under chosen names with the
/// keys of a throw-away identity (or new ones), registered with curl (from 127.0.0.1, or
/// 127.0.0.2 and 127.0.0.3 with --interface).
@Suite struct RegistrationLimitTests {
    let commands = RelayCommandTests()

    /// A signing key and the public encryption key, as a bundle takes them.
    typealias Keys = (signing: RSAPrivateKey, encryption: RSAPublicKey)

    static func throwawayKeys(_ owner: String) throws -> Keys {
        (try ThrowawayIdentities.signingKey(owner), try ThrowawayIdentities.encryptionKey(owner).publicKey)
    }

    func register(_ name: String, keys: Keys, port: Int, ca: String, from source: String = "127.0.0.1", invite: String? = nil) async throws -> (status: Int, body: String) {
        let bundle = try IdentityBundle.create(name: IdentityName(name), createdAt: 1, signingKey: keys.signing, encryptionKey: keys.encryption)
        let body = String(decoding: try JSONEncoder().encode(BundleRequest(bundle: Data(bundle.encoded).base64EncodedString(), invite: invite)), as: UTF8.self)
        let result = try await run("curl", ["--silent", "--show-error", "--max-time", "60", "--cacert", ca, "--interface", source,
                                            "--write-out", "\n%{http_code}", "-X", "POST", "-H", "content-type: application/json",
                                            "--data-binary", "@-", "https://localhost:\(port)/v1/directory/register"], input: Data(body.utf8))
        let split = try #require(result.text.lastIndex(of: "\n"), "\(result.stderr)")
        return (Int(result.text[result.text.index(after: split)...]) ?? 0, String(result.text[..<split]))
    }

    @Test func registrationsAreLimitedPerAddressAndReservedAndLookAlikeNamesAndSharedKeysRefused() async throws {
        let folder = try temporaryDirectory("registration-limits")
        let data = folder.appendingPathComponent("relay", isDirectory: true)
        var relay = try await commands.startRelay(data: data, options: ["--registrations-per-hour-per-address", "3"])
        var ca = data.appendingPathComponent("tls/dev-ca.pem").path
        for name in ["alice", "bob", "carol"] {
            #expect(try await register(name, keys: Self.throwawayKeys(name), port: relay.port, ca: ca).status == 201)
        }
        let daveKeys: Keys = (try RSAPrivateKey.generate(bitCount: 3072), try RSAPrivateKey.generate(bitCount: 3072).publicKey)
        let fourth = try await register("dave", keys: daveKeys, port: relay.port, ca: ca)
        #expect(fourth.status == 429 && fourth.body.contains("registered 3 names within the hour"), "\(fourth)")
        // Another address has its own allowance; look-alikes and reserved names are refused for it too.
        #expect(try await register("dave", keys: daveKeys, port: relay.port, ca: ca, from: "127.0.0.2").status == 201)
        let lookAlike = try await register("a1ice", keys: daveKeys, port: relay.port, ca: ca, from: "127.0.0.2")
        #expect(lookAlike.status == 409 && lookAlike.body.contains("looks too much like alice"), "\(lookAlike)")
        let reserved = try await register("postmaster", keys: daveKeys, port: relay.port, ca: ca, from: "127.0.0.2")
        #expect(reserved.status == 400 && reserved.body.contains("reserved"), "\(reserved)")
        // A key pair speaks for one name: alice's keys under another name, or only her signing
        // key beside a new encryption key, are refused and nothing is logged.
        let sizeBefore = try await logSize(port: relay.port, ca: ca)
        let shared = try await register("mallory", keys: Self.throwawayKeys("alice"), port: relay.port, ca: ca, from: "127.0.0.3")
        #expect(shared.status == 409 && shared.body.contains("already belongs to alice"), "\(shared)")
        let halfShared = try await register("mallory", keys: (try ThrowawayIdentities.signingKey("alice"), daveKeys.signing.publicKey),
                                            port: relay.port, ca: ca, from: "127.0.0.3")
        #expect(halfShared.status == 409 && halfShared.body.contains("already belongs to alice"), "\(halfShared)")
        #expect(try await logSize(port: relay.port, ca: ca) == sizeBefore)
        #expect(await commands.stop(relay.process) == 0)

        // Invited registrations are the operator's choice: not held to the limit.
        let invited = folder.appendingPathComponent("invited", isDirectory: true)
        relay = try await commands.startRelay(data: invited, options: ["--require-invite", "--registrations-per-hour-per-address", "1"])
        ca = invited.appendingPathComponent("tls/dev-ca.pem").path
        // Without a code, `register` says so before it makes any key (the relay announces that
        // it needs one); a wrong code is the relay's refusal, and the keys made for it go.
        let heidi = CLIUser.fresh("heidi", in: folder)
        let registering = ["register", "heidi", "--relay", "https://localhost:\(relay.port)", "--ca", ca]
        let uninvited = try await heidi.run(registering)
        #expect(uninvited.status == 1 && uninvited.stderr.contains("registers only with an invite code") && uninvited.stderr.contains("--invite CODE")
                && !uninvited.stderr.contains("Generating"), "\(uninvited.stderr)")
        #expect(!FileManager.default.fileExists(atPath: heidi.home.appendingPathComponent("identity").path))
        let wrongCode = try await heidi.run(registering + ["--invite", String(repeating: "0", count: 32)])
        #expect(wrongCode.status == 1 && wrongCode.stderr.contains("were registered nowhere and are discarded"), "\(wrongCode.stderr)")
        #expect(!FileManager.default.fileExists(atPath: heidi.home.appendingPathComponent("identity").path))
        let heidisCode = try await runSecmail(["relay", "invite", "--data", invited.path], environment: [:]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let welcome = try await heidi.run(registering + ["--invite", heidisCode])
        #expect(welcome.status == 0, "\(welcome.stderr)")
        for (name, owner) in [("erin", "alice"), ("frank", "bob"), ("grace", "carol")] {
            let code = try await runSecmail(["relay", "invite", "--data", invited.path], environment: [:]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try await register(name, keys: Self.throwawayKeys(owner), port: relay.port, ca: ca, invite: code).status == 201)
        }
        #expect(await commands.stop(relay.process) == 0)
    }

    /// The log's size from the relay's signed checkpoint (its second line).
    func logSize(port: Int, ca: String) async throws -> Int {
        let result = try await run("curl", ["--silent", "--show-error", "--max-time", "60", "--cacert", ca,
                                            "https://localhost:\(port)/v1/log/checkpoint"])
        let lines = result.text.split(separator: "\n")
        return try #require(lines.count > 1 ? Int(lines[1]) : nil, "\(result.text)")
    }
}
