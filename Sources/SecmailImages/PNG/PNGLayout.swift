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
/// a bit depth, for palette images the palette (RGBA entries), and for grey and RGB images the
/// colour key: the one colour a tRNS chunk makes fully transparent (PNG specification, 11.3.2.1).
struct PNGLayout: Sendable, CustomStringConvertible {
    let colorType: PNGColorType
    let bitDepth: Int
    let palette: [UInt32]
    /// Grey, or red, green, blue, in this layout's bit depth.
    var colourKey: [UInt16]? = nil

    var description: String {
        "\(colorType.name) \(bitDepth)-bit" + (colorType == .palette ? " (\(palette.count) colours)" : "")
            + (colourKey == nil ? "" : " + colour key")
    }

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
        /// The distinct RGBA8 colours (of 16-bit samples that fit 8 bits, the high bytes), when
        /// there are at most 256.
        var colours: Set<UInt32>?
        /// The smallest grey bit depth (1, 2, 4, 8) that holds every grey value exactly.
        var greyDepth: Int
        /// Red, green, blue of every pixel that is not opaque, when all of them are fully
        /// transparent with that one colour and no opaque pixel has it: then a colour key says
        /// exactly what the alpha channel says. Samples as the image stores them (8 or 16 bits).
        var transparentColour: [UInt16]?
    }

    static func statistics(of image: RGBAImage) -> Statistics {
        let samples = image.samples
        let (fitsEightBits, isOpaque, isGrey) = ImageCodecs.sampleFacts(of: image)
        let step = image.bitDepth / 8
        let pixelBytes = 4 * step
        /// The full sample of channel `channel` of the pixel at `base`.
        func sample(_ base: Int, _ channel: Int) -> UInt16 {
            step == 2 ? UInt16(samples[base + 2 * channel]) << 8 | UInt16(samples[base + 2 * channel + 1]) : UInt16(samples[base + channel])
        }
        // The distinct colours (the high bytes), only up to the 257th: a photograph is done
        // within a few rows. Runs of one colour, common in graphics, cost one comparison a pixel.
        var colours: Set<UInt32>?
        if fitsEightBits {
            var found = Set<UInt32>()
            var last: UInt32?
            for base in stride(from: 0, to: samples.count, by: pixelBytes) {
                let key = UInt32(samples[base]) << 24 | UInt32(samples[base + step]) << 16 | UInt32(samples[base + 2 * step]) << 8
                    | UInt32(samples[base + 3 * step])
                guard key != last else { continue }
                last = key
                found.insert(key)
                if found.count > 256 { break }
            }
            colours = found.count > 256 ? nil : found
        }
        // A colour key is possible when every pixel that is not opaque is fully transparent and
        // of one colour.
        var transparentColour: (UInt16, UInt16, UInt16)?
        var keyable = !isOpaque
        let opaqueAlpha = UInt16.max >> (16 - image.bitDepth)
        if keyable {
            for base in stride(from: 0, to: samples.count, by: pixelBytes) where sample(base, 3) != opaqueAlpha {
                let colour = (sample(base, 0), sample(base, 1), sample(base, 2))
                if sample(base, 3) != 0 || (transparentColour.map { $0 != colour } ?? false) {
                    keyable = false
                    break
                }
                transparentColour = colour
            }
        }
        var greyDepth = 8
        if isGrey, fitsEightBits {
            // A depth-d grey value k decodes to k·(255 / (2^d − 1)); find the smallest exact d.
            let values = Set(colours.map { $0.map { Int($0 >> 24) } } ?? [])
            for depth in [1, 2, 4] where colours != nil {
                let unit = 255 / ((1 << depth) - 1)
                if values.allSatisfy({ $0 % unit == 0 }) {
                    greyDepth = depth
                    break
                }
            }
        }
        if keyable, let key = transparentColour {
            // A colour key makes every pixel of that colour transparent, opaque ones too.
            for base in stride(from: 0, to: samples.count, by: pixelBytes)
            where sample(base, 3) == opaqueAlpha && sample(base, 0) == key.0 && sample(base, 1) == key.1 && sample(base, 2) == key.2 {
                keyable = false
                break
            }
        }
        return Statistics(fitsEightBits: fitsEightBits, isOpaque: isOpaque, isGrey: isGrey, colours: colours, greyDepth: greyDepth,
                          transparentColour: keyable ? transparentColour.map { [$0.0, $0.1, $0.2] } : nil)
    }

    /// The exact layouts worth trying, most promising first: the reduced direct layout, and a
    /// palette when there are at most 256 colours — of those the embedded `profile` permits.
    static func candidates(for image: RGBAImage, profile: ICCProfile? = nil) -> [PNGLayout] {
        let stats = statistics(of: image)
        let depth = image.bitDepth == 16 && !stats.fitsEightBits ? 16 : 8
        let direct: PNGLayout
        // An RGB profile keeps grey pixels in an RGB layout.
        let isGrey = stats.isGrey && profile?.permits(.grey) ?? true
        let greyDepth = depth == 8 ? stats.greyDepth : 16
        switch (isGrey, stats.isOpaque, stats.transparentColour) {
        case (true, true, _): direct = PNGLayout(colorType: .grey, bitDepth: greyDepth, palette: [])
        case (true, false, let key?): direct = PNGLayout(colorType: .grey, bitDepth: greyDepth, palette: [],
                                                         colourKey: [keySample(key[0], imageDepth: image.bitDepth, layoutDepth: greyDepth)])
        case (true, false, nil): direct = PNGLayout(colorType: .greyAlpha, bitDepth: depth, palette: [])
        case (false, true, _): direct = PNGLayout(colorType: .rgb, bitDepth: depth, palette: [])
        case (false, false, let key?): direct = PNGLayout(colorType: .rgb, bitDepth: depth, palette: [],
                                                          colourKey: key.map { keySample($0, imageDepth: image.bitDepth, layoutDepth: depth) })
        case (false, false, nil): direct = PNGLayout(colorType: .rgba, bitDepth: depth, palette: [])
        }
        // Grey below 8 bits is as small as a palette would be.
        guard let colours = stats.colours, !(direct.colorType == .grey && direct.bitDepth < 8),
              profile?.permits(.palette) ?? true else { return [direct] }
        // Translucent entries first (tRNS then only covers them), each group in colour order:
        // neighbouring indices then hold similar colours, which the filters need (ordering by
        // frequency instead made a test image 30% larger). Two other orders were measured on the
        // tuning corpus's palette images and dropped: by luma, and a greedy chain of the colours
        // that touch most often (after Memon and Zeng) — 30 bytes less in 351 KB at level 2,
        // nothing at level 3, for 28% more time. With filter none, which wins most palette
        // images, deflate does not see the order at all.
        let ordered = colours.sorted { lhs, rhs in
            let (lhsOpaque, rhsOpaque) = (lhs & 0xFF == 0xFF, rhs & 0xFF == 0xFF)
            return lhsOpaque != rhsOpaque ? !lhsOpaque : lhs < rhs
        }
        let paletteDepth = ordered.count <= 2 ? 1 : ordered.count <= 4 ? 2 : ordered.count <= 16 ? 4 : 8
        let palette = PNGLayout(colorType: .palette, bitDepth: paletteDepth, palette: ordered)
        // A grey image is as small direct (no PLTE); otherwise a palette is a quarter or less of
        // the data. The most promising first; `thorough` tries both.
        return direct.colorType == .grey ? [direct, palette] : [palette, direct]
    }

    /// A sample of the image (8 or 16 bits) as a layout of `layoutDepth` bits stores it; exact,
    /// since the layout was chosen to hold every sample.
    private static func keySample(_ value: UInt16, imageDepth: Int, layoutDepth: Int) -> UInt16 {
        let eightBit = imageDepth == 16 && layoutDepth <= 8 ? value >> 8 : value
        return layoutDepth < 8 ? eightBit / UInt16(255 / ((1 << layoutDepth) - 1)) : eightBit
    }

    /// A colour's palette index. The layout's palette was made from every colour of the image it
    /// packs, so a colour missing from it is a bug, not bad input.
    private static func index(of colour: UInt32, in indexOf: [UInt32: UInt8]) -> UInt8 {
        guard let index = indexOf[colour] else { preconditionFailure("a colour missing from the palette made for this image") }
        return index
    }

    /// The raw (unfiltered) scanlines of `image` in this layout.
    func pack(_ image: RGBAImage) -> [UInt8] {
        if colorType != .palette, bitDepth >= 8 {
            // Whole bytes, no padding between rows: the layout's channels of every pixel in turn.
            let channels: [UInt8] = switch colorType {
            case .grey: [0]
            case .greyAlpha: [0, 3]
            case .rgb: [0, 1, 2]
            default: [0, 1, 2, 3]
            }
            return ImageCodecs.gather(image, channels: channels, outputBitDepth: bitDepth)
        }
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
                        value = Self.index(of: key, in: indexOf)
                    } else {
                        value = samples[base] / UInt8(255 / ((1 << bitDepth) - 1))
                    }
                    let shift = 8 - bitDepth * (x % perByte + 1)
                    raw[targetRow + x / perByte] |= value << UInt8(shift)
                }
                continue
            }
            // A palette of 8-bit indices.
            for x in 0..<width {
                let base = sourceRow + x * 4 * step
                let key = UInt32(samples[base]) << 24 | UInt32(samples[base + step]) << 16
                    | UInt32(samples[base + 2 * step]) << 8 | UInt32(samples[base + 3 * step])
                raw[targetRow + x] = Self.index(of: key, in: indexOf)
            }
        }
        return raw
    }
}
