import Dispatch
import FoundationEssentials
import Glibc
import Synchronization
import SecmailCrypto

/// How much work the optimiser spends. Figures from scripts/bench-images.sh are in README.md.
public enum PNGEffort: Int, Sendable, CaseIterable {
    /// The reader's copy of an image that travelled as JPEG or JPEG XL, which need not be the
    /// smallest PNG: deflate level 1. A decoded JPEG takes the fast trial's filter (a
    /// 4-megapixel photograph: 10% more bytes than `fast`, its deflate 40% quicker, and on two
    /// cores 30% quicker again); other pixels (a JPEG XL made from a PNG) take the none and up
    /// filters, one per core, and keep the smaller. Not one of `image optimize`'s levels.
    case conversion = 0
    /// One trial: the up filter (none for palettes and packed grey) at libdeflate level 2.
    case fast = 1
    /// The filters and heuristics ranked at a quick libdeflate level, then the best (and a
    /// close runner-up) at level 11, or 12 where that costs little; a large image's lone
    /// finalist on both cores. The default.
    case normal = 2
    /// Both layouts (palette and direct) when both exist, every filter (two per-row brute forces
    /// included) at libdeflate level 12, then zopfli's optimal parser (60 iterations, no cap on
    /// its blocks) over the two best.
    case thorough = 3

    /// The levels `image optimize --level` and `image wire --level` take.
    public static let levels = [PNGEffort.fast, .normal, .thorough]
}

extension PNGEffort: Comparable {
    public static func < (lhs: PNGEffort, rhs: PNGEffort) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The filter choices of the encoder: one of PNG's five filters for every row, or a heuristic
/// that picks one per row (PNG specification, section 12.8).
enum PNGFilter: Int, Sendable, CaseIterable {
    case none = 0, sub, up, average, paeth
    /// The smallest sum of absolute values (libpng's heuristic).
    case minSum = 5
    /// The lowest Shannon entropy of the row's bytes.
    case entropy = 6
    /// The fewest distinct pairs of neighbouring bytes (LZ77 finds more repeats).
    case bigrams = 7
    /// Brute force: the filter whose row deflates shortest (libdeflate 4) after the four rows before it.
    case brute = 8
    /// The same judged by libdeflate's fastest level after the three rows before it: it picks
    /// other rows, and wins on other images.
    case quickBrute = 9

    var name: String {
        switch self {
        case .none: "none"
        case .sub: "sub"
        case .up: "up"
        case .average: "average"
        case .paeth: "paeth"
        case .minSum: "min-sum"
        case .entropy: "entropy"
        case .bigrams: "bigrams"
        case .brute: "brute force"
        case .quickBrute: "quick brute force"
        }
    }
}

/// The result of optimising one image.
public struct OptimizedPNG: Sendable {
    public let bytes: [UInt8]
    /// e.g. "palette 4-bit (12 colours), filter paeth, libdeflate 11", or "original data, metadata removed".
    public let method: String
    /// Encodings tried, and how many were dropped because they grew past the best so far.
    public let trials: Int
    public let abandoned: Int
}

/// The optimising PNG encoder: exact colour-type and bit-depth reduction, a search over filter
/// strategies and deflaters (libdeflate, zopfli) that keeps the smallest stream, every ancillary
/// chunk except rendering information dropped, and a final decode that must give the very same
/// pixels.
public struct PNGOptimizer: Sendable {
    public let effort: PNGEffort
    /// Whether the image is a decoded JPEG, which decides the `conversion` effort's filters.
    public let isDecodedJPEG: Bool

    public init(effort: PNGEffort = .normal, isDecodedJPEG: Bool = false) {
        self.effort = effort
        self.isDecodedJPEG = isDecodedJPEG
    }

    /// How a trial's filtered data becomes a zlib stream.
    enum Deflater: Sendable, CustomStringConvertible {
        case libdeflate(level: Int)
        /// libdeflate at `level` over two parts of the data at once (`ImageCodecs.deflateOnTwoCores`).
        case twoCores(level: Int)
        case zopfli(iterations: Int)

