import Glibc

/// The one time format for people: local time, ISO 8601 with the zone's offset
/// (`2026-11-29T03:08:56+01:00`, or `…Z` in UTC). JSON carries epoch seconds everywhere.
///
/// Made from `localtime_r` rather than ISO8601DateFormatter: the formatter starts ICU, which
/// took about 1.5 ms of every `open`, `read` and `inbox` for one line of output.
public enum HumanTime {
    /// `epochSeconds` in the local zone; times the C library cannot place in a calendar (from a
    /// damaged or hostile header) are shown as the plain number of seconds.
    public static func describe(_ epochSeconds: Int64) -> String {
        var seconds = time_t(truncatingIfNeeded: epochSeconds)
        var parts = tm()
        guard Int64(seconds) == epochSeconds, localtime_r(&seconds, &parts) != nil else {
            return "\(epochSeconds) seconds after 1970"
        }
        return iso8601(year: Int(parts.tm_year) + 1900, month: Int(parts.tm_mon) + 1, day: Int(parts.tm_mday),
                       hour: Int(parts.tm_hour), minute: Int(parts.tm_min), second: Int(parts.tm_sec),
                       offsetSeconds: Int(parts.tm_gmtoff))
    }

    /// The calendar fields and the zone offset as ISO 8601 (RFC 3339's internet date-time).
    public static func iso8601(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, offsetSeconds: Int) -> String {
        var text = padded(year, 4) + "-" + padded(month, 2) + "-" + padded(day, 2) + "T"
            + padded(hour, 2) + ":" + padded(minute, 2) + ":" + padded(second, 2)
        if offsetSeconds == 0 {
            text += "Z"
        } else {
            let minutes = abs(offsetSeconds) / 60
            text += (offsetSeconds < 0 ? "-" : "+") + padded(minutes / 60, 2) + ":" + padded(minutes % 60, 2)
        }
        return text
    }

    private static func padded(_ value: Int, _ width: Int) -> String {
        let digits = String(abs(value))
        return (value < 0 ? "-" : "") + String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
