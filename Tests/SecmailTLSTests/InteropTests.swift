import Foundation
import NIOCore
import SecmailTLS
import SecmailTestSupport
import Testing

/// A long-running external process with its stdin open and its output collected.
final class ExternalProcess: @unchecked Sendable {
    // @unchecked: `output` is guarded by `lock`; the rest is set in init.
    let process = Process()
    private let input = Pipe()
    private let lock = NSLock()
    private var collected = Data()

    init(_ arguments: [String], directory: URL? = nil) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = input
        output.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.withLock { self.collected.append(data) }
        }
        try process.run()
    }

    var output: String { lock.withLock { String(decoding: collected, as: UTF8.self) } }

    func send(_ text: String) { input.fileHandleForWriting.write(Data(text.utf8)) }
    func closeInput() { try? input.fileHandleForWriting.close() }

    /// Waits until the output contains `text` (or the time runs out).
    func waitForOutput(containing text: String, seconds: Double = 10) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if output.contains(text) { return true }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        return output.contains(text)
    }

    /// Waits for the process to end, killing it after `seconds`; returns its exit status.
    func finish(seconds: Double = 10) async -> Int32 {
        _ = await exits(process, within: seconds)
        killAndReap(process)
        return process.terminationStatus
    }
}

@Suite struct InteropTests {
    @Test func opensslClientVerifiesEchoesAndUpdatesKeys() async throws {
        let server = try await TestServer.start(context: Certs.server())
        defer { Task { await server.stop() } }
        let client = try ExternalProcess(["openssl", "s_client", "-connect", "127.0.0.1:\(server.port)", "-tls1_3",
                                          "-CAfile", Certs.path("dev-ca.pem"), "-verify_return_error",
                                          "-servername", "localhost", "-verify_hostname", "localhost"])
        client.send("first line through secmail TLS\n")
        #expect(await client.waitForOutput(containing: "first line through secmail TLS"))
        client.send("K\n")  // s_client command: send a KeyUpdate that requests the peer's update too
        #expect(await client.waitForOutput(containing: "KEYUPDATE"))
        client.send("after the key update\n")
        #expect(await client.waitForOutput(containing: "after the key update"))
        client.closeInput()
        _ = await client.finish()
        let output = client.output
        #expect(output.contains("Verify return code: 0 (ok)"), "\(output)")
        #expect(output.contains("TLSv1.3"))
        #expect(await server.record.wait { $0.open == 0 })
        #expect(server.record.errors.isEmpty, "\(server.record.errors)")
    }

    @Test func aTLS12OnlyClientIsRefused() async throws {
        let server = try await TestServer.start(context: Certs.server())
        defer { Task { await server.stop() } }
        let client = try ExternalProcess(["openssl", "s_client", "-connect", "127.0.0.1:\(server.port)", "-tls1_2",
                                          "-CAfile", Certs.path("dev-ca.pem")])
        client.closeInput()
        #expect(await client.finish() != 0)
        #expect(client.output.contains("alert protocol version") || client.output.contains("protocol version"), "\(client.output)")
        #expect(await server.record.wait { $0.open == 0 && !$0.tlsErrors.isEmpty })
        #expect(server.record.tlsErrors.first?.code == .handshakeFailed)
    }

    @Test func ourClientTalksToOpensslServer() async throws {
        // -servername_fatal: s_server refuses a client whose SNI is not "localhost", so this
        // also proves our client sends SNI.
        let server = try ExternalProcess(["openssl", "s_server", "-accept", "127.0.0.1:0", "-tls1_3", "-rev", "-naccept", "1",
                                          "-cert", Certs.path("relay.pem"), "-key", Certs.path("throwaway-relay.key.pem"),
                                          "-servername", "localhost", "-servername_fatal",
                                          "-cert2", Certs.path("relay.pem"), "-key2", Certs.path("throwaway-relay.key.pem")])
        #expect(await server.waitForOutput(containing: "ACCEPT"))
        let port = try #require(server.output.split(whereSeparator: \.isNewline).first { $0.hasPrefix("ACCEPT") }
            .flatMap { $0.split(separator: ":").last }.flatMap { Int($0) })
        // s_server -rev answers every line reversed.
        let reply = try await tlsEcho(port: port, payload: Array("hello secmail\n".utf8), context: Certs.client()) {
            String(decoding: $0, as: UTF8.self).contains("liamces olleh")
        }
        #expect(String(decoding: reply, as: UTF8.self).contains("liamces olleh"))
        _ = await server.finish(seconds: 5)
    }

    @Test func aServerConfiguredForTLS12AcceptsATLS12Client() async throws {
        let server = try await TestServer.start(context: Certs.server(minimum: .tls12))
        defer { Task { await server.stop() } }
        let client = try ExternalProcess(["openssl", "s_client", "-connect", "127.0.0.1:\(server.port)", "-tls1_2",
                                          "-CAfile", Certs.path("dev-ca.pem"), "-verify_return_error", "-servername", "localhost"])
        client.send("over TLS 1.2\n")
        #expect(await client.waitForOutput(containing: "over TLS 1.2"))
        client.closeInput()
        _ = await client.finish()
        #expect(client.output.contains("Protocol  : TLSv1.2") || client.output.contains("TLSv1.2"), "\(client.output)")
        #expect(client.output.contains("Verify return code: 0 (ok)"))
    }

    @Test func curlFetchesOverOurServer() async throws {
        let server = try await TestServer.start(context: Certs.server(alpn: ["http/1.1"])) { HTTPHelloHandler() }
        defer { Task { await server.stop() } }
        let result = try await run("curl", ["--silent", "--show-error", "--max-time", "10", "--http1.1", "--tlsv1.3",
                                            "--cacert", Certs.path("dev-ca.pem"), "https://localhost:\(server.port)/"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.text == "hello from secmail TLS\n")
        // curl without our CA refuses the server.
        let refused = try await run("curl", ["--silent", "--max-time", "10", "https://localhost:\(server.port)/"])
        #expect(refused.status != 0)
    }
}
