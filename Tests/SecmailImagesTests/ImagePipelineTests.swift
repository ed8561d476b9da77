import Foundation
@testable import SecmailImages
import SecmailTestSupport
import Testing

@Suite(.threadsOfTheirOwn) struct PNGPipelineTests {
    /// Every PNG colour type and bit depth, plain and interlaced, with and without tRNS.
    static var generatedSet: [(String, TestPNG)] {
        var set: [(String, TestPNG)] = []
        let kinds: [(UInt8, [Int])] = [(0, [1, 2, 4, 8, 16]), (2, [8, 16]), (3, [1, 2, 4, 8]), (4, [8, 16]), (6, [8, 16])]
        for (colorType, depths) in kinds {
            for depth in depths {
                for interlaced in [false, true] {
                    let maximum = (1 << depth) - 1
                    var png = TestPNG(width: 13, height: 11, colorType: colorType, bitDepth: depth, interlaced: interlaced) { x, y, c in
                        colorType == 3 ? (x + 2 * y) % (maximum + 1) : (x * 37 + y * 101 + c * 59) % (maximum + 1)
                    }
                    if colorType == 3 {
                        png.palette = (0...maximum).map { (UInt8($0 * 255 / maximum), UInt8(255 - $0 * 255 / maximum), UInt8($0 * 7 & 0xFF)) }
                    }
                    set.append(("type \(colorType) \(depth)-bit\(interlaced ? " Adam7" : "")", png))
                    if colorType == 0 || colorType == 2 || colorType == 3 {
                        var keyed = png
                        keyed.transparency = colorType == 3 ? [0, 128] : colorType == 0 ? [png.sample(0, 0, 0)] : (0..<3).map { png.sample(0, 0, $0) }
                        set.append(("type \(colorType) \(depth)-bit\(interlaced ? " Adam7" : "") tRNS", keyed))
                    }
                }
            }
        }
        return set
    }

    @Test func everyColourTypeDepthAndInterlaceDecodesAndOptimisesToTheSamePixels() throws {
        let pngfixFolder = try makeTemporaryDirectory("pngfix")
        for (label, png) in Self.generatedSet {
            let pipeline = ImagePipeline(effort: .normal)
            let (format, decoded) = try pipeline.decode(png.encoded)
            #expect(format == .png)
            #expect(decoded.hasSamePixels(as: png.expected), "decoding \(label)")
            let optimized = try pipeline.optimizedPNG(png.encoded).png
            let again = try pipeline.decode(optimized.bytes).image
            #expect(again.hasSamePixels(as: png.expected), "optimising \(label) (\(optimized.method))")
            #expect(optimized.bytes.count < png.encoded.count, "\(label): \(optimized.bytes.count) vs \(png.encoded.count)")
            // libpng's own checker finds nothing wrong with the output.
            let file = pngfixFolder.appendingPathComponent("out.png")
            try Data(optimized.bytes).write(to: file)
            let check = try run("pngfix", [file.path])
            #expect(check.status == 0, "pngfix on \(label): \(check.text) \(check.stderr)")
        }
    }

    @Test func everyFilterAndDeflaterOnEveryLayoutGivesBackThePixels() throws {
        for (label, png) in Self.generatedSet {
            let image = try ImagePipeline().decode(png.encoded).image
            for layout in PNGLayout.candidates(for: image) {
                let raw = layout.pack(image)
                for filter in PNGFilter.allCases {
                    let data = try ImageCodecs.filter(raw, height: image.height, rowBytes: layout.rowBytes(width: image.width),
                                                      bytesPerPixel: layout.filterBytesPerPixel, filter: filter)
                    let streams = [try #require(try ImageCodecs.deflate(data, level: 1, limit: data.count + 1024)),
                                   try #require(try ImageCodecs.deflate(data, level: 12, limit: data.count + 1024)),
                                   try ImageCodecs.zopfli(data, iterations: 2)]
                    for idat in streams {
                        let file = try PNGChunkWriter.file(width: image.width, height: image.height, layout: layout, idat: idat,
                                                           rendering: image.rendering, orientation: nil)
                        #expect(try ImagePipeline().decode(file).image.hasSamePixels(as: image), "\(label), \(layout), \(filter.name)")
                    }
                }
            }
            for effort in PNGEffort.allCases {
                let optimized = try PNGOptimizer(effort: effort).optimize(image)
                #expect(try ImagePipeline().decode(optimized.bytes).image.hasSamePixels(as: image), "\(label) at \(effort)")
            }
        }
    }

    /// Level 3 ranks every filter, both brute forces included, at libdeflate 12 and gives the
    /// best two to zopfli: an image with one layout (thousands of colours) makes 10 + 2 trials.
    @Test func theThoroughLevelTriesBothBruteForcesThenZopfliOnTheBestTwo() throws {
        var random = SystemRandomNumberGenerator()
        let (width, height) = (48, 40)
        let samples = (0..<width * height).flatMap { index -> [UInt8] in
            let (x, y) = (index % width, index / width)
            return [UInt8(x * 5), UInt8(y * 6), UInt8.random(in: 0...255, using: &random), UInt8(128 + x)]
        }
        let image = RGBAImage(width: width, height: height, bitDepth: 8, samples: samples)
        #expect(PNGLayout.candidates(for: image).count == 1)
        #expect(PNGFilter.allCases.contains(.quickBrute) && PNGFilter.allCases.contains(.brute))
        let optimized = try PNGOptimizer(effort: .thorough).optimize(image)
        #expect(optimized.trials == PNGFilter.allCases.count + 2)
        #expect(optimized.method.contains("zopfli"))
        #expect(try ImagePipeline().decode(optimized.bytes).image.hasSamePixels(as: image))
    }

    /// The normal level ranks five filters quickly and compresses the runner-up too when it came
    /// within 3%, unless one core's pass would take too long: there the leader alone goes on both
    /// cores. Noise, which every filter leaves within a hair of the others and which deflates
    /// poorly (level 12), makes 5 + 2 trials below 8 MiB filtered and 5 + 1 above.
    @Test func theNormalLevelKeepsOneFinalistFromEightMebibytesAtLevelTwelve() throws {
        var random = SystemRandomNumberGenerator()
        for (width, height, finals) in [(512, 256, 2), (2048, 1366, 1)] {
            let samples = (0..<width * height).flatMap { _ -> [UInt8] in
                [UInt8.random(in: 0...255, using: &random), UInt8.random(in: 0...255, using: &random), UInt8.random(in: 0...255, using: &random), 255]
            }
            let image = RGBAImage(width: width, height: height, bitDepth: 8, samples: samples)
            let optimized = try PNGOptimizer(effort: .normal).optimize(image)
            #expect(optimized.trials == 5 + finals, "\(width)x\(height): \(optimized.method)")
            #expect(try ImagePipeline().decode(optimized.bytes).image.hasSamePixels(as: image))
        }
    }

