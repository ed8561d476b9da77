import Foundation
import Glibc
import SecmailCrypto

/// A secret's first line from a file the user names (`--passphrase-file`): a regular file that
/// only its owner can read, a symbolic link to one, or a pipe (`<(pass show secmail)`,
/// /dev/stdin), which has no other readers to fear.
public enum SecretFile {
    /// The first line's bytes, without its line end (LF or CRLF). Throws `FormatError(.io)` when
    /// the file cannot be read, or is a regular file that others can read (then nothing is read).
    public static func firstLine(at path: String, maximumByteCount: Int = 4096) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FormatError(.io, String(cString: strerror(errno))) }
        defer { close(descriptor) }
        // The open file's own status: a symbolic link is judged by what it leads to.
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw FormatError(.io, String(cString: strerror(errno))) }
        let permissions = Int(info.st_mode & 0o777)
        if info.st_mode & S_IFMT == S_IFREG, permissions & 0o077 != 0 {
            throw FormatError(.io, "it can be read by other users (mode \(String(permissions, radix: 8))); run `chmod 600 \(path)` first")
        }
        var buffer = [UInt8](repeating: 0, count: maximumByteCount)
        defer { SecretBytes.wipe(&buffer) }
        var filled = 0
        while filled < buffer.count, !buffer[..<filled].contains(UInt8(ascii: "\n")) {
            let count = buffer.withUnsafeMutableBytes { raw in
                read(descriptor, raw.baseAddress.map { $0 + filled }, raw.count - filled)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw FormatError(.io, String(cString: strerror(errno)))
            }
            if count == 0 { break }
            filled += count
        }
        var line = Array(buffer[..<filled].prefix { $0 != UInt8(ascii: "\n") })
        if line.last == UInt8(ascii: "\r") {
            line[line.count - 1] = 0
            line.removeLast()
        }
        return line
    }
}
