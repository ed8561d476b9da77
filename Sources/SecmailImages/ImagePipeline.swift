import FoundationEssentials
import Glibc
import SecmailCrypto

/// The lossless image pipeline (DESIGN section 6): decode by magic bytes within limits, optimise
/// to PNG, and choose the smaller lossless form for the wire.
public struct ImagePipeline: Sendable {
    public var limits: ImageLimits
    public var effort: PNGEffort

    public init(limits: ImageLimits = .standard, effort: PNGEffort = .normal) {
        self.limits = limits
        self.effort = effort
    }

    /// Loads the image libraries and libjxl on a thread of their own, for a command that will
    /// likely need them soon (one sending an image, one reading a message): libjxl's shared
    /// libraries, and libhwy's initialiser, which times the clock, take about 5 ms, the others
    /// 0.25 ms, that the first image work would otherwise wait for, while the command is mostly
    /// waiting for its relay.
    public static func loadLibrariesInBackground() {
        detachThread {
            _ = try? ImageCodecs.loadLibraries()
            _ = ImageCodecs.loadJXL()
        }
    }

    /// Decodes a PNG or JPEG file into canonical RGBA.
    public func decode(_ bytes: [UInt8]) throws -> (format: ImageFormat, image: RGBAImage) {
        guard let format = ImageFormat.detect(bytes) else {
            throw ImageError(.unknownFormat, "not a PNG or JPEG image (by its first bytes)")
        }
        return (format, try ImageCodecs.decode(bytes, format: format, limits: limits))
    }

    /// The optimised PNG of a PNG or JPEG file; its pixels are verified identical to the input's.
    /// An animated PNG is refused: a PNG of its pixels would be its first frame alone.
    public func optimizedPNG(_ bytes: [UInt8]) throws -> (format: ImageFormat, image: RGBAImage, png: OptimizedPNG) {
        if let frames = PNGChunkReader.animationFrames(of: bytes) {
            throw ImageError(.unsupported, "it is an animated PNG (\(frames) frames), and an optimised PNG would keep only the first; "
                             + "`secmail send` sends it with every frame, metadata removed")
        }
        let (format, image) = try decode(bytes)
        let png = try PNGOptimizer(effort: effort).optimize(image, original: format == .png ? bytes : nil)
        return (format, image, png)
    }

    /// A JPEG file without metadata whose decoded pixels are verified identical to the input's,
    /// or nil when its structure could not be followed.
    public func strippedJPEG(_ bytes: [UInt8], decoded: RGBAImage) throws -> [UInt8]? {
        try JPEGStripper.strip(bytes).flatMap { try verifiedJPEG($0, decoded: decoded) }
    }

    /// `stripped` when it decodes to exactly `decoded`'s pixels and orientation, else nil.
    func verifiedJPEG(_ stripped: [UInt8], decoded: RGBAImage) throws -> [UInt8]? {
        let check = try ImageCodecs.decode(stripped, format: .jpeg, limits: limits)
        return check.hasSamePixels(as: decoded) && check.orientation ?? 1 == decoded.orientation ?? 1 ? stripped : nil
    }

    /// Recompressing a JPEG takes about the same time at efforts 3 to 7 (a 4-megapixel photo:
    /// 0.15 s, most of it libjxl's own start and memory), 1 and 2 gave 7% more bytes and 9 ten
    /// times the time. Pixels: `JXLPixelCoding`, by a time model.
    static let jxlJPEGEffort = 7

    /// Whether libjxl predicts a JPEG's chroma from its luma (CFL): on the tuning corpus's JPEGs it
    /// changed the bytes of three of seven (-0.2%, -1.5% on the 4-megapixel photo, -3.3% on a small
    /// one; 0.5% in all) and took 15–25% of the recompression's time on JPEGs with full-resolution
    /// chroma (the 4-megapixel photo's `send`: 29 ms). So from 2 megapixels, where that time is
    /// felt, the default level goes without; small images and the thorough level keep it.
    func jxlChromaFromLuma(pixels: Int) -> Bool {
        effort == .thorough || pixels < 2_000_000
    }

    static func jxlJPEGMethod(chromaFromLuma: Bool) -> String {
        "the JPEG recompressed, effort \(jxlJPEGEffort)\(chromaFromLuma ? "" : ", no chroma from luma")"
    }