        var description: String {
            switch self {
            case .libdeflate(let level): "libdeflate \(level)"
            case .twoCores(let level): "libdeflate \(level) on two cores"
            case .zopfli(let iterations): "zopfli \(iterations)"
            }
        }
    }

    struct Trial: Sendable {
        let layout: Int
        let filter: PNGFilter
        let deflater: Deflater
    }

    /// The smallest exact PNG for `image`. With `original` (the PNG file the image was decoded
    /// from), its own compressed data, stripped of metadata, is a candidate too. `whileChecking`
    /// is given the output while libpng checks it on another core (a reader writes its file
    /// meanwhile); the result is returned, and the output may be used, only once the check passed.
    public func optimize(_ image: RGBAImage, original: [UInt8]? = nil, whileChecking: (([UInt8]) throws -> Void)? = nil) throws -> OptimizedPNG {
        let layouts = PNGLayout.candidates(for: image, profile: image.rendering.forOptimizedPNG.iccProfile.map(ICCProfile.init))
        // Small images try both layouts at every effort above fast: it costs little, and there
        // the palette's PLTE/tRNS overhead can outweigh its smaller data.
        let bothLayouts = effort == .thorough || (effort == .normal && image.pixelCount <= 256 * 256)
        let trials = TrialRunner(image: image, layouts: bothLayouts ? layouts : Array(layouts.prefix(1)))
        if let original, image.orientation ?? 1 == 1, let stripped = PNGChunkReader.stripped(original) {
            trials.search.offer(bytes: stripped, method: "original data, metadata removed")
        }
        switch effort {
        case .conversion, .fast: try searchOneTrial(trials)
        case .normal: try searchRankedFilters(trials)
        case .thorough: try searchEveryFilter(trials)
        }
        guard let best = trials.search.best else {
            throw ImageError(.outOfMemory, "no PNG encoding of the image could be made")
        }
        // The promise: the output decodes to exactly the input's pixels. Checked every time.
        let output = best.bytes
        let matches: Bool
        if let whileChecking {
            (_, matches) = try concurrently({ try whileChecking(output) }, {
                try ImageCodecs.pngDecodes(output, toPixelsOf: image, limits: .standard)
            })
        } else {
            matches = try ImageCodecs.pngDecodes(output, toPixelsOf: image, limits: .standard)
        }
        guard matches else {
            throw ImageError(.pixelMismatch, "the optimised PNG (\(best.method)) does not decode to the original pixels; it was discarded")
        }
        return OptimizedPNG(bytes: best.bytes, method: best.method, trials: trials.search.trials, abandoned: trials.search.abandoned)
    }

    /// The fast level and the reader's conversion: one trial (two for a conversion of pixels
    /// that were not a JPEG's).
    private func searchOneTrial(_ trials: TrialRunner) throws {
        let direct = trials.layouts[0].colorType != .palette && trials.layouts[0].bitDepth >= 8
        // On the tuning corpus: 2.9% more bytes than the entropy heuristic at level 7, in 39%
        // less time. libdeflate 2 rather than 4: 0.1% more bytes on the tuning corpus (0.2%
        // held out), and a 4-megapixel photo's PNG 3.4% larger in 0.1 s less; level 1 gave
        // 1.3% more held out, and is the reader's conversion.
        // The reader waits for the conversion with the other core idle: a large image is
        // compressed in two parts at once (a 4-megapixel photo: 47 → 32 ms).
        // Pixels that were a PNG's are mostly screenshots and graphics, whose rows the none filter
        // often deflates far better than up (a 2.7-megapixel screenshot: 260 KiB against 324).
        // Both at once, one per core, instead of up alone on both cores: on the held-out corpus
        // 7.4% fewer bytes for 12% more time (the tuning corpus: 0.5%, 8%; its photographs saved
        // as PNG lost nothing). On decoded JPEGs none never won (every photograph of both parts
        // tied), while a large one took up to 40% longer: they keep the single trial.
        // (Ranking none, up and min-sum on a sample of the rows instead: 9.8% held out, 1.8%
        // tuning, for 63% and 47% more time.)
        if effort == .conversion, direct, !isDecodedJPEG {
            _ = try trials.run([PNGFilter.none, .up].map { Trial(layout: 0, filter: $0, deflater: .libdeflate(level: 1)) }, ranking: true)
            return
        }
        let filteredSize = trials.image.height * (trials.layouts[0].rowBytes(width: trials.image.width) + 1)
        let deflater: Deflater = effort == .fast ? .libdeflate(level: 2) : filteredSize >= 1 << 20 ? .twoCores(level: 1) : .libdeflate(level: 1)
        _ = try trials.run([Trial(layout: 0, filter: direct ? .up : .none, deflater: deflater)], ranking: true)
    }

