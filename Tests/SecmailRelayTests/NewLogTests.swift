import Foundation
@testable import SecmailRelay
import SecmailTestSupport
import Testing

/// `NewLog`: the origin a restored relay's new log takes, and what it refuses before it changes anything.
@Suite struct NewLogTests {
    @Test func theNextOriginCountsUpItsLastNumberOrAppendsTwo() {
        #expect(NewLog.successor(of: "relay.example.org/secmail") == "relay.example.org/secmail/2")
        #expect(NewLog.successor(of: "relay.example.org/secmail/2") == "relay.example.org/secmail/3")
        #expect(NewLog.successor(of: "relay.example.org/secmail/41") == "relay.example.org/secmail/42")
        // Not a count: a zero, a sign, a version-like element.
        #expect(NewLog.successor(of: "relay.example.org/log/0") == "relay.example.org/log/0/2")
        #expect(NewLog.successor(of: "relay.example.org/log/-3") == "relay.example.org/log/-3/2")
        #expect(NewLog.successor(of: "relay.example.org/v1.2") == "relay.example.org/v1.2/2")
    }

    @Test func aDirectoryWithoutALogOrWithTheSameOriginIsLeftAsItWas() throws {
        let folder = try makeTemporaryDirectory("new-log")
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(throws: RelayError.self) { try NewLog.start(in: folder, postgres: nil, origin: nil) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)

        let key = Data(repeating: 7, count: 32)
        try Data("relay.example.org/secmail\n".utf8).write(to: folder.appendingPathComponent("origin"))
        try key.write(to: folder.appendingPathComponent("log-key.ed25519"))
        for origin in ["relay.example.org/secmail", "not an origin"] {
            #expect(throws: RelayError.self) { try NewLog.start(in: folder, postgres: nil, origin: origin) }
        }
        #expect(try Data(contentsOf: folder.appendingPathComponent("log-key.ed25519")) == key)
        #expect(try String(contentsOf: folder.appendingPathComponent("origin"), encoding: .utf8) == "relay.example.org/secmail\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() == ["log-key.ed25519", "origin", "relay.lock"])
    }
}
