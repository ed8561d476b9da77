import Foundation
import SecmailAPI
import SecmailClient
import SecmailFormat
import SecmailTLS
import SecmailTestSupport
import Testing

/// `secmail relay` re-reads --cert and --key on SIGHUP: renewed certificates reach new
/// connections, open ones carry on, and a certificate for another key is refused.
@Suite struct CertificateReloadTests {
    /// A throw-away CA and certificates for localhost made by openssl (a peer we did not write):
    /// two for one key (serials 1 and 2, a renewal) and one for another key (serial 3).
    struct Certificates {
        let folder: URL
        var ca: URL { folder.appendingPathComponent("throwaway-ca.pem") }
        var key: URL { folder.appendingPathComponent("throwaway-relay.key") }
        var otherKey: URL { folder.appendingPathComponent("throwaway-other.key") }
        func certificate(_ serial: Int) -> URL { folder.appendingPathComponent("serial-\(serial).pem") }

        init(in folder: URL) async throws {
            self.folder = folder
            func openssl(_ arguments: [String]) async throws {
                let result = try await run("openssl", arguments)
                #expect(result.status == 0, "openssl \(arguments.joined(separator: " ")): \(result.stderr)")
            }
            let extensions = folder.appendingPathComponent("san.cnf")
            try Data("subjectAltName=DNS:localhost\n".utf8).write(to: extensions)
            try await openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                         folder.appendingPathComponent("throwaway-ca.key").path, "-out", folder.appendingPathComponent("throwaway-ca.pem").path,
                         "-subj", "/CN=secmail test CA", "-days", "2"])
            for (serial, keyFile) in [(1, key), (2, key), (3, otherKey)] {
                let request = folder.appendingPathComponent("request-\(serial).csr")
                let keyOptions = FileManager.default.fileExists(atPath: keyFile.path)
                    ? ["-key", keyFile.path] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", keyFile.path]
                try await openssl(["req", "-new"] + keyOptions + ["-out", request.path, "-subj", "/CN=localhost"])
                try await openssl(["x509", "-req", "-in", request.path, "-CA", folder.appendingPathComponent("throwaway-ca.pem").path,
                             "-CAkey", folder.appendingPathComponent("throwaway-ca.key").path, "-set_serial", "\(serial)", "-days", "2",
                             "-extfile", extensions.path, "-out", certificate(serial).path])
            }
        }
    }

    /// The serial number of the certificate a new TLS connection to `port` is given (openssl s_client).
    func servedSerial(port: Int) async throws -> String {
        let handshake = try await run("openssl", ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost"], input: Data())
        let certificate = try await run("openssl", ["x509", "-noout", "-serial"], input: Data(handshake.text.utf8))
        return certificate.text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The end of a certificate's validity as openssl reads it (in UTC), in seconds since 1970.
    func notAfterSeconds(_ certificate: URL) async throws -> Int64 {
        let dates = try await run("openssl", ["x509", "-in", certificate.path, "-noout", "-enddate", "-dateopt", "iso_8601"])
        let text = dates.text.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "notAfter=", with: "")
            .replacingOccurrences(of: " ", with: "T")
        return Int64(try #require(ISO8601DateFormatter().date(from: text), "\(dates.text)").timeIntervalSince1970)
    }

    /// The same, as the relay shows times to people (HumanTime, in the local zone the relay inherits).
    func notAfter(_ certificate: URL) async throws -> String {
        HumanTime.describe(try await notAfterSeconds(certificate))
    }

    /// A certificate that has expired (made by openssl with its clock in 2020, under faketime)
    /// is served, since pinned clients do not look at its dates, but the relay says at start that
    /// it expired and what that means; openssl s_client, checking it against itself as a CA,
    /// refuses it as expired.
    @Test func anExpiredCertificateIsSaidAtStart() async throws {
        let folder = try temporaryDirectory("certificate-expired")
        let certificate = folder.appendingPathComponent("throwaway-expired.pem"), key = folder.appendingPathComponent("throwaway-expired.key")
        let made = try await run("env", ["TZ=UTC", "faketime", "2020-01-01 00:00:00", "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                              "-nodes", "-keyout", key.path, "-out", certificate.path, "-days", "30", "-subj", "/CN=localhost",
                                              "-addext", "subjectAltName=DNS:localhost"])
        #expect(made.status == 0, "\(made.stderr)")
        let relay = try await RelayCommandTests().startRelay(data: folder.appendingPathComponent("relay", isDirectory: true),
                                                             options: ["--cert", certificate.path, "--key", key.path])
        defer { relay.process.terminate() }
        // faketime's clock runs on from its start: the end is 30 days after the moment openssl ran.
        let endSeconds = try await notAfterSeconds(certificate), end = HumanTime.describe(endSeconds)
        // 2020-01-31T00:00:00Z, give or take the seconds faketime's clock ran.
        #expect((1_580_428_800..<1_580_428_860).contains(endSeconds), "\(end)")
        #expect(relay.output.text.contains("  certificate:    expired on \(end)\n"), "\(relay.output.text)")
        #expect(relay.output.text.contains("warning") && relay.output.text.contains(
            "the certificate in \(certificate.path) expired on \(end): clients that check it against a CA (--ca) refuse this relay"),
                "\(relay.output.text)")
        let handshake = try await run("openssl", ["s_client", "-connect", "127.0.0.1:\(relay.port)", "-servername", "localhost",
                                                  "-CAfile", certificate.path, "-verify_return_error"], input: Data())
        #expect((handshake.text + handshake.stderr).contains("certificate has expired"), "\(handshake.text) \(handshake.stderr)")
        #expect(await RelayCommandTests().stop(relay.process) == 0)
    }

    @Test func aHangupServesTheRenewedCertificateKeepsOpenConnectionsAndRefusesAnotherKey() async throws {
        let folder = try temporaryDirectory("certificate-reload")
        let certificates = try await Certificates(in: folder)
        let live = folder.appendingPathComponent("live.pem"), liveKey = folder.appendingPathComponent("live.key")
        try FileManager.default.copyItem(at: certificates.certificate(1), to: live)
        try FileManager.default.copyItem(at: certificates.key, to: liveKey)
        let relay = try await RelayCommandTests().startRelay(data: folder.appendingPathComponent("relay", isDirectory: true),
                                                             options: ["--cert", live.path, "--key", liveKey.path,
                                                                       // not about idle deadlines: a loaded run must not close the kept connection
                                                                       "--idle-timeout-before-sign-in", "600", "--idle-timeout", "600"])
        defer { relay.process.terminate() }
        #expect(try await servedSerial(port: relay.port) == "serial=01")
        // Valid for two days: the start says until when (as openssl reads it) and that it needs renewing.
        let firstEnd = try await notAfter(certificates.certificate(1))
        #expect(relay.output.text.contains("  certificate:    valid until \(firstEnd)\n"), "\(relay.output.text)")
        #expect(relay.output.text.contains("warning") && relay.output.text.contains("\(live.path) expires on \(firstEnd), "), "\(relay.output.text)")

        // A connection opened before the renewal, kept alive across it.
        let tls = try TLSContext(configuration: .client(trust: .certificateAuthorities(file: certificates.ca.path)))
        let connection = try await RelayHTTPConnection.open(host: "localhost", port: relay.port, tls: tls)
        // The kept connection's answers; a failure shows what the relay said meanwhile (a loaded CI
        // run once saw this connection closed before an answer, with nothing else to go on).
        func keptConnectionHealth() async throws -> Int {
            do {
                return try await connection.send(RelayRequest(.GET, Endpoint.health.path())).status
            } catch {
                Issue.record("the kept connection failed: \(error)\nrelay output:\n\(relay.output.text)")
                throw error
            }
        }
        #expect(try await keptConnectionHealth() == 200)

        try Data(contentsOf: certificates.certificate(2)).write(to: live)
        kill(relay.process.processIdentifier, SIGHUP)
        let deadline = Date().addingTimeInterval(10)
        var serial = ""
        while Date() < deadline {
            serial = try await servedSerial(port: relay.port)
            if serial == "serial=02" { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect(serial == "serial=02", "\(relay.output.text)")
        #expect(try await keptConnectionHealth() == 200)
        #expect(relay.output.text.contains("SIGHUP: new connections get the certificate now in \(live.path), valid until \(try await notAfter(certificates.certificate(2)))"))

        // A certificate whose key is not the key file's, then another key with its certificate:
        // both refused, the renewed certificate stays, the relay serves on.
        func hangUpAndWait(for message: String) async throws {
            kill(relay.process.processIdentifier, SIGHUP)
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline, !relay.output.text.contains(message) { try await Task.sleep(nanoseconds: 100_000_000) }
            #expect(relay.output.text.contains(message), "\(relay.output.text)")
        }
        try Data(contentsOf: certificates.certificate(3)).write(to: live)
        try await hangUpAndWait(for: "kept the certificate in use: cannot load the private key")
        try Data(contentsOf: certificates.otherKey).write(to: liveKey)
        try await hangUpAndWait(for: "for another public key; clients pinned the one in use")
        #expect(try await servedSerial(port: relay.port) == "serial=02")
        #expect(relay.process.isRunning)
        #expect(try await keptConnectionHealth() == 200)
        await connection.close()
        #expect(await RelayCommandTests().stop(relay.process) == 0)
    }
}
