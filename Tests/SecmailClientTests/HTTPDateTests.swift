import Testing
@testable import SecmailClient

/// The relay's `Date` header, read without Foundation's date formatting.
@Suite struct HTTPDateTests {
    @Test func imfFixdatesAreReadAndOtherFormsRefused() {
        // RFC 9110's example, a leap day, the epoch, and the last second of a year.
        #expect(HTTPDate.seconds("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(HTTPDate.seconds("Thu, 29 Feb 2024 12:00:00 GMT") == 1_709_208_000)
        #expect(HTTPDate.seconds("Thu, 01 Jan 1970 00:00:00 GMT") == 0)
        #expect(HTTPDate.seconds("Thu, 31 Dec 2026 23:59:59 GMT") == 1_798_761_599)
        for malformed in ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 UTC",
                          "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nvm 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT", ""] {
            #expect(HTTPDate.seconds(malformed) == nil, "\(malformed)")
        }
    }
}
