import CImageCodecs
import FoundationEssentials
import Glibc
import SecmailCrypto

/// The C boundary of the image pipeline: libpng, libjpeg-turbo, libdeflate, zopfli, zlib and libjxl through CImageCodecs.
/// The only file of this module that imports a C module or touches unsafe pointers.
enum ImageCodecs {
    /// Nil once libpng, libjpeg-turbo, libdeflate, zopfli and zlib are loaded (on first use, for
    /// the whole process: CImageCodecs' libraries.h says why), else the loader's reason.
    private static let librariesMissing: String? = {
        var message = [CChar](repeating: 0, count: 512)
        let loaded = message.withUnsafeMutableBufferPointer { smimg_libraries_load($0.baseAddress, $0.count) } != 0
        return loaded ? nil : text(of: message)
    }()

    /// Loads the image libraries, or throws why they cannot be. Every function here that calls
    /// into them starts with this.
    static func loadLibraries() throws {
        if let reason = librariesMissing {
            throw ImageError(.librariesMissing, "the image libraries could not be loaded (\(reason)); "
                             + "install libpng16-16, libjpeg62-turbo, libdeflate0, libzopfli1 and zlib1g")
        }
    }

    /// Decodes a PNG or JPEG file into canonical RGBA.
    static func decode(_ bytes: [UInt8], format: ImageFormat, limits: ImageLimits) throws -> RGBAImage {
        try loadLibraries()
        var cLimits = smimgLimits(limits)
        var image = smimg_image()
        var message = [CChar](repeating: 0, count: 256)
        var bounds = jxlBounds
        var unusedJPEG: UnsafeMutablePointer<UInt8>?
        var unusedJPEGSize = 0
        let status = bytes.withUnsafeBufferPointer { input in
            message.withUnsafeMutableBufferPointer { text in
                switch format {
                case .png: smimg_png_decode(input.baseAddress, input.count, &cLimits, &image, text.baseAddress, text.count)
                case .jpeg: smimg_jpeg_decode(input.baseAddress, input.count, &cLimits, &image, text.baseAddress, text.count)
                case .jxl: smimg_jxl_decode(input.baseAddress, input.count, &cLimits, &bounds, 0, &image, &unusedJPEG, &unusedJPEGSize,
                                            text.baseAddress, text.count)
                }
            }
        }
        defer { smimg_image_free(&image) }
        try throwIfDecodingFailed(status, format: format, message: message)
        let samples = Array(UnsafeBufferPointer(start: image.pixels, count: image.pixels_size))
        var rendering = RenderingInfo()
        if let profile = image.icc_profile, image.icc_profile_size > 0 {
            rendering.iccProfile = Array(UnsafeBufferPointer(start: profile, count: image.icc_profile_size))
        }
        if image.srgb_intent >= 0 { rendering.srgbIntent = UInt8(clamping: image.srgb_intent) }
        if image.gamma > 0 { rendering.gamma = image.gamma }
        if image.has_chrm != 0 {
            let c = image.chrm
            rendering.chromaticities = [c.0, c.1, c.2, c.3, c.4, c.5, c.6, c.7]
        }
        if format == .png {
            // libpng fills in gAMA, cHRM and sRGB from an sRGB chunk or a profile it recognises;
            // the image carries what the file says, so an optimised file adds no chunk.
            let present = PNGChunkReader.typesBeforeImageData(of: bytes)
            if !present.contains("gAMA") { rendering.gamma = nil }
            if !present.contains("cHRM") { rendering.chromaticities = nil }
            if !present.contains("sRGB") { rendering.srgbIntent = nil }
        }
        var orientation: UInt16?
        if let exif = image.exif, image.exif_size > 0 {
            orientation = ExifOrientation.read(Array(UnsafeBufferPointer(start: exif, count: image.exif_size)))
        }
        if let box = image.rendering_box {
            (rendering, orientation) = try JXLRenderingBox.decode(Array(UnsafeBufferPointer(start: box, count: image.rendering_box_size)))
        }
        let description = switch format {
        case .png: "PNG \(PNGColorType(rawValue: UInt8(image.source_color_type))?.name ?? "?") \(image.source_bit_depth)-bit\(image.source_interlaced != 0 ? " interlaced" : "")"
        case .jpeg: "JPEG \(image.source_color_type == 1 ? "greyscale" : "colour")\(image.source_interlaced != 0 ? " progressive" : " baseline")"
        case .jxl: "JPEG XL \(image.source_color_type == 1 ? "grey" : "colour") \(image.source_bit_depth)-bit"
        }
        return RGBAImage(width: Int(image.width), height: Int(image.height), bitDepth: Int(image.bit_depth), samples: samples,
                         rendering: rendering, orientation: orientation, sourceDescription: description)
    }