    /// What travels for an image attachment: the smallest lossless form — the optimised PNG,
    /// for a JPEG the metadata-stripped JPEG, and with `allowJXL` (every recipient reads it)
    /// JPEG XL: the JPEG recompressed (the reader gets the stripped JPEG back bit for bit), or the
    /// pixels coded losslessly — unless `alwaysPNG`. Pixels with rendering information (colour
    /// profile, sRGB intent, gamma, chromaticities, orientation) go as JPEG XL only with
    /// `allowJXLRendering` (every recipient reads the rendering box). Every form is checked before
    /// it may win: the JPEG decodes to the same pixels, the JPEG XL gives back the JPEG, or the
    /// pixels and rendering information, exactly.
    /// An animated PNG travels as it is, but for its metadata (see `animatedWireForm`).
    public func wireForm(of bytes: [UInt8], alwaysPNG: Bool = false, allowJXL: Bool = false,
                         allowJXLRendering: Bool = false) throws -> WireImage {
        if let frames = PNGChunkReader.animationFrames(of: bytes) {
            return try animatedWireForm(bytes, frames: frames)
        }
        if ImageFormat.detect(bytes) == .jpeg, !alwaysPNG {
            return try wireForm(ofJPEG: bytes, allowJXL: allowJXL, allowJXLRendering: allowJXLRendering)
        }
        return try wireForm(ofPixels: bytes, alwaysPNG: alwaysPNG, allowJXL: allowJXL, allowJXLRendering: allowJXLRendering)
    }

    /// A PNG (or a JPEG with `alwaysPNG`): the optimised PNG, or the pixels as JPEG XL.
    private func wireForm(ofPixels bytes: [UInt8], alwaysPNG: Bool, allowJXL: Bool, allowJXLRendering: Bool) throws -> WireImage {
        let (format, image) = try decode(bytes)
        let original = format == .png ? bytes : nil
        let jpeg = format == .jpeg ? try strippedJPEG(bytes, decoded: image) : nil
        guard allowJXL, !alwaysPNG, mayCodeAsJXL(image, withRendering: allowJXLRendering) else {
            let png = try PNGOptimizer(effort: effort).optimize(image, original: original)
            return WireImage(png: png.bytes, jpeg: jpeg, jxl: nil, jxlMethod: nil, sendPNGOnly: alwaysPNG, originalSize: bytes.count, image: image)
        }
        // Lossless JPEG XL beat the level-2 PNG by 21% on the tuning corpus: a fast PNG
        // decides, and the PNG search runs only when that came within 10%. The fast PNG's size
        // also says how hard libjxl may work (a sample of rows, as for a JPEG, overestimated
        // graphics by a third and more, which sent them to a lower effort).
        var png = try PNGOptimizer(effort: .fast).optimize(image, original: original)
        let coding = jxlCoding(pixels: image.pixelCount, pngBytes: png.bytes.count)
        let (jxl, skipped) = try pixelJXL(image, withRendering: allowJXLRendering, coding: coding)
        let searched = effort > .fast && png.bytes.count < (jxl.map { $0.count + $0.count / 10 } ?? .max)
        if searched {
            png = try PNGOptimizer(effort: effort).optimize(image, original: original)
        }
        return WireImage(png: png.bytes, pngIsFast: effort > .fast && !searched, jpeg: jpeg, jxl: jxl, jxlMethod: coding.description,
                         jxlNotMade: skipped, sendPNGOnly: false, originalSize: bytes.count, image: image)
    }

    /// An animated PNG: every optimised form would hold its first frame alone (the one libpng
    /// and non-APNG readers show), so the file travels with its frames as they are and every
    /// other ancillary chunk (text, time, EXIF…) removed; the first frame's pixels are checked.
    private func animatedWireForm(_ bytes: [UInt8], frames: Int) throws -> WireImage {
        guard let stripped = PNGChunkReader.stripped(bytes, keepingAnimation: true) else {
            throw ImageError(.corrupt, "its chunks cannot be followed")
        }
        let image = try decode(bytes).image
        guard try decode(stripped).image.hasSamePixels(as: image) else {
            throw ImageError(.pixelMismatch, "without its metadata, its first frame has other pixels")
        }
        return WireImage(png: stripped, jpeg: nil, jxl: nil, jxlMethod: nil, sendPNGOnly: true, animationFrames: frames,
                         originalSize: bytes.count, image: image)
    }

