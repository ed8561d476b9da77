/// Which signed envelope times are acceptable (DESIGN P4): at most `futureSkew` seconds ahead of
/// the checking clock, and (at the relay, on deposit) at most `maximumAge` seconds old; a reader
/// refuses the first and notes the second. The same
/// skew also bounds how long after a key version was replaced a message signed with it may be
/// dated.
public struct EnvelopeTimeWindow: Sendable, Equatable {
    public var futureSkew: Int64
    public var maximumAge: Int64

    /// 10 minutes ahead, 7 days old.
    public static let standard = EnvelopeTimeWindow(futureSkew: 10 * 60, maximumAge: 7 * 24 * 3600)

    public init(futureSkew: Int64, maximumAge: Int64) {
        self.futureSkew = futureSkew
        self.maximumAge = maximumAge
    }

    /// Why an envelope signed at `time` is refused by a clock showing `now`, or nil.
    public func refusal(signedAt time: Int64, now: Int64) -> String? {
        if time > now + futureSkew {
            return "the envelope is dated \(Self.describe(time - now)) ahead of this clock (at most \(Self.describe(futureSkew)) is allowed): check the sender's clock"
        }
        if time < now - maximumAge {
            return "the envelope is dated \(Self.describe(now - time)) ago (at most \(Self.describe(maximumAge)) is allowed): an old message cannot be deposited again"
        }
        return nil
    }

    /// For a reader (`read`, `open`): why a verified message signed at `time` is refused by a
    /// clock showing `now` (dated past `futureSkew` ahead), or nil.
    public func readerRefusal(signedAt time: Int64, now: Int64) -> String? {
        guard time > now + futureSkew else { return nil }
        return "dated \(Self.describe(time - now)) in the future (at most \(Self.describe(futureSkew)) is allowed): refused"
    }

    /// For a reader: a note for a message signed longer than `maximumAge` before `now` (old mail
    /// is read, but it is not what a relay would take today), or nil.
    public func readerNote(signedAt time: Int64, now: Int64) -> String? {
        time < now - maximumAge ? "this message was signed \(Self.describe(now - time)) ago" : nil
    }

    /// "12 minutes", "3 days", "45 seconds".
    public static func describe(_ seconds: Int64) -> String {
        if seconds >= 2 * 86400 { return "\(seconds / 86400) days" }
        if seconds >= 2 * 3600 { return "\(seconds / 3600) hours" }
        if seconds >= 120 { return "\(seconds / 60) minutes" }
        return "\(seconds) seconds"
    }
}
