import SecmailCrypto

/// A user's public identity at one key version: name, separate RSA signing and encryption keys,
/// creation time, an optional continuity signature by the previous version's signing key, and a
/// self-signature. Layout: docs/PROTOCOL.md, "Identity bundle".
///
/// Every value of this type has been fully validated: parsing checks the structure, the key
/// sizes and the self-signature, so holding an `IdentityBundle` means holding a well-formed one.
public struct IdentityBundle: Sendable, Hashable {
    /// A signature by the previous key version, proving the owner of that version made this one.
    public struct Continuity: Sendable, Hashable {
        /// Fingerprint of the bundle this one replaces.
        public let previousFingerprint: Fingerprint
        /// RSA-PSS signature by the previous signing key.
        public let signature: [UInt8]
    }

    public let suite: Suite
    public let name: IdentityName
    /// Starts at 1 and grows by one with each rotation.
    public let keyVersion: UInt32
    /// Seconds since 1970-01-01 UTC.
    public let createdAt: Int64
    /// Verifies this identity's signatures.
    public let signingKey: RSAPublicKey
    /// Wraps content keys for this identity.
    public let encryptionKey: RSAPublicKey
    public let continuity: Continuity?
    /// The canonical encoding; the fingerprint is its SHA-256.
    public let encoded: [UInt8]
    public let fingerprint: Fingerprint

    static let magic: [UInt8] = Array("SMID".utf8)
    static let formatVersion: UInt8 = 1
    static let selfSignatureContext: [UInt8] = Array("secmail identity bundle v1".utf8) + [0]
    static let continuityContext: [UInt8] = Array("secmail key continuity v1".utf8) + [0]
    static let maximumKeyDERLength = 2048
    static let maximumSignatureLength = 1024

    public static func == (lhs: IdentityBundle, rhs: IdentityBundle) -> Bool {
        lhs.encoded == rhs.encoded
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(encoded)
    }

    /// Creates and self-signs a bundle. With `previous`, it also carries a continuity
    /// signature by the previous version's signing key (a key rotation).
    public static func create(
        name: IdentityName,
        keyVersion: UInt32 = 1,
        createdAt: Int64,
        signingKey: RSAPrivateKey,
        encryptionKey: RSAPublicKey,
        rotatingFrom previous: (bundle: IdentityBundle, signer: any MessageSigner)? = nil
    ) throws -> IdentityBundle {
        let signingPublic = try signingKey.publicKey
        let core = try coreEncoding(
            name: name, keyVersion: keyVersion, createdAt: createdAt,
            signingKeyDER: signingPublic.derRepresentation, encryptionKeyDER: encryptionKey.derRepresentation)
        var writer = ByteWriter()
        writer.append(raw: core)
        if let previous {
            guard previous.bundle.name == name, keyVersion > previous.bundle.keyVersion else {
                throw FormatError(.invalidField, "a rotated bundle keeps the name and increases the key version")
            }
            let signature = try previous.signer.sign(continuityContext + core + previous.bundle.fingerprint.bytes)
            writer.append(UInt8(1))
            writer.append(raw: previous.bundle.fingerprint.bytes)
            writer.append(u16Prefixed: signature)
        } else {
            writer.append(UInt8(0))
        }
        let selfSignature = try signingKey.signature(for: selfSignatureContext + writer.bytes)
        writer.append(u16Prefixed: selfSignature)
        return try IdentityBundle(encoded: writer.bytes)
    }

