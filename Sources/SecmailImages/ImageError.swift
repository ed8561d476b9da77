/// The one error type of `SecmailImages`.
public struct ImageError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// Not a PNG or JPEG file (by its first bytes).
        case unknownFormat
        /// Malformed, truncated or corrupt image data.
        case corrupt
        /// Beyond the limits on width, height or pixel count (a decompression bomb, say).
        case tooLarge
        /// A valid image this pipeline does not handle (CMYK JPEG).
        case unsupported
        /// An optimised form did not decode to the very same pixels; it is never used.
        case pixelMismatch
        case outOfMemory
        /// libpng, libjpeg-turbo, libdeflate, zopfli or zlib is not installed.
        case librariesMissing
    }

    public let code: Code
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { reason }
}
