/// What the optimiser reads from an embedded ICC profile (ICC.1:2010, section 7.2): its colour
/// space, which decides the PNG colour types it may travel with, and whether it is one of the
/// published sRGB profiles, which a one-byte sRGB chunk says as well.
struct ICCProfile {
    let bytes: [UInt8]

    /// The data colour space signature of the header ("RGB ", "GRAY", …), or nil for a profile
    /// too short to have one.
    var colourSpace: String? {
        bytes.count >= 20 ? String(decoding: bytes[16..<20], as: UTF8.self) : nil
    }

    /// The PNG specification allows an RGB profile only with colour types that hold colour
    /// (RGB, RGBA, palette) and a grey one only with grey types; libpng drops a profile that
    /// breaks this, so a layout change must not create one.
    func permits(_ colorType: PNGColorType) -> Bool {
        switch colourSpace {
        case "RGB ": colorType == .rgb || colorType == .rgba || colorType == .palette
        case "GRAY": colorType == .grey || colorType == .greyAlpha
        default: true
        }
    }

    /// One published sRGB profile, by the checksums libpng's `png_sRGB_checks` table lists for it
    /// (the ICC's v2 and v4 sRGB profiles and the HP/Microsoft one most software embeds), and
    /// the rendering intent it is made for.
    private struct Known {
        let length: Int
        let crc32: UInt32
        let adler32: UInt32
        let intent: UInt8
    }

    private static let knownSRGB: [Known] = [
        Known(length: 3048, crc32: 0x3B87_72B9, adler32: 0x0A3F_D9F6, intent: 0),  // ICC sRGB_IEC61966-2-1_black_scaled
        Known(length: 3052, crc32: 0x427E_BB21, adler32: 0x4909_E5E1, intent: 1),  // ICC sRGB_IEC61966-2-1_no_black_scaling
        Known(length: 60988, crc32: 0x306F_D8AE, adler32: 0xFD21_44A1, intent: 0),  // ICC sRGB_v4_ICC_preference_displayclass
        Known(length: 60960, crc32: 0xBBEF_7812, adler32: 0x209C_35D2, intent: 0),  // ICC sRGB_v4_ICC_preference
        Known(length: 3024, crc32: 0x5D51_29CE, adler32: 0xA054_D762, intent: 1),  // sRGB_IEC61966-2-1_noBPC
        Known(length: 3144, crc32: 0x182E_A552, adler32: 0xF784_F3FB, intent: 0),  // HP-Microsoft sRGB v2, perceptual
        Known(length: 3144, crc32: 0xF29E_526D, adler32: 0x0398_F3FC, intent: 1),  // HP-Microsoft sRGB v2, media-relative
    ]

    /// The rendering intent of an sRGB chunk that says what this profile says, when the profile
    /// is one of the known sRGB profiles: same length and, computed over every byte, the same
    /// CRC-32 and Adler-32 (two independent checksums of the same length: a profile that matches
    /// both and differs anyway would have to be built to collide, and would only change how the
    /// sender's own image renders).
    var knownSRGBIntent: UInt8? {
        let candidates = Self.knownSRGB.filter { $0.length == bytes.count }
        guard !candidates.isEmpty else { return nil }
        let crc = ImageCodecs.crc32(bytes[...]), adler = ImageCodecs.adler32(bytes)
        return candidates.first { $0.crc32 == crc && $0.adler32 == adler }?.intent
    }
}

extension RenderingInfo {
    /// The rendering information an optimised PNG carries: the same, except that a known sRGB
    /// profile (kilobytes) becomes the sRGB chunk that means the same (one byte).
    var forOptimizedPNG: RenderingInfo {
        guard let profile = iccProfile, let intent = ICCProfile(bytes: profile).knownSRGBIntent else { return self }
        var replaced = self
        replaced.iccProfile = nil
        replaced.srgbIntent = intent
        return replaced
    }
}
