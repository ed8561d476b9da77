/// Writes a PNG file chunk by chunk: signature, IHDR, the rendering chunks, PLTE/tRNS, IDAT, IEND.
/// Nothing else: no text, time, EXIF (beyond orientation) or other ancillary chunk.
struct PNGChunkWriter {
    private(set) var bytes: [UInt8] = ImageFormat.pngSignature

    mutating func chunk(_ type: String, _ data: [UInt8]) {
        precondition(data.count < Int(Int32.max), "a PNG chunk holds less than 2^31 bytes")
        bytes += Self.be32(UInt32(data.count))
        let start = bytes.count
        bytes += Array(type.utf8)
        bytes += data
        bytes += Self.be32(ImageCodecs.crc32(bytes[start...]))
    }

    static func be32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    /// A whole PNG: `layout` for `image`'s size, `idat` the zlib stream of the filtered scanlines.
    static func file(width: Int, height: Int, layout: PNGLayout, idat: [UInt8], rendering: RenderingInfo,
                     orientation: UInt16?) throws -> [UInt8] {
        var writer = PNGChunkWriter()
        writer.chunk("IHDR", be32(UInt32(width)) + be32(UInt32(height))
                     + [UInt8(layout.bitDepth), layout.colorType.rawValue, 0, 0, 0])
        // Rendering chunks come before PLTE and IDAT. An ICC profile supersedes sRGB.
        if let gamma = rendering.gamma { writer.chunk("gAMA", be32(gamma)) }
        if let chromaticities = rendering.chromaticities, chromaticities.count == 8 {
            writer.chunk("cHRM", chromaticities.flatMap(be32))
        }
        if let profile = rendering.iccProfile {
            let name = Array("ICC profile".utf8) + [0, 0]
            func compressed(level: Int) throws -> [UInt8] {
                guard let stream = try ImageCodecs.deflate(profile, level: level, limit: profile.count + 1024) else {
                    throw ImageError(.outOfMemory, "cannot compress the ICC profile")
                }
                return stream
            }
            // libpng (1.6.39) refuses an iCCP chunk shorter than the 81 bytes it reads for the
            // name plus a minimal stream: a tiny profile that compresses well is stored.
            let smallest = try compressed(level: 12)
            writer.chunk("iCCP", name + (name.count + smallest.count >= 96 ? smallest : try compressed(level: 0)))
        } else if let intent = rendering.srgbIntent {
            writer.chunk("sRGB", [intent])
        }
        if let orientation, orientation != 1 {
            writer.chunk("eXIf", ExifOrientation.block(orientation))
        }
        if layout.colorType == .palette {
            writer.chunk("PLTE", layout.palette.flatMap { [UInt8($0 >> 24), UInt8($0 >> 16 & 0xFF), UInt8($0 >> 8 & 0xFF)] })
            let alphas = layout.palette.map { UInt8($0 & 0xFF) }
            if let lastTranslucent = alphas.lastIndex(where: { $0 != 0xFF }) {
                writer.chunk("tRNS", Array(alphas[...lastTranslucent]))
            }
        }
        if let key = layout.colourKey {
            writer.chunk("tRNS", key.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] })
        }
        writer.chunk("IDAT", idat)
        writer.chunk("IEND", [])
        return writer.bytes
    }
}

/// Walks the chunks of a PNG file (structure only; libpng checks everything else).
struct PNGChunkReader {
    struct Chunk {
        let type: String
        /// The whole chunk: length, type, data, CRC.
        let range: Range<Int>
    }

    static func chunks(of bytes: [UInt8]) -> [Chunk]? {
        guard bytes.starts(with: ImageFormat.pngSignature) else { return nil }
        var chunks: [Chunk] = []
        var offset = 8
        while offset + 12 <= bytes.count {
            let length = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            guard length <= bytes.count - offset - 12 else { return nil }
            let type = String(decoding: bytes[offset + 4..<offset + 8], as: UTF8.self)
            chunks.append(Chunk(type: type, range: offset..<offset + 12 + length))
            offset += 12 + length
            if type == "IEND" { return chunks }
        }
        return nil
    }

    /// The types of the chunks before the first IDAT, where the rendering chunks must be.
    static func typesBeforeImageData(of bytes: [UInt8]) -> Set<String> {
        Set((chunks(of: bytes) ?? []).prefix { $0.type != "IDAT" }.map(\.type))
    }

    /// The number of frames an animated PNG (APNG) announces in its `acTL` chunk, or nil for a
    /// still image. Decoders without APNG support (libpng among them) show the `IDAT` image
    /// alone; the other frames are in `fdAT` chunks. An `acTL` after the first `IDAT` is invalid,
    /// ignored by APNG decoders too.
    static func animationFrames(of bytes: [UInt8]) -> Int? {
        guard let chunks = chunks(of: bytes),
              let control = chunks.prefix(while: { $0.type != "IDAT" }).first(where: { $0.type == "acTL" }),
              control.range.count == 12 + 8 else { return nil }
        let data = control.range.lowerBound + 8
        return bytes[data..<data + 4].reduce(0) { $0 << 8 | Int($1) }
    }

    /// The file with only the chunks that decide the pixels and their rendering (and, with
    /// `animation`, an APNG's frames: `acTL`, `fcTL`, `fdAT`): the original compressed data kept
    /// byte for byte, every other ancillary chunk dropped.
    static func stripped(_ bytes: [UInt8], keepingAnimation animation: Bool = false) -> [UInt8]? {
        guard let chunks = chunks(of: bytes) else { return nil }
        var kept: Set<String> = ["IHDR", "PLTE", "tRNS", "IDAT", "IEND", "gAMA", "cHRM", "sRGB", "iCCP"]
        if animation { kept.formUnion(["acTL", "fcTL", "fdAT"]) }
        var out = ImageFormat.pngSignature
        for chunk in chunks where kept.contains(chunk.type) {
            out += bytes[chunk.range]
        }
        return out
    }
}
