import SecmailCrypto

/// Makes the RSA-PSS signatures of one identity's signing key, wherever that key lives: unlocked
/// in this process (`RSAPrivateKey`) or held by the key agent (`secmail agent`).
public protocol MessageSigner: Sendable {
    /// An RSA-PSS signature over `message`.
    func sign(_ message: [UInt8]) throws -> [UInt8]
    /// Whether this is the signing key that `bundle` publishes.
    func signs(for bundle: IdentityBundle) throws -> Bool
}

/// Unwraps the content keys wrapped for one identity's encryption key, wherever that key lives.
public protocol KeyUnwrapper: Sendable {
    /// The 32-byte content key inside an RSA-OAEP `wrapped` key; throws for anything else.
    func unwrapContentKey(_ wrapped: [UInt8]) throws -> SymmetricKey
}

extension RSAPrivateKey: MessageSigner, KeyUnwrapper {
    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        try signature(for: message)
    }

    public func signs(for bundle: IdentityBundle) throws -> Bool {
        try publicKey.derRepresentation == bundle.signingKey.derRepresentation
    }

    public func unwrapContentKey(_ wrapped: [UInt8]) throws -> SymmetricKey {
        try unwrap(wrapped, expectedByteCount: 32)
    }
}
