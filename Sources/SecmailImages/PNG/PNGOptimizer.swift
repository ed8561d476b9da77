import Foundation

/// How much work the optimiser spends. Figures from scripts/bench-images.sh are in README.md.
public enum PNGEffort: Int, Sendable, CaseIterable {
    /// Two quick trials with the heuristic filter (none for palettes): zlib level 6, and
    /// Huffman-only coding.
    case fast = 1
    /// Every filter with a quick zlib level 6 pass and with Huffman-only coding; then, when
    /// LZ77 came close, the two best filters at level 9 (default and "filtered" strategies),
    /// each stopped once it is on course to lose. The default.
    case normal = 2
    /// Both layouts (palette and direct) when both exist, every filter with every zlib strategy
    /// at level 9 and both memory levels.
    case thorough = 3
}

/// The result of optimising one image.
public struct OptimizedPNG: Sendable {
    public let bytes: [UInt8]
    /// e.g. "palette 4-bit (12 colours), filter paeth, zlib 9/9 default", or "original data, metadata removed".
    public let method: String
    /// Encodings tried, and how many were cut short because they grew past the best so far.
    public let trials: Int
    public let abandoned: Int
}

/// The optimising PNG encoder: exact colour-type and bit-depth reduction, a search over filter
/// strategies and zlib settings that keeps the smallest stream, every ancillary chunk except
/// rendering information dropped, and a final decode that must give the very same pixels.
public struct PNGOptimizer: Sendable {
    public let effort: PNGEffort

    public init(effort: PNGEffort = .normal) {
        self.effort = effort
    }

    static let filterNames = ["none", "sub", "up", "average", "paeth", "adaptive"]
    static let strategyNames = ["default", "filtered", "huffman", "rle"]

    struct Trial: Sendable {
        let layout: Int
        let filter: Int
        var level = 9
        let strategy: Int
        let memoryLevel: Int
    }

