/// The lossless image pipeline (DESIGN section 6): decode by magic bytes within limits, optimise
/// to PNG, and choose the smaller lossless form for the wire.
public struct ImagePipeline: Sendable {
    public var limits: ImageLimits
    public var effort: PNGEffort

    public init(limits: ImageLimits = .standard, effort: PNGEffort = .normal) {
        self.limits = limits
        self.effort = effort
    }

    /// Decodes a PNG or JPEG file into canonical RGBA.
    public func decode(_ bytes: [UInt8]) throws -> (format: ImageFormat, image: RGBAImage) {
        guard let format = ImageFormat.detect(bytes) else {
            throw ImageError(.unknownFormat, "not a PNG or JPEG image (by its first bytes)")
        }
        return (format, try ImageCodecs.decode(bytes, format: format, limits: limits))
    }

    /// The optimised PNG of a PNG or JPEG file; its pixels are verified identical to the input's.
    public func optimizedPNG(_ bytes: [UInt8]) throws -> (format: ImageFormat, image: RGBAImage, png: OptimizedPNG) {
        let (format, image) = try decode(bytes)
        let png = try PNGOptimizer(effort: effort).optimize(image, original: format == .png ? bytes : nil)
        return (format, image, png)
    }

    /// A JPEG file without metadata whose decoded pixels are verified identical to the input's,
    /// or nil when its structure could not be followed.
    public func strippedJPEG(_ bytes: [UInt8], decoded: RGBAImage) throws -> [UInt8]? {
        guard let stripped = JPEGStripper.strip(bytes, orientation: decoded.orientation) else { return nil }
        let check = try ImageCodecs.decode(stripped, format: .jpeg, limits: limits)
        return check.hasSamePixels(as: decoded) ? stripped : nil
    }

    /// What travels for an image attachment: the smaller lossless form — the optimised PNG, or
    /// (for a JPEG) the metadata-stripped JPEG — unless `alwaysPNG`. Both sizes are reported.
    public func wireForm(of bytes: [UInt8], alwaysPNG: Bool = false) throws -> WireImage {
        let (format, image) = try decode(bytes)
        if format == .png || alwaysPNG {
            let png = try PNGOptimizer(effort: effort).optimize(image, original: format == .png ? bytes : nil)
            let jpeg = format == .jpeg ? try strippedJPEG(bytes, decoded: image) : nil
            return WireImage(format: .png, bytes: png.bytes, originalSize: bytes.count, pngSize: png.bytes.count,
                             jpegSize: jpeg?.count, image: image)
        }
        guard let jpeg = try strippedJPEG(bytes, decoded: image) else {
            let png = try PNGOptimizer(effort: effort).optimize(image)
            return WireImage(format: .png, bytes: png.bytes, originalSize: bytes.count, pngSize: png.bytes.count, jpegSize: nil, image: image)
        }
        // A photo's PNG is several times its JPEG: a fast PNG decides, unless it comes close.
        let fast = try PNGOptimizer(effort: .fast).optimize(image)
        var png = fast
        if effort != .fast, fast.bytes.count < jpeg.count + jpeg.count / 4 {
            png = try PNGOptimizer(effort: effort).optimize(image)
        }
        let usePNG = png.bytes.count <= jpeg.count
        return WireImage(format: usePNG ? .png : .jpeg, bytes: usePNG ? png.bytes : jpeg, originalSize: bytes.count,
                         pngSize: png.bytes.count, jpegSize: jpeg.count, image: image)
    }

    /// The PNG a reader saves for an image that travelled as `bytes` (PNG stays as it is; a
    /// JPEG is decoded and encoded as PNG with the same pixels).
    public func readerPNG(_ bytes: [UInt8]) throws -> [UInt8] {
        let (format, image) = try decode(bytes)
        if format == .png { return bytes }
        return try PNGOptimizer(effort: .fast).optimize(image).bytes
    }
}

/// An image attachment as it goes on the wire.
public struct WireImage: Sendable {
    public let format: ImageFormat
    public let bytes: [UInt8]
    public let originalSize: Int
    /// The optimised PNG's size (always computed; it is what the reader gets).
    public let pngSize: Int
    /// The stripped JPEG's size, for JPEG input.
    public let jpegSize: Int?
    let image: RGBAImage

    public var width: Int { image.width }
    public var height: Int { image.height }
}
