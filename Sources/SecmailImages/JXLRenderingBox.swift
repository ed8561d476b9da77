/// secmail's rendering box ("smrd") in a JPEG XL file coded from pixels (docs/PROTOCOL.md,
/// "JPEG XL rendering box"): what the source said about showing its pixels — sRGB intent,
/// gamma, chromaticities, ICC profile, EXIF orientation — so that the reader's PNG says the same.
/// The codestream's own colour encoding of such a file is plain sRGB; the box is what counts.
///
/// Layout: a version byte (1), then entries in increasing tag order, each a tag byte, a 32-bit
/// big-endian length and the value. Nothing else; an unknown tag, a repeated or out-of-order
/// one, a wrong length or a value out of range makes the whole file damaged.
enum JXLRenderingBox {
    static let version: UInt8 = 1

    enum Tag: UInt8 {
        case srgbIntent = 1      // 1 byte, 0-3
        case gamma = 2           // 4 bytes, gAMA × 100000, not 0
        case chromaticities = 3  // 32 bytes, cHRM × 100000
        case iccProfile = 4      // the profile, 132 bytes to the box limit
        case orientation = 5     // 2 bytes, EXIF orientation 2-8
    }

    /// The largest box a reader takes (decompressed), as libjxl is told in CImageCodecs.
    static let limit = 4 << 20

    /// The box for `rendering` and `orientation`, or nil when there is nothing to say.
    static func encode(_ rendering: RenderingInfo, orientation: UInt16?) -> [UInt8]? {
        var entries: [(Tag, [UInt8])] = []
        if let intent = rendering.srgbIntent { entries.append((.srgbIntent, [intent])) }
        if let gamma = rendering.gamma { entries.append((.gamma, PNGChunkWriter.be32(gamma))) }
        if let chromaticities = rendering.chromaticities { entries.append((.chromaticities, chromaticities.flatMap(PNGChunkWriter.be32))) }
        if let profile = rendering.iccProfile { entries.append((.iccProfile, profile)) }
        if let orientation, orientation != 1 { entries.append((.orientation, [UInt8(orientation >> 8), UInt8(orientation & 0xFF)])) }
        guard !entries.isEmpty else { return nil }
        return [version] + entries.flatMap { tag, value in [tag.rawValue] + PNGChunkWriter.be32(UInt32(value.count)) + value }
    }

    /// The rendering information and orientation a box says, or an error naming what is wrong.
    static func decode(_ box: [UInt8]) throws -> (rendering: RenderingInfo, orientation: UInt16?) {
        func damaged(_ why: String) -> ImageError { ImageError(.corrupt, "the JPEG XL image's rendering box is damaged: \(why)") }
        guard box.count <= limit else { throw damaged("it is over \(limit) bytes") }
        guard box.first == version else { throw damaged("unknown version") }
        var rendering = RenderingInfo()
        var orientation: UInt16?
        var offset = 1
        var lastTag: UInt8 = 0
        guard offset < box.count else { throw damaged("it says nothing") }
        while offset < box.count {
            guard box.count - offset >= 5 else { throw damaged("an entry is cut short") }
            let rawTag = box[offset]
            let length = Int(box[offset + 1]) << 24 | Int(box[offset + 2]) << 16 | Int(box[offset + 3]) << 8 | Int(box[offset + 4])
            offset += 5
            guard let tag = Tag(rawValue: rawTag) else { throw damaged("unknown entry \(rawTag)") }
            guard rawTag > lastTag else { throw damaged("entry \(rawTag) repeated or out of order") }
            guard length <= box.count - offset else { throw damaged("entry \(rawTag) runs past the end") }
            let value = Array(box[offset..<offset + length])
            offset += length
            lastTag = rawTag
            func be32(_ at: Int) -> UInt32 {
                UInt32(value[at]) << 24 | UInt32(value[at + 1]) << 16 | UInt32(value[at + 2]) << 8 | UInt32(value[at + 3])
            }
            switch tag {
            case .srgbIntent:
                guard length == 1, value[0] <= 3 else { throw damaged("bad sRGB intent") }
                rendering.srgbIntent = value[0]
            case .gamma:
                guard length == 4, be32(0) > 0 else { throw damaged("bad gamma") }
                rendering.gamma = be32(0)
            case .chromaticities:
                guard length == 32 else { throw damaged("bad chromaticities") }
                rendering.chromaticities = (0..<8).map { be32($0 * 4) }
            case .iccProfile:
                guard length >= 132 else { throw damaged("an ICC profile of \(length) bytes") }
                rendering.iccProfile = value
            case .orientation:
                let value = length == 2 ? UInt16(value[0]) << 8 | UInt16(value[1]) : 0
                guard (2...8).contains(value) else { throw damaged("bad orientation") }
                orientation = value
            }
        }
        return (rendering, orientation)
    }
}
