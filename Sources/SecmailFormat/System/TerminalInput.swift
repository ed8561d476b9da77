import Foundation
import Glibc

/// Secrets read from the controlling terminal (/dev/tty, not standard input) with echo off. The
/// terminal's settings are restored however the read ends: normally, at end of input, or by an
/// interruption, whose handler calls `restoreAfterInterruption()` before the process exits.
public enum TerminalInput {
    /// The terminal being read with echo off, and its settings before.
    private struct Suspended {
        let descriptor: Int32
        let settings: termios
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var suspended: Suspended?

    /// What the reader typed, as UTF-8 bytes without the line end; nil at end of input (Ctrl-D on
    /// an empty line). Throws when there is no terminal to ask.
    public static func readSecret(prompt: String, maximumByteCount: Int) throws -> [UInt8]? {
        let descriptor = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw FormatError(.io, "there is no terminal to ask for the passphrase")
        }
        defer { close(descriptor) }
        var settings = termios()
        guard tcgetattr(descriptor, &settings) == 0 else {
            throw FormatError(.io, "cannot read the terminal's settings: \(String(cString: strerror(errno)))")
        }
        var quiet = settings
        quiet.c_lflag &= ~tcflag_t(ECHO | ECHOE | ECHOK | ECHONL)
        lock.withLock { suspended = Suspended(descriptor: descriptor, settings: settings) }
        // TCSAFLUSH also drops anything typed before the prompt appeared.
        guard tcsetattr(descriptor, TCSAFLUSH, &quiet) == 0 else {
            lock.withLock { suspended = nil }
            throw FormatError(.io, "cannot turn the terminal's echo off: \(String(cString: strerror(errno)))")
        }
        defer {
            lock.withLock {
                _ = tcsetattr(descriptor, TCSAFLUSH, &settings)
                suspended = nil
            }
            _ = write(descriptor, "\n", 1)
        }
        _ = prompt.withCString { write(descriptor, $0, strlen($0)) }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = read(descriptor, &byte, 1)
            if count < 0, errno == EINTR { continue }
            guard count == 1 else { return line.isEmpty ? nil : line }
            if byte == UInt8(ascii: "\n") { break }
            if line.count < maximumByteCount + 1 { line.append(byte) }
        }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return line
    }

    /// Puts back the settings of a terminal being read (for an interruption's handler).
    public static func restoreAfterInterruption() {
        lock.withLock {
            guard let state = suspended else { return }
            var settings = state.settings
            _ = tcsetattr(state.descriptor, TCSAFLUSH, &settings)
            _ = write(state.descriptor, "\n", 1)
            suspended = nil
        }
    }
}