    /// Black and white at random under a first row of many colours (RGB, no palette) deflates
    /// to a twentieth (level 11, whose pass costs more per byte) with every filter alike: the
    /// runner-up gets a core of its own below 4 MiB filtered.
    @Test func theNormalLevelKeepsOneFinalistFromFourMebibytesAtLevelEleven() throws {
        var random = SystemRandomNumberGenerator()
        for (width, height, finals) in [(512, 256, 2), (1600, 1000, 1)] {
            let firstRow: [UInt8] = (0..<width).flatMap { (x: Int) -> [UInt8] in
                let red = UInt8(x % 256), green = UInt8(x * 7 % 256), blue = UInt8(x / 256 * 40)
                return [red, green, blue, 255]
            }
            let rest = (0..<width * (height - 1)).flatMap { _ -> [UInt8] in Bool.random(using: &random) ? [0, 0, 0, 255] : [255, 255, 255, 255] }
            let image = RGBAImage(width: width, height: height, bitDepth: 8, samples: firstRow + rest)
            let optimized = try PNGOptimizer(effort: .normal).optimize(image)
            #expect(optimized.method.hasPrefix("RGB 8-bit"), "\(optimized.method)")
            #expect(optimized.method.contains("libdeflate 11"), "\(optimized.method)")
            #expect(optimized.trials == 5 + finals, "\(width)x\(height): \(optimized.method)")
            #expect(try ImagePipeline().decode(optimized.bytes).image.hasSamePixels(as: image))
        }
    }

    @Test func theOptimisersRowByRowCheckFindsAnyChangedSampleAndOnlyThat() throws {
        for (label, png) in Self.generatedSet {
            let image = try ImagePipeline().decode(png.encoded).image
            #expect(try ImageCodecs.pngDecodes(png.encoded, toPixelsOf: image, limits: .standard), "\(label)")
            // One sample changed, in the first row or the last: found, interlaced or not.
            for index in [0, image.samples.count - 1] {
                var samples = image.samples
                samples[index] ^= 1
                let changed = RGBAImage(width: image.width, height: image.height, bitDepth: image.bitDepth, samples: samples)
                #expect(try !ImageCodecs.pngDecodes(png.encoded, toPixelsOf: changed, limits: .standard), "\(label), sample \(index)")
            }
            // Another size is another image.
            let taller = RGBAImage(width: image.width, height: image.height + 1, bitDepth: image.bitDepth,
                                   samples: image.samples + Array(image.samples.prefix(image.width * 4 * image.bitDepth / 8)))
            #expect(try !ImageCodecs.pngDecodes(png.encoded, toPixelsOf: taller, limits: .standard), "\(label)")
            // An 8-bit file holds a 16-bit image whose samples are all v·257 exactly.
            if image.bitDepth == 8 {
                let wide = RGBAImage(width: image.width, height: image.height, bitDepth: 16, samples: image.samples.flatMap { [$0, $0] })
                #expect(try ImageCodecs.pngDecodes(png.encoded, toPixelsOf: wide, limits: .standard), "\(label) as 16-bit")
                var off = wide.samples
                off[off.count - 1] ^= 1
                let almost = RGBAImage(width: image.width, height: image.height, bitDepth: 16, samples: off)
                #expect(try !ImageCodecs.pngDecodes(png.encoded, toPixelsOf: almost, limits: .standard), "\(label) as 16-bit, one low byte off")
            }
        }
        var damaged = PNGPipelineTests.generatedSet[0].1.encoded
        damaged[damaged.count - 20] ^= 0xFF
        let image = try ImagePipeline().decode(PNGPipelineTests.generatedSet[0].1.encoded).image
        #expect { try ImageCodecs.pngDecodes(damaged, toPixelsOf: image, limits: .standard) } throws: { ($0 as? ImageError)?.code == .corrupt }
    }

    @Test func compressedStreamsComeBackOnlyAtTheirDeclaredSize() throws {
        let text = Array(String(repeating: "secmail compresses what compresses ", count: 300).utf8)
        let stream = try #require(try ImageCodecs.deflate(text, level: 9, format: .raw, limit: text.count))
        #expect(try ImageCodecs.inflate(stream, format: .raw, expectedSize: text.count) == text)
        // A bomb stops at the declared size; a short stream, trailing bytes and damage are refused.
        #expect((#expect(throws: ImageError.self) { try ImageCodecs.inflate(stream, format: .raw, expectedSize: text.count - 1) })?.code == .corrupt)
        #expect((#expect(throws: ImageError.self) { try ImageCodecs.inflate(stream, format: .raw, expectedSize: text.count + 1) })?.code == .corrupt)
        #expect((#expect(throws: ImageError.self) { try ImageCodecs.inflate(stream + [0], format: .raw, expectedSize: text.count) })?.code == .corrupt)
        var damaged = stream
        damaged[damaged.count / 2] ^= 0x55
        #expect(throws: ImageError.self) { try ImageCodecs.inflate(damaged, format: .raw, expectedSize: text.count) }
        #expect(throws: ImageError.self) { try ImageCodecs.inflate(Array(stream.prefix(stream.count / 2)), format: .raw, expectedSize: text.count) }
    }