    /// The default level: the filters ranked at a quick deflate level, then the best one or two at
    /// libdeflate 11 or 12.
    private func searchRankedFilters(_ trials: TrialRunner) throws {
        // A quick level ranks the filters nearly the way level 11 does, at a tenth of the
        // cost. The filters that never won on the tuning corpus (sub, average, paeth) sit
        // out; the runner-up is compressed too, on the other core, only when its quick
        // stream came within 3% of the best (further apart it did not win, and a graphic's
        // level-11 pass can take far longer than the leader's), and only while one core's
        // pass should stay under a second (`soloFrom` below); past that the leader alone on
        // both cores halves it.
        let quickTrials = trials.layouts.indices.flatMap { layout in
            [PNGFilter.none, .up, .minSum, .entropy, .bigrams].map { Trial(layout: layout, filter: $0, deflater: .libdeflate(level: 3)) }
        }
        let quick = try trials.run(quickTrials, ranking: true)
        let ranked = TrialRunner.ranked(quick)
        let leader = quick[ranked[0]] ?? .max
        let filteredSize = trials.image.height * (trials.layouts[quickTrials[ranked[0]].layout].rowBytes(width: trials.image.width) + 1)
        // libdeflate 12 beat 11 by 0.5% on the tuning corpus's PNGs, for 44% more time;
        // the time goes where long matches abound (a 3-megapixel palette graphic: 0.7 s
        // more), while data that deflates to a quarter or more of its size (photographs,
        // noisy renderings) costs a few per cent more, as does anything small (at most 256
        // KiB filtered). Level 12 is used there: 0.17% fewer bytes on the tuning corpus's PNGs
        // in the same time.
        let finalLevel = leader >= filteredSize / 4 || filteredSize <= 256 << 10 ? 12 : 11
        // One core's final pass, on the tuning corpus, took up to a quarter of a second per
        // MiB filtered at level 11 (long matches: the 2-megapixel softwaves graphic's two
        // passes of 5.9 MiB took 1.5 s, a 2.5 MiB RGBA graphic's 0.65 s) and about a tenth
        // at level 12 (a 2.4 MiB RGBA glow 0.26 s). Hence a single finalist from 4 MiB at
        // level 11 and from 8 MiB at level 12. On the tuning corpus these bounds touched two
        // images, both at level 11: a 2560x1600 screenshot of 12 MiB (its runner-up had won
        // by 0.11%; 0.37 s less) and the softwaves graphic (1.70 -> 1.05 s; 0.19%).
        let soloFrom = finalLevel == 11 ? 4 << 20 : 8 << 20
        let finalists = ranked.prefix(filteredSize >= soloFrom ? 1 : 2).filter { ($0 == ranked[0] || (quick[$0] ?? .max) <= leader + leader / 33) }
        // A single finalist on a large image (a megabyte or more filtered) would keep one
        // core waiting: it is compressed in two halves at once. On the tuning corpus 18%
        // less time at this level for 0.015% more bytes (the second half starts without the
        // first's window: up to 1% on a highly compressible graphic, nothing measurable on
        // photographs and screenshots).
        let deflater: Deflater = finalists.count == 1 && filteredSize >= 1 << 20 ? .twoCores(level: finalLevel) : .libdeflate(level: finalLevel)
        _ = try trials.run(finalists.map { Trial(layout: quickTrials[$0].layout, filter: quickTrials[$0].filter, deflater: deflater) })
    }