    /// A JPEG's width and height from its headers (nothing decoded), or nil when libjpeg cannot read them.
    static func jpegSize(_ bytes: [UInt8]) throws -> (width: Int, height: Int)? {
        try loadLibraries()
        var width: UInt32 = 0, height: UInt32 = 0
        let status = bytes.withUnsafeBufferPointer { smimg_jpeg_size($0.baseAddress, $0.count, &width, &height) }
        return status == SMIMG_OK ? (Int(width), Int(height)) : nil
    }

    /// Whether an image of this size is within `limits`: the decoders' own rule.
    static func admits(_ limits: ImageLimits, width: Int, height: Int) -> Bool {
        var cLimits = smimgLimits(limits)
        return smimg_within_limits(&cLimits, UInt64(width), UInt64(height)) != 0
    }

    /// The error for a decoder's failure status, if it is one.
    private static func throwIfDecodingFailed(_ status: Int32, format: ImageFormat, message: [CChar]) throws {
        let reason = text(of: message)
        let kind = format.displayName
        switch Int(status) {
        case Int(SMIMG_OK): return
        case Int(SMIMG_TOO_LARGE): throw ImageError(.tooLarge, "the \(kind) image is too large: \(reason)")
        case Int(SMIMG_UNSUPPORTED): throw ImageError(.unsupported, reason)
        case Int(SMIMG_NO_MEMORY): throw ImageError(.outOfMemory, "not enough memory to decode the \(kind) image")
        default: throw ImageError(.corrupt, "the \(kind) image is damaged: \(reason)")
        }
    }

    /// Whether `png` decodes, by libpng, to exactly `image`'s pixels (an 8-bit sample v equals
    /// the 16-bit sample v·257), compared row by row as libpng gives them: no copy of the image
    /// is made. Throws what `decode` would for a PNG libpng cannot decode.
    static func pngDecodes(_ png: [UInt8], toPixelsOf image: RGBAImage, limits: ImageLimits) throws -> Bool {
        try loadLibraries()
        var cLimits = smimgLimits(limits)
        var same: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = png.withUnsafeBufferPointer { input in
            image.samples.withUnsafeBufferPointer { expected in
                message.withUnsafeMutableBufferPointer { text in
                    smimg_png_matches(input.baseAddress, input.count, &cLimits, expected.baseAddress, UInt32(image.width),
                                      UInt32(image.height), UInt32(image.bitDepth), &same, text.baseAddress, text.count)
                }
            }
        }
        try throwIfDecodingFailed(status, format: .png, message: message)
        return same != 0
    }

    /// PNG-filters raw scanlines: filter 0-4 for every row, or a per-row heuristic (`PNGFilter`).
    static func filter(_ raw: [UInt8], height: Int, rowBytes: Int, bytesPerPixel: Int, filter: PNGFilter) throws -> [UInt8] {
        try loadLibraries()
        var status = Int32(SMIMG_OK)
        // Every byte is written by the filter: no zero-filling first.
        let out = [UInt8](unsafeUninitializedCapacity: height * (rowBytes + 1)) { output, count in
            status = raw.withUnsafeBufferPointer { input in
                smimg_png_filter(input.baseAddress, height, rowBytes, bytesPerPixel, Int32(filter.rawValue), output.baseAddress)
            }
            count = status == SMIMG_OK ? output.count : 0
        }
        guard status == SMIMG_OK else { throw ImageError(.outOfMemory, "not enough memory to filter the image") }
        return out
    }

    /// The samples of `channels` (0 red or grey, 1 green, 2 blue, 3 alpha) of every pixel of
    /// `image`, in order, with `outputBitDepth` bits a sample (8 from a 16-bit image only when its
    /// samples are all v·257: the high byte is kept).
    static func gather(_ image: RGBAImage, channels: [UInt8], outputBitDepth: Int) -> [UInt8] {
        let outSampleBytes = outputBitDepth / 8
        // Every byte is written by the gather: no zero-filling first.
        return [UInt8](unsafeUninitializedCapacity: image.pixelCount * channels.count * outSampleBytes) { output, count in
            image.samples.withUnsafeBufferPointer { samples in
                channels.withUnsafeBufferPointer { channelList in
                    smimg_gather_channels(samples.baseAddress, image.pixelCount, image.bitDepth / 8, channelList.baseAddress,
                                          channelList.count, outSampleBytes, output.baseAddress)
                }
            }
            count = output.count
        }
    }

