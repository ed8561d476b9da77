/// What a PNG says about how its pixels are to be shown. Kept in optimised output, since
/// dropping it would change how the image renders.
public struct RenderingInfo: Sendable, Equatable {
    public var iccProfile: [UInt8]?
    /// sRGB rendering intent (0-3) when the image declares sRGB.
    public var srgbIntent: UInt8?
    /// gAMA × 100000.
    public var gamma: UInt32?
    /// cHRM × 100000: white x, y, red x, y, green x, y, blue x, y.
    public var chromaticities: [UInt32]?

    public init(iccProfile: [UInt8]? = nil, srgbIntent: UInt8? = nil, gamma: UInt32? = nil, chromaticities: [UInt32]? = nil) {
        self.iccProfile = iccProfile
        self.srgbIntent = srgbIntent
        self.gamma = gamma
        self.chromaticities = chromaticities
    }
}

/// A decoded image in one canonical form: RGBA, 8 or 16 bits per sample (16-bit samples
/// big-endian), rows top to bottom. Every decoder produces it, so "the same pixels" is one test.
public struct RGBAImage: Sendable {
    public let width: Int
    public let height: Int
    /// 8 or 16.
    public let bitDepth: Int
    public let samples: [UInt8]
    public var rendering: RenderingInfo
    /// EXIF orientation (1-8) the source declared, if any.
    public var orientation: UInt16?
    /// How the source stored its pixels, for reports (e.g. "PNG RGBA 8-bit interlaced").
    public let sourceDescription: String

    public init(width: Int, height: Int, bitDepth: Int, samples: [UInt8], rendering: RenderingInfo = RenderingInfo(),
                orientation: UInt16? = nil, sourceDescription: String = "") {
        precondition(bitDepth == 8 || bitDepth == 16, "RGBA samples are 8 or 16 bits")
        precondition(samples.count == width * height * 4 * bitDepth / 8, "RGBA sample count does not match the size")
        self.width = width
        self.height = height
        self.bitDepth = bitDepth
        self.samples = samples
        self.rendering = rendering
        self.orientation = orientation
        self.sourceDescription = sourceDescription
    }

    public var pixelCount: Int { width * height }

    /// Whether `other` has the same size and, sample for sample, the same values. An 8-bit
    /// sample v equals the 16-bit sample v·257 (the exact scaling every PNG decoder applies).
    public func hasSamePixels(as other: RGBAImage) -> Bool {
        width == other.width && height == other.height && ImageCodecs.sameSamples(self, other)
    }
}
