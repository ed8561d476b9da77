import SecmailCrypto

/// Test keys are generated once per test process: RSA-3072 generation takes about a second.
enum SharedKeys {
    static let rsa: RSAPrivateKey = try! RSAPrivateKey.generate(bitCount: 3072)
    static let ed25519: Ed25519PrivateKey = try! Ed25519PrivateKey.generate()
}
