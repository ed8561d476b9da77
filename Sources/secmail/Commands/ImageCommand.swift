import ArgumentParser
import Foundation
import SecmailImages

struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Lossless image tools.",
        subcommands: [ImageOptimizeCommand.self])
}

struct ImageOptimizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "optimize",
        abstract: "Convert a PNG or JPEG to the smallest PNG with exactly the same pixels, metadata removed.",
        discussion: """
            Colour type and bit depth are reduced when no pixel changes (palette, grey, no alpha, \
            8 instead of 16 bits), filters and deflaters (libdeflate, zopfli) are searched, and every \
            ancillary chunk but colour rendering information (and an EXIF orientation) is dropped. \
            The result is decoded again and compared pixel for pixel with the input before it is written.

            Levels: 1 one quick trial (fastest); 2 the filters ranked quickly, the best at libdeflate \
            level 11 (default); 3 every filter, brute force too, at level 12, then zopfli over the two best (slowest).
            """)

    @Argument(help: ArgumentHelp("The PNG or JPEG image.", valueName: "in"))
    var input: String

    @Option(name: .shortAndLong, help: ArgumentHelp("The PNG to write (must not exist).", valueName: "out.png"))
    var output: String

    @Option(name: .long, help: ArgumentHelp("Effort: 1 fast, 2 normal, 3 thorough.", valueName: "n"))
    var level: Int = PNGEffort.normal.rawValue

    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    func validate() throws {
        guard PNGEffort(rawValue: level) != nil else { throw ValidationError("--level is 1, 2 or 3") }
    }

    func run() async throws {
        try await reportingFailures {
            let outputURL = URL(fileURLWithPath: output)
            guard !FileManager.default.fileExists(atPath: outputURL.path) else {
                throw CLIFailure(.failure, "\(output) exists already; choose another output file")
            }
            let bytes: [UInt8]
            do {
                bytes = Array(try Data(contentsOf: URL(fileURLWithPath: input)))
            } catch {
                throw CLIFailure(.failure, "cannot read \(input): \(error.localizedDescription)")
            }
            let start = ContinuousClock.now
            let pipeline = ImagePipeline(effort: PNGEffort(rawValue: level) ?? .normal)
            let result = try pipeline.optimizedPNG(bytes)
            let duration = ContinuousClock.now - start
            let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
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
                Terminal.info("  \(formatBytes(UInt64(bytes.count))) -> \(formatBytes(UInt64(result.png.bytes.count))) (\(String(format: "%.1f", change))%) in \(String(format: "%.2f", seconds)) s; pixels verified identical")
                Terminal.info("  \(result.png.method); \(result.png.trials) trials, \(result.png.abandoned) stopped early")
            }
        }
    }
}
