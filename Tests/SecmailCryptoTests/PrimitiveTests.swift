import Foundation
import SecmailCrypto
import SecmailTestSupport
import Testing

@Suite struct SHA256Tests {
    @Test func hashesKnownAnswers() {
        // FIPS 180-2 appendix B.1 and the empty string.
        #expect(hexString(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hexString(SHA256.hash([UInt8]())) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func incrementalHashEqualsOneShot() throws {
        let data = try SystemRandom().bytes(count: 200_003)
        let hasher = try SHA256()
        for start in stride(from: 0, to: data.count, by: 65_536) {
            hasher.update(data[start..<min(start + 65_536, data.count)])
        }
        #expect(hasher.finalize() == SHA256.hash(data))
    }
}

@Suite struct AESGCMTests {
    @Test func sealThenOpenRoundTrips() throws {
        let cipher = try AESGCM(key: SymmetricKey.random())
        let nonce = try SystemRandom().bytes(count: 12)
        for size in [0, 1, 15, 16, 17, 65_536] {
            let plaintext = try SystemRandom().bytes(count: size)
            let sealed = try cipher.seal(plaintext, nonce: nonce, authenticating: Array("aad".utf8))
            #expect(sealed.count == size + 16)
            #expect(try cipher.open(sealed, nonce: nonce, authenticating: Array("aad".utf8)) == plaintext)
        }
    }

    @Test func openRejectsEveryFlippedBit() throws {
        let cipher = try AESGCM(key: SymmetricKey.random())
        let nonce = [UInt8](repeating: 7, count: 12)
        let sealed = try cipher.seal(Array("attack at dawn".utf8), nonce: nonce)
        for index in sealed.indices {
            var changed = sealed
            changed[index] ^= 0x80
            #expect(throws: CryptoError.self) { try cipher.open(changed, nonce: nonce) }
        }
        #expect(throws: CryptoError.self) { try cipher.open(sealed, nonce: [UInt8](repeating: 8, count: 12)) }
        #expect(throws: CryptoError.self) { try cipher.open(sealed, nonce: nonce, authenticating: [1]) }
    }

    @Test func rejectsBadKeyAndNonceSizes() throws {
        #expect(throws: CryptoError.self) { try AESGCM(key: SymmetricKey(bytes: [UInt8](repeating: 0, count: 31))) }
        let cipher = try AESGCM(key: SymmetricKey.random())
        #expect(throws: CryptoError.self) { try cipher.seal([1, 2, 3], nonce: [UInt8]()) }
    }
}

@Suite struct HKDFTests {
    @Test func matchesRFC5869TestCase1() throws {
        let okm = try HKDF.deriveBytes(
            inputKeyMaterial: [UInt8](repeating: 0x0b, count: 22),
            salt: hexBytes("000102030405060708090a0b0c"), info: hexBytes("f0f1f2f3f4f5f6f7f8f9"), count: 42)
        #expect(hexString(okm) == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    }

    @Test func rejectsOutputOverLimit() {
        #expect(throws: CryptoError.self) {
            try HKDF.deriveBytes(inputKeyMaterial: [UInt8](repeating: 1, count: 32), salt: [UInt8](), info: [UInt8](), count: 8161)
        }
    }
}

@Suite struct RSATests {
    @Test func oaepWrapUnwrapRoundTrips() throws {
        let key = SharedKeys.rsa
        let contentKey = try SymmetricKey.random()
        let wrapped = try key.publicKey.wrap(contentKey)
        #expect(wrapped.count == 384)
        let unwrapped = try key.unwrap(wrapped)
        // Same key ⇔ same AES-GCM output.
        let nonce = [UInt8](repeating: 1, count: 12)
        #expect(try AESGCM(key: contentKey).seal([1, 2, 3], nonce: nonce) == AESGCM(key: unwrapped).seal([1, 2, 3], nonce: nonce))
    }

    @Test func oaepRejectsChangedCiphertext() throws {
        let key = SharedKeys.rsa
        var wrapped = try key.publicKey.encrypt(Array("secret".utf8))
        wrapped[200] ^= 1
        #expect(throws: CryptoError.self) { try key.decrypt(wrapped) }
    }

