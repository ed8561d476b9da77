import NIOCore

/// How many registrations the relay takes per client address group and in all, per hour: every
/// name is a permanent log entry every auditor reads, so spam costs everyone.
public struct RegistrationLimits: Sendable {
    let perAddress: RateLimiter
    let total: RateLimiter
    let grouping: AddressGrouping

    public init(perAddressPerHour: Double = 10, totalPerHour: Double = 1000, grouping: AddressGrouping = AddressGrouping()) {
        perAddress = RateLimiter(.init(perSecond: perAddressPerHour / 3600, burst: perAddressPerHour))
        total = RateLimiter(.init(perSecond: totalPerHour / 3600, burst: totalPerHour))
        self.grouping = grouping
    }

    func take(for address: SocketAddress?) throws {
        let group = grouping.group(of: address)
        try perAddress.take(group, what: group, refusal: "\(group) registered \(Int(perAddress.limit.burst)) names within the hour already; try again later or ask the operator for an invite")
        try total.take("all", what: "all", refusal: "this relay takes at most \(Int(total.limit.burst)) registrations an hour and has reached it; try again later")
    }
}
