import FoundationEssentials
import Glibc
import SecmailCrypto

/// Files a user names on the command line — identity bundles, passphrase files, images to
/// optimise — read whole, up to a bound. Each may be a regular file, a symbolic link to one, or a pipe
/// (`<(pass show secmail)`, `<(curl …)`, /dev/stdin), which Foundation's `Data(contentsOf:)`
/// refuses ("You don't have permission").
public enum NamedFile {
    /// Every byte of the file at `path`. Throws `FormatError(.io)` with the system's reason when
    /// it cannot be read, and `FormatError(.tooLarge)` past `maximumByteCount` bytes.
    public static func contents(of path: String, maximumByteCount: Int) throws -> [UInt8] {
        try withOpenFile(path) { descriptor in
            let bytes = try read(descriptor, upTo: maximumByteCount + 1) { _ in false }
            guard bytes.count <= maximumByteCount else {
                throw FormatError(.tooLarge, "it is larger than \(maximumByteCount) bytes")
            }
            return bytes
        }
    }

    /// A secret's first line, without its line end (LF or CRLF). A regular file that others can
    /// read is refused before a byte is read (a link is judged by what it leads to); nothing
    /// after the first line is read, and the read buffer is wiped.
    public static func firstLineOfSecret(at path: String, maximumByteCount: Int = 4096) throws -> [UInt8] {
        try withOpenFile(path) { descriptor in
            // The open file's own status: what a symbolic link leads to.
            var info = stat()
            guard fstat(descriptor, &info) == 0 else { throw FormatError(.io, String(cString: strerror(errno))) }
            let permissions = Int(info.st_mode & 0o777)
            if info.st_mode & S_IFMT == S_IFREG, permissions & 0o077 != 0 {
                throw FormatError(.io, "it can be read by other users (mode \(String(permissions, radix: 8))); run `chmod 600 \(path)` first")
            }
            var buffer = try read(descriptor, upTo: maximumByteCount) { $0.contains(UInt8(ascii: "\n")) }
            defer { SecretBytes.wipe(&buffer) }
            var line = Array(buffer.prefix { $0 != UInt8(ascii: "\n") })
            if line.last == UInt8(ascii: "\r") {
                line[line.count - 1] = 0
                line.removeLast()
            }
            return line
        }
    }

    /// Up to `count` bytes from the start of the file at `path` (fewer when it is shorter):
    /// enough to tell its format.
    public static func prefix(of path: String, count: Int) throws -> [UInt8] {
        try withOpenFile(path) { try read($0, upTo: count) { _ in false } }
    }

    /// Standard input to its end, up to `limit` bytes.
    public static func standardInput(upTo limit: Int) throws -> [UInt8] {
        try read(STDIN_FILENO, upTo: limit) { _ in false }
    }

    /// A file read from its start in pieces, a pipe as well as a regular file.
    public final class Stream {
        private let descriptor: Int32

        public init(path: String) throws {
            descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { throw FormatError(.io, String(cString: strerror(errno))) }
        }

        deinit { close(descriptor) }

        /// The next `count` bytes, fewer only at the end of the file (none there).
        public func read(upTo count: Int) throws -> [UInt8] {
            try NamedFile.read(descriptor, upTo: count) { _ in false }
        }
    }

    private static func withOpenFile<T>(_ path: String, _ body: (Int32) throws -> T) throws -> T {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FormatError(.io, String(cString: strerror(errno))) }
        defer { close(descriptor) }
        return try body(descriptor)
    }

    /// Reads until end of file, `limit` bytes, or `isEnough` says the bytes so far suffice. The
    /// buffer grows by doubling, so a secret's reader keeps `limit` within the first 64 KiB:
    /// then there is one buffer, which it wipes.
    private static func read(_ descriptor: Int32, upTo limit: Int, until isEnough: (ArraySlice<UInt8>) -> Bool) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: min(limit, 64 << 10))
        var filled = 0
        while filled < limit, !isEnough(buffer[..<filled]) {
            if filled == buffer.count { buffer += [UInt8](repeating: 0, count: min(limit, buffer.count * 2) - buffer.count) }
            let count = buffer.withUnsafeMutableBytes { raw in
                Glibc.read(descriptor, raw.baseAddress.map { $0 + filled }, raw.count - filled)
            }
            if count < 0 {
                if errno == EINTR { continue }
                SecretBytes.wipe(&buffer)
                throw FormatError(.io, String(cString: strerror(errno)))
            }
            if count == 0 { break }
            filled += count
        }
        buffer.removeSubrange(filled...)
        return buffer
    }
}
