/// PNG colour types (PNG specification, section 11.2.2).
public enum PNGColorType: UInt8, Sendable {
    case grey = 0
    case rgb = 2
    case palette = 3
    case greyAlpha = 4
    case rgba = 6

    var name: String {
        switch self {
        case .grey: "grey"
        case .rgb: "RGB"
        case .palette: "palette"
        case .greyAlpha: "grey+alpha"
        case .rgba: "RGBA"
        }
    }

    var channels: Int {
        switch self {
        case .grey, .palette: 1
        case .greyAlpha: 2
        case .rgb: 3
        case .rgba: 4
        }
    }
}

/// One way to store an image's pixels in a PNG without changing any of them: a colour type,
/// a bit depth, and for palette images the palette (RGBA entries, translucent ones first so
/// tRNS stays short).
struct PNGLayout: Sendable, CustomStringConvertible {
    let colorType: PNGColorType
    let bitDepth: Int
    let palette: [UInt32]

    var description: String { "\(colorType.name) \(bitDepth)-bit" + (colorType == .palette ? " (\(palette.count) colours)" : "") }

    var bitsPerPixel: Int { colorType.channels * bitDepth }
    /// The filter's "bpp": bytes per complete pixel, at least one.
    var filterBytesPerPixel: Int { max(1, bitsPerPixel / 8) }
    func rowBytes(width: Int) -> Int { (width * bitsPerPixel + 7) / 8 }

    /// Facts about the pixels that decide which layouts are exact.
    struct Statistics {
        /// 16-bit samples that all have equal bytes (v·257), so 8 bits hold them exactly.
        var fitsEightBits: Bool
        var isOpaque: Bool
        var isGrey: Bool
        /// Distinct RGBA8 colours with their counts, when there are at most 256.
        var colours: [UInt32: Int]?
        /// The smallest grey bit depth (1, 2, 4, 8) that holds every grey value exactly.
        var greyDepth: Int
    }

    static func statistics(of image: RGBAImage) -> Statistics {
        let samples = image.samples
        var fitsEightBits = true, isOpaque = true, isGrey = true
        if image.bitDepth == 16 {
            for index in stride(from: 0, to: samples.count, by: 2) where samples[index] != samples[index + 1] {
                fitsEightBits = false
                break
            }
        }
        let step = image.bitDepth / 8
        let pixelBytes = 4 * step
        // One pass over the high bytes (or the only bytes) of every sample.
        var colours: [UInt32: Int]? = fitsEightBits ? [:] : nil
        for base in stride(from: 0, to: samples.count, by: pixelBytes) {
            let r = samples[base], g = samples[base + step], b = samples[base + 2 * step], a = samples[base + 3 * step]
            if step == 2 {
                if isOpaque, a != 0xFF || samples[base + 7] != 0xFF { isOpaque = false }
                if isGrey, r != g || r != b || samples[base + 1] != samples[base + 3] || samples[base + 1] != samples[base + 5] { isGrey = false }
            } else {
                if a != 0xFF { isOpaque = false }
                if isGrey, r != g || r != b { isGrey = false }
            }
            if colours != nil {
                let key = UInt32(r) << 24 | UInt32(g) << 16 | UInt32(b) << 8 | UInt32(a)
                colours![key, default: 0] += 1
                if colours!.count > 256 { colours = nil }
            }
        }
        var greyDepth = 8
        if isGrey, fitsEightBits {
            // A depth-d grey value k decodes to k·(255 / (2^d − 1)); find the smallest exact d.
            let values = Set(colours.map { $0.keys.map { Int($0 >> 24) } } ?? [])
            for depth in [1, 2, 4] where colours != nil {
                let unit = 255 / ((1 << depth) - 1)
                if values.allSatisfy({ $0 % unit == 0 }) {
                    greyDepth = depth
                    break
                }
            }
        }
        return Statistics(fitsEightBits: fitsEightBits, isOpaque: isOpaque, isGrey: isGrey, colours: colours, greyDepth: greyDepth)
    }

