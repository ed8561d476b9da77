import Foundation
import SecmailImages
import SecmailTestSupport
import Testing

/// `secmail image optimize`, and images through `seal` and `open` as users type them.
@Suite(.threadsOfTheirOwn) struct ImageCommandTests {
    /// A JPEG from libjpeg-turbo's cjpeg, with a camera-style comment added.
    func cameraJPEG(in folder: URL, width: Int = 240, height: Int = 160) async throws -> URL {
        let ppm = folder.appendingPathComponent("picture.ppm")
        try Data(testPPM(width: width, height: height)).write(to: ppm)
        let made = try await run("cjpeg", ["-quality", "92", ppm.path])
        #expect(made.status == 0, "\(made.stderr)")
        let comment = Array("holiday at 51.5N 0.1W".utf8)
        let jpeg = [UInt8](made.stdout.prefix(2)) + [0xFF, 0xFE, 0, UInt8(comment.count + 2)] + comment + made.stdout.dropFirst(2)
        let url = folder.appendingPathComponent("holiday.jpg")
        try Data(jpeg).write(to: url)
        return url
    }

    func pixels(_ url: URL) throws -> RGBAImage {
        try ImagePipeline().decode(Array(try Data(contentsOf: url))).image
    }

    @Test func optimizeWritesAnExactSmallerPNGAndRefusesBadInput() throws {
        let folder = try temporaryDirectory("image-cli")
        var png = TestPNG(width: 120, height: 90, colorType: 6, bitDepth: 8) { x, y, c in c == 3 ? 255 : ((x / 10 + y / 10) * 40 + c * 20) % 256 }
        png.extraChunks = [("tEXt", Array("Comment\0private".utf8))]
        let input = folder.appendingPathComponent("in.png"), output = folder.appendingPathComponent("out.png")
        try Data(png.encoded).write(to: input)

        let result = try Users.alice.run(["image", "optimize", input.path, "-o", output.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("pixels verified identical"))
        #expect(result.stderr.contains("120x90"))
        let outputBytes = Array(try Data(contentsOf: output))
        #expect(outputBytes.count < png.encoded.count)
        #expect(!chunkTypes(outputBytes).contains("tEXt"))
        #expect(try pixels(output).hasSamePixels(as: pixels(input)))

        let fast = try Users.alice.run(["image", "optimize", input.path, "-o", folder.appendingPathComponent("fast.png").path, "--level", "1", "--json"])
        #expect(fast.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(fast.stdout.utf8)) as? [String: Any])
        #expect(json["inputBytes"] as? Int == png.encoded.count)
        #expect((json["outputBytes"] as? Int ?? .max) < png.encoded.count)

        // The output exists: refused, and left as it was.
        let again = try Users.alice.run(["image", "optimize", input.path, "-o", output.path])
        #expect(again.status == 1)
        #expect(again.stderr.contains("exists already"))
        #expect(Array(try Data(contentsOf: output)) == outputBytes)
        // A link to nothing is there too: refused up front, and the link stays a link to nothing.
        let link = folder.appendingPathComponent("link.png"), nowhere = folder.appendingPathComponent("nowhere.png")
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: nowhere.path)
        let overLink = try Users.alice.run(["image", "optimize", input.path, "-o", link.path])
        #expect(overLink.status == 1 && overLink.stderr.contains("exists already"), "\(overLink.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link.path) == nowhere.path)
        #expect(!FileManager.default.fileExists(atPath: nowhere.path))
        let garbage = folder.appendingPathComponent("notes.png")
        try Data("not an image at all".utf8).write(to: garbage)
        let refused = try Users.alice.run(["image", "optimize", garbage.path, "-o", folder.appendingPathComponent("x.png").path])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("not a PNG or JPEG"))
        let truncated = folder.appendingPathComponent("truncated.png")
        try Data(png.encoded.prefix(png.encoded.count / 2)).write(to: truncated)
        let damaged = try Users.alice.run(["image", "optimize", truncated.path, "-o", folder.appendingPathComponent("y.png").path])
        #expect(damaged.status == 1)
        #expect(damaged.stderr.contains("damaged"))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("y.png").path))
        #expect(try Users.alice.run(["image", "optimize", input.path, "-o", folder.appendingPathComponent("z.png").path, "--level", "7"]).status == 64)
        // An animated PNG: an optimised PNG would be its first frame alone.
        animate(&png, laterFrames: [Array(repeating: 0, count: 90 * (1 + 120 * 4))])
        let animation = folder.appendingPathComponent("anim.png")
        try Data(png.encoded).write(to: animation)
        let animated = try Users.alice.run(["image", "optimize", animation.path, "-o", folder.appendingPathComponent("a.png").path])
        #expect(animated.status == 5 && animated.stderr.contains("\(animation.path): it is an animated PNG (2 frames)"), "\(animated.stderr)")
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("a.png").path))
    }

    /// Level 3 runs zopfli for minutes on a large image: at a terminal, after a second, a line says
    /// what is being optimised, that it can take minutes, and for how long it has run; it is
    /// erased before the result is shown. Not on a pipe.
    @Test func optimizeAtATerminalSaysWhatRunsAndForHowLong() async throws {
        let folder = try temporaryDirectory("image-status")
        // A pattern zopfli's 60 iterations take seconds over (about 2.5 s).
        let noise = TestPNG(width: 100, height: 80, colorType: 2, bitDepth: 8) { x, y, c in
            Int((UInt32(x * 3 + c) &* 2_654_435_761 ^ UInt32(y) &* 40_503) >> 20) % 64
        }
        let input = folder.appendingPathComponent("noise.png")
        try Data(noise.encoded).write(to: input)
        let arguments = ["image", "optimize", input.path, "-o", folder.appendingPathComponent("out.png").path, "--level", "3"]
        let terminal = ClientSafetyTests()
        let shown = try await onThreadOfItsOwn { try terminal.pty([], arguments, home: folder) }
        #expect(shown.status == 0, "\(shown.output)")
        #expect(shown.output.contains("\roptimizing noise.png at level 3, which can take minutes (Ctrl-C stops)… 1 s\u{1B}[K"), "\(shown.output)")
        // Erased (a carriage return and erase to the end of the line), then the result.
        #expect(shown.output.contains(" s\u{1B}[K\r\u{1B}[K\(input.path): 100x80"), "\(shown.output)")
        let piped = try await Users.alice.run(["image", "optimize", input.path, "-o", folder.appendingPathComponent("piped.png").path, "--level", "3"])
        #expect(piped.status == 0 && !piped.stderr.contains("optimizing") && !piped.stderr.contains("\r"), "\(piped.stderr)")
    }

    @Test func wireShowsTheFormSendWouldUseForTheReadersFeatures() async throws {
        let folder = try temporaryDirectory("image-wire")
        var graphic = TestPNG(width: 240, height: 160, colorType: 2, bitDepth: 8) { x, y, c in ((x * x / 40 + y * 3) / 5 + c * 70) % 256 }
        graphic.extraChunks = [("sRGB", [0])]
        let input = folder.appendingPathComponent("graphic.png")
        try Data(graphic.encoded).write(to: input)
        func report(_ arguments: [String]) async throws -> [String: Any] {
            let result = try await Users.alice.run(["image", "wire", input.path, "--json"] + arguments)
            #expect(result.status == 0, "\(result.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        }
        // Everything this client reads: JPEG XL with the sRGB intent in its box.
        let all = try await report([])
        #expect(all["sent"] as? String == "jxl" && all["jxlBytes"] as? Int == all["sentBytes"] as? Int, "\(all)")
        // A small graphic: libjxl's most thorough coding fits the time budget.
        #expect(all["jxlMethod"] as? String == "pixels, effort 7, patches", "\(all)")
        #expect((all["sentBytes"] as? Int ?? .max) < (all["pngBytes"] as? Int ?? 0))
        // A reader of JPEG XL without the rendering box, and one of PNG and JPEG only: the PNG.
        for features in ["jxl", "none"] {
            let limited = try await report(["--features", features])
            #expect(limited["sent"] as? String == "png" && limited["jxlBytes"] == nil && limited["jxlMethod"] == nil, "\(features): \(limited)")
        }
        let text = try await Users.alice.run(["image", "wire", input.path])
        #expect(text.status == 0 && text.stderr.contains("sends the JPEG XL (pixels, effort 7, patches)") && text.stderr.contains("pixels verified identical"),
                "\(text.stderr)")
        // A PNG that lost to the JPEG XL by a tenth or more was not searched: it is called fast.
        let pngBytes = all["pngBytes"] as? Int ?? 0, jxlBytes = all["jxlBytes"] as? Int ?? 0
        #expect(text.stderr.contains(pngBytes >= jxlBytes + jxlBytes / 10 ? "fast PNG" : "optimised PNG"), "\(text.stderr)")
        let pngOnly = try await Users.alice.run(["image", "wire", input.path, "--features", "none"])
        #expect(pngOnly.status == 0 && pngOnly.stderr.contains("optimised PNG"), "\(pngOnly.stderr)")
        let unknown = try await Users.alice.run(["image", "wire", input.path, "--features", "jxl,webp"])
        #expect(unknown.status == 64 && unknown.stderr.contains("unknown reader feature webp"), "\(unknown.stderr)")
    }

    @Test func sealedImagesTravelInTheSmallerFormAndArriveAsExactPNGs() async throws {
        let folder = try temporaryDirectory("image-seal")
        let photo = try await cameraJPEG(in: folder)
        var screenshot = TestPNG(width: 64, height: 48, colorType: 2, bitDepth: 8) { x, y, c in (x < 32) == (y < 24) ? [250, 250, 250][c] : [20, 90, 200][c] }
        screenshot.extraChunks = [("tIME", [0x07, 0xE9, 1, 2, 3, 4, 5])]
        let shot = folder.appendingPathComponent("screen.png")
        try Data(screenshot.encoded).write(to: shot)

        for alwaysPNG in [false, true] {
            let envelope = folder.appendingPathComponent("images-\(alwaysPNG).sm")
            let sealed = try await Users.alice.run(["seal", "--to", Users.bundle("bob").path, "-m", "pictures", "--attach", photo.path,
                                                    "--attach", shot.path, "-o", envelope.path] + (alwaysPNG ? ["--always-png"] : []))
            #expect(sealed.status == 0, "\(sealed.stderr)")
            // The sender is told both sizes and which form travels.
            #expect(sealed.stderr.contains("holiday.jpg (240x160"))
            #expect(sealed.stderr.contains("metadata-stripped JPEG"))
            #expect(sealed.stderr.contains(alwaysPNG ? "sending the PNG" : "sending the JPEG"))
            #expect(sealed.stderr.contains("screen.png (64x48"))

            let out = folder.appendingPathComponent("out-\(alwaysPNG)", isDirectory: true)
            let opened = try await Users.bob.run(["open", envelope.path, "--from", Users.bundle("alice").path, "--out", out.path])
            #expect(opened.status == 0, "\(opened.stderr)")
            #expect(contents(of: out) == ["holiday.png", "screen.png"])
            #expect(try pixels(out.appendingPathComponent("holiday.png")).hasSamePixels(as: pixels(photo)))
            #expect(try pixels(out.appendingPathComponent("screen.png")).hasSamePixels(as: pixels(shot)))
            let received = Array(try Data(contentsOf: out.appendingPathComponent("holiday.png")))
            #expect(ImageFormat.detect(received) == .png)
            #expect(!String(decoding: received, as: UTF8.self).contains("holiday at"))
            #expect(!chunkTypes(Array(try Data(contentsOf: out.appendingPathComponent("screen.png")))).contains("tIME"))
        }
    }

    /// An image the pipeline cannot use (here a truncated JPEG) is refused by --attach, with the
    /// way out named; --attach-as-is sends it unchanged, and the reader gets those very bytes.
    @Test func anImageThatCannotBeUsedTravelsUnchangedWithAttachAsIs() async throws {
        let folder = try temporaryDirectory("image-as-is")
        let photo = Array(try Data(contentsOf: try await cameraJPEG(in: folder)))
        let damaged = Array(photo.prefix(photo.count * 2 / 3))
        let scan = folder.appendingPathComponent("scan.jpg")
        try Data(damaged).write(to: scan)

        let refusedEnvelope = folder.appendingPathComponent("refused.sm")
        let refused = try await Users.alice.run(["seal", "--to", Users.bundle("bob").path, "--attach", scan.path, "-o", refusedEnvelope.path])
        #expect(refused.status == 1 && refused.stderr.contains("\(scan.path) looks like an image but cannot be used")
                && refused.stderr.contains("attach it with --attach-as-is"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: refusedEnvelope.path))

        let envelope = folder.appendingPathComponent("as-is.sm")
        let sealed = try await Users.alice.run(["seal", "--to", Users.bundle("bob").path, "-m", "the scan", "--attach-as-is", scan.path, "-o", envelope.path])
        #expect(sealed.status == 0, "\(sealed.stderr)")
        let out = folder.appendingPathComponent("out", isDirectory: true)
        let opened = try await Users.bob.run(["open", envelope.path, "--from", Users.bundle("alice").path, "--out", out.path])
        #expect(opened.status == 0, "\(opened.stderr)")
        #expect(contents(of: out) == ["scan.jpg"])
        #expect(Array(try Data(contentsOf: out.appendingPathComponent("scan.jpg"))) == damaged)
    }

    /// An animated PNG reaches the reader with every frame (before, as its first frame alone)
    /// and without its metadata; the sender is told.
    @Test func anAnimatedPNGArrivesWithEveryFrame() async throws {
        let folder = try temporaryDirectory("image-animated")
        var animation = TestPNG(width: 20, height: 10, colorType: 2, bitDepth: 8) { x, y, c in (x * 12 + y * 20 + c * 80) % 256 }
        animate(&animation, laterFrames: [Array(repeating: 0, count: 10 * (1 + 20 * 3))])
        let sent = animation
        animation.extraChunks.insert(("tEXt", Array("Comment\0private".utf8)), at: 0)
        let file = folder.appendingPathComponent("wave.png")
        try Data(animation.encoded).write(to: file)
        let envelope = folder.appendingPathComponent("wave.sm")
        let sealed = try await Users.alice.run(["seal", "--to", Users.bundle("bob").path, "--attach", file.path, "-o", envelope.path])
        #expect(sealed.status == 0 && sealed.stderr.contains("wave.png (20x10") && sealed.stderr.contains("animated PNG (2 frames)")
                && sealed.stderr.contains("the reader gets every frame"), "\(sealed.stderr)")
        let out = folder.appendingPathComponent("out", isDirectory: true)
        let opened = try await Users.bob.run(["open", envelope.path, "--from", Users.bundle("alice").path, "--out", out.path])
        #expect(opened.status == 0, "\(opened.stderr)")
        #expect(Array(try Data(contentsOf: out.appendingPathComponent("wave.png"))) == sent.encoded)
    }
}
