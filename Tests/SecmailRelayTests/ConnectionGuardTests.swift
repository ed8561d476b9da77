import Foundation
import NIOCore
@testable import SecmailRelay
import Testing

/// The connection guard's decisions on their own, at chosen instants (the relay-process tests in
/// ConnectionAbuseTests check the same deadlines end to end).
@Suite struct ConnectionGuardTests {
    let deadlines = ConnectionDeadlines(header: .seconds(10), minimumBodyRate: 1000, bodyGrace: .seconds(10), write: .seconds(30),
                                        idleBeforeSignIn: .seconds(15), idle: .seconds(60))

    func guarded(_ change: (ConnectionActivity) -> Void) -> ConnectionGuard {
        let guarding = ConnectionGuard(deadlines: deadlines)
        guarding.activity.established = true
        change(guarding.activity)
        return guarding
    }

    @Test func eachDeadlineIsMissedOnlyAfterItsTime() {
        let start = NIODeadline.now()
        let head = guarded { $0.headStartedAt = start; $0.idleSince = start }
        #expect(head.missedDeadline(at: start + .seconds(9)) == nil)
        #expect(head.missedDeadline(at: start + .seconds(11))?.contains("request head") == true)
        // A head pipelined behind a request in progress is held back by the relay, not late.
        let pipelined = guarded { $0.headStartedAt = start; $0.requestsInFlight = 1 }
        #expect(pipelined.missedDeadline(at: start + .seconds(11)) == nil)

        // The body deadline counts the time the relay waited with a read outstanding.
        let body = guarded { $0.bodyStartedAt = start; $0.requestsInFlight = 1; $0.bodyBytes = 12_000; $0.readPendingSince = start }
        #expect(body.missedDeadline(at: start + .seconds(9)) == nil)  // within the grace time
        #expect(body.missedDeadline(at: start + .seconds(11)) == nil)  // 12,000 bytes in 11 s: fast enough
        #expect(body.missedDeadline(at: start + .seconds(13))?.contains("slower than 1000 bytes") == true)
        // A body the relay itself held back (no read asked for) is not the client's slowness.
        let heldBack = guarded { $0.bodyStartedAt = start; $0.requestsInFlight = 1; $0.bodyBytes = 10; $0.bodyWaited = .seconds(2) }
        #expect(heldBack.missedDeadline(at: start + .seconds(100)) == nil)

        let unread = guarded { $0.unwritableSince = start; $0.requestsInFlight = 1 }
        #expect(unread.missedDeadline(at: start + .seconds(29)) == nil)
        #expect(unread.missedDeadline(at: start + .seconds(31))?.contains("did not read") == true)

        let idle = guarded { $0.idleSince = start }
        #expect(idle.missedDeadline(at: start + .seconds(14)) == nil)
        #expect(idle.missedDeadline(at: start + .seconds(16))?.contains("idle for 15") == true)
        let signedIn = guarded { $0.idleSince = start; $0.signedIn = true }
        #expect(signedIn.missedDeadline(at: start + .seconds(59)) == nil)
        #expect(signedIn.missedDeadline(at: start + .seconds(61))?.contains("idle for 60") == true)
        // A request in progress is not idle.
        let busy = guarded { $0.idleSince = start; $0.requestsInFlight = 1 }
        #expect(busy.missedDeadline(at: start + .seconds(100)) == nil)
        // Nor is a connection still in its TLS handshake (which has its own timeout).
        let handshaking = guarded { $0.idleSince = start; $0.established = false }
        #expect(handshaking.missedDeadline(at: start + .seconds(100)) == nil)
    }

