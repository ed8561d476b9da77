import Foundation
import SecmailFormat

/// Sessions (bearer tokens) this relay has found valid in its database, by the SHA-256 stored for
/// each token, so that an authenticated request does not read its token again, and a deposit of
/// a small envelope goes to the database once (its commit) instead of twice. Under load the read
/// before the commit, with its two trips between threads, cost a fifth of a deposit's CPU.
///
/// Only for a database this process alone writes (SQLite): a session ends early only when its
/// name's keys rotate, and `Directory` tells this cache when that commits; a rotation committed by
/// another relay sharing a PostgreSQL database would go unseen, so there is no cache there.
///
/// A read that found a session may finish after a rotation ended it; `generation` changes with
/// every ending, and a session is kept only if none ended since its read began.
public final class SessionCache: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var sessions: [Data: (name: IdentityName, expiresAt: Int64)] = [:]
    private var endings: UInt64 = 0
    private let capacity: Int

    public init(capacity: Int = 10_000) {
        self.capacity = capacity
    }

    /// A cache for `database`, or nil where another process could end sessions (PostgreSQL).
    public static func forDatabase(_ database: RelayDatabase) -> SessionCache? {
        database.kind == .sqlite ? SessionCache() : nil
    }

    /// Taken before a read that may find a session, and given back to `keep`.
    var generation: UInt64 { lock.withLock { endings } }

    /// The name an unexpired session with `tokenHash` belongs to, if this cache holds it.
    func name(for tokenHash: Data, now: Int64) -> IdentityName? {
        lock.withLock {
            guard let session = sessions[tokenHash], session.expiresAt >= now else { return nil }
            return session.name
        }
    }

    /// Keeps a session a read found, unless a session ended after `generation` was taken.
    func keep(_ name: IdentityName, expiresAt: Int64, for tokenHash: Data, readAt generation: UInt64) {
        lock.withLock {
            guard generation == endings else { return }
            if sessions.count >= capacity { sessions.removeAll(keepingCapacity: true) }
            sessions[tokenHash] = (name, expiresAt)
        }
    }

    /// Forgets every session of `name`: its tokens ended with the rotation just committed.
    func end(sessionsOf name: IdentityName) {
        lock.withLock {
            endings &+= 1
            sessions = sessions.filter { $0.value.name != name }
        }
    }
}
