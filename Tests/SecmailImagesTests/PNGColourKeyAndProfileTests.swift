import Foundation
@testable import SecmailImages
import SecmailTestSupport
import Testing

@Suite(.threadsOfTheirOwn) struct PNGColourKeyTests {
    func optimized(_ png: TestPNG, effort: PNGEffort = .normal) throws -> [UInt8] {
        let bytes = try ImagePipeline(effort: effort).optimizedPNG(png.encoded).png.bytes
        #expect(try ImagePipeline().decode(bytes).image.hasSamePixels(as: png.expected))
        return bytes
    }

    /// The data of the chunk `type`, if the file has one.
    func chunk(_ type: String, of png: [UInt8]) -> [UInt8]? {
        var offset = 8
        while offset + 12 <= png.count {
            let length = Int(png[offset]) << 24 | Int(png[offset + 1]) << 16 | Int(png[offset + 2]) << 8 | Int(png[offset + 3])
            if String(decoding: png[offset + 4..<offset + 8], as: UTF8.self) == type { return Array(png[offset + 8..<offset + 8 + length]) }
            offset += 12 + length
        }
        return nil
    }

    /// More than 256 colours inside a disc, one transparent colour outside it.
    static func disc(depth: Int = 8, outside: @escaping (Int, Int) -> [Int]) -> TestPNG {
        TestPNG(width: 40, height: 30, colorType: 6, bitDepth: depth) { x, y, c in
            let inside = (x - 20) * (x - 20) + (y - 15) * (y - 15) < 144
            let value = inside ? [(x * 13 + y * 7) % 256, (x * y) % 256, (x + 5 * y) % 256, 255][c] : outside(x, y)[c]
            return depth == 16 ? value * 257 : value
        }
    }

    @Test func oneTransparentColourBecomesAColourKeyInPlaceOfTheAlphaChannel() throws {
        for effort in PNGEffort.allCases {
            let keyed = try optimized(Self.disc { _, _ in [7, 8, 9, 0] }, effort: effort)
            #expect(ihdr(keyed) == (2, 8), "\(effort)")
            #expect(chunk("tRNS", of: keyed) == [0, 7, 0, 8, 0, 9])
        }
        // 16-bit samples that fit 8 bits: an 8-bit key.
        let wide = try optimized(Self.disc(depth: 16) { _, _ in [7, 8, 9, 0] })
        #expect(ihdr(wide) == (2, 8))
        #expect(chunk("tRNS", of: wide) == [0, 7, 0, 8, 0, 9])
        // 16-bit samples that need 16 bits keep a 16-bit key.
        let exact16 = TestPNG(width: 30, height: 20, colorType: 6, bitDepth: 16) { x, y, c in
            x < 3 ? [1000, 2000, 3001, 0][c] : c == 3 ? 65535 : x * 1000 + y * 7 + c
        }
        let key16 = try optimized(exact16)
        #expect(ihdr(key16) == (2, 16))
        #expect(chunk("tRNS", of: key16) == [0x03, 0xE8, 0x07, 0xD0, 0x0B, 0xB9])
        // Grey: a grey key at the grey depth.
        let grey = TestPNG(width: 300, height: 4, colorType: 4, bitDepth: 8) { x, _, c in c == 1 ? (x < 20 ? 0 : 255) : x < 20 ? 17 : x % 200 + 30 }
        let greyKeyed = try optimized(grey)
        #expect(ihdr(greyKeyed) == (0, 8))
        #expect(chunk("tRNS", of: greyKeyed) == [0, 17])
    }

    @Test func theAlphaChannelStaysWhenAColourKeyWouldChangeAPixel() throws {
        let cases: [(String, TestPNG)] = [
            // An opaque pixel of the key's colour would turn transparent.
            ("opaque pixel of the key colour", Self.disc { x, y in x == 0 && y == 0 ? [7, 8, 9, 255] : [7, 8, 9, 0] }),
            // Two transparent colours: a key gives back only one of them.
            ("two transparent colours", Self.disc { x, _ in x == 0 ? [1, 8, 9, 0] : [7, 8, 9, 0] }),
            // A translucent pixel needs real alpha.
            ("one translucent pixel", Self.disc { x, y in x == 0 && y == 0 ? [7, 8, 9, 128] : [7, 8, 9, 0] }),
        ]
        for (label, png) in cases {
            let bytes = try optimized(png)
            #expect(ihdr(bytes) == (6, 8), "\(label)")
            #expect(chunk("tRNS", of: bytes) == nil, "\(label)")
        }
    }
}

