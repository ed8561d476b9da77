import Foundation

/// Deposits being received at once: at most `perIdentity` per depositor, and at most
/// `totalBytes` declared across all of them, so that neither one account nor many can make the
/// relay hold unbounded unfinished uploads in memory or on disk.
public final class UploadBudget: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var uploads: [String: Int] = [:]
    private var bytes = 0
    public let perIdentity: Int
    public let totalBytes: Int

    public init(perIdentity: Int = 4, totalBytes: Int = 1 << 30) {
        self.perIdentity = perIdentity
        self.totalBytes = totalBytes
    }

    /// Reserves an upload of `size` bytes for `depositor`, or throws `rateLimited`; the caller
    /// must `release` it.
    func reserve(_ size: Int, for depositor: String) throws {
        try lock.withLock {
            guard uploads[depositor, default: 0] < perIdentity else {
                throw RelayError(.rateLimited, "\(depositor) already has \(perIdentity) deposits under way; wait for one to finish")
            }
            guard bytes + size <= totalBytes else {
                throw RelayError(.rateLimited, "the relay is receiving \(bytes) bytes of deposits already; try again shortly")
            }
            uploads[depositor, default: 0] += 1
            bytes += size
        }
    }

    func release(_ size: Int, for depositor: String) {
        lock.withLock {
            let count = uploads[depositor, default: 1] - 1
            uploads[depositor] = count > 0 ? count : nil
            bytes -= size
        }
    }
}