    /// The exact layouts worth trying, most promising first: the reduced direct layout, and a
    /// palette when there are at most 256 colours.
    static func candidates(for image: RGBAImage) -> [PNGLayout] {
        let stats = statistics(of: image)
        let depth = image.bitDepth == 16 && !stats.fitsEightBits ? 16 : 8
        let direct: PNGLayout
        switch (stats.isGrey, stats.isOpaque) {
        case (true, true): direct = PNGLayout(colorType: .grey, bitDepth: depth == 8 ? stats.greyDepth : 16, palette: [])
        case (true, false): direct = PNGLayout(colorType: .greyAlpha, bitDepth: depth, palette: [])
        case (false, true): direct = PNGLayout(colorType: .rgb, bitDepth: depth, palette: [])
        case (false, false): direct = PNGLayout(colorType: .rgba, bitDepth: depth, palette: [])
        }
        // Grey below 8 bits is as small as a palette would be.
        guard let colours = stats.colours, !(direct.colorType == .grey && direct.bitDepth < 8) else { return [direct] }
        // Translucent entries first (tRNS then only covers them), each group in colour order:
        // neighbouring indices then hold similar colours, which the filters need (ordering by
        // frequency instead made a test image 30% larger).
        let ordered = colours.keys.sorted { lhs, rhs in
            let (lhsOpaque, rhsOpaque) = (lhs & 0xFF == 0xFF, rhs & 0xFF == 0xFF)
            return lhsOpaque != rhsOpaque ? !lhsOpaque : lhs < rhs
        }
        let paletteDepth = ordered.count <= 2 ? 1 : ordered.count <= 4 ? 2 : ordered.count <= 16 ? 4 : 8
        let palette = PNGLayout(colorType: .palette, bitDepth: paletteDepth, palette: ordered)
        // A grey image is as small direct (no PLTE); otherwise a palette is a quarter or less of
        // the data. The most promising first; `thorough` tries both.
        return direct.colorType == .grey ? [direct, palette] : [palette, direct]
    }

    /// The raw (unfiltered) scanlines of `image` in this layout.
    func pack(_ image: RGBAImage) -> [UInt8] {
        let samples = image.samples
        let width = image.width, height = image.height
        let rowBytes = rowBytes(width: width)
        var raw = [UInt8](repeating: 0, count: rowBytes * height)
        let step = image.bitDepth / 8  // bytes per source sample
        let indexOf: [UInt32: UInt8] = colorType == .palette
            ? Dictionary(uniqueKeysWithValues: palette.enumerated().map { ($0.element, UInt8($0.offset)) }) : [:]
        for y in 0..<height {
            let sourceRow = y * width * 4 * step
            let targetRow = y * rowBytes
            if bitDepth < 8 {
                // Packed, most significant bits first.
                let perByte = 8 / bitDepth
                for x in 0..<width {
                    let base = sourceRow + x * 4 * step
                    let value: UInt8
                    if colorType == .palette {
                        let key = UInt32(samples[base]) << 24 | UInt32(samples[base + step]) << 16
                            | UInt32(samples[base + 2 * step]) << 8 | UInt32(samples[base + 3 * step])
                        value = indexOf[key]!
                    } else {
                        value = samples[base] / UInt8(255 / ((1 << bitDepth) - 1))
                    }
                    let shift = 8 - bitDepth * (x % perByte + 1)
                    raw[targetRow + x / perByte] |= value << UInt8(shift)
                }
                continue
            }
            var out = targetRow
            let channelOffsets: [Int] = switch colorType {
            case .grey: [0]
            case .greyAlpha: [0, 3]
            case .rgb: [0, 1, 2]
            default: [0, 1, 2, 3]
            }
            for x in 0..<width {
                let base = sourceRow + x * 4 * step
                switch colorType {
                case .palette:
                    let key = UInt32(samples[base]) << 24 | UInt32(samples[base + step]) << 16
                        | UInt32(samples[base + 2 * step]) << 8 | UInt32(samples[base + 3 * step])
                    raw[out] = indexOf[key]!
                    out += 1
                default:
                    for channel in channelOffsets {
                        let sample = base + channel * step
                        if bitDepth == 16 {
                            raw[out] = samples[sample]
                            raw[out + 1] = samples[sample + 1]
                            out += 2
                        } else {
                            raw[out] = samples[sample]  // the high byte; equal to the low one when 16 → 8
                            out += 1
                        }
                    }
                }
            }
        }
        return raw
    }
}