@Suite(.threadsOfTheirOwn) struct PNGProfileTests {
    /// The smallest ICC profile libpng accepts: a 132-byte header and an empty tag table.
    static func minimalProfile(colourSpace: String) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: 132)
        header.replaceSubrange(0..<4, with: be32(132))
        header.replaceSubrange(8..<12, with: [2, 0x10, 0, 0])
        header.replaceSubrange(12..<16, with: Array("mntr".utf8))
        header.replaceSubrange(16..<20, with: Array(colourSpace.utf8))
        header.replaceSubrange(20..<24, with: Array("XYZ ".utf8))
        header.replaceSubrange(36..<40, with: Array("acsp".utf8))
        // The PCS illuminant must be D50 (0.9642, 1.0, 0.8249 as s15Fixed16).
        header.replaceSubrange(68..<80, with: be32(0xF6D6) + be32(0x1_0000) + be32(0xD32D))
        return header
    }

    static func iCCP(_ profile: [UInt8]) -> (String, [UInt8]) { ("iCCP", Array("test\0".utf8) + [0] + zlibStored(profile)) }

    @Test func aProfileKeepsTheColourTypesItIsValidFor() throws {
        let pipeline = ImagePipeline()
        // Grey pixels with an RGB profile stay RGB (a grey PNG may not carry one; libpng drops it).
        let rgbProfile = Self.minimalProfile(colourSpace: "RGB ")
        var greyInRGB = TestPNG(width: 300, height: 4, colorType: 2, bitDepth: 8) { x, y, _ in (x * 3 + y) % 256 }
        greyInRGB.extraChunks = [Self.iCCP(rgbProfile)]
        let rgbOut = try pipeline.optimizedPNG(greyInRGB.encoded).png.bytes
        #expect(ihdr(rgbOut).colorType == 2 || ihdr(rgbOut).colorType == 3)
        #expect(try pipeline.decode(rgbOut).image.rendering.iccProfile == rgbProfile)
        // Few grey values with a grey profile stay grey: no palette.
        let greyProfile = Self.minimalProfile(colourSpace: "GRAY")
        var fewGreys = TestPNG(width: 64, height: 64, colorType: 0, bitDepth: 8) { x, y, _ in [3, 77, 200][(x + y) % 3] }
        fewGreys.extraChunks = [Self.iCCP(greyProfile)]
        let greyOut = try pipeline.optimizedPNG(fewGreys.encoded).png.bytes
        #expect(ihdr(greyOut).colorType == 0)
        #expect(try pipeline.decode(greyOut).image.rendering.iccProfile == greyProfile)
        // Without a profile the same grey pixels become grey.
        greyInRGB.extraChunks = []
        #expect(ihdr(try pipeline.optimizedPNG(greyInRGB.encoded).png.bytes).colorType == 0)
    }

    @Test func renderingChunksLibpngInfersAreNotAdded() throws {
        var png = TestPNG(width: 30, height: 20, colorType: 2, bitDepth: 8) { x, y, c in (x * 8 + y * 3 + c) % 256 }
        png.extraChunks = [("sRGB", [1])]
        let out = try ImagePipeline().optimizedPNG(png.encoded).png.bytes
        #expect(chunkTypes(out).filter { ["gAMA", "cHRM", "sRGB", "iCCP"].contains($0) } == ["sRGB"])
        #expect(try ImagePipeline().decode(out).image.rendering == RenderingInfo(srgbIntent: 1))
    }

    /// The HP/Microsoft sRGB profile, as a photo of ../shared/corpus embeds it (APP2 ICC_PROFILE).
    static let publishedSRGBProfile: [UInt8]? = {
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let photo = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/corpus/photo_plasma_kite_2560x1600.jpg")
        guard let jpeg = try? [UInt8](Data(contentsOf: photo)) else {
            print("\(photo.path) is absent: skipping the known-sRGB-profile test")
            return nil
        }
        var offset = 2
        let signature = Array("ICC_PROFILE\0".utf8)
        while offset + 4 <= jpeg.count, jpeg[offset] == 0xFF {
            let length = Int(jpeg[offset + 2]) << 8 | Int(jpeg[offset + 3])
            let body = Array(jpeg[offset + 4..<min(jpeg.count, offset + 2 + length)])
            if jpeg[offset + 1] == 0xE2, body.starts(with: signature) { return Array(body.dropFirst(signature.count + 2)) }
            offset += 2 + length
        }
        return nil
    }()

    @Test(.enabled(if: publishedSRGBProfile != nil))
    func aKnownSRGBProfileBecomesTheSRGBChunkAndAnyOtherStays() throws {
        let profile = try #require(Self.publishedSRGBProfile)
        #expect(profile.count == 3144)
        var png = TestPNG(width: 300, height: 4, colorType: 2, bitDepth: 8) { x, y, c in (x * 3 + y * 40 + c * 90) % 256 }
        png.extraChunks = [Self.iCCP(profile)]
        let out = try ImagePipeline().optimizedPNG(png.encoded).png.bytes
        #expect(chunkTypes(out).filter { ["gAMA", "cHRM", "sRGB", "iCCP"].contains($0) } == ["sRGB"])
        #expect(try ImagePipeline().decode(out).image.rendering == RenderingInfo(srgbIntent: 0))
        // One byte different (inside the last tag's data, which libpng does not read) is another profile.
        var edited = profile
        edited[edited.count - 2] ^= 1
        png.extraChunks = [Self.iCCP(edited)]
        let kept = try ImagePipeline().optimizedPNG(png.encoded).png.bytes
        #expect(try ImagePipeline().decode(kept).image.rendering.iccProfile == edited)
        #expect(!chunkTypes(kept).contains("sRGB"))
    }
}