    @Test func addressesAreGroupedByPrefix() throws {
        let byAddress = AddressGrouping()
        let v4a = try SocketAddress(ipAddress: "127.0.0.2", port: 1), v4b = try SocketAddress(ipAddress: "127.0.0.3", port: 2)
        #expect(byAddress.group(of: v4a) == "127.0.0.2/32")
        #expect(byAddress.group(of: v4a) != byAddress.group(of: v4b))
        #expect(AddressGrouping(ipv4PrefixBits: 24).group(of: v4a) == AddressGrouping(ipv4PrefixBits: 24).group(of: v4b))
        let v6a = try SocketAddress(ipAddress: "2001:db8:1:2::1", port: 1), v6b = try SocketAddress(ipAddress: "2001:db8:1:2:ffff::9", port: 1)
        let v6other = try SocketAddress(ipAddress: "2001:db8:1:3::1", port: 1)
        #expect(byAddress.group(of: v6a) == "2001:db8:1:2:0:0:0:0/64")
        #expect(byAddress.group(of: v6a) == byAddress.group(of: v6b))
        #expect(byAddress.group(of: v6a) != byAddress.group(of: v6other))

        let limiter = ConnectionLimiter(perGroup: 2, grouping: byAddress)
        let first = limiter.acquire(v4a) {}, second = limiter.acquire(v4a) {}
        #expect(first != nil && second != nil && limiter.acquire(v4a) {} == nil)
        #expect(limiter.acquire(v4b) {} != nil)
        limiter.release(try #require(first))
        #expect(limiter.acquire(v4a) {} != nil)
    }

    final class Closed: @unchecked Sendable {
        private let lock = NSLock()
        private var names: [String] = []
        func close(_ name: String) -> @Sendable () -> Void { { self.lock.withLock { self.names.append(name) } } }
        var all: [String] { lock.withLock { names } }
    }

    /// A full relay closes the connection that went longest without finishing an answer, once it
    /// had a second to show progress, and never one serving an authenticated request.
    @Test func aFullRelayMakesRoomByClosingTheLeastProductiveConnection() throws {
        let limiter = ConnectionLimiter(perGroup: 10, capacity: 3, minimumAge: .seconds(1), grouping: AddressGrouping())
        let closed = Closed()
        let start = NIODeadline.now()
        func at(_ milliseconds: Int64) -> NIODeadline { start + .milliseconds(milliseconds) }
        let address = try SocketAddress(ipAddress: "127.0.0.2", port: 1)
        let slow = try #require(limiter.acquire(address, now: at(0), close: closed.close("slow")))
        let uploading = try #require(limiter.acquire(address, now: at(0), close: closed.close("uploading")))
        let busy = try #require(limiter.acquire(address, now: at(100), close: closed.close("busy")))
        limiter.noteAuthenticatedRequest(uploading)
        // Everyone is new: the newcomer is turned away, nobody is closed.
        #expect(limiter.acquire(address, now: at(500), close: closed.close("early")) == nil)
        #expect(closed.all.isEmpty)
        // busy finished an answer at 1.5 s; at 2 s the slow one (no answer since 0 s) makes room.
        limiter.noteProgress(busy, now: at(1500))
        let newcomer = try #require(limiter.acquire(address, now: at(2000), close: closed.close("newcomer")))
        #expect(closed.all == ["slow"])
        #expect(limiter.openConnections == 3 && limiter.evictions == 1)
        limiter.release(slow)  // its channel closes later: counted once
        #expect(limiter.openConnections == 3)
        // Next in line at 3 s: busy (progress at 1.5 s) before the newcomer (2 s); the upload stays.
        _ = try #require(limiter.acquire(address, now: at(3000), close: closed.close("another")))
        #expect(closed.all == ["slow", "busy"])
        _ = newcomer
    }
}

/// The rate limiter forgets idle clients once its table is large, at most once a second.
@Suite struct RateLimiterTests {
    final class Clock: @unchecked Sendable {
        var now: Double = 1000
    }

    @Test func idleKeysAreForgottenAndActiveOnesKept() throws {
        let clock = Clock()
        let limiter = RateLimiter(.init(perSecond: 1, burst: 2), clock: { clock.now })
        for index in 0..<10_001 { try limiter.take("client\(index)", what: "x") }
        #expect(limiter.keyCount == 10_001)  // every bucket was just used: nothing to forget yet
        clock.now += 5  // every bucket has refilled
        try limiter.take("busy", what: "x")
        try limiter.take("busy", what: "x")
        #expect(limiter.keyCount == 1, "only the bucket in use stays")
        #expect(throws: RelayError.self) { try limiter.take("busy", what: "x") }
    }

    /// A refusal carries the whole seconds until the bucket holds a request again (the answer's
    /// Retry-After), at least one.
    @Test func aRefusalSaysWhenTheNextRequestGoesThrough() throws {
        let clock = Clock()
        func refusal(_ limiter: RateLimiter) -> RelayError? {
            do { try limiter.take("a", what: "a") } catch let error as RelayError { return error } catch { return nil }
            return nil
        }
        let fast = RateLimiter(.init(perSecond: 50, burst: 100), clock: { clock.now })
        for _ in 0..<100 { try fast.take("a", what: "a") }
        let refused = refusal(fast)
        #expect(refused?.code == .rateLimited && refused?.retryAfter == 1)

        let hourly = RateLimiter(.init(perSecond: 3.0 / 3600, burst: 3), clock: { clock.now })
        for _ in 0..<3 { try hourly.take("a", what: "a") }
        #expect(refusal(hourly)?.retryAfter == 1200)
        clock.now += 200
        #expect(refusal(hourly)?.retryAfter == 1000)
    }
}
