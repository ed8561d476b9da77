import Foundation
import SecmailCrypto
import SecmailTestSupport
import Testing

/// Our keys, ciphertexts and signatures against the `openssl` command line, both directions.
@Suite(.threadsOfTheirOwn) struct OpenSSLInteropTests {
    let passphrase = "interop passphrase"
    let oaepOptions = ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256"]
    let pssOptions = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32", "-sigopt", "rsa_mgf1_md:sha256"]

    @Test func opensslReadsOurKeysAndDecryptsAndVerifiesOurOutput() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let key = SharedKeys.rsa
        let publicPEM = directory.appendingPathComponent("public.pem")
        let privatePEM = directory.appendingPathComponent("private.pem")
        try Data(key.publicKey.pemRepresentation.utf8).write(to: publicPEM)
        try Data(key.encryptedPEM(passphrase: Passphrase(passphrase)).utf8).write(to: privatePEM)

        // Our SubjectPublicKeyInfo is a 3072-bit RSA key to openssl.
        let pub = try run("openssl", ["pkey", "-pubin", "-in", publicPEM.path, "-noout", "-text"])
        #expect(pub.status == 0, "\(pub.stderr)")
        #expect(pub.text.contains("Public-Key: (3072 bit)"))

        // Our encrypted PKCS#8 opens with the passphrase, is PBES2 + scrypt, and refuses a wrong one.
        let priv = try run("openssl", ["pkey", "-in", privatePEM.path, "-passin", "pass:\(passphrase)", "-pubout"])
        #expect(priv.status == 0, "\(priv.stderr)")
        #expect(priv.text == (try key.publicKey.pemRepresentation))
        let structure = try run("openssl", ["asn1parse", "-in", privatePEM.path])
        #expect(structure.text.contains(":PBES2") && structure.text.contains(":scrypt"))
        // scrypt parameters N = 2^14 (0x4000), r = 8, p = 1.
        #expect(structure.text.contains("INTEGER           :4000"))
        let wrong = try run("openssl", ["pkey", "-in", privatePEM.path, "-passin", "pass:wrong", "-noout"])
        #expect(wrong.status != 0)

        // Our OAEP ciphertext decrypts with pkeyutl.
        let secret = try SystemRandom().bytes(count: 32)
        let ciphertext = directory.appendingPathComponent("wrapped.bin")
        try Data(key.publicKey.encrypt(secret)).write(to: ciphertext)
        let decrypted = try run("openssl", ["pkeyutl", "-decrypt", "-inkey", privatePEM.path, "-passin", "pass:\(passphrase)",
                                            "-in", ciphertext.path] + oaepOptions)
        #expect(decrypted.status == 0, "\(decrypted.stderr)")
        #expect(Array(decrypted.stdout) == secret)

