internal import COpenSSL

/// OpenSSL's secure heap: a fixed arena locked into memory (never swapped out), left out of core
/// dumps and cleansed on free. Once it is on, OpenSSL keeps private key components (the BIGNUMs of
/// RSA keys it decodes) there. The key agent turns it on before it unlocks anything.
public enum SecureHeap {
    public enum Outcome: Sendable, Equatable {
        /// On, and locked into memory.
        case locked
        /// On, but the memory could not be locked (RLIMIT_MEMLOCK): still kept out of core dumps.
        case notLocked
        case unavailable
    }

    /// Turns the secure heap on with `byteCount` bytes (a power of two).
    public static func enable(byteCount: Int) -> Outcome {
        switch CRYPTO_secure_malloc_init(byteCount, 32) {
        case 1: return .locked
        case 2: return .notLocked
        default: return .unavailable
        }
    }

    /// Bytes of the secure heap in use (keys held now).
    public static var bytesInUse: Int { Int(CRYPTO_secure_used()) }
}
