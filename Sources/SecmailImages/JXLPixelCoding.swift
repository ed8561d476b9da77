/// How hard libjxl works when it codes an image's pixels losslessly: the effort, whether it
/// searches for repeated patches (glyphs of text, icons), which it otherwise does from effort 7,
/// and the share of the pixels it learns its context tree from (libjxl's default is 50%).
///
/// Chosen by a time model measured on the tuning corpus's PNGs (scripts/bench-images.sh's
/// corpus, libjxl 0.7, this machine's 2 cores), so that the default level's image work for a
/// 2–5 megapixel image stays within about a second and a half. Per pixel, with `b` the bytes per
/// pixel of the fast PNG (how noisy the pixels are; a photograph is 1.5–2, a flat graphic 0.03):
/// effort 7 took up to 0.25 µs plus 1.55 µs per `b`, the patch search another 0.1–0.35 µs.
/// Most of effort 7's time on anything but flat graphics is the tree learning: learning from 25%
/// of the pixels took up to 0.27 + 0.85·b µs and from 10% 0.25 + 0.5·b µs, for 0.1–0.8% and
/// 0.7–2.1% more bytes (a 2-megapixel wallpaper: 1.24 s → 0.75 s at 10%; a noisy 0.64-megapixel
/// glow 1.75 s → 0.63 s). Effort 4 took 0.85 to 2 times as long as effort 7 learning from 10%,
/// for 4–7% more bytes on noisy pixels and far more on graphics (up to 3.3 times), so it is not
/// used; effort 3 takes 0.1–0.2 µs, +1% to +3% on photographs and noisy renderings, +11% on a
/// glow, +9% on a 4-megapixel screenshot (2.2 s of image work → 0.9 s; still 25% below its PNG),
/// and up to 3.5 times the fast PNG on flat graphics: it is the last resort for all but flat
/// pixels (under 0.15 bytes per pixel), which keep effort 7 learning from 10% even where that
/// takes longer than the budget (it is quickest there, 0.25–0.3 µs).
struct JXLPixelCoding: Equatable, Sendable, CustomStringConvertible {
    let effort: Int
    let patches: Bool
    /// The percentage of pixels the context tree is learnt from.
    let learningPercent: Int

    init(effort: Int, patches: Bool, learningPercent: Int = 50) {
        self.effort = effort
        self.patches = patches
        self.learningPercent = learningPercent
    }

    /// The most effort libjxl gets: the thorough level's (`image wire --level 3`), with no time limit.
    static let thorough = JXLPixelCoding(effort: 7, patches: true)

    /// The encode time the model lets an image's coding take.
    static let budgetSeconds = 1.0

    /// The coding for `pixels` pixels whose fast PNG is `pngBytes`: the first of effort 7 with
    /// patches, effort 7, effort 7 learning from 25% and from 10% of the pixels whose predicted
    /// time fits `budgetSeconds`; past them all but flat pixels go down to effort 3.
    static func within(pixels: Int, pngBytes: Int) -> JXLPixelCoding {
        let perPixel = Double(pngBytes) / Double(max(pixels, 1))
        let megapixels = Double(pixels) / 1_000_000
        // Microseconds a pixel, from the measurements above (on the side of caution).
        let patchSearch = 0.2
        let leastWork = JXLPixelCoding(effort: 7, patches: false, learningPercent: 10)
        let ladder: [(JXLPixelCoding, Double)] = [
            (.thorough, 0.25 + 1.55 * perPixel + patchSearch),
            (JXLPixelCoding(effort: 7, patches: false), 0.25 + 1.55 * perPixel),
            (JXLPixelCoding(effort: 7, patches: false, learningPercent: 25), 0.27 + 0.85 * perPixel),
            (leastWork, 0.25 + 0.5 * perPixel),
        ]
        if let fitting = ladder.first(where: { megapixels * $0.1 <= budgetSeconds }) { return fitting.0 }
        return perPixel < 0.15 ? leastWork : JXLPixelCoding(effort: 3, patches: false)
    }

    /// As `send --json` and `image wire` report it: "pixels, effort 7, patches", or
    /// "pixels, effort 7, tree from 10%".
    var description: String {
        "pixels, effort \(effort)\(patches ? ", patches" : "")\(learningPercent == 50 ? "" : ", tree from \(learningPercent)%")"
    }
}
