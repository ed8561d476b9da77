/// One leaf of the directory's transparency log: a key version of a name, as registered or
/// rotated. Layout (docs/PROTOCOL.md): magic "SMDE", version 1, kind (1 = registration,
/// 2 = rotation), time (i64, seconds), bundle (u16-prefixed canonical encoding).
public struct DirectoryEntry: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case registration = 1
        case rotation = 2
    }

    public let kind: Kind
    /// When the relay logged it, seconds since 1970-01-01 UTC.
    public let time: Int64
    public let bundle: IdentityBundle

    static let magic: [UInt8] = Array("SMDE".utf8)
    static let formatVersion: UInt8 = 1

    public init(kind: Kind, time: Int64, bundle: IdentityBundle) throws {
        guard (kind == .registration) == (bundle.keyVersion == 1 && bundle.continuity == nil) else {
            throw FormatError(.invalidField, "a registration logs key version 1 without continuity; a rotation logs a later, continuity-signed version")
        }
        self.kind = kind
        self.time = time
        self.bundle = bundle
    }

    /// The leaf data.
    public var encoded: [UInt8] {
        var writer = ByteWriter()
        writer.append(raw: Self.magic)
        writer.append(Self.formatVersion)
        writer.append(kind.rawValue)
        writer.append(time)
        writer.append(u16Prefixed: bundle.encoded)
        return writer.bytes
    }

    /// Parses and validates leaf data (the bundle's self-signature included).
    public init(encoded: [UInt8]) throws {
        var reader = ByteReader(encoded, subject: "directory log entry")
        try reader.expectHeader(magic: Self.magic, version: Self.formatVersion, kind: "directory log entry")
        let rawKind = try reader.readUInt8()
        guard let kind = Kind(rawValue: rawKind) else {
            throw FormatError(.invalidField, "unknown directory log entry kind \(rawKind)")
        }
        let time = try reader.readInt64()
        let bundle = try IdentityBundle(encoded: reader.readU16Prefixed("bundle", allowed: 1...8192))
        try reader.expectEnd()
        try self.init(kind: kind, time: time, bundle: bundle)
    }
}
