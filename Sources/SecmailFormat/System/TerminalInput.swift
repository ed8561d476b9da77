internal import CSystemCalls
import FoundationEssentials
import Glibc

/// Secrets read from the controlling terminal (/dev/tty, not standard input) with echo off. The
/// terminal's settings are restored however the read ends: normally, at end of input, or by an
/// interruption, whose handler calls `restoreAfterInterruption()` before the process exits. Ctrl-Z
/// at the prompt gives the terminal its settings back before the process stops, and `fg` turns the
/// echo off again and asks again (CSystemCalls keeps that state, for its signal handlers). In the
/// background (started with `&`, or after Ctrl-Z and `bg`) the process stops, as any program that
/// uses its terminal from there, until `fg`.
public enum TerminalInput {
    /// What the reader typed, as UTF-8 bytes without the line end; nil at end of input (Ctrl-D on
    /// an empty line). Throws when there is no terminal to ask, or it cannot be read.
    public static func readSecret(prompt: String, maximumByteCount: Int) throws -> [UInt8]? {
        let descriptor = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw FormatError(.io, "there is no terminal to ask for the passphrase")
        }
        defer { close(descriptor) }
        guard secmail_terminal_wait_for_foreground(descriptor) == 0 else { throw inBackground }
        guard secmail_terminal_quiet_begin(descriptor, prompt) == 0 else {
            throw FormatError(.io, "cannot turn the terminal's echo off: \(String(cString: strerror(errno)))")
        }
        defer { secmail_terminal_quiet_end() }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = secmail_terminal_read_byte(descriptor, &byte)
            if count < 0 {
                if errno == EINTR { continue }
                // Not what was typed so far taken for the passphrase: the read failed.
                let failure = errno
                throw failure == EIO && secmail_terminal_is_foreground(descriptor) == 0
                    ? inBackground : FormatError(.io, "cannot read the terminal: \(String(cString: strerror(failure)))")
            }
            guard count == 1 else { return line.isEmpty ? nil : line }
            if byte == UInt8(ascii: "\n") { break }
            if line.count < maximumByteCount + 1 { line.append(byte) }
        }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return line
    }

    /// In the background with no shell to bring the process back (or SIGTTOU and SIGTTIN ignored),
    /// where the kernel answers a read of the terminal with EIO.
    private static let inBackground = FormatError(.io, "the command runs in the background, where it cannot ask for the passphrase at the terminal")

    /// Puts back the settings of a terminal being read (for an interruption's handler).
    public static func restoreAfterInterruption() {
        secmail_terminal_quiet_end()
    }
}
