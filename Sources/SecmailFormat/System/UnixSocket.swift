internal import CSystemCalls
import FoundationEssentials
import Glibc

/// A connected Unix stream socket: the key agent's side of one client, or a client's connection to
/// the agent. Reads and writes are blocking, each bounded by the timeout given at creation, so a
/// peer that stops talking cannot hold the other side forever.
public final class UnixSocketStream: @unchecked Sendable {
    // @unchecked: one owner uses the descriptor; it is closed once, in deinit.
    private let descriptor: Int32

    fileprivate init(descriptor: Int32, timeoutSeconds: Int) {
        self.descriptor = descriptor
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(descriptor)
    }

    /// Connects to the socket at `path`; nil when nobody listens there (no socket file, or a
    /// stale one left by a process that ended).
    public static func connect(toPath path: String, timeoutSeconds: Int) throws -> UnixSocketStream? {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw UnixSocketAddress.failure("cannot create a socket") }
        let stream = UnixSocketStream(descriptor: descriptor, timeoutSeconds: timeoutSeconds)
        let result = try UnixSocketAddress.withAddress(of: path) { address, length in
            Glibc.connect(descriptor, address, length)
        }
        guard result == 0 else {
            if [ENOENT, ECONNREFUSED].contains(errno) { return nil }
            throw UnixSocketAddress.failure("cannot connect to \(path)")
        }
        return stream
    }

    /// The user id of the process at the other end (SO_PEERCRED), as the kernel recorded it
    /// when the connection was made.
    public func peerUserID() throws -> UInt32 {
        var uid: uid_t = 0
        guard secmail_peer_uid(descriptor, &uid) == 0 else {
            throw UnixSocketAddress.failure("cannot read the peer's credentials")
        }
        return uid
    }

    /// Writes all of `bytes`.
    public func write(_ bytes: [UInt8]) throws {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { buffer in
                send(descriptor, buffer.baseAddress.map { $0 + written }, buffer.count - written, Int32(MSG_NOSIGNAL))
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw UnixSocketAddress.failure(errno == EAGAIN ? "the other side stopped reading" : "cannot write to the socket")
            }
            written += count
        }
    }

    /// Reads exactly `count` bytes; nil when the other side closed before sending any of them.
    public func read(exactly count: Int) throws -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var received = 0
        while received < count {
            let result = bytes.withUnsafeMutableBytes { buffer in
                recv(descriptor, buffer.baseAddress.map { $0 + received }, count - received, 0)
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw UnixSocketAddress.failure(errno == EAGAIN ? "the other side stopped answering" : "cannot read from the socket")
            }
            if result == 0 {
                if received == 0 { return nil }
                throw FormatError(.truncated, "the other side closed the connection in the middle of a message")
            }
            received += result
        }
        return bytes
    }
}

/// A listening Unix stream socket whose file is readable and writable by its owner alone (0600),
/// created with a umask that never lets it exist with wider permissions. Removes its file when
/// closed.
public final class UnixSocketListener: @unchecked Sendable {
    // @unchecked: used by the one thread that runs the agent's loop.
    private let descriptor: Int32
    private let wakePipe: (read: Int32, write: Int32)
    public let path: String

    /// What `accept` brought.
    public enum Event {
        case connection(UnixSocketStream)
        case idle
        case woken
    }