    /// The thorough level: every filter on every layout at libdeflate 12, then zopfli over the best two.
    private func searchEveryFilter(_ trials: TrialRunner) throws {
        let everyFilter = trials.everyFilter(.libdeflate(level: 12))
        let sizes = try trials.run(everyFilter, ranking: true)
        // The two brute-force filters (libdeflate 4 after four rows, 1 after three) are both
        // tried: on the tuning corpus's small images the quick one won an RGBA icon by 1.9%
        // (0.006% over them all), zopfli over the best three instead of two gained another
        // 0.02% for 1.7 times the time, and zopfli over the best four gained nothing over
        // the best two; 30 iterations gave 0.17% over 15 for 1.5 times the time, and 60
        // another 0.06% over 30 for 1.6 times (level 3 still took 0.65 times oxipng's
        // `-o max --zopfli` there, and is for when bytes matter most).
        _ = try trials.run(TrialRunner.ranked(sizes).prefix(2).map { Trial(layout: everyFilter[$0].layout, filter: everyFilter[$0].filter, deflater: .zopfli(iterations: 60)) })
    }
}

/// Carries out trials for one image: its candidate layouts, their raw scanlines (made once and
/// shared by the trials) and the best encoding so far.
private struct TrialRunner {
    typealias Trial = PNGOptimizer.Trial
    let image: RGBAImage
    let layouts: [PNGLayout]
    let rendering: RenderingInfo
    let raws: [[UInt8]]
    let search = SearchState()

    init(image: RGBAImage, layouts: [PNGLayout]) {
        self.image = image
        self.layouts = layouts
        rendering = image.rendering.forOptimizedPNG
        raws = layouts.map { $0.pack(image) }
    }

    /// Runs `trials` on every core; returns each one's IDAT size (nil when it outgrew the best
    /// file so far). `ranking` trials run to completion whatever the best is.
    func run(_ trials: [Trial], ranking: Bool = false) throws -> [Int?] {
        let failure = FailureBox()
        let sizes = SizeBox(count: trials.count)
        DispatchQueue.concurrentPerform(iterations: trials.count) { index in
            let trial = trials[index]
            let layout = layouts[trial.layout]
            do {
                // Filtering costs little beside deflate; redoing it keeps memory at a few copies of the image.
                let data = try ImageCodecs.filter(raws[trial.layout], height: image.height, rowBytes: layout.rowBytes(width: image.width),
                                                  bytesPerPixel: layout.filterBytesPerPixel, filter: trial.filter)
                let idat: [UInt8]
                switch trial.deflater {
                case .libdeflate(let level):
                    // Only a stream smaller than the best file so far (less the chunk overhead) can win.
                    let bound = ImageCodecs.bound(data.count)
                    let limit = ranking ? bound : search.bestSize.map { max(0, $0 - 64) } ?? bound
                    guard let stream = try ImageCodecs.deflate(data, level: level, limit: limit) else {
                        search.abandon()
                        return
                    }
                    idat = stream
                case .twoCores(let level):
                    guard let stream = try ImageCodecs.deflateOnTwoCores(data, level: level) else {
                        throw ImageError(.outOfMemory, "the compressed image outgrew its bound")
                    }
                    idat = stream
                case .zopfli(let iterations):
                    idat = try ImageCodecs.zopfli(data, iterations: iterations)
                }
                sizes.set(index, idat.count)
                let file = try PNGChunkWriter.file(width: image.width, height: image.height, layout: layout, idat: idat,
                                                   rendering: rendering, orientation: image.orientation)
                search.offer(bytes: file, trial: trial, method: "\(layout), filter \(trial.filter.name), \(trial.deflater)")
            } catch {
                failure.set(error)
            }
        }
        if let error = failure.error { throw error }
        return sizes.values
    }

