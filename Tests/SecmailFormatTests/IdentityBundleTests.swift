import Foundation
@testable import SecmailFormat
import SecmailCrypto
import SecmailTestSupport
import Testing

@Suite(.threadsOfTheirOwn) struct IdentityBundleTests {
    let alice = Fixtures.alice

    @Test func committedBundleParsesAndReencodesIdentically() throws {
        let bundle = alice.bundle
        #expect(bundle.name.value == "alice")
        #expect(bundle.keyVersion == 1)
        #expect(bundle.createdAt == Fixtures.createdAt)
        #expect(bundle.continuity == nil)
        #expect(try IdentityBundle(encoded: bundle.encoded) == bundle)
        #expect(bundle.fingerprint.bytes == SHA256.hash(bundle.encoded))
        #expect(try IdentityBundle(armoredOrBinary: Array(bundle.armored.utf8)) == bundle)
    }

    @Test func fingerprintMatchesGoldenValue() throws {
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.directory.appendingPathComponent("golden-envelope-v1.json"))) as? [String: Any]
        #expect(alice.bundle.fingerprint.hex == golden?["senderFingerprint"] as? String)
    }

    @Test func parseRejectsEveryTruncation() {
        let encoded = alice.bundle.encoded
        for length in 0..<encoded.count {
            #expect(throws: FormatError.self, "prefix of \(length) bytes") { try IdentityBundle(encoded: Array(encoded.prefix(length))) }
        }
    }

    @Test func parseRejectsTrailingBytes() {
        let error = #expect(throws: FormatError.self) { try IdentityBundle(encoded: alice.bundle.encoded + [0]) }
        #expect(error?.code == .trailingBytes)
    }

    @Test func parseRejectsEveryChangedByte() {
        let encoded = alice.bundle.encoded
        for index in encoded.indices {
            var changed = encoded
            changed[index] ^= 0x01
            #expect(throws: FormatError.self, "byte \(index) changed") { try IdentityBundle(encoded: changed) }
        }
    }

    @Test func parseRejectsWrongMagicVersionAndSuite() {
        var wrongMagic = alice.bundle.encoded
        wrongMagic[0] = UInt8(ascii: "X")
        #expect((#expect(throws: FormatError.self) { try IdentityBundle(encoded: wrongMagic) })?.code == .badMagic)
        var wrongVersion = alice.bundle.encoded
        wrongVersion[4] = 2
        #expect((#expect(throws: FormatError.self) { try IdentityBundle(encoded: wrongVersion) })?.code == .unsupportedVersion)
        var wrongSuite = alice.bundle.encoded
        wrongSuite[6] = 9
        #expect((#expect(throws: FormatError.self) { try IdentityBundle(encoded: wrongSuite) })?.code == .unsupportedSuite)
    }

    @Test func oneKeyForBothRolesIsRejected() throws {
        #expect(throws: FormatError.self) {
            try IdentityBundle.create(name: IdentityName("mallory"), createdAt: 0,
                                      signingKey: alice.signingKey, encryptionKey: alice.signingKey.publicKey)
        }
    }

    @Test func keysOtherThanRSA3072AreRejected() throws {
        let small = try RSAPrivateKey.generate(bitCount: 2048)
        let error = #expect(throws: FormatError.self) {
            try IdentityBundle.create(name: IdentityName("mallory"), createdAt: 0,
                                      signingKey: small, encryptionKey: alice.encryptionKey.publicKey)
        }
        #expect(error?.reason.contains("2048 bits") == true)
    }

    @Test func rotationVerifiesOnlyAgainstThePreviousKey() throws {
        let newSigning = Fixtures.carol.signingKey, newEncryption = Fixtures.carol.encryptionKey
        let rotated = try IdentityBundle.create(
            name: alice.bundle.name, keyVersion: 2, createdAt: Fixtures.createdAt + 10,
            signingKey: newSigning, encryptionKey: newEncryption.publicKey,
            rotatingFrom: (alice.bundle, alice.signingKey))
        #expect(rotated.continuity?.previousFingerprint == alice.bundle.fingerprint)
        try rotated.verifyContinuity(from: alice.bundle)
        #expect(throws: FormatError.self) { try rotated.verifyContinuity(from: Fixtures.bob.bundle) }
        #expect(throws: FormatError.self) { try alice.bundle.verifyContinuity(from: alice.bundle) }

        // A "rotation" signed by a key other than the previous signing key is refused.
        let forged = try IdentityBundle.create(
            name: alice.bundle.name, keyVersion: 2, createdAt: Fixtures.createdAt + 10,
            signingKey: newSigning, encryptionKey: newEncryption.publicKey,
            rotatingFrom: (alice.bundle, Fixtures.bob.signingKey))
        #expect((#expect(throws: FormatError.self) { try forged.verifyContinuity(from: alice.bundle) })?.code == .authenticationFailed)
    }

    @Test func armorRejectsDamage() {
        let armored = alice.bundle.armored
        #expect(throws: FormatError.self) { try IdentityBundle(armoredOrBinary: Array(("junk\n" + armored).utf8)) }
        #expect(throws: FormatError.self) { try IdentityBundle(armoredOrBinary: Array(armored.replacingOccurrences(of: "-----END", with: "-----XND").utf8)) }
        #expect(throws: FormatError.self) { try IdentityBundle(armoredOrBinary: Array(armored.replacingOccurrences(of: "A", with: "*").utf8)) }
        #expect(throws: FormatError.self) { try IdentityBundle(armoredOrBinary: []) }
        let second = armored.replacingOccurrences(of: "-----BEGIN", with: "x\n-----BEGIN")
        #expect((#expect(throws: FormatError.self) { try IdentityBundle(armoredOrBinary: Array(second.utf8)) })?.code == .badMagic)
    }

    /// A bundle pasted through a mail client or a Windows editor: CRLF line ends, indentation,
    /// trailing spaces and blank lines around the block.
    @Test func armorToleratesCRLFAndSurroundingBlanks() throws {
        let lines = alice.bundle.armored.split(separator: "\n").map { "  \($0)\t " }
        let pasted = "\r\n\n" + lines.joined(separator: "\r\n") + "\r\n\r\n"
        #expect(try IdentityBundle(armoredOrBinary: Array(pasted.utf8)) == alice.bundle)
    }
}

@Suite struct NameAndFingerprintTests {
    @Test func namesAreNormalisedAndValidated() throws {
        #expect(try IdentityName("Alice").value == "alice")
        #expect(try IdentityName("bob.smith_2-x").value == "bob.smith_2-x")
        for bad in ["", "-alice", ".alice", "al ice", "alice/..", "ålice", "аlice", String(repeating: "a", count: 65)] {
            #expect(throws: FormatError.self, "\(bad)") { try IdentityName(bad) }
        }
    }

    @Test func fingerprintParsesGroupedAndPlainHex() throws {
        let fingerprint = Fixtures.alice.bundle.fingerprint
        #expect(try Fingerprint(hex: fingerprint.grouped) == fingerprint)
        #expect(try Fingerprint(hex: fingerprint.hex.uppercased()) == fingerprint)
        #expect(throws: FormatError.self) { try Fingerprint(hex: String(fingerprint.hex.dropLast())) }
        #expect(throws: FormatError.self) { try Fingerprint(hex: "zz" + fingerprint.hex.dropFirst(2)) }
        #expect(fingerprint.grouped.split(separator: " ").count == 16)
    }
}
