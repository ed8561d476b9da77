import Foundation
import Hummingbird
import NIOCore

/// Token buckets by key (a client address, an identity): `burst` requests at once, refilled at
/// `perSecond`. Over the limit a request gets `429 rateLimited` with nothing done.
public final class RateLimiter: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    public struct Limit: Sendable {
        public var perSecond: Double
        public var burst: Double

        public init(perSecond: Double, burst: Double) {
            self.perSecond = perSecond
            self.burst = burst
        }
    }

    private struct Bucket {
        var tokens: Double
        var updated: Double
    }

    public let limit: Limit
    private let lock = NSLock()
    private var buckets: [String: Bucket] = [:]
    private var lastPruned: Double = 0
    private let clock: @Sendable () -> Double

    public init(_ limit: Limit, clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.limit = limit
        self.clock = clock
    }

    /// Buckets held (tests).
    var keyCount: Int { lock.withLock { buckets.count } }

    /// Takes one token for `key`, or throws `rateLimited` (with `refusal` as its reason, when
    /// given) saying in `retryAfter` how many whole seconds until the bucket holds one again.
    func take(_ key: String, what: String, refusal: String? = nil) throws {
        let now = clock()
        // nil when a token was taken; otherwise the part of one the bucket holds.
        let tokensLeft: Double? = lock.withLock {
            var bucket = buckets[key] ?? Bucket(tokens: limit.burst, updated: now)
            bucket.tokens = min(limit.burst, bucket.tokens + (now - bucket.updated) * limit.perSecond)
            bucket.updated = now
            let allowed = bucket.tokens >= 1
            if allowed { bucket.tokens -= 1 }
            let left = allowed ? nil : bucket.tokens
            buckets[key] = bucket
            // A bucket that has refilled to full carries no information: once the table is large,
            // drop those (at most once a second, so a flood of keys does not make every request
            // scan the table). Refilling is computed from the time, so every idle key goes.
            if buckets.count > 10_000, now - lastPruned >= 1 {
                lastPruned = now
                let limit = limit
                buckets = buckets.filter { min(limit.burst, $0.value.tokens + (now - $0.value.updated) * limit.perSecond) < limit.burst }
            }
            return left
        }
        if let tokensLeft {
            let retryAfter = max(1, Int(((1 - tokensLeft) / limit.perSecond).rounded(.up)))
            throw RelayError(.rateLimited, refusal ?? "too many requests from \(what); at most \(Int(limit.perSecond)) a second (bursts of \(Int(limit.burst))), try again shortly",
                             retryAfter: retryAfter)
        }
    }
}

/// The relay's request context: Hummingbird's core storage plus the client's address and the
/// event loop of its connection (which streamed response bodies pace themselves by).
public struct RelayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    let connectionLoop: any EventLoop

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        connectionLoop = source.channel.eventLoop
    }
}

/// Limits requests per client address group (one IPv4 address, one IPv6 /64 by default), before
/// any route runs.
struct AddressRateLimitMiddleware: RouterMiddleware {
    typealias Context = RelayRequestContext
    let limiter: RateLimiter
    let grouping: AddressGrouping

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let address = grouping.group(of: context.remoteAddress)
        do {
            try limiter.take(address, what: "this address")
        } catch {
            throw APIError.from(error)
        }
        return try await next(request, context)
    }
}
