/// Image formats, recognised by their first bytes, never by a file name.
public enum ImageFormat: String, Sendable {
    case png
    case jpeg
    /// JPEG XL, bare codestream or ISO BMFF container.
    case jxl

    static let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    static let jxlContainerSignature: [UInt8] = [0, 0, 0, 0x0C, 0x4A, 0x58, 0x4C, 0x20, 0x0D, 0x0A, 0x87, 0x0A]

    /// The format of `bytes`, or nil when it is none of these.
    public static func detect(_ bytes: some Collection<UInt8>) -> ImageFormat? {
        if bytes.starts(with: pngSignature) { return .png }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
        if bytes.starts(with: [0xFF, 0x0A]) || bytes.starts(with: jxlContainerSignature) { return .jxl }
        return nil
    }

    /// The most bytes `detect` looks at.
    public static let signatureLength = 12

    public var mediaType: String {
        switch self {
        case .png: "image/png"
        case .jpeg: "image/jpeg"
        case .jxl: "image/jxl"
        }
    }

    /// The format's name for people ("PNG", "JPEG", "JPEG XL").
    public var displayName: String {
        switch self {
        case .png: "PNG"
        case .jpeg: "JPEG"
        case .jxl: "JPEG XL"
        }
    }

    /// The file name extension for this format.
    public var fileExtension: String {
        switch self {
        case .png: ".png"
        case .jpeg: ".jpg"
        case .jxl: ".jxl"
        }
    }
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
