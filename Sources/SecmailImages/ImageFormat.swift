/// Image formats, recognised by their first bytes, never by a file name.
public enum ImageFormat: String, Sendable {
    case png
    case jpeg

    static let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// The format of `bytes`, or nil when it is neither PNG nor JPEG.
    public static func detect(_ bytes: some Collection<UInt8>) -> ImageFormat? {
        if bytes.starts(with: pngSignature) { return .png }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
        return nil
    }

    public var mediaType: String { self == .png ? "image/png" : "image/jpeg" }
}

/// Bounds on what a decoder accepts, so a small file cannot demand gigabytes (a decompression bomb).
public struct ImageLimits: Sendable {
    public var maxWidth: Int
    public var maxHeight: Int
    public var maxPixels: Int

    public init(maxWidth: Int = 16384, maxHeight: Int = 16384, maxPixels: Int = 64_000_000) {
        self.maxWidth = maxWidth
        self.maxHeight = maxHeight
        self.maxPixels = maxPixels
    }

    /// 64 megapixels (a 16-bit RGBA image of that size decodes to 512 MiB), at most 16384 a side.
    public static let standard = ImageLimits()
}
