internal import COpenSSL

/// A source of random bytes. Production code uses `SystemRandom`; tests inject fixed bytes
/// to build golden vectors.
public protocol RandomSource: Sendable {
    /// `count` random bytes.
    func bytes(count: Int) throws -> [UInt8]
}

/// OpenSSL's CSPRNG (`RAND_bytes`, seeded from the operating system).
public struct SystemRandom: RandomSource {
    public init() {}

    public func bytes(count: Int) throws -> [UInt8] {
        precondition(count >= 0, "negative random byte count")
        var output = [UInt8](repeating: 0, count: count)
        guard count > 0 else { return output }
        try OpenSSLErrorQueue.check(.internalFailure, "the random number generator failed") {
            RAND_bytes(&output, Int32(count)) == 1
        }
        return output
    }
}
