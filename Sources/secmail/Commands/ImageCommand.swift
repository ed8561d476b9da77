import ArgumentParser
import FoundationEssentials
import Glibc
import SecmailCommandLine
import SecmailFormat
import SecmailImages

struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Lossless image tools.",
        subcommands: [ImageOptimizeCommand.self, ImageWireCommand.self])
}

struct ImageOptimizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "optimize",
        abstract: "Convert a PNG or JPEG to the smallest PNG with exactly the same pixels, metadata removed.",
        discussion: """
            Colour type and bit depth are reduced when no pixel changes (palette, grey, no alpha, \
            8 instead of 16 bits), filters and deflaters (libdeflate, zopfli) are searched, and every \
            ancillary chunk but colour rendering information (and an EXIF orientation) is dropped. \
            The result is decoded again and compared pixel for pixel with the input before it is written. \
            An animated PNG is refused: the result would hold its first frame alone.

            Levels: 1 one quick trial (fastest); 2 the filters ranked quickly, the best at libdeflate \
            level 11, or 12 for small or poorly compressible images (default); 3 every filter, brute force too, at level 12, then zopfli over the two best (slowest).
            """)

    @Argument(help: ArgumentHelp("The PNG or JPEG image.", valueName: "in"))
    var input: String

    @Option(name: .shortAndLong, help: ArgumentHelp("The PNG to write (must not exist).", valueName: "out.png"))
    var output: String

    @Option(name: .long, help: ArgumentHelp("Effort: 1 fast, 2 normal, 3 thorough.", valueName: "n"))
    var level: PNGEffort = .normal

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    func run() async throws {
        let outputURL = try AtomicFile.checkCanCreate(output)
        let bytes = try readImage(input)
        let pipeline = ImagePipeline(effort: level)
        let (result, seconds) = try imageWork(on: input, imageWorkLabel("optimizing", input, level: level)) {
            try pipeline.optimizedPNG(bytes)
        }
        try AtomicFile.write(to: outputURL) { sink in try sink.write(result.png.bytes[...]) }
        let change = Double(result.png.bytes.count) / Double(max(bytes.count, 1)) * 100
        if json {
            try Terminal.output(jsonText([
                "input": input, "output": output, "inputBytes": bytes.count, "outputBytes": result.png.bytes.count,
                "seconds": (seconds * 1000).rounded() / 1000, "width": result.image.width, "height": result.image.height,
                "source": result.image.sourceDescription, "method": result.png.method, "trials": result.png.trials,
            ]))
        } else {
            Terminal.info("\(input): \(result.image.width)x\(result.image.height), \(result.image.sourceDescription)")
            Terminal.info("  \(formatBytes(UInt64(bytes.count))) -> \(formatBytes(UInt64(result.png.bytes.count))) (\(decimal(change, places: 1))%) in \(decimal(seconds, places: 2)) s; pixels verified identical")
            Terminal.info("  \(result.png.method); \(result.png.trials) trials, \(result.png.abandoned) stopped early")
        }
    }
}

