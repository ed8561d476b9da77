/// How hard libjxl works when it codes an image's pixels losslessly: the effort, and whether it
/// searches for repeated patches (glyphs of text, icons), which it otherwise does from effort 7.
///
/// Chosen by a time model measured on the tuning corpus's PNGs (scripts/bench-images.sh's
/// corpus, libjxl 0.7, this machine's 2 cores), so that the default level's image work for a
/// 2–5 megapixel image stays within about a second and a half. Per pixel, with `b` the bytes per
/// pixel of the fast PNG (how noisy the pixels are; a photograph is 1.5–2, a flat graphic 0.03):
/// effort 7 took 0.2–0.3 µs plus about 1 µs per `b`, the patch search another 0.1–0.35 µs,
/// effort 4 about 0.3 µs plus 0.45 µs per `b`, effort 3 0.1–0.2 µs. Bytes beside effort 7 with
/// patches: without patches the same on every image but the two screenshots (+5% and +18%);
/// effort 4 +1% to +2% on photographs, up to 3.3 times on graphics; effort 3 +1% to +3% on
/// photographs and noisy renderings, +11% on a glow — but a photograph at effort 7 costs ten
/// times effort 3. Below one byte per pixel the lower efforts are a gamble: effort 4 gave up to
/// 1.43 times the fast PNG and effort 3 up to 3.5 times (graphics), so there effort 7 is kept
/// even where it takes longer than the budget.
struct JXLPixelCoding: Equatable, Sendable, CustomStringConvertible {
    let effort: Int
    let patches: Bool

    /// The most effort libjxl gets: the thorough level's (`image wire --level 3`), with no time limit.
    static let thorough = JXLPixelCoding(effort: 7, patches: true)

    /// The encode time the model lets an image's coding take.
    static let budgetSeconds = 1.0

    /// The coding for `pixels` pixels whose fast PNG is `pngBytes`: the most thorough whose
    /// predicted time fits `budgetSeconds`; past it, photographic pixels (a byte per pixel or
    /// more) go down to effort 4 or 3, others keep effort 7 without the patch search.
    static func within(pixels: Int, pngBytes: Int) -> JXLPixelCoding {
        let perPixel = Double(pngBytes) / Double(max(pixels, 1))
        let megapixels = Double(pixels) / 1_000_000
        // Microseconds a pixel, from the measurements above (on the side of caution).
        let effort7 = 0.25 + 1.0 * perPixel, patchSearch = 0.2, effort4 = 0.3 + 0.45 * perPixel
        if megapixels * (effort7 + patchSearch) <= budgetSeconds { return .thorough }
        if megapixels * effort7 <= budgetSeconds || perPixel < 1 { return JXLPixelCoding(effort: 7, patches: false) }
        if megapixels * effort4 <= budgetSeconds { return JXLPixelCoding(effort: 4, patches: false) }
        return JXLPixelCoding(effort: 3, patches: false)
    }

    /// As `send --json` and `image wire` report it: "pixels, effort 7, patches".
    var description: String { "pixels, effort \(effort)\(patches ? ", patches" : "")" }
}
