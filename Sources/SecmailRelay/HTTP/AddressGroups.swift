import Foundation
import NIOCore

/// Which client addresses count as one for connection caps and request rates: IPv4 addresses
/// grouped by their first `ipv4PrefixBits` (32: each address alone), IPv6 by their first
/// `ipv6PrefixBits` (64: a whole subnet, which one client can rotate within).
public struct AddressGrouping: Sendable, Equatable {
    public var ipv4PrefixBits: Int
    public var ipv6PrefixBits: Int

    public init(ipv4PrefixBits: Int = 32, ipv6PrefixBits: Int = 64) {
        self.ipv4PrefixBits = ipv4PrefixBits
        self.ipv6PrefixBits = ipv6PrefixBits
    }

    /// The group of `address`, e.g. "127.0.0.1/32" or "2001:db8:1:2::/64".
    public func group(of address: SocketAddress?) -> String {
        switch address {
        case .v4(let v4):
            var bytes = withUnsafeBytes(of: v4.address.sin_addr.s_addr) { Array($0) }
            Self.mask(&bytes, bits: ipv4PrefixBits)
            return bytes.map(String.init).joined(separator: ".") + "/\(ipv4PrefixBits)"
        case .v6(let v6):
            var bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            Self.mask(&bytes, bits: ipv6PrefixBits)
            let groups = stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            return groups.joined(separator: ":") + "/\(ipv6PrefixBits)"
        default:
            return "local"
        }
    }

    private static func mask(_ bytes: inout [UInt8], bits: Int) {
        for index in bytes.indices {
            let keep = max(0, min(8, bits - index * 8))
            bytes[index] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
    }
}

/// The relay's open connections. Each address group has a cap well below the relay's, so one
/// client cannot take every slot. Past `capacity` in all (clients from many addresses holding
/// connections open and idle, or trickling requests), a new connection does not wait behind
/// them: the connection that has gone longest without finishing an answer (and carries no
/// authenticated request in flight) is closed to make room, if it has had at least `minimumAge`
/// to show progress; only when every connection is busy or new is the newcomer turned away.
public final class ConnectionLimiter: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    public struct Ticket: Hashable, Sendable {
        let id: UInt64
        let group: String
    }

    private struct Entry {
        let group: String
        /// When it opened, or last finished an answer.
        var lastProgress: NIODeadline
        /// A request with credentials is being served (an upload, say): not to be cut.
        var authenticatedInFlight = false
        let close: @Sendable () -> Void
    }

    private let lock = NSLock()
    private var perGroupCount: [String: Int] = [:]
    private var entries: [UInt64: Entry] = [:]
    private var nextID: UInt64 = 0
    public let perGroup: Int
    public let capacity: Int
    public let minimumAge: TimeAmount
    public let grouping: AddressGrouping
    /// New connections per address group: a TLS handshake is the costliest thing a stranger can
    /// ask for, so a group that opens them faster is turned away before one starts.
    public let openings: RateLimiter?
    /// Connections closed to make room (for logs and tests).
    public var evictions: Int { lock.withLock { evicted } }
    private var evicted = 0

    public init(perGroup: Int, capacity: Int = .max, minimumAge: TimeAmount = .seconds(1), openingsPerGroup: RateLimiter.Limit? = nil,
                grouping: AddressGrouping) {
        self.perGroup = perGroup
        self.capacity = capacity
        self.minimumAge = minimumAge
        self.grouping = grouping
        openings = openingsPerGroup.map { RateLimiter($0) }
    }

    /// Why `acquire` turned a connection away.
    enum Refusal {
        case groupFull, tooFast, relayFull
    }

    /// Takes a slot for `address`'s group, closing (with `close` of its own) the least productive
    /// connection when the relay is full; nil when the group has no slot left, or nothing may be
    /// closed for it.
    func acquire(_ address: SocketAddress?, now: NIODeadline = .now(), close: @escaping @Sendable () -> Void) -> Ticket? {
        acquireOrRefuse(address, now: now, close: close).ticket
    }

    /// Like `acquire`, saying why when it refuses.
    func acquireOrRefuse(_ address: SocketAddress?, now: NIODeadline = .now(), close: @escaping @Sendable () -> Void) -> (ticket: Ticket?, refusal: Refusal?) {
        let group = grouping.group(of: address)
        if let openings, (try? openings.take(group, what: group)) == nil { return (nil, .tooFast) }
        let (ticket, victim, refusal): (Ticket?, (@Sendable () -> Void)?, Refusal?) = lock.withLock {
            let count = perGroupCount[group, default: 0]
            guard count < perGroup else { return (nil, nil, .groupFull) }
            var victim: (@Sendable () -> Void)?
            if entries.count >= capacity {
                let candidate = entries.filter { !$0.value.authenticatedInFlight && now - $0.value.lastProgress >= minimumAge }
                    .min { $0.value.lastProgress < $1.value.lastProgress }
                guard let candidate, let removed = entries.removeValue(forKey: candidate.key) else { return (nil, nil, .relayFull) }
                let remaining = perGroupCount[removed.group, default: 1] - 1
                perGroupCount[removed.group] = remaining > 0 ? remaining : nil
                evicted += 1
                victim = removed.close
            }
            nextID += 1
            entries[nextID] = Entry(group: group, lastProgress: now, close: close)
            perGroupCount[group] = perGroupCount[group, default: 0] + 1
            return (Ticket(id: nextID, group: group), victim, nil)
        }
        victim?()
        return (ticket, refusal)
    }

    /// The connection finished an answer.
    func noteProgress(_ ticket: Ticket, now: NIODeadline = .now()) {
        lock.withLock {
            entries[ticket.id]?.lastProgress = now
            entries[ticket.id]?.authenticatedInFlight = false
        }
    }

    /// The connection is serving a request with credentials (until its answer ends).
    func noteAuthenticatedRequest(_ ticket: Ticket) {
        lock.withLock { entries[ticket.id]?.authenticatedInFlight = true }
    }

    func release(_ ticket: Ticket) {
        lock.withLock {
            guard entries.removeValue(forKey: ticket.id) != nil else { return }  // closed to make room: counted then
            let count = perGroupCount[ticket.group, default: 1] - 1
            perGroupCount[ticket.group] = count > 0 ? count : nil
        }
    }

    /// Open connections of `address`'s group (for tests and logs).
    public func openConnections(for address: SocketAddress?) -> Int {
        lock.withLock { perGroupCount[grouping.group(of: address), default: 0] }
    }

    /// Open connections in all.
    public var openConnections: Int { lock.withLock { entries.count } }
}

/// Why a connection was refused at once.
struct ConnectionRefused: Error, CustomStringConvertible {
    let group: String
    let reason: String
    var description: String { "refused a connection from \(group): \(reason)" }
}