    /// The smallest exact PNG for `image`. With `original` (the PNG file the image was decoded
    /// from), its own compressed data, stripped of metadata, is a candidate too.
    public func optimize(_ image: RGBAImage, original: [UInt8]? = nil) throws -> OptimizedPNG {
        let layouts = PNGLayout.candidates(for: image)
        // Small images try both layouts at every effort above fast: it costs little, and there
        // the palette's PLTE/tRNS overhead can outweigh its smaller data.
        let bothLayouts = effort == .thorough || (effort == .normal && image.pixelCount <= 256 * 256)
        let usedLayouts = bothLayouts ? layouts : Array(layouts.prefix(1))
        // Raw scanlines per layout, made once and shared by the trials.
        let raws = usedLayouts.map { $0.pack(image) }
        let search = SearchState()
        if let original, image.orientation ?? 1 == 1, let stripped = PNGChunkReader.stripped(original) {
            search.offer(bytes: stripped, method: "original data, metadata removed")
        }

        /// Runs `trials` on every core; returns each one's IDAT size (nil when it outgrew the
        /// best file so far). `ranking` trials run to completion whatever the best is.
        func run(_ trials: [Trial], ranking: Bool = false) throws -> [Int?] {
            let failure = FailureBox()
            let sizes = SizeBox(count: trials.count)
            DispatchQueue.concurrentPerform(iterations: trials.count) { index in
                let trial = trials[index]
                let layout = usedLayouts[trial.layout]
                // Filtering costs little beside deflate; redoing it keeps memory at a few copies of the image.
                let data = ImageCodecs.filter(raws[trial.layout], height: image.height, rowBytes: layout.rowBytes(width: image.width),
                                              bytesPerPixel: layout.filterBytesPerPixel, filter: trial.filter)
                do {
                    // Only a stream smaller than the best file so far (less the chunk overhead) can win.
                    let bound = data.count + data.count / 100 + 1024
                    let limit = ranking ? bound : search.bestSize.map { max(0, $0 - 64) } ?? bound
                    // Projected early stops only where a best exists and effort is not thorough.
                    let projecting = !ranking && effort != .thorough && search.bestSize != nil
                    guard let idat = try ImageCodecs.deflate(data, level: trial.level, memoryLevel: trial.memoryLevel,
                                                             strategy: trial.strategy, limit: limit, projecting: projecting) else {
                        search.abandon()
                        return
                    }
                    sizes.set(index, idat.count)
                    let file = try PNGChunkWriter.file(width: image.width, height: image.height, layout: layout, idat: idat,
                                                       rendering: image.rendering, orientation: image.orientation)
                    search.offer(bytes: file, trial: trial, method: "\(layout), filter \(Self.filterNames[trial.filter]), zlib \(trial.level)/\(trial.memoryLevel) \(Self.strategyNames[trial.strategy])")
                } catch {
                    failure.set(error)
                }
            }
            if let error = failure.error { throw error }
            return sizes.values
        }

        switch effort {
        case .fast:
            let filter = usedLayouts[0].colorType == .palette || usedLayouts[0].bitDepth < 8 ? 0 : 5
            _ = try run([Trial(layout: 0, filter: filter, level: 6, strategy: 0, memoryLevel: 8),
                         Trial(layout: 0, filter: filter, strategy: 2, memoryLevel: 8)], ranking: true)
        case .normal:
            // zlib level 9 costs 10 to 15 times level 6 on filtered image data, and ranks filters
            // the same way nearly always: rank with 6, compress the front-runners with 9.
            let quickTrials = usedLayouts.indices.flatMap { layout in
                (0...5).map { Trial(layout: layout, filter: $0, level: 6, strategy: 0, memoryLevel: 8) }
            }
            let quick = try run(quickTrials, ranking: true)
            let ranked = quickTrials.indices.sorted { (quick[$0] ?? .max) < (quick[$1] ?? .max) }.map { quickTrials[$0] }
            let (first, second) = (ranked[0], ranked[1])
            // Huffman-only (every filter) and RLE take a tenth of the time and often win on
            // photographs, where LZ77 finds little to match.
            try _ = run(usedLayouts.indices.flatMap { layout in (0...5).map { Trial(layout: layout, filter: $0, strategy: 2, memoryLevel: 8) } }
                        + [Trial(layout: first.layout, filter: first.filter, strategy: 3, memoryLevel: 8)])
            // Level 9 gains a few per cent over level 6 at ten times the cost: spend it only
            // where LZ77 at level 6 came within 5% of the best, and stop what is on course to lose.
            let quickBest = quick.compactMap { $0 }.min() ?? .max
            if let best = search.bestSize, quickBest <= best + best / 20 {
                try _ = run([Trial(layout: first.layout, filter: first.filter, strategy: 0, memoryLevel: 8),
                             Trial(layout: first.layout, filter: first.filter, strategy: 1, memoryLevel: 8),
                             Trial(layout: second.layout, filter: second.filter, strategy: 0, memoryLevel: 8)])
            }
        case .thorough:
            // Everything `normal` tries (level 6 included), so thorough is never larger.
            _ = try run(usedLayouts.indices.flatMap { layout in (0...5).map { Trial(layout: layout, filter: $0, level: 6, strategy: 0, memoryLevel: 8) } })
            _ = try run(usedLayouts.indices.flatMap { layout in
                (0...5).flatMap { filter in
                    (0...3).flatMap { strategy in [8, 9].map { Trial(layout: layout, filter: filter, strategy: strategy, memoryLevel: $0) } }
                }
            })
        }
        guard let best = search.best else {
            throw ImageError(.outOfMemory, "no PNG encoding of the image could be made")
        }
        // The promise: the output decodes to exactly the input's pixels. Checked every time.
        let decoded = try ImageCodecs.decode(best.bytes, format: .png, limits: .standard)
        guard decoded.hasSamePixels(as: image) else {
            throw ImageError(.pixelMismatch, "the optimised PNG (\(best.method)) does not decode to the original pixels; it was discarded")
        }
        return OptimizedPNG(bytes: best.bytes, method: best.method, trials: search.trials, abandoned: search.abandoned)
    }
}

/// The best encoding so far, shared by concurrent trials.
private final class SearchState: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    struct Candidate {
        let bytes: [UInt8]
        let trial: PNGOptimizer.Trial?
        let method: String
    }

    private let lock = NSLock()
    private var candidate: Candidate?
    private var trialCount = 0
    private var abandonedCount = 0

    var best: Candidate? { lock.withLock { candidate } }
    var bestSize: Int? { lock.withLock { candidate?.bytes.count } }
    var bestTrial: PNGOptimizer.Trial? { lock.withLock { candidate?.trial } }
    var trials: Int { lock.withLock { trialCount } }
    var abandoned: Int { lock.withLock { abandonedCount } }

    func offer(bytes: [UInt8], trial: PNGOptimizer.Trial? = nil, method: String) {
        lock.withLock {
            if trial != nil { trialCount += 1 }
            if candidate == nil || bytes.count < candidate!.bytes.count {
                candidate = Candidate(bytes: bytes, trial: trial, method: method)
            }
        }
    }

    func abandon() {
        lock.withLock {
            trialCount += 1
            abandonedCount += 1
        }
    }
}

private final class SizeBox: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var stored: [Int?]

    init(count: Int) { stored = Array(repeating: nil, count: count) }

    var values: [Int?] { lock.withLock { stored } }

    func set(_ index: Int, _ size: Int) { lock.withLock { stored[index] = size } }
}

private final class FailureBox: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var stored: Error?

    var error: Error? { lock.withLock { stored } }

    func set(_ error: Error) { lock.withLock { if stored == nil { stored = error } } }
}