    /// A JPEG: the stripped JPEG, its JPEG XL recompression, or a PNG when that is smaller.
    private func wireForm(ofJPEG bytes: [UInt8], allowJXL: Bool, allowJXLRendering: Bool) throws -> WireImage {
        // The JPEG XL needs only the stripped JPEG; the pixels' decode, the stripped JPEG's check
        // and the PNG estimate run beside it (a 4-megapixel photo: the decode's 0.03 s no longer
        // comes first; libjxl already uses both cores). A JPEG past the limits is not handed to
        // libjxl: the decode refuses it.
        let stripped = JPEGStripper.strip(bytes)
        let size = try ImageCodecs.jpegSize(bytes)
        let withinLimits = size.map { ImageCodecs.admits(limits, width: $0.width, height: $0.height) } ?? false
        let recompressing = allowJXL && withinLimits ? stripped : nil
        let chromaFromLuma = jxlChromaFromLuma(pixels: size.map { $0.width * $0.height } ?? 0)
        let jxlMethod = Self.jxlJPEGMethod(chromaFromLuma: chromaFromLuma)
        let pipeline = self
        let (jxl, (image, checked, estimate)) = try concurrently({
            recompressing.flatMap { pipeline.recompressedJXL($0, chromaFromLuma: chromaFromLuma) }
        }, {
            let image = try pipeline.decode(bytes).image
            return (image, try stripped.flatMap { try pipeline.verifiedJPEG($0, decoded: image) }, try PNGOptimizer.estimatedSize(of: image))
        })
        guard let jpeg = checked else {
            // The JPEG XL came from a JPEG whose pixels differ: it goes with it.
            let png = try PNGOptimizer(effort: effort).optimize(image)
            let coding = jxlCoding(pixels: image.pixelCount, pngBytes: estimate)
            let (pixels, skipped) = allowJXL ? try pixelJXL(image, withRendering: allowJXLRendering, coding: coding) : (nil, nil)
            return WireImage(png: png.bytes, jpeg: nil, jxl: pixels, jxlMethod: coding.description, jxlNotMade: skipped, sendPNGOnly: false,
                             originalSize: bytes.count, image: image)
        }
        // A photo's PNG is several times its JPEG: the estimate from a sample of rows decides
        // whether a PNG is made at all, then a fast PNG whether the search is worth it.
        let best = min(jpeg.count, jxl?.count ?? .max)
        guard estimate < best + best / 4 else {
            return WireImage(png: nil, pngEstimate: estimate, jpeg: jpeg, jxl: jxl, jxlMethod: jxlMethod, sendPNGOnly: false,
                             originalSize: bytes.count, image: image)
        }
        var png = try PNGOptimizer(effort: .fast).optimize(image)
        let searched = effort > .fast && png.bytes.count < best + best / 4
        if searched {
            png = try PNGOptimizer(effort: effort).optimize(image)
        }
        return WireImage(png: png.bytes, pngIsFast: effort > .fast && !searched, jpeg: jpeg, jxl: jxl, jxlMethod: jxlMethod, sendPNGOnly: false,
                         originalSize: bytes.count, image: image)
    }

    /// The JPEG XL recompression of a (stripped) JPEG, kept only when it gives the JPEG back bit
    /// for bit; nil when libjxl cannot take the JPEG as it is.
    func recompressedJXL(_ jpeg: [UInt8], chromaFromLuma: Bool = true) -> [UInt8]? {
        guard let jxl = try? ImageCodecs.jxl(fromJPEG: jpeg, effort: Self.jxlJPEGEffort, chromaFromLuma: chromaFromLuma),
              (try? ImageCodecs.jpeg(reconstructedFrom: jxl, limits: limits)) == jpeg else { return nil }
        return jxl
    }

    /// Whether the pixels may travel as JPEG XL: always when they carry no rendering information
    /// (ICC profile, gamma, chromaticities, sRGB intent, EXIF orientation, as an optimised PNG
    /// would), else only `withRendering` (every reader takes the rendering box).
    func mayCodeAsJXL(_ image: RGBAImage, withRendering: Bool) -> Bool {
        withRendering || JXLRenderingBox.encode(image.rendering.forOptimizedPNG, orientation: image.orientation ?? 1) == nil
    }