    /// Binds and listens at `path`, replacing a stale socket file (one nobody listens on); fails
    /// when another process listens there.
    public init(path: String) throws {
        if let _ = try UnixSocketStream.connect(toPath: path, timeoutSeconds: 1) {
            throw FormatError(.io, "another process already listens on \(path)")
        }
        if unlink(path) != 0 && errno != ENOENT {
            throw UnixSocketAddress.failure("cannot remove the stale socket \(path)")
        }
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw UnixSocketAddress.failure("cannot create a socket") }
        let previousMask = umask(0o177)
        let bound = try UnixSocketAddress.withAddress(of: path) { address, length in
            bind(descriptor, address, length)
        }
        umask(previousMask)
        guard bound == 0, chmod(path, 0o600) == 0, listen(descriptor, 16) == 0 else {
            let failure = UnixSocketAddress.failure("cannot listen on \(path)")
            Glibc.close(descriptor)
            throw failure
        }
        var pipeEnds: [Int32] = [0, 0]
        guard secmail_pipe_cloexec_nonblocking(&pipeEnds) == 0 else {
            Glibc.close(descriptor)
            throw UnixSocketAddress.failure("cannot create a pipe")
        }
        self.descriptor = descriptor
        self.wakePipe = (pipeEnds[0], pipeEnds[1])
        self.path = path
    }

    private var isClosed = false

    deinit {
        close()
    }

    /// Stops listening and removes the socket file; the second call does nothing. Called by the
    /// owner when it is done rather than left to deinit, which a signal handler still holding
    /// the listener could delay past the end of the process.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        unlink(path)
        Glibc.close(descriptor)
        Glibc.close(wakePipe.read)
        Glibc.close(wakePipe.write)
    }

    /// Waits up to `seconds` for a client; `.woken` once `wake()` was called (from a signal
    /// handler's queue, to stop the loop).
    public func accept(waitingAtMost seconds: Double, clientTimeoutSeconds: Int) throws -> Event {
        var descriptors = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0)]
        let milliseconds = Int32(max(0, min(seconds * 1000, Double(Int32.max))))
        let ready = poll(&descriptors, 2, milliseconds)
        if ready < 0 {
            if errno == EINTR { return .idle }
            throw UnixSocketAddress.failure("cannot wait for clients")
        }
        if descriptors[1].revents != 0 { return .woken }
        guard ready > 0 else { return .idle }
        let client = secmail_accept_cloexec(descriptor)
        guard client >= 0 else {
            if [EINTR, EAGAIN, ECONNABORTED].contains(errno) { return .idle }
            throw UnixSocketAddress.failure("cannot accept a client")
        }
        return .connection(UnixSocketStream(descriptor: client, timeoutSeconds: clientTimeoutSeconds))
    }

    /// Makes the waiting `accept` return `.woken`; safe from any thread.
    public func wake() {
        var byte: UInt8 = 1
        _ = Glibc.write(wakePipe.write, &byte, 1)
    }
}

/// sockaddr_un for a path. A path longer than sun_path (108 bytes with its NUL) is reached through
/// its directory's descriptor (/proc/self/fd/N/NAME), so a deep $SECMAIL_HOME still works.
enum UnixSocketAddress {
    static func withAddress<R>(of path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) throws -> R {
        let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        if path.utf8.count < capacity {
            return try withShortAddress(path, body)
        }
        let url = URL(fileURLWithPath: path)
        let directory = secmail_open_directory_path(url.deletingLastPathComponent().path)
        guard directory >= 0 else { throw failure("cannot open the folder of \(path)") }
        defer { close(directory) }
        let viaDescriptor = "/proc/self/fd/\(directory)/\(url.lastPathComponent)"
        guard viaDescriptor.utf8.count < capacity else {
            throw FormatError(.invalidField, "the socket name \(url.lastPathComponent) is too long")
        }
        return try withShortAddress(viaDescriptor, body)
    }

    private static func withShortAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            let bytes = Array(path.utf8)
            buffer.copyBytes(from: bytes)
            buffer[bytes.count] = 0
        }
        return try withUnsafePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                try body(address, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    static func failure(_ what: String) -> FormatError {
        FormatError(.io, "\(what): \(String(cString: strerror(errno)))")
    }
}

/// Process-wide hardening for a process that holds private keys in memory: no core dumps (which
/// would put the keys on disk) and no ptrace or /proc/PID/mem access by other processes of the
/// same user (PR_SET_DUMPABLE 0, as ssh-agent does).
public enum KeyHolderProcess {
    public static func harden() throws {
        guard secmail_forbid_core_dumps() == 0 else {
            throw UnixSocketAddress.failure("cannot forbid core dumps")
        }
    }

    /// Starts `executable` with `arguments` in a new session (no controlling terminal, so closing
    /// the terminal does not end it), with standard input and output on /dev/null and standard
    /// error on `errorLog` (created 0600, appended). Returns its process id.
    public static func spawnDetached(executable: String, arguments: [String], errorLog: String) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, errorLog, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        // Nothing else inherited: a pipe the caller's caller reads (a test runner, `$(secmail
        // unlock)`) must see its end of file when the caller ends, not when the agent does.
        guard secmail_spawn_close_inherited(&actions) == 0 else {
            throw FormatError(.io, "cannot prepare the agent's descriptors")
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // POSIX_SPAWN_SETSID (glibc 2.26+) and a default signal mask and dispositions, so the
        // child does not inherit this process's ignored SIGINT.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signalNumber in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { sigaddset(&defaults, signalNumber) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setflags(&attributes, Int16(0x80 | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard result == 0 else {
            throw FormatError(.io, "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }
}