    /// Parses and validates a canonical encoding: structure, suite, key sizes, self-signature.
    public init(encoded: [UInt8]) throws {
        var reader = ByteReader(encoded, subject: "identity bundle")
        try reader.expectHeader(magic: Self.magic, version: Self.formatVersion, kind: "identity bundle")
        suite = try Suite(validating: reader.readUInt16(), in: "identity bundle")
        let nameBytes = try reader.readU8Prefixed("name", allowed: 1...IdentityName.maximumLength)
        guard let nameText = String(validating: nameBytes, as: UTF8.self) else {
            throw FormatError(.invalidField, "the identity bundle's name is not UTF-8")
        }
        name = try IdentityName(nameText)
        guard name.value == nameText else {
            throw FormatError(.invalidField, "the identity bundle's name is not in normal form")
        }
        keyVersion = try reader.readUInt32()
        guard keyVersion >= 1 else {
            throw FormatError(.invalidField, "the identity bundle's key version is 0")
        }
        createdAt = try reader.readInt64()
        let signingDER = try reader.readU16Prefixed("signing key", allowed: 1...Self.maximumKeyDERLength)
        let encryptionDER = try reader.readU16Prefixed("encryption key", allowed: 1...Self.maximumKeyDERLength)
        let coreLength = reader.offset
        guard signingDER != encryptionDER else {
            throw FormatError(.invalidField, "the identity bundle uses one key for signing and encryption; they must differ")
        }
        signingKey = try Self.suiteKey(signingDER, role: "signing")
        encryptionKey = try Self.suiteKey(encryptionDER, role: "encryption")

        switch try reader.readUInt8() {
        case 0:
            continuity = nil
        case 1:
            let previous = try Fingerprint(bytes: reader.read(count: Fingerprint.byteCount))
            let signature = try reader.readU16Prefixed("continuity signature", allowed: 1...Self.maximumSignatureLength)
            continuity = Continuity(previousFingerprint: previous, signature: signature)
        case let flag:
            throw FormatError(.invalidField, "the identity bundle's continuity flag is \(flag), not 0 or 1")
        }
        let signedLength = reader.offset
        let selfSignature = try reader.readU16Prefixed("self-signature", allowed: 1...Self.maximumSignatureLength)
        try reader.expectEnd()

        guard signingKey.isValidSignature(selfSignature, for: Self.selfSignatureContext + encoded[0..<signedLength]) else {
            throw FormatError(.authenticationFailed, "the identity bundle's self-signature does not verify: it was altered or forged")
        }
        self.encoded = encoded
        fingerprint = Fingerprint(of: encoded)
        coreBytes = Array(encoded[0..<coreLength])
    }

    /// Magic through encryption key: what the continuity signature covers.
    private let coreBytes: [UInt8]

    /// Checks that this bundle is a rotation of `previous`: same name, a higher key version,
    /// and a continuity signature by `previous`'s signing key over this bundle.
    public func verifyContinuity(from previous: IdentityBundle) throws {
        guard let continuity else {
            throw FormatError(.authenticationFailed, "key version \(keyVersion) of \(name) carries no continuity signature from version \(previous.keyVersion)")
        }
        guard continuity.previousFingerprint == previous.fingerprint else {
            throw FormatError(.authenticationFailed, "key version \(keyVersion) of \(name) continues a different bundle than the one known")
        }
        guard name == previous.name, keyVersion > previous.keyVersion else {
            throw FormatError(.authenticationFailed, "a rotation must keep the name and increase the key version")
        }
        let message = Self.continuityContext + coreBytes + previous.fingerprint.bytes
        guard previous.signingKey.isValidSignature(continuity.signature, for: message) else {
            throw FormatError(.authenticationFailed, "the continuity signature of \(name) version \(keyVersion) does not verify with version \(previous.keyVersion)'s key")
        }
    }

    private static func coreEncoding(
        name: IdentityName, keyVersion: UInt32, createdAt: Int64,
        signingKeyDER: [UInt8], encryptionKeyDER: [UInt8]
    ) throws -> [UInt8] {
        var writer = ByteWriter()
        writer.append(raw: magic)
        writer.append(formatVersion)
        writer.append(Suite.rsa3072AES256GCM.rawValue)
        writer.append(u8Prefixed: Array(name.value.utf8))
        writer.append(keyVersion)
        writer.append(createdAt)
        guard signingKeyDER.count <= maximumKeyDERLength, encryptionKeyDER.count <= maximumKeyDERLength else {
            throw FormatError(.tooLarge, "a public key is larger than \(maximumKeyDERLength) bytes")
        }
        writer.append(u16Prefixed: signingKeyDER)
        writer.append(u16Prefixed: encryptionKeyDER)
        return writer.bytes
    }

    private static func suiteKey(_ der: [UInt8], role: String) throws -> RSAPublicKey {
        let key: RSAPublicKey
        do {
            key = try RSAPublicKey(derRepresentation: der)
        } catch {
            throw FormatError(.invalidField, "the identity bundle's \(role) key is not an RSA public key: \(error)")
        }
        guard key.bitCount == Suite.rsaBitCount else {
            throw FormatError(.invalidField, "the identity bundle's \(role) key has \(key.bitCount) bits; suite 1 needs \(Suite.rsaBitCount)")
        }
        return key
    }
}