    /// The JPEG XL coding of an image's pixels at this pipeline's effort: within the time model's
    /// budget, or the most thorough at the thorough level.
    func jxlCoding(pixels: Int, pngBytes: Int) -> JXLPixelCoding {
        effort == .thorough ? .thorough : .within(pixels: pixels, pngBytes: pngBytes)
    }

    /// The lossless JPEG XL of the pixels (`losslessJXL`), or why none was made although it may
    /// be sent: a sample showed it losing to the PNG (`jxlSkipReason`).
    func pixelJXL(_ image: RGBAImage, withRendering: Bool, coding: JXLPixelCoding) throws -> (jxl: [UInt8]?, notMade: String?) {
        guard mayCodeAsJXL(image, withRendering: withRendering) else { return (nil, nil) }
        if let reason = try jxlSkipReason(image, coding: coding) { return (nil, reason) }
        return (losslessJXL(image, withRendering: withRendering, coding: coding), nil)
    }

    /// Why a JPEG XL coded as `coding` is not worth making, or nil when it may beat the PNG.
    /// Effort 3 is the time model's last resort for large images that are neither flat nor
    /// photographic, and on such pixels it can lose to the PNG by far (a 3-megapixel RGBA logo:
    /// 3.4 MB against 1.4 MB, 0.85 s spent for nothing): there a sample of the image, 16 rows of every 128 stacked, is coded both ways
    /// first, and the whole image only when the sample's JPEG XL is within a fifth of its fast
    /// PNG (the PNG search then usually takes another 5–10% off the PNG). The sample costs about
    /// an eighth of the whole coding.
    func jxlSkipReason(_ image: RGBAImage, coding: JXLPixelCoding) throws -> String? {
        guard coding.effort == 3, image.height >= 512 else { return nil }
        let rowBytes = image.width * 4 * image.bitDepth / 8
        var samples: [UInt8] = []
        var rows = 0
        for top in stride(from: 56, to: image.height - 16, by: 128) {
            samples += image.samples[top * rowBytes..<(top + 16) * rowBytes]
            rows += 16
        }
        let sample = RGBAImage(width: image.width, height: rows, bitDepth: image.bitDepth, samples: samples)
        let packed = JXLSamples(sample)
        guard let jxl = try? ImageCodecs.jxl(samples: packed.samples, width: sample.width, height: sample.height, bitDepth: packed.bitDepth,
                                             channels: packed.channels, renderingBox: nil, coding: coding) else { return nil }
        let png = try PNGOptimizer(effort: .fast).optimize(sample).bytes.count
        guard jxl.count > png + png / 5 else { return nil }
        let ratio = (Double(jxl.count) / Double(png) * 100).rounded() / 100
        return "a sample of its rows came to \(ratio) times the PNG's size"
    }

    /// Lossless JPEG XL of the pixels, their rendering information in the rendering box, kept
    /// only when it decodes to exactly both; nil when `mayCodeAsJXL` says no.
    func losslessJXL(_ image: RGBAImage, withRendering: Bool, coding: JXLPixelCoding) -> [UInt8]? {
        guard mayCodeAsJXL(image, withRendering: withRendering) else { return nil }
        let rendering = image.rendering.forOptimizedPNG
        let orientation = image.orientation ?? 1
        let box = JXLRenderingBox.encode(rendering, orientation: orientation)
        let packed = JXLSamples(image)
        guard let jxl = try? ImageCodecs.jxl(samples: packed.samples, width: image.width, height: image.height, bitDepth: packed.bitDepth,
                                             channels: packed.channels, renderingBox: box, coding: coding),
              let decoded = try? ImageCodecs.decode(jxl, format: .jxl, limits: limits), decoded.hasSamePixels(as: image),
              decoded.rendering == rendering, decoded.orientation ?? 1 == orientation else { return nil }
        return jxl
    }

    /// The PNG a reader saves for an image that travelled as `bytes` (PNG stays as it is; a
    /// JPEG is decoded and encoded as PNG with the same pixels; a JPEG XL made from a JPEG gives
    /// that JPEG back, which is then decoded as any JPEG, so the pixels are libjpeg-turbo's as
    /// the sender's were; one made from pixels is decoded).
    /// `whileChecking` is given the PNG while it is checked (see `PNGOptimizer.optimize`).
    public func readerPNG(_ bytes: [UInt8], whileChecking: (([UInt8]) throws -> Void)? = nil) throws -> [UInt8] {
        let format = ImageFormat.detect(bytes)
        if format == .png {
            try whileChecking?(bytes)
            return bytes
        }
        if format == .jxl, let jpeg = try? ImageCodecs.jpeg(reconstructedFrom: bytes, limits: limits) {
            return try readerPNG(jpeg, whileChecking: whileChecking)
        }
        return try PNGOptimizer(effort: .conversion, isDecodedJPEG: format == .jpeg)
            .optimize(try decode(bytes).image, whileChecking: whileChecking).bytes
    }