    /// Whether every 16-bit sample of `image` is v·257 (always for 8-bit samples), every pixel
    /// opaque, every pixel grey: one pass in C.
    static func sampleFacts(of image: RGBAImage) -> (fitsEightBits: Bool, isOpaque: Bool, isGrey: Bool) {
        var facts = smimg_sample_facts_result()
        image.samples.withUnsafeBufferPointer { smimg_sample_facts($0.baseAddress, image.pixelCount, image.bitDepth / 8, &facts) }
        return (facts.fits_eight_bits != 0, facts.opaque != 0, facts.grey != 0)
    }

    /// The DEFLATE stream kinds: zlib (PNG) or bare (attachments).
    enum StreamFormat {
        case zlib, raw

        var code: Int32 { self == .zlib ? Int32(SMIMG_ZLIB) : Int32(SMIMG_RAW_DEFLATE) }
    }

    /// libdeflate's stream of `data` (from `start` on) at `level` (1-12), or nil when it does not
    /// fit in `limit` bytes.
    static func deflate(_ data: [UInt8], from start: Int = 0, level: Int, format: StreamFormat = .zlib, limit: Int) throws -> [UInt8]? {
        try compressed(capacity: limit) { output, size in
            data.withUnsafeBufferPointer { input in
                smimg_deflate(input.baseAddress.map { $0 + start }, input.count - start, Int32(level), format.code, output.baseAddress,
                              output.count, &size)
            }
        }
    }

    /// The stream a C compressor writes into room for `capacity` bytes (of which only the pages
    /// the stream reaches are ever touched), or nil when it did not fit.
    private static func compressed(capacity: Int,
                                   _ compress: (UnsafeMutableBufferPointer<UInt8>, inout Int) -> Int32) throws -> [UInt8]? {
        try loadLibraries()
        var status = Int32(SMIMG_OK)
        let out = [UInt8](unsafeUninitializedCapacity: max(capacity, 0)) { output, count in
            var size = 0
            status = compress(output, &size)
            count = status == SMIMG_OK ? size : 0
        }
        switch Int(status) {
        case Int(SMIMG_OK):
            return out
        case Int(SMIMG_EXCEEDED):
            return nil
        case Int(SMIMG_ERROR):
            // Only a compressor's own output is ever reworked (`smimg_deflate_unfinish`).
            throw ImageError(.corrupt, "a compressed stream could not be joined to the next")
        default:
            throw ImageError(.outOfMemory, "not enough memory to compress")
        }
    }

    /// A zlib stream of `data` made on two cores: libdeflate compresses the leading part (a
    /// fraction `leadingShare` of the bytes) and the rest at once, each on its own at `level`; the
    /// leading part is then opened for more (`smimg_deflate_unfinish`: its final-block bit cleared,
    /// an empty stored block appended) and the two joined. The second part refers to nothing in
    /// the first, which costs little on parts of a megabyte or more. Finding the leading part's
    /// last block means walking its blocks (zlib's inflate, a few hundred MB/s), a noticeable
    /// share of the fast levels' time, so there the leading part is the smaller one (by default
    /// 30% below level 10: an up-filtered 4-megapixel photograph converted for a reader in the
    /// time zlib's level 1 took for the leading part, with 2.8% fewer bytes) and at the slow
    /// levels half. Nil when a part does not fit in its bound.
    static func deflateOnTwoCores(_ data: [UInt8], level: Int, leadingShare: Double? = nil) throws -> [UInt8]? {
        let leadingShare = leadingShare ?? (level < 10 ? 0.3 : 0.5)
        let split = Int(Double(data.count) * leadingShare)
        let (final, leading) = try concurrently({
            try deflate(data, from: split, level: level, format: .raw, limit: bound(data.count - split))
        }, {
            try leadingPart(data, upTo: split, level: level)
        })
        guard let final, let leading else { return nil }
        // The zlib header of a fastest-level stream (RFC 1950: CMF 0x78, FLEVEL 0, FCHECK making
        // it a multiple of 31), the parts, and the Adler-32 of all the data.
        let adler = adler32(data)
        return [0x78, 0x01] + leading + final + (0..<4).map { UInt8(truncatingIfNeeded: adler >> (24 - 8 * $0)) }
    }