    @Test func aStreamMadeOnTwoCoresIsOneZlibStreamOfAllTheData() throws {
        // Text that repeats across the split (the second part may not refer back into the first)
        // between runs of noise, 2 MiB: the leading part ends mid-pattern.
        var generator = SystemRandomNumberGenerator()
        var data: [UInt8] = []
        while data.count < 2 << 20 {
            data += Array("secmail compresses what compresses, \(data.count % 977) ".utf8)
            data += (0..<61).map { _ in UInt8.random(in: 0...255, using: &generator) }
        }
        // The leading part is libdeflate's own stream reopened: its final block (Huffman-coded,
        // or stored where libdeflate stores noise) no longer ends the stream, whatever the split
        // (empty parts included) and whichever level, the slow ones' even split too.
        let noise = (0..<300_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for (input, level, share) in [(data, 1, 0.0), (data, 1, 0.3), (data, 1, 0.999), (data, 1, 1.0), (data, 12, nil),
                                      (noise, 1, 0.5), (noise, 12, 0.0001), (Array(data.prefix(10)), 6, 0.5)] {
            let stream = try #require(try ImageCodecs.deflateOnTwoCores(input, level: level, leadingShare: share))
            // libdeflate reads it whole, checking the Adler-32 of all the data against the trailer.
            #expect(try ImageCodecs.inflate(stream, format: .zlib, expectedSize: input.count) == input)
            if input == data { #expect(stream.count < data.count) }
        }
        // The reader's conversion of a large photograph uses it, and libpng gives back the pixels.
        let image = RGBAImage(width: 800, height: 600, bitDepth: 8, samples: (0..<800 * 600).flatMap { index -> [UInt8] in
            let x = index % 800, y = index / 800
            return [UInt8(truncatingIfNeeded: x * 3 + y), UInt8(truncatingIfNeeded: y * 5 ^ x), UInt8.random(in: 0...3, using: &generator) &+ UInt8(truncatingIfNeeded: x), 255]
        })
        let png = try PNGOptimizer(effort: .conversion, isDecodedJPEG: true).optimize(image)
        #expect(png.method.contains("two cores") && png.trials == 1)
        #expect(try ImagePipeline().decode(png.bytes).image.hasSamePixels(as: image))
        // So does the normal level's final pass when one filter leads the rest by far.
        let normal = try PNGOptimizer(effort: .normal).optimize(image)
        #expect(normal.method.contains("libdeflate 1") && normal.method.contains("on two cores"))
        #expect(try ImagePipeline().decode(normal.bytes).image.hasSamePixels(as: image))
    }

    @Test func attachmentsAreCompressedOnlyWhenItSavesFivePerCentAndInflateOnlyToTheirLength() throws {
        let text = Array((0..<3000).map { "row \($0 % 17), column \($0 % 5)\n" }.joined().utf8)
        let stored = try #require(try AttachmentCompression.compress(text))
        #expect(stored.count < text.count / 4)
        #expect(try AttachmentCompression.decompress(stored) == text)
        // Random bytes do not shrink; nor does a large file whose middle does not (judged by a sample).
        var generator = SystemRandomNumberGenerator()
        let noise = (0..<100_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        #expect(try AttachmentCompression.compress(noise) == nil)
        // Over 1 MiB the middle 256 KiB decide: compressible text around noise is sent as it is
        // (the sample said no), text alone is compressed.
        let bulk = Array(repeating: text, count: 24).flatMap { $0 }
        #expect(bulk.count > 1 << 20)
        #expect(try AttachmentCompression.compress(bulk + noise + noise + noise + bulk) == nil)
        #expect(try AttachmentCompression.compress(bulk + bulk).map { try AttachmentCompression.decompress($0) } == bulk + bulk)
        #expect(try AttachmentCompression.compress(Array(repeating: 7, count: 10)) == nil)  // too small to bother
        // The declared length bounds everything: beyond 64 MiB, beyond what the stream can hold.
        func length(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
        let stream = Array(stored.dropFirst(8))
        #expect((#expect(throws: ImageError.self) { try AttachmentCompression.decompress(length(65 << 20) + stream) })?.code == .tooLarge)
        #expect((#expect(throws: ImageError.self) { try AttachmentCompression.decompress(length(UInt64(stream.count) * 1033) + stream) })?.code == .corrupt)
        #expect((#expect(throws: ImageError.self) { try AttachmentCompression.decompress(Array(stored.prefix(5))) })?.code == .corrupt)
    }

    @Test func coloursAndDepthsAreReducedOnlyWhenNoPixelChanges() throws {
        let pipeline = ImagePipeline()
        func optimized(_ png: TestPNG) throws -> [UInt8] {
            let bytes = try pipeline.optimizedPNG(png.encoded).png.bytes
            #expect(try pipeline.decode(bytes).image.hasSamePixels(as: png.expected))
            return bytes
        }
        // 16-bit samples that are all v·257 fit in 8 bits; opaque RGBA loses its alpha.
        let exact16 = TestPNG(width: 40, height: 30, colorType: 6, bitDepth: 16) { x, y, c in c == 3 ? 65535 : ((x * 3 + y * 5 + c * 40) % 256) * 257 }
        #expect(ihdr(try optimized(exact16)) == (2, 8))
        // One sample off by one must stay 16-bit.
        let inexact16 = TestPNG(width: 40, height: 30, colorType: 2, bitDepth: 16) { x, y, c in
            x == 7 && y == 3 && c == 1 ? 1000 : ((x * 3 + y * 5 + c * 40) % 256) * 257
        }
        #expect(ihdr(try optimized(inexact16)).bitDepth == 16)
        // Grey stored as RGB becomes grey; grey values that are multiples of 85 need only 2 bits.
        let greyRGB = TestPNG(width: 64, height: 64, colorType: 2, bitDepth: 8) { x, y, _ in ((x / 8 + y / 8) % 4) * 85 }
        #expect(ihdr(try optimized(greyRGB)) == (0, 2))
        // Two colours: a 1-bit palette. A translucent pixel keeps its alpha through tRNS.
        let twoColours = TestPNG(width: 50, height: 50, colorType: 6, bitDepth: 8) { x, y, c in
            (x + y) % 2 == 0 ? [200, 10, 10, 255][c] : [0, 0, 255, 100][c]
        }
        let palette = try optimized(twoColours)
        #expect(ihdr(palette) == (3, 1))
        #expect(chunkTypes(palette).contains("tRNS"))
        // Many colours stay truecolour.
        let many = TestPNG(width: 64, height: 64, colorType: 2, bitDepth: 8) { x, y, c in (x * 4 + y * 64 * c + y) % 256 }
        #expect(ihdr(try optimized(many)) == (2, 8))
    }

    @Test func metadataIsDroppedAndRenderingInformationKept() throws {
        var png = TestPNG(width: 30, height: 20, colorType: 2, bitDepth: 8) { x, y, c in (x * 8 + y * 3 + c) % 256 }
        let exif = ExifOrientation.block(6)
        png.extraChunks = [
            ("tEXt", Array("Author\0Someone Private".utf8)), ("tIME", [0x07, 0xE9, 1, 2, 3, 4, 5]),
            ("gAMA", be32(45455)), ("sRGB", [0]), ("pHYs", be32(2835) + be32(2835) + [1]),
            ("eXIf", exif + Array("GPS 51.5N 0.1W".utf8)),
        ]
        let out = try ImagePipeline().optimizedPNG(png.encoded).png.bytes
        let types = chunkTypes(out)
        #expect(!types.contains("tEXt") && !types.contains("tIME") && !types.contains("pHYs"))
        #expect(types.contains("gAMA") && types.contains("sRGB"))
        #expect(!String(decoding: out, as: UTF8.self).contains("Someone Private"))
        #expect(!String(decoding: out, as: UTF8.self).contains("GPS"))
        // The orientation survives in a minimal eXIf of its own.
        #expect(types.contains("eXIf"))
        #expect(try ImagePipeline().decode(out).image.orientation == 6)
    }

    /// An animated PNG (APNG): libpng shows its first frame alone, so neither an optimised PNG
    /// nor JPEG XL may stand for it (before, the other frames were lost without a word). It
    /// travels as it came but for its metadata, every frame chunk byte for byte, and reaches the
    /// reader as it is; `image optimize` refuses it. An `acTL` after the image data animates
    /// nothing (APNG decoders ignore it) and goes with the other metadata.
    @Test func anAnimatedPNGTravelsWithEveryFrameAndWithoutItsMetadata() throws {
        let still = TestPNG(width: 16, height: 8, colorType: 6, bitDepth: 8) { x, y, c in c == 3 ? 255 : (x * 16 + y * 7 + c * 60) % 256 }
        var animated = still
        animate(&animated, laterFrames: [Array(repeating: 0, count: 8 * (1 + 16 * 4)), Array(repeating: 0x80, count: 8 * (1 + 16 * 4))])
        var bare = animated
        animated.extraChunks.insert(("tEXt", Array("Author\0Someone Private".utf8)), at: 0)
        animated.trailingChunks.append(("tIME", [0x07, 0xEA, 12, 2, 18, 0, 0]))
        #expect(chunkTypes(animated.encoded) == ["IHDR", "tEXt", "acTL", "fcTL", "IDAT", "fcTL", "fdAT", "fcTL", "fdAT", "tIME", "IEND"])

        for alwaysPNG in [false, true] {
            let wire = try ImagePipeline().wireForm(of: animated.encoded, alwaysPNG: alwaysPNG, allowJXL: true, allowJXLRendering: true)
            #expect(wire.format == .png && wire.animationFrames == 3 && wire.jxlSize == nil)
            bare.extraChunks = animated.extraChunks.filter { $0.0 != "tEXt" }
            bare.trailingChunks = animated.trailingChunks.filter { $0.0 != "tIME" }
            #expect(wire.bytes == bare.encoded)
            #expect(try ImagePipeline().readerPNG(wire.bytes) == wire.bytes)
        }
        do {
            _ = try ImagePipeline().optimizedPNG(animated.encoded)
            Issue.record("an animated PNG was optimised into its first frame")
        } catch let error as ImageError {
            #expect(error.code == .unsupported && error.reason.contains("animated PNG (3 frames)"), "\(error)")
        }

        var late = still
        late.trailingChunks = [("acTL", be32(2) + be32(0))]
        let optimised = try ImagePipeline().wireForm(of: late.encoded)
        #expect(optimised.animationFrames == nil && !chunkTypes(optimised.bytes).contains("acTL"))
        #expect(try ImagePipeline().optimizedPNG(late.encoded).image.hasSamePixels(as: ImagePipeline().decode(still.encoded).image))
    }

    @Test func bombsTruncationAndCorruptionGetClearErrors() throws {
        let pipeline = ImagePipeline()
        // IHDR claiming 100000 x 100000 (and 9000 x 9000 = 81 megapixels), with a tiny body.
        for (width, height) in [(100_000, 100_000), (9000, 9000)] {
            let ihdr = Array("IHDR".utf8) + be32(width) + be32(height) + [1, 0, 0, 0, 0]
            var header: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + be32(13) + ihdr + be32(Int(crc32(ihdr)))
            let idat = Array("IDAT".utf8) + zlibStored([0, 0, 0, 0])
            header += be32(idat.count - 4) + idat + be32(Int(crc32(idat)))
            header += be32(0) + Array("IEND".utf8) + be32(Int(crc32(Array("IEND".utf8))))
            let error = #expect(throws: ImageError.self) { try pipeline.decode(header) }
            #expect(error?.code == .tooLarge, "\(width)x\(height): \(String(describing: error))")
        }
        let good = TestPNG(width: 64, height: 64, colorType: 2, bitDepth: 8) { x, y, c in (x + y + c) % 256 }.encoded
        let truncated = Array(good.prefix(good.count / 2))
        #expect((#expect(throws: ImageError.self) { try pipeline.decode(truncated) })?.code == .corrupt)
        // A chunk declaring 512 MiB in a file of a few hundred bytes (a fuzzer's find): refused by
        // the walk over the chunks before libpng, which allocated the declared length first.
        let longText = Array(good.prefix(33)) + be32(0x2000_000C) + Array("tEXtComment\0fuzz".utf8) + Array(good.dropFirst(33))
        let declared = #expect(throws: ImageError.self) { try pipeline.decode(longText) }
        #expect(declared?.code == .corrupt)
        #expect(declared?.description.contains("its tEXt chunk declares 536870924 bytes, and \(longText.count - 41) follow") == true, "\(String(describing: declared))")
        var flipped = good
        flipped[good.count / 2] ^= 0x40  // inside IDAT: the CRC no longer matches
        #expect((#expect(throws: ImageError.self) { try pipeline.decode(flipped) })?.code == .corrupt)
        #expect((#expect(throws: ImageError.self) { try pipeline.decode(Array("GIF89a....".utf8)) })?.code == .unknownFormat)
    }

    /// The reader's PNG of pixels that travelled as JPEG XL (a PNG's; here a page of coloured
    /// text, as in a screenshot) takes the none filter where it deflates smaller than up; a
    /// decoded JPEG keeps the single trial with the up filter.
    @Test func theReadersConversionOfAGraphicTriesTheNoneFilterToo() throws {
        let image = Self.textPage()
        let pipeline = ImagePipeline()
        let jxl = try #require(pipeline.losslessJXL(image, withRendering: false, coding: JXLPixelCoding(effort: 7, patches: false)))
        let png = try pipeline.readerPNG(jxl)
        #expect(try pipeline.decode(png).image.hasSamePixels(as: image))
        let graphic = try PNGOptimizer(effort: .conversion).optimize(image)
        #expect(graphic.trials == 2 && graphic.method.contains("filter none"), "\(graphic.method)")
        #expect(png.count == graphic.bytes.count)
        let photograph = try PNGOptimizer(effort: .conversion, isDecodedJPEG: true).optimize(image)
        #expect(photograph.trials == 1 && photograph.method.contains("filter up"), "\(photograph.method)")
        #expect(png.count < photograph.bytes.count * 95 / 100, "\(png.count) against \(photograph.bytes.count)")
    }

    /// 240x156 pixels of 13 lines of "text": 20 glyphs of 8x12 pixels, each ink pixel of its own
    /// colour (hundreds in all, so no palette), on white; fixed, from a linear congruential generator.
    static func textPage() -> RGBAImage {
        var state: UInt64 = 12345
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        let white: [UInt8] = [255, 255, 255, 255]
        let glyphs = (0..<20).map { _ in
            (0..<12).map { _ in (0..<8).map { _ in next(10) < 3 ? [UInt8(next(200)), UInt8(next(200)), UInt8(next(200)), 255] : white } }
        }
        let width = 240, height = 156
        let lines = (0..<height / 12).map { _ in (0..<width / 8).map { _ in next(10) < 8 ? next(20) : nil } }
        var samples: [UInt8] = []
        for y in 0..<height {
            for glyph in lines[y / 12] {
                for x in 0..<8 { samples += glyph.map { glyphs[$0][y % 12][x] } ?? white }
            }
        }
        return RGBAImage(width: width, height: height, bitDepth: 8, samples: samples)
    }

    @Test func theFrontierOfEffortsKeepsPixelsAndOrdersSizes() throws {
        let png = TestPNG(width: 96, height: 64, colorType: 2, bitDepth: 8) { x, y, c in ((x * x + y * 3) / 7 + c * 30) % 256 }
        var sizes: [Int] = []
        for effort in PNGEffort.allCases {
            let result = try ImagePipeline(effort: effort).optimizedPNG(png.encoded).png
            #expect(try ImagePipeline().decode(result.bytes).image.hasSamePixels(as: png.expected))
            sizes.append(result.bytes.count)
        }
        #expect(zip(sizes, sizes.dropFirst()).allSatisfy { $1 <= $0 }, "\(sizes), for \(PNGEffort.allCases)")
    }
}

@Suite(.threadsOfTheirOwn) struct JPEGPipelineTests {
    /// A JPEG made by libjpeg-turbo's cjpeg (a peer no one here wrote) from a generated picture.
    func jpeg(grey: Bool = false, progressive: Bool = false, width: Int = 120, height: Int = 80) throws -> [UInt8] {
        let ppm = try temporaryFile(testPPM(width: width, height: height, grey: grey), suffix: grey ? ".pgm" : ".ppm")
        return try tool("cjpeg", ["-quality", "90"] + (progressive ? ["-progressive"] : []) + [ppm.path])
    }

    /// djpeg's pixels as canonical RGBA, to compare with ours.
    func djpegPixels(_ jpeg: [UInt8]) throws -> [UInt8] {
        let file = try temporaryFile(jpeg, suffix: ".jpg")
        let pnm = try tool("djpeg", ["-dct", "int", "-pnm", file.path])
        // Header "P5|P6\nW H\n255\n", then samples.
        var newlines = 0, offset = 0
        while newlines < 3 { if pnm[offset] == 0x0A { newlines += 1 }; offset += 1 }
        let grey = pnm[1] == UInt8(ascii: "5")
        let body = pnm[offset...]
        return grey ? body.flatMap { [$0, $0, $0, 255] } : stride(from: body.startIndex, to: body.endIndex, by: 3).flatMap {
            [body[$0], body[$0 + 1], body[$0 + 2], 255]
        }
    }

    @Test func baselineProgressiveAndGreyJPEGsDecodeLikeDjpegAndBecomeExactPNGs() throws {
        for (grey, progressive) in [(false, false), (false, true), (true, false), (true, true)] {
            let input = try jpeg(grey: grey, progressive: progressive)
            let pipeline = ImagePipeline()
            let decoded = try pipeline.decode(input).image
            #expect(decoded.samples == (try djpegPixels(input)), "grey \(grey) progressive \(progressive)")
            let png = try pipeline.optimizedPNG(input).png.bytes
            #expect(try pipeline.decode(png).image.hasSamePixels(as: decoded))
            if grey { #expect(ihdr(png).colorType == 0) }
        }
    }

    @Test func theWireCarriesTheStrippedJPEGWhenSmallerWithTheSamePixels() throws {
        let original = try jpeg(width: 320, height: 240)
        // Add what a camera writes: EXIF with orientation and a private description, a comment.
        let description = Array("secret location 51.5N".utf8)
        var tiff: [UInt8] = [0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8, 0, 2]
        tiff += [0x01, 0x0E, 0, 2] + be32(description.count) + be32(8 + 2 + 24 + 4)   // ImageDescription
        tiff += [0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0]                            // Orientation 6
        tiff += be32(0) + description
        let app1 = Array("Exif".utf8) + [0, 0] + tiff
        let comment = Array("taken at home".utf8)
        let camera = [0xFF, 0xD8, 0xFF, 0xE1, UInt8((app1.count + 2) >> 8), UInt8((app1.count + 2) & 0xFF)] + app1
            + [0xFF, 0xFE, 0, UInt8(comment.count + 2)] + comment + original.dropFirst(2) + Array("trailing vendor data".utf8)

        let pipeline = ImagePipeline()
        let wire = try pipeline.wireForm(of: camera)
        #expect(wire.format == .jpeg)
        // The PNG could not win: estimated from a sample of rows, not made.
        #expect(wire.pngSize == nil && (wire.pngEstimate ?? 0) > wire.bytes.count, "\(String(describing: wire.pngEstimate))")
        #expect(wire.jpegSize == wire.bytes.count)
        let text = String(decoding: wire.bytes, as: UTF8.self)
        #expect(!text.contains("secret location") && !text.contains("taken at home") && !text.contains("trailing vendor"))
        // An independent decoder sees the same pixels in both, and the orientation is still there.
        #expect(try djpegPixels(wire.bytes) == (try djpegPixels(camera)))
        #expect(try pipeline.decode(wire.bytes).image.orientation == 6)
        // The reader gets a PNG with those pixels.
        let png = try pipeline.readerPNG(wire.bytes)
        #expect(ImageFormat.detect(png) == .png)
        #expect(try pipeline.decode(png).image.samples == (try djpegPixels(camera)))

        let forced = try pipeline.wireForm(of: camera, alwaysPNG: true)
        #expect(forced.format == .png)
        #expect(try pipeline.decode(forced.bytes).image.samples == (try djpegPixels(camera)))
    }

    /// An APP1 EXIF segment holding only an orientation (big-endian TIFF, one entry).
    func exifSegment(orientation: UInt8) -> [UInt8] {
        let app1 = Array("Exif".utf8) + [0, 0, 0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, orientation, 0, 0, 0, 0, 0, 0]
        return [0xFF, 0xE1, UInt8((app1.count + 2) >> 8), UInt8((app1.count + 2) & 0xFF)] + app1
    }

    @Test func theStrippedJPEGKeepsTheOrientationTheDecoderReadsWithoutNeedingThePixels() throws {
        // Two EXIF blocks: libjpeg (and so the decoder) reports the first. The stripper finds
        // it on its own, so the JPEG XL can be made while the pixels are being decoded.
        let original = try jpeg(width: 160, height: 120)
        let camera = [0xFF, 0xD8] + exifSegment(orientation: 6) + exifSegment(orientation: 3) + original.dropFirst(2)
        let pipeline = ImagePipeline()
        let decoded = try pipeline.decode(camera).image
        #expect(decoded.orientation == 6)
        let stripped = try #require(try pipeline.strippedJPEG(camera, decoded: decoded))
        #expect(try pipeline.decode(stripped).image.orientation == 6)
        // One orientation block is left, and the JPEG XL gives back exactly that file.
        #expect(stripped.count == original.count + exifSegment(orientation: 6).count)
        let wire = try pipeline.wireForm(of: camera, allowJXL: true)
        #expect(wire.format == .jxl)
        #expect(try pipeline.jpegAsSent(wire.bytes) == stripped)
        #expect(try pipeline.decode(pipeline.readerPNG(wire.bytes)).image.orientation == 6)
        // Orientation 1 needs no block at all.
        let upright = [0xFF, 0xD8] + exifSegment(orientation: 1) + original.dropFirst(2)
        #expect(try pipeline.strippedJPEG(upright, decoded: pipeline.decode(upright).image) == original)
    }

    @Test func aJPEGPastTheLimitsIsRefusedBeforeAnyImageWork() throws {
        let input = try jpeg(width: 320, height: 240)
        let small = ImagePipeline(limits: ImageLimits(maxPixels: 320 * 239))
        #expect { try small.wireForm(of: input, allowJXL: true) } throws: { ($0 as? ImageError)?.code == .tooLarge }
        #expect(try ImagePipeline(limits: ImageLimits(maxPixels: 320 * 240)).wireForm(of: input, allowJXL: true).format == .jxl)
    }

    @Test func jpegXLCarriesAJPEGBitForBitAndPixelsExactlyWhenEveryReaderTakesIt() throws {
        let pipeline = ImagePipeline()
        for (grey, progressive) in [(false, false), (false, true), (true, false)] {
            let input = try jpeg(grey: grey, progressive: progressive, width: 320, height: 240)
            let stripped = try #require(try pipeline.strippedJPEG(input, decoded: pipeline.decode(input).image))
            #expect(try pipeline.wireForm(of: input).format != .jxl)  // not unless every reader takes it
            let wire = try pipeline.wireForm(of: input, allowJXL: true)
            #expect(wire.format == .jxl, "grey \(grey) progressive \(progressive): \(wire.jxlSize ?? 0) vs \(wire.jpegSize ?? 0)")
            #expect((wire.jxlSize ?? .max) < stripped.count)
            // Without chroma-from-luma (large JPEGs at the default level) it gives the JPEG back too.
            let withoutCFL = try #require(pipeline.recompressedJXL(stripped, chromaFromLuma: false))
            #expect(try pipeline.jpegAsSent(withoutCFL) == stripped)
            // --as-sent: the stripped JPEG, bit for bit; the PNG: libjpeg-turbo's pixels, as djpeg's.
            #expect(try pipeline.jpegAsSent(wire.bytes) == stripped)
            #expect(try pipeline.decode(pipeline.readerPNG(wire.bytes)).image.samples == (try djpegPixels(input)))
        }
        // Pixels: every colour type and depth, coded losslessly by every coding the time model
        // chooses from, decode to exactly themselves.
        let codings = [JXLPixelCoding(effort: 3, patches: false), JXLPixelCoding(effort: 7, patches: false, learningPercent: 10),
                       JXLPixelCoding(effort: 7, patches: false, learningPercent: 25), JXLPixelCoding(effort: 7, patches: false), .thorough]
        for (label, png) in PNGPipelineTests.generatedSet {
            let image = try pipeline.decode(png.encoded).image
            for coding in codings {
                let jxl = try #require(pipeline.losslessJXL(image, withRendering: false, coding: coding), "\(label), \(coding)")
                #expect(try ImageCodecs.decode(jxl, format: .jxl, limits: .standard).hasSamePixels(as: image), "\(label), \(coding)")
                #expect(try pipeline.jpegAsSent(jxl) == nil, "\(label), \(coding): no JPEG to give back")
                #expect(try pipeline.decode(pipeline.readerPNG(jxl)).image.hasSamePixels(as: image), "\(label), \(coding)")
            }
        }
        // Rendering information goes only to readers of the rendering box.
        var profiled = try pipeline.decode(PNGPipelineTests.generatedSet[0].1.encoded).image
        profiled.rendering.gamma = 45455
        #expect(pipeline.losslessJXL(profiled, withRendering: false, coding: .thorough) == nil)
        #expect(pipeline.losslessJXL(profiled, withRendering: true, coding: .thorough) != nil)
    }

    @Test func theJPEGXLCodingFitsTheTimeBudgetAndIsThoroughWhereItCosts() {
        func coding(megapixels: Double, pngBytesPerPixel: Double) -> JXLPixelCoding {
            let pixels = Int(megapixels * 1_000_000)
            return .within(pixels: pixels, pngBytes: Int(Double(pixels) * pngBytesPerPixel))
        }
        // An icon, a screenshot, a small photograph: everything libjxl has.
        #expect(coding(megapixels: 0.07, pngBytesPerPixel: 0.5) == .thorough)
        #expect(coding(megapixels: 0.35, pngBytesPerPixel: 0.2) == .thorough)
        #expect(coding(megapixels: 0.26, pngBytesPerPixel: 1.8) == .thorough)
        // Flat graphics of 2-3 megapixels: effort 7 without the patch search (it gained nothing there).
        #expect(coding(megapixels: 2.07, pngBytesPerPixel: 0.08) == JXLPixelCoding(effort: 7, patches: false))
        #expect(coding(megapixels: 3.16, pngBytesPerPixel: 0.03) == JXLPixelCoding(effort: 7, patches: false))
        // Noisier 2-megapixel graphics: the context tree learnt from a quarter or a tenth of the pixels.
        #expect(coding(megapixels: 2.07, pngBytesPerPixel: 0.2) == JXLPixelCoding(effort: 7, patches: false, learningPercent: 25))
        #expect(coding(megapixels: 2.07, pngBytesPerPixel: 0.3) == JXLPixelCoding(effort: 7, patches: false, learningPercent: 10))
        // Photographic pixels: a tenth for two thirds of a megapixel, effort 3 for 2-3 megapixels.
        #expect(coding(megapixels: 0.64, pngBytesPerPixel: 1.6) == JXLPixelCoding(effort: 7, patches: false, learningPercent: 10))
        #expect(coding(megapixels: 3.0, pngBytesPerPixel: 1.6) == JXLPixelCoding(effort: 3, patches: false))
        // Past the budget: a 4-megapixel screenshot goes to effort 3, a flat 5-megapixel graphic
        // keeps effort 7 (effort 3 may lose to the PNG there).
        #expect(coding(megapixels: 4.1, pngBytesPerPixel: 0.39) == JXLPixelCoding(effort: 3, patches: false))
        #expect(coding(megapixels: 5.0, pngBytesPerPixel: 0.05) == JXLPixelCoding(effort: 7, patches: false, learningPercent: 10))
        // The thorough level has no budget.
        #expect(ImagePipeline(effort: .thorough).jxlCoding(pixels: 12_000_000, pngBytes: 20_000_000) == .thorough)
        // A JPEG's chroma is predicted from its luma below 2 megapixels, and always at the thorough level.
        #expect(ImagePipeline(effort: .normal).jxlChromaFromLuma(pixels: 1_999_999))
        #expect(!ImagePipeline(effort: .normal).jxlChromaFromLuma(pixels: 2560 * 1600))
        #expect(ImagePipeline(effort: .thorough).jxlChromaFromLuma(pixels: 2560 * 1600))
        #expect(ImagePipeline(effort: .normal).jxlCoding(pixels: 12_000_000, pngBytes: 20_000_000) == JXLPixelCoding(effort: 3, patches: false))
    }

    @Test func jpegXLCarriesRenderingInformationAndOrientationToTheReadersPNG() throws {
        let pipeline = ImagePipeline()
        let base = try pipeline.decode(TestPNG(width: 120, height: 90, colorType: 2, bitDepth: 8) { x, y, c in (x * 2 + y * 3 + c * 50) % 256 }.encoded).image
        let chromaticities: [UInt32] = [31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000]
        let cases: [(String, RenderingInfo, UInt16?)] = [
            ("sRGB, gamma, chromaticities, rotated", RenderingInfo(srgbIntent: 1, gamma: 45455, chromaticities: chromaticities), 6),
            ("ICC profile", RenderingInfo(iccProfile: PNGProfileTests.minimalProfile(colourSpace: "RGB ")), nil),
            ("orientation only", RenderingInfo(), 8),
        ]
        for (label, rendering, orientation) in cases {
            var image = base
            image.rendering = rendering
            image.orientation = orientation
            let jxl = try #require(pipeline.losslessJXL(image, withRendering: true, coding: .thorough), "\(label)")
            let decoded = try pipeline.decode(jxl).image
            #expect(decoded.hasSamePixels(as: image) && decoded.rendering == rendering && decoded.orientation == orientation, "\(label)")
            let png = try pipeline.readerPNG(jxl)
            let reread = try pipeline.decode(png).image
            #expect(reread.hasSamePixels(as: image) && reread.rendering == rendering && reread.orientation == orientation, "\(label)")
        }
        // The wire: a PNG with an sRGB chunk goes as JPEG XL only to readers of the box.
        var tagged = TestPNG(width: 200, height: 150, colorType: 2, bitDepth: 8) { x, y, c in ((x / 10 + y / 10) * 37 + c * 80) % 256 }
        tagged.extraChunks = [("sRGB", [0])]
        #expect(try pipeline.wireForm(of: tagged.encoded, allowJXL: true).jxlSize == nil)
        let wire = try pipeline.wireForm(of: tagged.encoded, allowJXL: true, allowJXLRendering: true)
        #expect(wire.jxlSize != nil)
    }

    @Test func aMalformedRenderingBoxMakesTheJPEGXLDamaged() throws {
        let pipeline = ImagePipeline()
        let image = try pipeline.decode(PNGPipelineTests.generatedSet[10].1.encoded).image
        let packed = JXLSamples(image)
        func jxl(box: [UInt8]) throws -> [UInt8] {
            try ImageCodecs.jxl(samples: packed.samples, width: image.width, height: image.height, bitDepth: packed.bitDepth,
                                channels: packed.channels, renderingBox: box, coding: JXLPixelCoding(effort: 3, patches: false))
        }
        func entry(_ tag: UInt8, _ value: [UInt8]) -> [UInt8] { [tag] + be32(value.count) + value }
        let malformed: [(String, [UInt8])] = [
            ("version 2", [2] + entry(1, [0])), ("nothing after the version", [1]), ("unknown tag", [1] + entry(9, [0])),
            ("out of order", [1] + entry(2, be32(45455)) + entry(1, [0])), ("repeated", [1] + entry(1, [0]) + entry(1, [1])),
            ("intent 4", [1] + entry(1, [4])), ("gamma 0", [1] + entry(2, be32(0))), ("short chromaticities", [1] + entry(3, be32(1))),
            ("tiny ICC profile", [1] + entry(4, [1, 2, 3])), ("orientation 9", [1] + entry(5, [0, 9])),
            ("length past the end", [1, 1, 0, 0, 0, 5, 0]), ("cut short", [1, 1, 0, 0]),
        ]
        for (label, box) in malformed {
            #expect(throws: ImageError.self, "\(label)") { _ = try JXLRenderingBox.decode(box) }
            let error = #expect(throws: ImageError.self, "\(label)") { _ = try pipeline.decode(try jxl(box: box)) }
            #expect(error?.code == .corrupt, "\(label): \(String(describing: error))")
        }
        // A box that decompresses past the limit (4 MiB of zeros, a few bytes compressed) stops there.
        let bomb = [1] + entry(4, [UInt8](repeating: 0, count: JXLRenderingBox.limit + 1))
        #expect((#expect(throws: ImageError.self) { _ = try pipeline.decode(try jxl(box: bomb)) })?.code == .tooLarge)
    }

    @Test func damagedTruncatedAndOversizedJPEGXLGetClearErrors() throws {
        let pipeline = ImagePipeline()
        let image = try pipeline.decode(PNGPipelineTests.generatedSet[10].1.encoded).image
        let good = try #require(pipeline.losslessJXL(image, withRendering: false, coding: .thorough))
        let source = try jpeg()
        let stripped = try #require(try pipeline.strippedJPEG(source, decoded: pipeline.decode(source).image))
        let fromJPEG = try #require(pipeline.recompressedJXL(stripped))
        for (label, bad) in [("truncated", Array(good.prefix(good.count / 2))), ("truncated JPEG XL of a JPEG", Array(fromJPEG.prefix(fromJPEG.count / 2))),
                             ("only a signature", [0xFF, 0x0A]), ("damaged", good.enumerated().map { $0.offset > 8 && $0.offset % 7 == 0 ? $0.element ^ 0xA5 : $0.element })] {
            let error = #expect(throws: ImageError.self, "\(label)") { _ = try pipeline.decode(bad) }
            #expect(error?.code == .corrupt || error?.code == .unsupported, "\(label): \(String(describing: error))")
            #expect(throws: ImageError.self, "\(label)") { _ = try pipeline.readerPNG(bad) }
        }
        // Past the pixel limit: refused before the pixels are decoded.
        let small = ImagePipeline(limits: ImageLimits(maxPixels: image.pixelCount - 1))
        #expect((#expect(throws: ImageError.self) { _ = try small.decode(good) })?.code == .tooLarge)
    }

    @Test func truncatedCorruptOversizedAndCMYKJPEGsGetClearErrors() throws {
        let pipeline = ImagePipeline()
        let good = try jpeg()
        let truncated = Array(good.prefix(good.count * 2 / 3))
        let error = #expect(throws: ImageError.self) { try pipeline.decode(truncated) }
        #expect(error?.code == .corrupt, "\(String(describing: error))")
        // The frame header claims 60000 x 60000.
        var huge = good
        let sof = try #require((0..<huge.count - 1).first { huge[$0] == 0xFF && huge[$0 + 1] == 0xC0 })
        huge[sof + 5] = 0xEA; huge[sof + 6] = 0x60; huge[sof + 7] = 0xEA; huge[sof + 8] = 0x60
        #expect((#expect(throws: ImageError.self) { try pipeline.decode(huge) })?.code == .tooLarge)
        // A four-component (CMYK) frame with Adobe's marker.
        var cmyk: [UInt8] = [0xFF, 0xD8, 0xFF, 0xEE, 0, 14] + Array("Adobe".utf8) + [0, 100, 0, 0, 0, 0, 0]
        cmyk += [0xFF, 0xDB, 0, 67, 0] + [UInt8](repeating: 1, count: 64)
        cmyk += [0xFF, 0xC0, 0, 20, 8, 0, 8, 0, 8, 4] + (1...4).flatMap { [UInt8($0), 0x11, 0] }
        cmyk += [0xFF, 0xC4, 0, 20, 0x00] + [1] + [UInt8](repeating: 0, count: 15) + [0]
        cmyk += [0xFF, 0xDA, 0, 14, 4] + (1...4).flatMap { [UInt8($0), 0x00] } + [0, 63, 0] + [0x00, 0xFF, 0xD9]
        let refused = #expect(throws: ImageError.self) { try pipeline.decode(cmyk) }
        #expect(refused?.code == .unsupported, "\(String(describing: refused))")
        #expect(refused?.reason.contains("CMYK") == true)
    }
}

@Suite(.threadsOfTheirOwn) struct JXLSampleTests {
    /// 800x640 pixels from `pixel`, opaque unless it says otherwise.
    func image(_ pixel: (Int, Int) -> (UInt8, UInt8, UInt8, UInt8)) -> RGBAImage {
        let width = 800, height = 640
        var samples = [UInt8]()
        samples.reserveCapacity(width * height * 4)
        for y in 0..<height {
            for x in 0..<width {
                let p = pixel(x, y)
                samples += [p.0, p.1, p.2, p.3]
            }
        }
        return RGBAImage(width: width, height: height, bitDepth: 8, samples: samples)
    }

    /// Effort 3 codes the whole image only when a sample of it says the JPEG XL can come near the
    /// PNG: smooth gradients with sensor-like noise (JPEG XL ahead) pass, a graphic of alpha
    /// ramps that the PNG filters take apart (JPEG XL 17 times the PNG) does not. Other efforts,
    /// and images too short to sample, are always coded.
    @Test func effortThreeIsTriedOnlyWhereASampleSaysItMayWin() throws {
        let pipeline = ImagePipeline(effort: .normal)
        let effortThree = JXLPixelCoding(effort: 3, patches: false)
        var generator = SystemRandomNumberGenerator()
        let noise = (0..<(800 * 640 + 16)).map { _ in UInt8.random(in: 0...7, using: &generator) }
        let noisy = image { x, y in
            let i = y * 800 + x
            return (UInt8((x + y) * 200 / 1440) &+ noise[i], UInt8(y * 200 / 640) &+ noise[i + 7], UInt8(x * 200 / 800) &+ noise[i + 13], 255)
        }
        let ramps = image { x, y in
            let a = UInt8((x * 7 + y * 3) % 256)
            return (a, a / 2, 200, UInt8(truncatingIfNeeded: (x / 3 + y / 5) * 37))
        }
        for (label, picture, expected) in [("noisy gradients", noisy, true), ("alpha ramps", ramps, false)] {
            let jxl = try #require(pipeline.losslessJXL(picture, withRendering: false, coding: effortThree)).count
            let png = try PNGOptimizer(effort: .fast).optimize(picture).bytes.count
            // The sample's verdict is the whole image's.
            #expect((jxl <= png + png / 5) == expected, "\(label): JPEG XL \(jxl), fast PNG \(png)")
            let reason = try pipeline.jxlSkipReason(picture, coding: effortThree)
            #expect((reason == nil) == expected, "\(label): \(reason ?? "tried")")
            #expect(expected || reason?.hasPrefix("a sample of its rows came to ") == true)
            #expect(try pipeline.jxlSkipReason(picture, coding: JXLPixelCoding(effort: 7, patches: false, learningPercent: 10)) == nil)
        }
        let short = RGBAImage(width: 800, height: 511, bitDepth: 8, samples: Array(ramps.samples[..<(800 * 511 * 4)]))
        #expect(try pipeline.jxlSkipReason(short, coding: effortThree) == nil)
    }
}