struct ImageWireCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wire",
        abstract: "Show what `send` puts on the wire for an image, and what the reader then gets.",
        discussion: """
            Makes the forms `send` compares (the optimised PNG, for a JPEG the stripped JPEG, and \
            JPEG XL when the readers take it), says which travels, then converts that to the PNG a \
            reader saves and checks its pixels against the image's. --features names what the readers \
            declared (default: everything this client reads; "none" for a client that reads only PNG \
            and JPEG).
            """)

    @Argument(help: ArgumentHelp("The PNG or JPEG image.", valueName: "in"))
    var input: String

    @Option(name: .long, help: ArgumentHelp("Reader features, comma-separated, or none.", valueName: "list"))
    var features: String = ReaderFeature.supported.map(\.rawValue).joined(separator: ",")

    @Option(name: .long, help: ArgumentHelp("PNG effort: 1 fast, 2 normal, 3 thorough.", valueName: "n"))
    var level: PNGEffort = .normal

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    func validate() throws {
        _ = try readerFeatures()
    }

    func readerFeatures() throws -> Set<ReaderFeature> {
        guard features != "none" else { return [] }
        return Set(try features.split(separator: ",").map { name in
            guard let feature = ReaderFeature(rawValue: String(name)) else {
                throw ValidationError("unknown reader feature \(name); this client knows \(ReaderFeature.supported.map(\.rawValue).joined(separator: ", "))")
            }
            return feature
        })
    }

    func run() async throws {
        let bytes = try readImage(input)
        let readable = try readerFeatures()
        let pipeline = ImagePipeline(effort: level)
        let (wire, seconds) = try imageWork(on: input, imageWorkLabel("making the wire forms of", input, level: level)) {
            try pipeline.wireForm(of: bytes, allowJXL: readable.contains(.jxl), allowJXLRendering: readable.contains(.jxlRendering))
        }
        let (png, readerSeconds) = try imageWork(on: input, "making the reader's PNG of \(TerminalText.neutralised(fileName(input)))") {
            try pipeline.readerPNG(wire.bytes)
        }
        let (same, _) = try imageWork(on: input, "comparing the pixels") {
            try pipeline.decode(png).image.hasSamePixels(as: try pipeline.decode(bytes).image)
        }
        guard same else {
            throw CLIFailure(.failure, "the reader's PNG of \(input) does not have the image's pixels")
        }
        if json {
            var report = wire.report
            report["input"] = input
            report["seconds"] = (seconds * 1000).rounded() / 1000
            report["readerPNGBytes"] = png.count
            report["readerSeconds"] = (readerSeconds * 1000).rounded() / 1000
            try Terminal.output(jsonText(report))
        } else {
            Terminal.info("\(input): \(wire.width)x\(wire.height), \(formatBytes(UInt64(wire.originalSize)))")
            Terminal.info("  \(wire.sizes)")
            let method = wire.format == .jxl ? wire.jxlMethod.map { " (\($0))" } ?? "" : ""
            Terminal.info("  sends the \(wire.format.displayName)\(method), \(formatBytes(UInt64(wire.bytes.count))), made in \(decimal(seconds, places: 2)) s")
            Terminal.info("  the reader's PNG: \(formatBytes(UInt64(png.count))) in \(decimal(readerSeconds, places: 2)) s; pixels verified identical")
        }
    }
}

/// The bytes of the image file at `path`, or a failure that names it.
private func readImage(_ path: String) throws -> [UInt8] {
    do {
        // An image within ImageLimits.standard is smaller than this even stored uncompressed.
        return try NamedFile.contents(of: nonEmptyArgument(path, "the image file"), maximumByteCount: 1 << 30)
    } catch let error as FormatError {
        throw CLIFailure(.failure, "cannot read \(path): \(error.reason)")
    }
}

/// What a status line says while image work runs: the file's name, and at level 3, whose zopfli
/// passes take minutes on a large image (a 1300x900 screenshot: two), that it may take long.
private func imageWorkLabel(_ doing: String, _ path: String, level: PNGEffort) -> String {
    let label = "\(doing) \(TerminalText.neutralised(fileName(path)))"
    return level == .thorough ? label + " at level 3, which can take minutes (Ctrl-C stops)" : label
}

private func fileName(_ path: String) -> String {
    URL(fileURLWithPath: path).lastPathComponent
}

/// The result of `body` and the seconds it took.
/// `body`, image work on the file at `path`, timed and under the status line `label`; an image
/// error names the file.
private func imageWork<T>(on path: String, _ label: String, _ body: () throws -> T) throws -> (T, Double) {
    do {
        return try Terminal.withStatus(label) { try timed(body) }
    } catch let error as ImageError {
        let (status, reason) = classify(error)
        throw CLIFailure(status, "\(path): \(reason)")
    }
}

private func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = ContinuousClock.now
    let result = try body()
    let duration = ContinuousClock.now - start
    return (result, Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
}

/// `--level 1|2|3`: the optimiser's efforts that people choose between.
extension PNGEffort: ExpressibleByArgument {
    public init?(argument: String) {
        guard let number = Int(argument), let effort = PNGEffort(rawValue: number), PNGEffort.levels.contains(effort) else { return nil }
        self = effort
    }

    public var defaultValueDescription: String { String(rawValue) }

    public static var allValueStrings: [String] { levels.map { String($0.rawValue) } }
}
