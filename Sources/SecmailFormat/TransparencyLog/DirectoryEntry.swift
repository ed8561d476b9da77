/// One leaf of the directory's transparency log: a key version of a name, as registered or
/// rotated, and the root of the name map once it is applied. Layout (docs/PROTOCOL.md): magic
/// "SMDE", version 2, kind (1 = registration, 2 = rotation), time (i64, seconds), bundle
/// (u16-prefixed canonical encoding), map root (32 bytes). Version 1 leaves (logs written before
/// the name map) have no map root.
public struct DirectoryEntry: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case registration = 1
        case rotation = 2
    }

    public let kind: Kind
    /// When the relay logged it, seconds since 1970-01-01 UTC.
    public let time: Int64
    public let bundle: IdentityBundle
    /// The name map's root after this entry (nil only in a version 1 leaf).
    public let mapRoot: [UInt8]?

    static let magic: [UInt8] = Array("SMDE".utf8)
    static let formatVersion: UInt8 = 2

    public init(kind: Kind, time: Int64, bundle: IdentityBundle, mapRoot: [UInt8]?) throws {
        guard (kind == .registration) == (bundle.keyVersion == 1 && bundle.continuity == nil) else {
            throw FormatError(.invalidField, "a registration logs key version 1 without continuity; a rotation logs a later, continuity-signed version")
        }
        guard mapRoot.map({ $0.count == 32 }) ?? true else {
            throw FormatError(.invalidField, "a map root is 32 bytes")
        }
        self.kind = kind
        self.time = time
        self.bundle = bundle
        self.mapRoot = mapRoot
    }

    /// The leaf data (version 1 when there is no map root).
    public var encoded: [UInt8] {
        var writer = ByteWriter()
        writer.append(raw: Self.magic)
        writer.append(mapRoot == nil ? 1 : Self.formatVersion)
        writer.append(kind.rawValue)
        writer.append(time)
        writer.append(u16Prefixed: bundle.encoded)
        if let mapRoot { writer.append(raw: mapRoot) }
        return writer.bytes
    }

    /// Parses and validates leaf data (the bundle's self-signature included).
    public init(encoded: [UInt8]) throws {
        var reader = ByteReader(encoded, subject: "directory log entry")
        let version = try reader.expectHeader(magic: Self.magic, versions: 1...Self.formatVersion, kind: "directory log entry")
        let rawKind = try reader.readUInt8()
        guard let kind = Kind(rawValue: rawKind) else {
            throw FormatError(.invalidField, "unknown directory log entry kind \(rawKind)")
        }
        let time = try reader.readInt64()
        let bundle = try IdentityBundle(encoded: reader.readU16Prefixed("bundle", allowed: 1...8192))
        let mapRoot = version >= 2 ? try reader.read(count: 32) : nil
        try reader.expectEnd()
        try self.init(kind: kind, time: time, bundle: bundle, mapRoot: mapRoot)
    }

    /// What this entry makes the map hold for its name, when it sits at `logIndex`.
    public func mapValue(logIndex: UInt64) -> NameMapValue {
        NameMapValue(keyVersion: bundle.keyVersion, logIndex: logIndex, fingerprint: bundle.fingerprint)
    }
}

/// A log leaf that only commits the name map's root: written once, when a relay whose log
/// predates the map (version 1 entries) first starts with it. Layout: magic "SMMH", version 1,
/// time (i64), map root (32 bytes).
public struct MapHead: Sendable, Equatable {
    public let time: Int64
    public let mapRoot: [UInt8]

    static let magic: [UInt8] = Array("SMMH".utf8)

    public init(time: Int64, mapRoot: [UInt8]) throws {
        guard mapRoot.count == 32 else { throw FormatError(.invalidField, "a map root is 32 bytes") }
        self.time = time
        self.mapRoot = mapRoot
    }

    public var encoded: [UInt8] {
        var writer = ByteWriter()
        writer.append(raw: Self.magic)
        writer.append(UInt8(1))
        writer.append(time)
        writer.append(raw: mapRoot)
        return writer.bytes
    }

    public init(encoded: [UInt8]) throws {
        var reader = ByteReader(encoded, subject: "map head")
        try reader.expectHeader(magic: Self.magic, version: 1, kind: "map head")
        let time = try reader.readInt64()
        let root = try reader.read(count: 32)
        try reader.expectEnd()
        try self.init(time: time, mapRoot: root)
    }
}

/// Any leaf of the directory log.
public enum LogLeaf: Sendable, Equatable {
    case entry(DirectoryEntry)
    case mapHead(MapHead)

    public init(encoded: [UInt8]) throws {
        if encoded.starts(with: MapHead.magic) {
            self = .mapHead(try MapHead(encoded: encoded))
        } else {
            self = .entry(try DirectoryEntry(encoded: encoded))
        }
    }

    /// The map root that leaf data `encoded` commits, read from its structure alone (magic,
    /// version, lengths) without validating the bundle inside: what a lookup needs of the log's
    /// last leaf, whose bundle is not the one being trusted (monitors validate every leaf). Nil
    /// for a version 1 entry; throws for anything that is not a leaf.
    public static func committedMapRoot(of encoded: [UInt8]) throws -> [UInt8]? {
        var reader = ByteReader(encoded, subject: "log leaf")
        if encoded.starts(with: MapHead.magic) { return try MapHead(encoded: encoded).mapRoot }
        let version = try reader.expectHeader(magic: DirectoryEntry.magic, versions: 1...DirectoryEntry.formatVersion, kind: "directory log entry")
        _ = try reader.read(count: 1 + 8)
        _ = try reader.readU16Prefixed("bundle", allowed: 1...8192)
        let root = version >= 2 ? try reader.read(count: 32) : nil
        try reader.expectEnd()
        return root
    }

    /// The map root the leaf commits (nil for a version 1 entry).
    public var mapRoot: [UInt8]? {
        switch self {
        case .entry(let entry): entry.mapRoot
        case .mapHead(let head): head.mapRoot
        }
    }

    public var entry: DirectoryEntry? {
        if case .entry(let entry) = self { return entry }
        return nil
    }
}
