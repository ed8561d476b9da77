/// A length of time as a person types it: `90s`, `15m`, `2h`, `30d`, `4w`; a plain number is in
/// the option's own unit.
enum DurationArgument {
    static let unitSeconds: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]

    /// The seconds `text` stands for, if positive and at most `maximum`.
    static func seconds(_ text: String, plainUnit: Character, maximum: Int) -> Int? {
        let unit = text.last.flatMap { unitSeconds[$0] }
        let digits = unit == nil ? Substring(text) : text.dropLast()
        guard let count = Int(digits), count > 0, let multiplier = unit ?? unitSeconds[plainUnit],
              count <= maximum / multiplier else { return nil }
        return count * multiplier
    }
}
