import Foundation
import SecmailCrypto
import Testing

/// Stored private keys against wrong passphrases, on a committed throw-away key.
@Suite struct KeyFileTests {
    let pem = try! String(contentsOf: Fixtures.keyDirectory.appendingPathComponent("alice-signing.key.pem"), encoding: .utf8)

    @Test func aWrongPassphraseIsReportedAsSuch() throws {
        let error = #expect(throws: CryptoError.self) { try RSAPrivateKey(encryptedPEM: pem, passphrase: Passphrase("wrong-1")) }
        #expect(error?.code == .wrongPassphrase)
    }

    /// About one wrong passphrase in 256 decrypts the AES-CBC layer to valid padding and fails
    /// only when the garbage is parsed as ASN.1. "wrong-231" is such a passphrase for this key
    /// (found with `openssl pkey`); it must still read as a wrong passphrase, not a damaged file.
    @Test func aWrongPassphraseThatPassesThePaddingCheckIsStillAWrongPassphrase() throws {
        let error = #expect(throws: CryptoError.self) { try RSAPrivateKey(encryptedPEM: pem, passphrase: Passphrase("wrong-231")) }
        #expect(error?.code == .wrongPassphrase)
    }

    @Test func aDamagedKeyFileIsNotMistakenForAKey() throws {
        let damaged = pem.replacingOccurrences(of: "-----BEGIN ENCRYPTED PRIVATE KEY-----\n", with: "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA")
        let error = #expect(throws: CryptoError.self) { try RSAPrivateKey(encryptedPEM: damaged, passphrase: Fixtures.passphrase) }
        #expect(error?.code == .malformedInput)
    }
}