    @Test func pssSignaturesVerifyAndRejectChanges() throws {
        let key = SharedKeys.rsa
        let message = Array("the message".utf8)
        let signature = try key.signature(for: message)
        #expect(signature.count == 384)
        #expect(try key.publicKey.isValidSignature(signature, for: message))
        #expect(try !key.publicKey.isValidSignature(signature, for: Array("the messagE".utf8)))
        var changed = signature
        changed[10] ^= 1
        #expect(try !key.publicKey.isValidSignature(changed, for: message))
        // PSS is randomised: two signatures of one message differ.
        #expect(try key.signature(for: message) != signature)
    }

    @Test func encryptedPEMRoundTripsAndRejectsWrongPassphrase() throws {
        let key = SharedKeys.rsa
        let pem = try key.encryptedPEM(passphrase: Passphrase("correct horse"))
        #expect(pem.hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        let loaded = try RSAPrivateKey(encryptedPEM: pem, passphrase: Passphrase("correct horse"))
        #expect(try loaded.publicKey.derRepresentation == key.publicKey.derRepresentation)
        let error = #expect(throws: CryptoError.self) {
            try RSAPrivateKey(encryptedPEM: pem, passphrase: Passphrase("wrong horse"))
        }
        #expect(error?.code == .wrongPassphrase)
    }

    @Test func publicKeyEncodingsRoundTripAndRejectGarbage() throws {
        let publicKey = try SharedKeys.rsa.publicKey
        let der = try publicKey.derRepresentation
        #expect(try RSAPublicKey(derRepresentation: der).derRepresentation == der)
        #expect(try RSAPublicKey(pemRepresentation: publicKey.pemRepresentation).derRepresentation == der)
        #expect(publicKey.bitCount == 3072)
        #expect(throws: CryptoError.self) { try RSAPublicKey(derRepresentation: der + [0]) }
        #expect(throws: CryptoError.self) { try RSAPublicKey(derRepresentation: Array(der.dropLast())) }
        #expect(throws: CryptoError.self) { try RSAPublicKey(derRepresentation: [0x30, 0x00]) }
        #expect(throws: CryptoError.self) { try RSAPublicKey(pemRepresentation: "not a key") }
        let edKey = try SharedKeys.ed25519.publicKey.derRepresentation
        #expect(throws: CryptoError.self) { try RSAPublicKey(derRepresentation: edKey) }
    }

    @Test func unencryptedPrivateKeysAreRefusedForStorage() throws {
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
        let error = #expect(throws: CryptoError.self) { try RSAPrivateKey(encryptedPEM: pem, passphrase: Passphrase("x")) }
        #expect(error?.code == .malformedInput)
    }
}

@Suite struct Ed25519Tests {
    @Test func signsAndVerifies() throws {
        let key = SharedKeys.ed25519
        let signature = try key.signature(for: Array("checkpoint".utf8))
        #expect(signature.count == 64)
        let publicKey = try key.publicKey
        #expect(publicKey.isValidSignature(signature, for: Array("checkpoint".utf8)))
        #expect(!publicKey.isValidSignature(signature, for: Array("checkpoinT".utf8)))
        let raw = try publicKey.rawRepresentation
        #expect(try Ed25519PublicKey(rawRepresentation: raw).isValidSignature(signature, for: Array("checkpoint".utf8)))
        #expect(throws: CryptoError.self) { try Ed25519PublicKey(rawRepresentation: Array(raw.prefix(31))) }
    }

    @Test func encryptedPEMRoundTrips() throws {
        let pem = try SharedKeys.ed25519.encryptedPEM(passphrase: Passphrase("log key passphrase"))
        let loaded = try Ed25519PrivateKey(encryptedPEM: pem, passphrase: Passphrase("log key passphrase"))
        #expect(try loaded.publicKey.rawRepresentation == SharedKeys.ed25519.publicKey.rawRepresentation)
    }
}

@Suite struct PassphraseTests {
    @Test func rejectsEmptyAndNUL() {
        #expect(throws: CryptoError.self) { try Passphrase("") }
        #expect(throws: CryptoError.self) { try Passphrase("a\u{0}b") }
        #expect(throws: CryptoError.self) { try Passphrase(String(repeating: "x", count: 1025)) }
    }
}
