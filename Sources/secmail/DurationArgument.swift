import ArgumentParser

/// A length of time as a person types it: `90s`, `15m`, `2h`, `30d`, `4w`; a plain number is in
/// the option's own unit.
enum DurationArgument {
    static let unitSeconds: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]

    /// The seconds `text` stands for, between one second and `maximum`; otherwise a reason that
    /// ArgumentParser prints after "The value '0d' is invalid for '--older-than <age>'".
    static func seconds(_ text: String, plainUnit: Character, maximum: Int) throws(ValidationError) -> Int {
        let unit = text.last.flatMap { unitSeconds[$0] }
        let digits = unit == nil ? Substring(text) : text.dropLast()
        guard let count = Int(digits), count >= 0, let multiplier = unit ?? unitSeconds[plainUnit] else {
            throw ValidationError("give a whole number followed by s, m, h, d or w (90s, 15m, 2h, 30d, 4w); a plain number is in \(unitName(plainUnit))")
        }
        guard count > 0 else { throw ValidationError("it must be longer than zero") }
        guard count <= maximum / multiplier else { throw ValidationError("it must be at most \(spelled(maximum))") }
        return count * multiplier
    }

    private static func unitName(_ unit: Character) -> String {
        ["s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"][unit] ?? String(unit)
    }

    /// "7 days", "1 hour", "90 minutes": in the largest of days, hours, minutes that divides.
    static func spelled(_ seconds: Int) -> String {
        for (unit, name) in [(86_400, "day"), (3600, "hour"), (60, "minute"), (1, "second")] where seconds % unit == 0 {
            return "\(seconds / unit) \(name)\(seconds == unit ? "" : "s")"
        }
        preconditionFailure("every whole number of seconds divides by one")
    }
}
