import FoundationEssentials
import Glibc

/// Replays the directory log leaf by leaf and recomputes the name map, checking everything a leaf
/// claims that follows from the leaves before it: a registration is of a new name; a rotation
/// continues exactly the version the map holds (next key version, continuity from its
/// fingerprint); every map root a leaf commits is the root the replay computed. Used by `secmail
/// monitor` and `secmail audit`, and by tests to check the relay's map.
///
/// Memory: the map's interior nodes and one value per name; nothing per log entry.
public struct NameMapReplay {
    /// Leaves replayed so far.
    public private(set) var size: UInt64
    public private(set) var map: NameMap<InMemoryNameMapNodes>
    /// The current value of every name, by map key.
    public private(set) var values: [[UInt8]: NameMapValue]

    public init() {
        size = 0
        map = NameMap(store: InMemoryNameMapNodes())
        values = [:]
    }

    /// A replay positioned after `size` leaves whose map held `values` (as saved by `encodedState`).
    public init(size: UInt64, values: [[UInt8]: NameMapValue]) throws {
        self.size = size
        self.values = values
        map = NameMap(store: InMemoryNameMapNodes())
        for (key, value) in values { try map.set(key, valueHash: value.hash) }
    }

    public func root() throws -> [UInt8] { try map.root() }

    /// Applies the next leaf (index `size`). Throws `FormatError` for a leaf that does not parse or
    /// does not follow from the log before it; the replay is then unchanged.
    @discardableResult
    public mutating func apply(_ leafData: [UInt8]) throws -> LogLeaf {
        let index = size
        let leaf: LogLeaf
        do {
            leaf = try LogLeaf(encoded: leafData)
        } catch let error as FormatError {
            throw FormatError(.invalidField, "log entry #\(index) is not a valid directory log leaf: \(error.reason)")
        }
        var next = map
        if let entry = leaf.entry {
            let key = NameMapKey.of(entry.bundle.name)
            let previous = values[key]
            switch entry.kind {
            case .registration:
                if let previous {
                    throw FormatError(.invalidField, "log entry #\(index) registers \(entry.bundle.name) again, which entry #\(previous.logIndex) registered already")
                }
            case .rotation:
                guard let previous else {
                    throw FormatError(.invalidField, "log entry #\(index) rotates the keys of \(entry.bundle.name), which is not registered")
                }
                guard entry.bundle.keyVersion == previous.keyVersion + 1, entry.bundle.continuity?.previousFingerprint == previous.fingerprint else {
                    throw FormatError(.invalidField, "log entry #\(index) makes \(entry.bundle.name) version \(entry.bundle.keyVersion), which does not continue version \(previous.keyVersion) logged at #\(previous.logIndex)")
                }
            }
            let value = entry.mapValue(logIndex: index)
            try next.set(key, valueHash: value.hash)
            try check(leaf.mapRoot, against: next, index: index)
            values[key] = value
        } else {
            try check(leaf.mapRoot, against: next, index: index)
        }
        map = next
        size += 1
        return leaf
    }

    private func check(_ committed: [UInt8]?, against map: NameMap<InMemoryNameMapNodes>, index: UInt64) throws {
        guard let committed else { return }
        let computed = try map.root()
        guard committed == computed else {
            throw FormatError(.invalidField, "log entry #\(index) commits the name map root \(hexEncoded(committed).prefix(16))…, but the log before it produces \(hexEncoded(computed).prefix(16))…: the relay's map does not follow from its log")
        }
    }

    /// The replay position and values, to resume from (`init(size:values:)`): `u64` size, `u32`
    /// count, then per name: key[32], key version `u32`, log index `u64`, fingerprint[32].
    public var encodedState: [UInt8] {
        var writer = ByteWriter()
        writer.append(size)
        writer.append(UInt32(values.count))
        for (key, value) in values.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            writer.append(raw: key)
            writer.append(value.keyVersion)
            writer.append(value.logIndex)
            writer.append(raw: value.fingerprint.bytes)
        }
        return writer.bytes
    }

    public init(encodedState: [UInt8]) throws {
        var reader = ByteReader(encodedState, subject: "map replay state")
        let size = try reader.readUInt64()
        let count = Int(try reader.readUInt32())
        // The count comes from a file: it must match the bytes that follow before anything is
        // sized by it (a fuzzed state asked for 137 GB here).
        let entryLength = 32 + 4 + 8 + 32
        guard reader.remaining == count * entryLength else {
            throw FormatError(.truncated, "the map replay state says it holds \(count) names but has \(reader.remaining) bytes for them, not \(count * entryLength)")
        }
        var values: [[UInt8]: NameMapValue] = [:]
        values.reserveCapacity(count)
        for _ in 0..<count {
            let key = try reader.read(count: 32)
            let version = try reader.readUInt32()
            let index = try reader.readUInt64()
            guard values.updateValue(NameMapValue(keyVersion: version, logIndex: index, fingerprint: try Fingerprint(bytes: reader.read(count: 32))),
                                     forKey: key) == nil else {
                throw FormatError(.invalidField, "the map replay state holds the name key \(hexEncoded(key).prefix(16))… twice")
            }
        }
        try reader.expectEnd()
        try self.init(size: size, values: values)
    }
}