    /// libdeflate's bare DEFLATE of `data[..<end]`, made the leading part of a longer stream.
    private static func leadingPart(_ data: [UInt8], upTo end: Int, level: Int) throws -> [UInt8]? {
        let unfinishRoom = 5
        return try compressed(capacity: bound(end) + unfinishRoom) { output, size in
            let status = data.withUnsafeBufferPointer { input in
                smimg_deflate(input.baseAddress, end, Int32(level), Int32(SMIMG_RAW_DEFLATE), output.baseAddress,
                              output.count - unfinishRoom, &size)
            }
            guard status == SMIMG_OK else { return status }
            return smimg_deflate_unfinish(output.baseAddress, size, output.count, &size)
        }
    }

    /// Room for any DEFLATE stream of `size` bytes (stored blocks cost 5 bytes per 64 KiB).
    static func bound(_ size: Int) -> Int { size + size / 100 + 1024 }

    /// zopfli's zlib stream of `data`, `iterations` passes of its optimal parser.
    static func zopfli(_ data: [UInt8], iterations: Int) throws -> [UInt8] {
        try loadLibraries()
        var result: UnsafeMutablePointer<UInt8>?
        var size = 0
        let status = data.withUnsafeBufferPointer { smimg_zopfli($0.baseAddress, $0.count, Int32(iterations), &result, &size) }
        guard status == SMIMG_OK, let result else { throw ImageError(.outOfMemory, "not enough memory to compress") }
        defer { smimg_free(result) }
        return Array(UnsafeBufferPointer(start: result, count: size))
    }

    /// Decompresses a stream that must give exactly `expectedSize` bytes: nothing past that bound
    /// is ever produced (decompression bombs stop there), and a stream that ends early, goes on,
    /// or is damaged is refused.
    static func inflate(_ data: [UInt8], format: StreamFormat, expectedSize: Int) throws -> [UInt8] {
        try loadLibraries()
        var status = Int32(SMIMG_OK)
        // Filled whole on success; nothing of it is kept otherwise.
        let out = [UInt8](unsafeUninitializedCapacity: expectedSize) { output, count in
            status = data.withUnsafeBufferPointer { input in
                smimg_inflate(input.baseAddress, input.count, format.code, output.baseAddress, expectedSize)
            }
            count = status == SMIMG_OK ? expectedSize : 0
        }
        switch Int(status) {
        case Int(SMIMG_OK): return out
        case Int(SMIMG_EXCEEDED): throw ImageError(.corrupt, "the compressed data decompresses to more than the \(expectedSize) bytes it declares")
        case Int(SMIMG_NO_MEMORY): throw ImageError(.outOfMemory, "not enough memory to decompress")
        default: throw ImageError(.corrupt, "the compressed data is damaged, or decompresses to fewer than the \(expectedSize) bytes it declares")
        }
    }

    /// libjxl's memory and threads: 1 GiB at most (encoding 4 megapixels at effort 7 takes about
    /// 400 MB), on the machine's cores up to four.
    static var jxlBounds: smimg_jxl_bounds {
        smimg_jxl_bounds(memory_bytes: 1 << 30, threads: min(4, max(1, ProcessInfo.processInfo.activeProcessorCount)))
    }

    /// Takes a malloc'd buffer from C, or throws for its status.
    private static func taken(_ status: Int32, _ pointer: UnsafeMutablePointer<UInt8>?, _ count: Int, doing what: String) throws -> [UInt8] {
        defer { smimg_free(pointer) }
        switch Int(status) {
        case Int(SMIMG_OK):
            guard let pointer else { throw ImageError(.outOfMemory, "\(what) gave nothing") }
            return Array(UnsafeBufferPointer(start: pointer, count: count))
        case Int(SMIMG_UNSUPPORTED): throw ImageError(.unsupported, "\(what) is not possible for this image")
        case Int(SMIMG_NO_MEMORY), Int(SMIMG_TOO_LARGE): throw ImageError(.outOfMemory, "\(what) needs more memory than allowed")
        default: throw ImageError(.corrupt, "\(what) failed")
        }
    }

    /// Loads libjxl (once); false when it is not installed.
    static func loadJXL() -> Bool {
        smimg_jxl_load() != 0
    }