        // Our PSS signature verifies with dgst, and a changed message does not.
        let message = directory.appendingPathComponent("message.txt")
        try Data("signed by secmail".utf8).write(to: message)
        let signature = directory.appendingPathComponent("message.sig")
        try Data(key.signature(for: Array("signed by secmail".utf8))).write(to: signature)
        let verified = try run("openssl", ["dgst", "-sha256", "-verify", publicPEM.path, "-signature", signature.path] + pssOptions + [message.path])
        #expect(verified.status == 0 && verified.text.contains("Verified OK"), "\(verified.stderr)")
        try Data("signed by secmaiL".utf8).write(to: message)
        let refused = try run("openssl", ["dgst", "-sha256", "-verify", publicPEM.path, "-signature", signature.path] + pssOptions + [message.path])
        #expect(refused.status != 0)
    }

    @Test func weReadOpensslKeysAndDecryptAndVerifyItsOutput() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let plainKey = directory.appendingPathComponent("plain.pem")
        let sealedKey = directory.appendingPathComponent("sealed.pem")
        let publicPEM = directory.appendingPathComponent("public.pem")
        try #require(try run("openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072", "-out", plainKey.path]).status == 0)
        try #require(try run("openssl", ["pkcs8", "-topk8", "-scrypt", "-in", plainKey.path, "-out", sealedKey.path,
                                         "-passout", "pass:\(passphrase)"]).status == 0)
        try #require(try run("openssl", ["pkey", "-in", plainKey.path, "-pubout", "-out", publicPEM.path]).status == 0)

        let key = try RSAPrivateKey(encryptedPEM: String(contentsOf: sealedKey, encoding: .utf8), passphrase: Passphrase(passphrase))
        let publicKey = try RSAPublicKey(pemRepresentation: String(contentsOf: publicPEM, encoding: .utf8))
        #expect(try key.publicKey.derRepresentation == publicKey.derRepresentation)

        // openssl's OAEP ciphertext decrypts with our key.
        let secret = try SystemRandom().bytes(count: 32)
        let secretFile = directory.appendingPathComponent("secret.bin")
        try Data(secret).write(to: secretFile)
        let encrypted = try run("openssl", ["pkeyutl", "-encrypt", "-pubin", "-inkey", publicPEM.path, "-in", secretFile.path] + oaepOptions)
        try #require(encrypted.status == 0, "\(encrypted.stderr)")
        #expect(try key.decrypt(Array(encrypted.stdout)) == secret)

        // openssl's PSS signature verifies with our code.
        let message = Array("signed by openssl".utf8)
        let messageFile = directory.appendingPathComponent("message.txt")
        try Data(message).write(to: messageFile)
        let signed = try run("openssl", ["dgst", "-sha256", "-sign", plainKey.path] + pssOptions + [messageFile.path])
        try #require(signed.status == 0, "\(signed.stderr)")
        #expect(publicKey.isValidSignature(Array(signed.stdout), for: message))
        #expect(!publicKey.isValidSignature(Array(signed.stdout), for: Array("signed by opensslX".utf8)))
    }

    @Test func ed25519InteroperatesBothWays() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let message = directory.appendingPathComponent("checkpoint.txt")
        try Data("example.org/log\n42\n".utf8).write(to: message)

        // openssl signs, we verify.
        let theirKey = directory.appendingPathComponent("ed.pem")
        try #require(try run("openssl", ["genpkey", "-algorithm", "ed25519", "-out", theirKey.path]).status == 0)
        let theirPublic = try run("openssl", ["pkey", "-in", theirKey.path, "-pubout"])
        let signed = try run("openssl", ["pkeyutl", "-sign", "-rawin", "-inkey", theirKey.path, "-in", message.path])
        try #require(signed.status == 0, "\(signed.stderr)")
        let publicKey = try Ed25519PublicKey(pemRepresentation: theirPublic.text)
        #expect(publicKey.isValidSignature(Array(signed.stdout), for: Array(try Data(contentsOf: message))))

        // We sign, openssl verifies.
        let ourPublic = directory.appendingPathComponent("our.pub.pem")
        try Data(SharedKeys.ed25519.publicKey.pemRepresentation.utf8).write(to: ourPublic)
        let signature = directory.appendingPathComponent("our.sig")
        try Data(SharedKeys.ed25519.signature(for: Array(try Data(contentsOf: message)))).write(to: signature)
        let verified = try run("openssl", ["pkeyutl", "-verify", "-rawin", "-pubin", "-inkey", ourPublic.path,
                                           "-in", message.path, "-sigfile", signature.path])
        #expect(verified.status == 0 && verified.text.contains("Signature Verified Successfully"), "\(verified.text) \(verified.stderr)")
    }

    /// RSA public keys are read as openssl reads them, whichever way we read them (a canonical
    /// rsaEncryption SubjectPublicKeyInfo through OpenSSL's legacy RSA decoder, anything else
    /// through d2i_PUBKEY): the same key from an encoding openssl accepts, and RSA-PSS keys and
    /// damage refused as before.
    @Test func rsaPublicKeysAreReadAsOpenSSLReadsThem() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let canonical = try SharedKeys.rsa.publicKey.derRepresentation
        #expect(try RSAPublicKey(derRepresentation: canonical).derRepresentation == canonical)

        // The rsaEncryption algorithm without its NULL parameters (RFC 3279 asks for NULL;
        // openssl takes both): read through d2i_PUBKEY, the same key as the canonical form.
        #expect(Array(canonical[4..<6]) == [0x30, 0x0D] && Array(canonical[17..<19]) == [0x05, 0x00])
        let length = (Int(canonical[2]) << 8 | Int(canonical[3])) - 2
        let withoutNull = Array(canonical[0..<2]) + [UInt8(length >> 8), UInt8(length & 0xFF), 0x30, 0x0B]
            + Array(canonical[6..<17]) + Array(canonical[19...])
        let variantFile = directory.appendingPathComponent("without-null.der")
        try Data(withoutNull).write(to: variantFile)
        #expect(try run("openssl", ["pkey", "-pubin", "-inform", "DER", "-in", variantFile.path, "-noout"]).status == 0)
        #expect(try RSAPublicKey(derRepresentation: withoutNull).derRepresentation == canonical)

        // An RSA-PSS key is not an rsaEncryption key, read either way.
        let pssFile = directory.appendingPathComponent("pss.der")
        let generated = try run("sh", ["-c", "openssl genpkey -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048 | openssl pkey -pubout -outform DER -out '\(pssFile.path)'"])
        #expect(generated.status == 0, "\(generated.stderr)")
        let error = #expect(throws: CryptoError.self) { try RSAPublicKey(derRepresentation: Array(Data(contentsOf: pssFile))) }
        #expect(error?.code == .unsupportedKey)

        // A changed length byte or a trailing byte is refused on both paths.
        var damaged = canonical
        damaged[3] ^= 0x01
        #expect(throws: CryptoError.self) { try RSAPublicKey(derRepresentation: damaged) }
        #expect(throws: CryptoError.self) { try RSAPublicKey(derRepresentation: withoutNull + [0]) }
    }
}
