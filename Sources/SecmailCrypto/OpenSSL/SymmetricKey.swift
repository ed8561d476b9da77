internal import COpenSSL

/// Secret key bytes that never leave this module except as ciphertext, and are wiped
/// (`OPENSSL_cleanse`) when the last reference goes away.
public final class SymmetricKey: @unchecked Sendable {
    // @unchecked: the storage is written once in init and only read afterwards.
    private let storage: UnsafeMutableRawBufferPointer

    /// Number of key bytes.
    public var count: Int { countStorage }

    /// A key holding a copy of `bytes`. The caller should not keep its own copy of secret input.
    public init(bytes: [UInt8]) {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        bytes.withUnsafeBytes { source in
            if let base = source.baseAddress, let target = storage.baseAddress {
                target.copyMemory(from: base, byteCount: bytes.count)
            }
        }
        self.storage = storage
        countStorage = bytes.count
    }

    private let countStorage: Int

    /// A fresh key of `count` bytes from `random`.
    public static func random(count: Int = 32, using random: RandomSource = SystemRandom()) throws -> SymmetricKey {
        var bytes = try random.bytes(count: count)
        defer { SecretBytes.wipe(&bytes) }
        return SymmetricKey(bytes: bytes)
    }

    deinit {
        if let base = storage.baseAddress { OPENSSL_cleanse(base, storage.count) }
        storage.deallocate()
    }

    /// Runs `body` over the key bytes; internal so that raw secrets stay inside this module.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<countStorage]))
    }

    /// A copy of the key bytes, for the key agent to hand a content key to its client over the
    /// agent's socket; the caller wipes the copy (`SecretBytes.wipe`) once it is sent.
    public func bytesForTransfer() -> [UInt8] {
        withBytes { Array($0) }
    }
}
