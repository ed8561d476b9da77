import Foundation

/// A PNG writer written from the specification for the tests alone (stored deflate blocks, its
/// own CRC-32 and Adler-32, Adam7), independent of the code under test. The image tests add the
/// canonical RGBA the specification says each one decodes to.
public struct TestPNG {
    public var width: Int
    public var height: Int
    public var colorType: UInt8
    public var bitDepth: Int
    public var interlaced = false
    /// Sample values (0 ..< 2^bitDepth) per pixel and channel; for palette images the index.
    public var sample: (_ x: Int, _ y: Int, _ channel: Int) -> Int
    /// RGB palette entries, for colour type 3.
    public var palette: [(UInt8, UInt8, UInt8)] = []
    /// tRNS: alphas for palette entries, or one grey / RGB key.
    public var transparency: [Int]?
    /// Extra chunks (type, data) written before IDAT.
    public var extraChunks: [(String, [UInt8])] = []
    /// Chunks written after IDAT (an APNG's later frames, say).
    public var trailingChunks: [(String, [UInt8])] = []

    public init(width: Int, height: Int, colorType: UInt8, bitDepth: Int, interlaced: Bool = false,
                sample: @escaping (_ x: Int, _ y: Int, _ channel: Int) -> Int) {
        self.width = width
        self.height = height
        self.colorType = colorType
        self.bitDepth = bitDepth
        self.interlaced = interlaced
        self.sample = sample
    }

    public var channels: Int { [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][Int(colorType)]! }

    /// The file.
    public var encoded: [UInt8] {
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func chunk(_ type: String, _ data: [UInt8]) {
            out += be32(data.count)
            let body = Array(type.utf8) + data
            out += body + be32(Int(crc32(body)))
        }
        chunk("IHDR", be32(width) + be32(height) + [UInt8(bitDepth), colorType, 0, 0, interlaced ? 1 : 0])
        for (type, data) in extraChunks { chunk(type, data) }
        if colorType == 3 { chunk("PLTE", palette.flatMap { [$0.0, $0.1, $0.2] }) }
        if let transparency {
            chunk("tRNS", colorType == 3 ? transparency.map { UInt8($0) } : transparency.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] })
        }
        chunk("IDAT", zlibStored(scanlines))
        for (type, data) in trailingChunks { chunk(type, data) }
        chunk("IEND", [])
        return out
    }

    /// Unfiltered scanlines (filter byte 0), in Adam7 pass order when interlaced.
    public var scanlines: [UInt8] {
        var out: [UInt8] = []
        let passes: [(Int, Int, Int, Int)] = interlaced
            ? [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
            : [(0, 0, 1, 1)]
        for (x0, y0, dx, dy) in passes {
            let xs = Array(stride(from: x0, to: width, by: dx)), ys = Array(stride(from: y0, to: height, by: dy))
            guard !xs.isEmpty else { continue }
            for y in ys {
                out.append(0)
                var bits: [Int] = []
                for x in xs {
                    for channel in 0..<channels { bits.append(sample(x, y, channel)) }
                }
                out += pack(bits)
            }
        }
        return out
    }

    private func pack(_ values: [Int]) -> [UInt8] {
        if bitDepth == 16 { return values.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } }
        if bitDepth == 8 { return values.map { UInt8($0) } }
        var bytes = [UInt8](repeating: 0, count: (values.count * bitDepth + 7) / 8)
        for (index, value) in values.enumerated() {
            let bit = index * bitDepth
            bytes[bit / 8] |= UInt8(value << (8 - bitDepth - bit % 8))
        }
        return bytes
    }

}

public func be32(_ value: Int) -> [UInt8] { [UInt8(value >> 24 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }

public func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
    }
    return ~crc
}

/// A zlib stream of stored (uncompressed) blocks.
public func zlibStored(_ data: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [0x78, 0x01]
    var offset = 0
    repeat {
        let count = min(65535, data.count - offset)
        let final: UInt8 = offset + count == data.count ? 1 : 0
        out += [final, UInt8(count & 0xFF), UInt8(count >> 8), UInt8(~count & 0xFF), UInt8((~count >> 8) & 0xFF)]
        out += data[offset..<offset + count]
        offset += count
    } while offset < data.count
    var a: UInt32 = 1, b: UInt32 = 0
    for byte in data {
        a = (a + UInt32(byte)) % 65521
        b = (b + a) % 65521
    }
    return out + be32(Int(b << 16 | a))
}

/// The chunk types of a PNG file, in order.
public func chunkTypes(_ png: [UInt8]) -> [String] {
    var types: [String] = []
    var offset = 8
    while offset + 12 <= png.count {
        let length = Int(png[offset]) << 24 | Int(png[offset + 1]) << 16 | Int(png[offset + 2]) << 8 | Int(png[offset + 3])
        types.append(String(decoding: png[offset + 4..<offset + 8], as: UTF8.self))
        offset += 12 + length
    }
    return types
}

/// An APNG animation: `frames` (each the unfiltered scanlines of a full-size frame), the first
/// the PNG's own image data: the `acTL` and first `fcTL` before IDAT, the other frames' `fcTL`
/// and `fdAT` after it, with sequence numbers as the APNG specification orders them.
public func animate(_ png: inout TestPNG, laterFrames: [[UInt8]]) {
    func frameControl(_ sequence: Int) -> [UInt8] {
        be32(sequence) + be32(png.width) + be32(png.height) + be32(0) + be32(0) + [0, 1, 0, 10, 0, 0]
    }
    png.extraChunks += [("acTL", be32(laterFrames.count + 1) + be32(0)), ("fcTL", frameControl(0))]
    var sequence = 1
    for frame in laterFrames {
        png.trailingChunks += [("fcTL", frameControl(sequence)), ("fdAT", be32(sequence + 1) + zlibStored(frame))]
        sequence += 2
    }
}

/// IHDR's colour type and bit depth.
public func ihdr(_ png: [UInt8]) -> (colorType: UInt8, bitDepth: UInt8) { (png[25], png[24]) }

/// A deterministic test photo: smooth gradients with texture, as a binary PPM.
public func testPPM(width: Int, height: Int, grey: Bool = false) -> [UInt8] {
    var out = Array("\(grey ? "P5" : "P6")\n\(width) \(height)\n255\n".utf8)
    var state: UInt32 = 12345
    for y in 0..<height {
        for x in 0..<width {
            state = state &* 1_103_515_245 &+ 12345
            let noise = Int(state >> 28)
            let r = (x * 255 / max(width - 1, 1) + noise) & 0xFF
            let g = (y * 255 / max(height - 1, 1) + noise) & 0xFF
            let b = ((x + y) * 2 + noise) & 0xFF
            out += grey ? [UInt8(r)] : [UInt8(r), UInt8(g), UInt8(b)]
        }
    }
    return out
}