    /// The JPEG a JPEG XL attachment was made from, bit for bit, or nil when it was made from
    /// pixels (`--as-sent`).
    public func jpegAsSent(_ jxl: [UInt8]) throws -> [UInt8]? {
        do {
            return try ImageCodecs.jpeg(reconstructedFrom: jxl, limits: limits)
        } catch let error as ImageError where error.code == .unsupported {
            return nil
        }
    }
}

/// An image's samples as JPEG XL takes them: as few channels as hold them exactly (grey, alpha
/// only when some pixel is not opaque) and 8 bits when every 16-bit sample is v·257.
struct JXLSamples {
    let samples: [UInt8]
    let channels: Int
    let bitDepth: Int

    init(_ image: RGBAImage) {
        let stats = PNGLayout.statistics(of: image)
        let depth = image.bitDepth == 16 && !stats.fitsEightBits ? 16 : 8
        let kept: [UInt8] = switch (stats.isGrey, stats.isOpaque) {
        case (true, true): [0]
        case (true, false): [0, 3]
        case (false, true): [0, 1, 2]
        case (false, false): [0, 1, 2, 3]
        }
        samples = ImageCodecs.gather(image, channels: kept, outputBitDepth: depth)
        channels = kept.count
        bitDepth = depth
    }
}

/// An image attachment as it goes on the wire: the smallest of the forms made.
public struct WireImage: Sendable {
    public let format: ImageFormat
    public let bytes: [UInt8]
    public let originalSize: Int
    /// The PNG's size, or nil when an estimate (`pngEstimate`) showed it could not win.
    public let pngSize: Int?
    /// The PNG is the fast level's: it lost to another form by so much that no search was made.
    public let pngIsFast: Bool
    public let pngEstimate: Int?
    /// The stripped JPEG's size, for JPEG input.
    public let jpegSize: Int?
    /// The JPEG XL's size, when JPEG XL was allowed and could be made.
    public let jxlSize: Int?
    /// How the JPEG XL was made: "the JPEG recompressed, effort 7", or "pixels, effort 7, patches".
    public let jxlMethod: String?
    /// Why no JPEG XL was made although readers take it (a sample showed it losing to the PNG).
    public let jxlNotMade: String?
    /// For an animated PNG, the frames it announces: the PNG is the file as it came, metadata
    /// removed, not optimised.
    public let animationFrames: Int?
    let image: RGBAImage

    init(png: [UInt8]?, pngIsFast: Bool = false, pngEstimate: Int? = nil, jpeg: [UInt8]?, jxl: [UInt8]?, jxlMethod: String?,
         jxlNotMade: String? = nil, sendPNGOnly: Bool, animationFrames: Int? = nil, originalSize: Int, image: RGBAImage) {
        var candidates: [(ImageFormat, [UInt8])] = png.map { [(.png, $0)] } ?? []
        if !sendPNGOnly {
            if let jpeg { candidates.append((.jpeg, jpeg)) }
            if let jxl { candidates.append((.jxl, jxl)) }
        }
        // The first of the smallest: PNG on a tie (every reader takes it as it is).
        guard let smallest = candidates.min(by: { $0.1.count < $1.1.count }) else {
            preconditionFailure("every image has a form to send: the PNG, or the JPEG it came as")
        }
        format = smallest.0
        bytes = smallest.1
        self.originalSize = originalSize
        pngSize = png?.count
        self.pngIsFast = pngIsFast
        self.pngEstimate = pngEstimate
        jpegSize = jpeg?.count
        jxlSize = jxl?.count
        self.jxlMethod = jxl == nil ? nil : jxlMethod
        self.jxlNotMade = jxlNotMade
        self.animationFrames = animationFrames
        self.image = image
    }

    public var width: Int { image.width }
    public var height: Int { image.height }
}
