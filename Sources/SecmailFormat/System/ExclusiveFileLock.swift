import FoundationEssentials
import Glibc

/// An exclusive advisory lock (flock) on a file, held while this object lives and released by
/// the kernel when the process ends, however it ends: what makes one relay the only one serving a
/// data directory. The file holds the holder's process id, for the message of the next one.
public final class ExclusiveFileLock: @unchecked Sendable {
    // @unchecked: the descriptor is fixed for the object's life and only closed in deinit.
    private let descriptor: Int32

    /// Takes the lock on `path` (creating the file, 0600), or returns nil and the process id
    /// written by the process that holds it (nil if unknown).
    public static func acquire(_ path: String) throws -> (lock: ExclusiveFileLock?, holder: Int32?) {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, mode_t(0o600))
        guard descriptor >= 0 else {
            throw FormatError(.io, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            defer { close(descriptor) }
            return (nil, writtenHolder(descriptor))
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = pwrite(descriptor, pid, pid.count, 0)
        return (ExclusiveFileLock(descriptor: descriptor), nil)
    }

    /// `acquire`, trying again every 20 ms for up to `patience` while another process holds it.
    public static func acquire(_ path: String, waitingUpTo patience: Duration) throws -> (lock: ExclusiveFileLock?, holder: Int32?) {
        let deadline = ContinuousClock.now + patience
        while true {
            let acquired = try acquire(path)
            if acquired.lock != nil || ContinuousClock.now >= deadline { return acquired }
            usleep(20_000)
        }
    }

    /// Whether a process holds the lock on `path` now, and its process id (nil if unknown),
    /// without holding it against a process that takes it next: a shared lock taken for an
    /// instant and let go, which a holder's exclusive lock refuses. A missing file was never
    /// locked. (A process taking the lock in that instant is refused once; `acquire` with a
    /// little patience is not.)
    public static func holder(of path: String) throws -> (held: Bool, holder: Int32?) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return (false, nil) }
            throw FormatError(.io, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        guard flock(descriptor, LOCK_SH | LOCK_NB) == 0 else {
            return (true, writtenHolder(descriptor))
        }
        flock(descriptor, LOCK_UN)
        return (false, nil)
    }

    /// The process id the holder wrote into the open lock file, nil if it is not one (the
    /// holder may be between truncating and writing it).
    private static func writtenHolder(_ descriptor: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = pread(descriptor, &buffer, buffer.count, 0)
        let text = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
        return Int32(text.filter { !$0.isWhitespace })
    }

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }

    /// From now on, files and directories this process creates are private to its user (umask 077).
    public static func restrictNewFilesToOwner() {
        umask(0o077)
    }
}
