/// Appends fields in the canonical big-endian encoding of docs/PROTOCOL.md.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    init(reservingCapacity capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    mutating func append(_ value: UInt8) {
        bytes.append(value)
    }

    mutating func append(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    mutating func append(_ value: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
        }
    }

    mutating func append(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }

    mutating func append(_ value: Int64) {
        append(UInt64(bitPattern: value))
    }

    /// Raw bytes with no length prefix (fixed-size fields).
    mutating func append(raw: some Sequence<UInt8>) {
        bytes.append(contentsOf: raw)
    }

    /// Bytes behind a u8 length; the caller has checked the length fits.
    mutating func append(u8Prefixed value: [UInt8]) {
        precondition(value.count <= Int(UInt8.max), "u8-prefixed field too long")
        append(UInt8(value.count))
        bytes.append(contentsOf: value)
    }

    /// Bytes behind a u16 length; the caller has checked the length fits.
    mutating func append(u16Prefixed value: [UInt8]) {
        precondition(value.count <= Int(UInt16.max), "u16-prefixed field too long")
        append(UInt16(value.count))
        bytes.append(contentsOf: value)
    }
}
