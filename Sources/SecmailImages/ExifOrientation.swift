/// The one piece of EXIF that changes how an image looks: its orientation (tag 0x0112). All
/// other EXIF (camera, time, GPS position, thumbnails) is dropped; the orientation is kept in a
/// minimal EXIF block of its own, so a rotated photo is not shown sideways.
enum ExifOrientation {
    /// The orientation (1-8) in a TIFF-structured EXIF block, or nil when absent or malformed.
    static func read(_ tiff: [UInt8]) -> UInt16? {
        guard tiff.count >= 8 else { return nil }
        let bigEndian: Bool
        switch (tiff[0], tiff[1]) {
        case (0x4D, 0x4D): bigEndian = true
        case (0x49, 0x49): bigEndian = false
        default: return nil
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= tiff.count else { return nil }
            return bigEndian ? Int(tiff[at]) << 8 | Int(tiff[at + 1]) : Int(tiff[at + 1]) << 8 | Int(tiff[at])
        }
        func u32(_ at: Int) -> Int? {
            guard let high = u16(bigEndian ? at : at + 2), let low = u16(bigEndian ? at + 2 : at) else { return nil }
            return high << 16 | low
        }
        guard u16(2) == 42, let ifd = u32(4), let count = u16(ifd) else { return nil }
        for entry in 0..<min(count, 512) {
            let at = ifd + 2 + entry * 12
            guard let tag = u16(at) else { return nil }
            if tag == 0x0112 {
                guard u16(at + 2) == 3, u32(at + 4) == 1, let value = u16(at + 8), (1...8).contains(value) else { return nil }
                return UInt16(value)
            }
        }
        return nil
    }

    /// A minimal big-endian TIFF block holding only `orientation`.
    static func block(_ orientation: UInt16) -> [UInt8] {
        [0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8,   // "MM", 42, IFD0 at offset 8
         0x00, 0x01,                           // one entry
         0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1,   // tag 0x0112, SHORT, count 1
         UInt8(orientation >> 8), UInt8(orientation & 0xFF), 0, 0,
         0, 0, 0, 0]                           // no next IFD
    }
}