    /// The JPEG XL recompression of a JPEG file: same pixels, and the JPEG comes back bit for bit.
    static func jxl(fromJPEG jpeg: [UInt8], effort: Int, chromaFromLuma: Bool) throws -> [UInt8] {
        var bounds = jxlBounds
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        let status = jpeg.withUnsafeBufferPointer {
            smimg_jxl_from_jpeg($0.baseAddress, $0.count, &bounds, Int32(effort), chromaFromLuma ? 1 : 0, &out, &size)
        }
        return try taken(status, out, size, doing: "JPEG XL recompression")
    }

    /// Lossless JPEG XL of `samples` (`channels` interleaved samples a pixel, 8 or 16 bits), with
    /// `renderingBox` (JXLRenderingBox) when there is one.
    static func jxl(samples: [UInt8], width: Int, height: Int, bitDepth: Int, channels: Int, renderingBox: [UInt8]?,
                    coding: JXLPixelCoding) throws -> [UInt8] {
        var bounds = jxlBounds
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        let box = renderingBox ?? []
        let status = samples.withUnsafeBufferPointer { pixels in
            box.withUnsafeBufferPointer {
                smimg_jxl_encode_pixels(pixels.baseAddress, UInt32(width), UInt32(height), UInt32(bitDepth), UInt32(channels),
                                        $0.baseAddress, $0.count, &bounds, Int32(coding.effort), coding.patches ? 1 : 0,
                                        Int32(coding.learningPercent), &out, &size)
            }
        }
        return try taken(status, out, size, doing: "JPEG XL coding")
    }

    /// The JPEG a JPEG XL stream was recompressed from, bit for bit.
    static func jpeg(reconstructedFrom jxl: [UInt8], limits: ImageLimits) throws -> [UInt8] {
        var cLimits = smimgLimits(limits)
        var bounds = jxlBounds
        var image = smimg_image()
        defer { smimg_image_free(&image) }
        var jpeg: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = jxl.withUnsafeBufferPointer { input in
            message.withUnsafeMutableBufferPointer { text in
                smimg_jxl_decode(input.baseAddress, input.count, &cLimits, &bounds, 1, &image, &jpeg, &size, text.baseAddress, text.count)
            }
        }
        let reason = text(of: message)
        switch Int(status) {
        case Int(SMIMG_OK): return try taken(status, jpeg, size, doing: "JPEG reconstruction")
        case Int(SMIMG_UNSUPPORTED): throw ImageError(.unsupported, "the JPEG XL image cannot give back a JPEG: \(reason)")
        case Int(SMIMG_TOO_LARGE): throw ImageError(.tooLarge, "the JPEG XL image is too large: \(reason)")
        case Int(SMIMG_NO_MEMORY): throw ImageError(.outOfMemory, "not enough memory to decode the JPEG XL image")
        default: throw ImageError(.corrupt, "the JPEG XL image is damaged: \(reason)")
        }
    }

    /// The C form of `limits`.
    private static func smimgLimits(_ limits: ImageLimits) -> smimg_limits {
        smimg_limits(max_width: UInt32(clamping: limits.maxWidth), max_height: UInt32(clamping: limits.maxHeight),
                     max_pixels: UInt64(clamping: limits.maxPixels))
    }

    /// The message a C call wrote into `buffer` (NUL-terminated).
    private static func text(of buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether two images of one size hold the same samples (`RGBAImage.hasSamePixels`), in C:
    /// memcmp when their depths agree (pixels are compared after every encode; a Swift loop took
    /// several milliseconds a megapixel).
    static func sameSamples(_ a: RGBAImage, _ b: RGBAImage) -> Bool {
        a.samples.withUnsafeBufferPointer { x in
            b.samples.withUnsafeBufferPointer { y in
                smimg_same_samples(x.baseAddress, UInt32(a.bitDepth), y.baseAddress, UInt32(b.bitDepth), a.pixelCount * 4) != 0
            }
        }
    }

    /// The CRC-32 and Adler-32 of `bytes`, by libdeflate. They are taken only of what the
    /// libraries gave or are about to be given (a decoded image's profile, a PNG's chunks beside
    /// its compressed data), so the libraries were loaded before; missing, they stop the program.
    static func crc32(_ bytes: ArraySlice<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
        precondition(librariesMissing == nil, librariesMissing ?? "")
        return bytes.withUnsafeBufferPointer { smimg_crc32(crc, $0.baseAddress, $0.count) }
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        precondition(librariesMissing == nil, librariesMissing ?? "")
        return bytes.withUnsafeBufferPointer { smimg_adler32(1, $0.baseAddress, $0.count) }
    }
}
