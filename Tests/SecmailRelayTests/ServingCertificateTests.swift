import Foundation
import SecmailFormat
import SecmailRelay
import SecmailRelayTestSupport
import SecmailTLS
import SecmailTestSupport
import Testing

/// What the relay tells its operator about the dates of the certificate it serves.
@Suite struct ServingCertificateTests {
    func certificate(_ chain: String, _ key: String) throws -> ServingCertificate {
        try ServingCertificate(chainFile: RunningRelay.certs.appendingPathComponent(chain), keyFile: RunningRelay.certs.appendingPathComponent(key))
    }

    /// The end of validity is the one openssl reads; a warning comes from 30 days before it
    /// ("in 10 days", "within a day"), another once it has passed, and one before the start.
    @Test func warnsBeforeAndAfterTheCertificatesValidity() async throws {
        let serving = try certificate("relay.pem", "throwaway-relay.key.pem")
        let dates = try await run("openssl", ["x509", "-in", serving.chainFile.path, "-noout", "-startdate", "-enddate", "-dateopt", "iso_8601"])
        let seconds = dates.text.split(separator: "\n").compactMap { line in
            line.split(separator: "=", maxSplits: 1).last.flatMap { ISO8601DateFormatter().date(from: $0.replacingOccurrences(of: " ", with: "T")) }
                .map { Int64($0.timeIntervalSince1970) }
        }
        let validity = try DevelopmentCertificates.validity(certificateFile: serving.chainFile)
        #expect(seconds == [validity.notBefore, validity.notAfter] && serving.notAfter == validity.notAfter, "\(dates.text)")
        let start = validity.notBefore, end = validity.notAfter, day: Int64 = 86_400, shownEnd = HumanTime.describe(end)

        #expect(serving.validitySummary(at: end - 1) == "valid until \(shownEnd)")
        #expect(serving.validitySummary(at: end) == "expired on \(shownEnd)")
        #expect(serving.validityWarning(at: end - 31 * day) == nil)
        #expect(serving.validityWarning(at: end - 10 * day - 60)?.hasSuffix("expires on \(shownEnd), in 10 days; renew it with the same key (e.g. certbot --reuse-key) and send the relay SIGHUP") == true)
        #expect(serving.validityWarning(at: end - 3600)?.contains("expires on \(shownEnd), within a day;") == true)
        #expect(serving.validityWarning(at: end)?.contains("expired on \(shownEnd): clients that check it against a CA (--ca) refuse this relay, those that pinned its key still connect") == true)
        #expect(serving.validityWarning(at: start - 1)?.contains("is valid only from \(HumanTime.describe(start)) (is this machine's clock right?)") == true)
    }

    /// certs/expired.pem (a throw-away certificate whose time has passed) is said to be expired now.
    @Test func anExpiredCertificateIsSaidToBeExpired() throws {
        let expired = try certificate("expired.pem", "throwaway-expired.key.pem")
        #expect(expired.notAfter < Int64(Date().timeIntervalSince1970))
        #expect(expired.validityWarning()?.contains("\(expired.chainFile.path) expired on \(HumanTime.describe(expired.notAfter))") == true)
    }
}