    /// The trials of every filter on every layout, with one deflater.
    func everyFilter(_ deflater: PNGOptimizer.Deflater) -> [Trial] {
        layouts.indices.flatMap { layout in PNGFilter.allCases.map { Trial(layout: layout, filter: $0, deflater: deflater) } }
    }

    /// The indices of `sizes`, smallest stream first (a trial that gave none last).
    static func ranked(_ sizes: [Int?]) -> [Int] {
        sizes.indices.sorted { (sizes[$0] ?? .max) < (sizes[$1] ?? .max) }
    }
}

extension PNGOptimizer {
    /// A cheap estimate of the fast level's PNG size: one band of four rows in every sixteen,
    /// laid out, filtered and deflated as the fast level does, scaled to the whole height. A
    /// sample that happens to hold few colours estimates low, which only means the PNG gets made.
    public static func estimatedSize(of image: RGBAImage) throws -> Int {
        let bandRows = 4, period = 16
        let rowBytes = image.width * 4 * image.bitDepth / 8
        var samples: [UInt8] = []
        var rows = 0
        for top in stride(from: 0, to: image.height, by: period) {
            let count = min(bandRows, image.height - top)
            samples += image.samples[top * rowBytes..<(top + count) * rowBytes]
            rows += count
        }
        let sample = RGBAImage(width: image.width, height: rows, bitDepth: image.bitDepth, samples: samples)
        let layout = PNGLayout.candidates(for: sample)[0]
        let direct = layout.colorType != .palette && layout.bitDepth >= 8
        let data = try ImageCodecs.filter(layout.pack(sample), height: rows, rowBytes: layout.rowBytes(width: image.width),
                                          bytesPerPixel: layout.filterBytesPerPixel, filter: direct ? .up : .none)
        let stream = try ImageCodecs.deflate(data, level: 2, limit: ImageCodecs.bound(data.count)) ?? data
        return stream.count * image.height / max(rows, 1)
    }
}

/// The best encoding so far, shared by concurrent trials.
private final class SearchState: Sendable {
    struct Candidate {
        let bytes: [UInt8]
        let trial: PNGOptimizer.Trial?
        let method: String
    }

    private struct Progress {
        var candidate: Candidate?
        var trialCount = 0
        var abandonedCount = 0
    }

    private let progress = Mutex(Progress())

    var best: Candidate? { progress.withLock { $0.candidate } }
    var bestSize: Int? { progress.withLock { $0.candidate?.bytes.count } }
    var trials: Int { progress.withLock { $0.trialCount } }
    var abandoned: Int { progress.withLock { $0.abandonedCount } }

    func offer(bytes: [UInt8], trial: PNGOptimizer.Trial? = nil, method: String) {
        progress.withLock {
            if trial != nil { $0.trialCount += 1 }
            if $0.candidate.map({ bytes.count < $0.bytes.count }) ?? true {
                $0.candidate = Candidate(bytes: bytes, trial: trial, method: method)
            }
        }
    }

    func abandon() {
        progress.withLock {
            $0.trialCount += 1
            $0.abandonedCount += 1
        }
    }
}

private final class SizeBox: Sendable {
    private let stored: Mutex<[Int?]>

    init(count: Int) { stored = Mutex(Array(repeating: nil, count: count)) }

    var values: [Int?] { stored.withLock { $0 } }

    func set(_ index: Int, _ size: Int) { stored.withLock { $0[index] = size } }
}

private final class FailureBox: Sendable {
    private let stored = Mutex<(any Error)?>(nil)

    var error: Error? { stored.withLock { $0 } }

    func set(_ error: Error) { stored.withLock { if $0 == nil { $0 = error } } }
}
