/// Reads fields of the canonical encoding from a byte array, checking every bound.
struct ByteReader {
    private let bytes: [UInt8]
    private(set) var offset: Int
    /// What is being parsed, for error messages ("identity bundle", "envelope header").
    let subject: String

    init(_ bytes: [UInt8], subject: String) {
        self.bytes = bytes
        self.offset = 0
        self.subject = subject
    }

    var remaining: Int { bytes.count - offset }
    var isAtEnd: Bool { offset == bytes.count }

    mutating func read(count: Int) throws -> [UInt8] {
        guard count >= 0, count <= remaining else {
            throw FormatError(.truncated, "the \(subject) is truncated: \(count) more bytes expected at offset \(offset), \(remaining) left")
        }
        let slice = Array(bytes[offset..<offset + count])
        offset += count
        return slice
    }

    mutating func readUInt8() throws -> UInt8 {
        try read(count: 1)[0]
    }

    mutating func readUInt16() throws -> UInt16 {
        let b = try read(count: 2)
        return UInt16(b[0]) << 8 | UInt16(b[1])
    }

    mutating func readUInt32() throws -> UInt32 {
        try read(count: 4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func readUInt64() throws -> UInt64 {
        try read(count: 8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func readInt64() throws -> Int64 {
        Int64(bitPattern: try readUInt64())
    }

    /// A u8-length-prefixed field whose length must lie in `allowed`.
    mutating func readU8Prefixed(_ field: String, allowed: ClosedRange<Int>) throws -> [UInt8] {
        let length = Int(try readUInt8())
        try Self.check(length, allowed, field: field, subject: subject)
        return try read(count: length)
    }

    /// A u16-length-prefixed field whose length must lie in `allowed`.
    mutating func readU16Prefixed(_ field: String, allowed: ClosedRange<Int>) throws -> [UInt8] {
        let length = Int(try readUInt16())
        try Self.check(length, allowed, field: field, subject: subject)
        return try read(count: length)
    }

    /// Magic bytes, then a version byte that must equal `version`.
    mutating func expectHeader(magic: [UInt8], version: UInt8, kind: String) throws {
        try expectHeader(magic: magic, versions: version...version, kind: kind)
    }

    /// Magic bytes, then a version byte within `versions`; returns it.
    @discardableResult
    mutating func expectHeader(magic: [UInt8], versions: ClosedRange<UInt8>, kind: String) throws -> UInt8 {
        guard remaining >= magic.count, Array(bytes[offset..<offset + magic.count]) == magic else {
            throw FormatError(.badMagic, "this is not a secmail \(kind) (wrong magic bytes)")
        }
        offset += magic.count
        let found = try readUInt8()
        guard versions.contains(found) else {
            let readable = versions.count == 1 ? "version \(versions.lowerBound)" : "versions \(versions.lowerBound) to \(versions.upperBound)"
            throw FormatError(.unsupportedVersion, "unsupported \(kind) format version \(found); this secmail reads \(readable) (upgrade secmail if the sender is newer)")
        }
        return found
    }

    /// The bytes between `start` and the current offset.
    func slice(from start: Int) -> ArraySlice<UInt8> {
        bytes[start..<offset]
    }

    /// Fails unless every byte was consumed.
    func expectEnd() throws {
        guard isAtEnd else {
            throw FormatError(.trailingBytes, "the \(subject) has \(remaining) unexpected trailing bytes")
        }
    }

    private static func check(_ length: Int, _ allowed: ClosedRange<Int>, field: String, subject: String) throws {
        guard allowed.contains(length) else {
            throw FormatError(.invalidField, "the \(subject)'s \(field) has length \(length), outside \(allowed.lowerBound)...\(allowed.upperBound)")
        }
    }
}
