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

/// Open connections per address group, capped well below the relay's global cap, so one client
/// cannot take every slot.
public final class ConnectionLimiter: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var open: [String: Int] = [:]
    public let perGroup: Int
    public let grouping: AddressGrouping

    public init(perGroup: Int, grouping: AddressGrouping) {
        self.perGroup = perGroup
        self.grouping = grouping
    }

    /// Takes a slot for `address`'s group; nil when the group has none left.
    func acquire(_ address: SocketAddress?) -> String? {
        let group = grouping.group(of: address)
        return lock.withLock {
            let count = open[group, default: 0]
            guard count < perGroup else { return nil }
            open[group] = count + 1
            return group
        }
    }

    func release(_ group: String) {
        lock.withLock {
            let count = open[group, default: 1] - 1
            open[group] = count > 0 ? count : nil
        }
    }

    /// Open connections of `address`'s group (for tests and logs).
    public func openConnections(for address: SocketAddress?) -> Int {
        lock.withLock { open[grouping.group(of: address), default: 0] }
    }
}

/// Why a connection was refused at once.
struct ConnectionCapReached: Error, CustomStringConvertible {
    let group: String
    let cap: Int
    var description: String { "refused a connection from \(group): it already has \(cap) open" }
}
