import Foundation
import SecmailCrypto
import SecmailTLS
import SecmailTestSupport
import Testing

@Suite struct StressTests {
    @Test func sixtyFourConnectionsEachEchoFourMiBByteForByte() async throws {
        let server = try await TestServer.start(context: Certs.server(), group: stressEventLoopGroup)
        defer { Task { await server.stop() } }
        let client = try Certs.client()
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<64 {
                group.addTask {
                    // Random bytes, with the connection and block number stamped into every
                    // 4 KiB block, so crossed, dropped or reordered data would be caught.
                    var payload = try SystemRandom().bytes(count: 4 << 20)
                    for block in stride(from: 0, to: payload.count, by: 4096) {
                        withUnsafeBytes(of: (UInt32(index), UInt32(block / 4096))) { payload.replaceSubrange(block..<block + 8, with: $0) }
                    }
                    let echoed = try await tlsEcho(port: server.port, payload: payload, context: client, timeout: .seconds(120),
                                                   group: stressEventLoopGroup)
                    // Compared as Data (memcmp): an element-wise Array comparison of 4 MiB, 64 times,
                    // in the debug build, held the test process's cooperative threads for seconds.
                    return Data(echoed) == Data(payload)
                }
            }
            var results: [Bool] = []
            for try await result in group { results.append(result) }
            return results
        }
        #expect(results.count == 64)
        #expect(results.allSatisfy { $0 })
        #expect(await server.record.wait { $0.open == 0 })
        #expect(server.record.accepted == 64)
    }
}

@Suite struct CertificateTests {
    /// Fails clearly when a committed certificate (other than the deliberately expired fixture)
    /// expires within 60 days: run certs/generate-dev-certs.sh and commit the result.
    @Test(arguments: ["dev-ca.pem", "relay.pem", "wrong-host.pem", "unknown-ca.pem", "unknown-ca-relay.pem"])
    func committedCertificateIsValidForSixtyMoreDays(file: String) async throws {
        let result = try await run("openssl", ["x509", "-in", Certs.path(file), "-noout", "-checkend", String(60 * 24 * 3600)])
        #expect(result.status == 0, "certs/\(file) expires within 60 days: run certs/generate-dev-certs.sh and commit the new files")
    }

    @Test func expiredFixtureIsExpiredAndRelayKeyMatchesItsPin() throws {
        #expect(try run("openssl", ["x509", "-in", Certs.path("expired.pem"), "-noout", "-checkend", "0"]).status != 0)
        let pin = try run("sh", ["-c", "openssl pkey -in '\(Certs.path("throwaway-relay.key.pem"))' -pubout -outform DER | openssl dgst -sha256 -r"])
        #expect(pin.text.prefix(64) == hexString(Certs.relayPin))
    }
}
