internal import COpenSSL

/// SHA-256, one-shot or incremental (for content that streams through in chunks).
public final class SHA256: @unchecked Sendable {
    // @unchecked: an EVP_MD_CTX is used by one owner at a time; the type is not shared while
    // updating (callers hold it in a local variable), and Sendable lets it cross task hops.
    private let context: OpaquePointer

    /// Length of a digest in bytes.
    public static let byteCount = 32

    /// A hasher ready for `update`.
    public init() throws {
        OpenSSLErrorQueue.clear()
        guard let context = EVP_MD_CTX_new() else {
            throw OpenSSLErrorQueue.error(.internalFailure, "could not allocate a digest context")
        }
        self.context = context
        guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            throw OpenSSLErrorQueue.error(.internalFailure, "could not initialise SHA-256")
        }
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    /// Feeds more bytes into the hash.
    public func update(_ bytes: some ContiguousByteStorage) {
        bytes.withUnsafeBytes { buffer in
            // EVP_DigestUpdate only fails on a context that was never initialised.
            let status = EVP_DigestUpdate(context, buffer.baseAddress, buffer.count)
            precondition(status == 1, "EVP_DigestUpdate failed on an initialised context")
        }
    }

    /// The digest of everything fed so far. The hasher must not be used afterwards.
    public func finalize() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Self.byteCount)
        var length: UInt32 = 0
        let status = EVP_DigestFinal_ex(context, &digest, &length)
        precondition(status == 1 && length == 32, "EVP_DigestFinal_ex failed")
        return digest
    }

    /// The SHA-256 digest of `bytes`.
    public static func hash(_ bytes: some ContiguousByteStorage) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: byteCount)
        bytes.withUnsafeBytes { buffer in
            var length: UInt32 = 0
            let status = EVP_Digest(buffer.baseAddress, buffer.count, &digest, &length, EVP_sha256(), nil)
            precondition(status == 1, "EVP_Digest(SHA-256) failed")
        }
        return digest
    }
}

/// Anything whose bytes can be read contiguously ([UInt8], ArraySlice, memory another owner lends, ...).
public protocol ContiguousByteStorage {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ContiguousByteStorage where Element == UInt8 {}
extension ArraySlice: ContiguousByteStorage where Element == UInt8 {}

/// Memory lent for the length of a call (a network buffer's bytes), used where it lies.
extension UnsafeRawBufferPointer: ContiguousByteStorage {
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(self) }
}
