import Dispatch
import FoundationEssentials
import Glibc
import SecmailClient
import SecmailCrypto
import SecmailFormat
import SecmailImages

/// Exit statuses, documented in `secmail --help` and README.md.
package enum ExitStatus: Int32 {
    case failure = 1
    case verificationFailed = 2
    case wrongKey = 3
    case wrongPassphrase = 4
    case unsupported = 5
    /// Stopped by Ctrl-C (SIGINT), or by the end of input at a prompt.
    case interrupted = 130
}

/// An error the CLI reports itself.
package struct CLIFailure: Error, CustomStringConvertible {
    package let status: ExitStatus
    package let description: String

    package init(_ status: ExitStatus, _ description: String) {
        self.status = status
        self.description = description
    }
}

/// `value` as given on the command line for `what` (an option, an argument), refused when empty:
/// an empty path names the current folder to the calls that take it, so `--attach "$UNSET"`
/// would otherwise be read as the folder, and `-o ""` as a file in the folder above.
package func nonEmptyArgument(_ value: String, _ what: String, expected: String = "a file") throws -> String {
    guard !value.isEmpty else { throw CLIFailure(.failure, "\(what) is empty: give \(expected)") }
    return value
}

/// Runs `body`, reporting any format error it throws as an input error (exit 1): for checks
/// of what the user typed or named, as opposed to data received from someone else.
package func userInput<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as FormatError {
        throw CLIFailure(.failure, error.reason)
    }
}

/// The exit status and the one line `CommandLineProgram.run` reports for what a command threw.
package func classify(_ error: Error) -> (ExitStatus, String) {
    switch error {
    case let failure as CLIFailure:
        return (failure.status, failure.description)
    case let error as FormatError:
        switch error.code {
        case .authenticationFailed, .truncated, .trailingBytes, .badMagic, .invalidField, .tooLarge:
            return (.verificationFailed, error.reason)
        case .notARecipient, .senderMismatch:
            return (.wrongKey, error.reason)
        case .unsupportedVersion, .unsupportedSuite:
            return (.unsupported, error.reason)
        case .io:
            return (.failure, error.reason)
        case .noSpace:
            return (.failure, "\(error.reason): free some disk space and try again")
        }
    case let error as CryptoError:
        if error.code == .wrongPassphrase {
            return (.wrongPassphrase, "wrong passphrase: the private keys could not be decrypted")
        }
        return (.failure, error.description)
    case let error as ImageError:
        switch error.code {
        case .unsupported: return (.unsupported, error.reason)
        case .pixelMismatch: return (.verificationFailed, error.reason)
        default: return (.failure, error.reason)
        }
    case let error as ClientError:
        return (error.isVerificationFailure ? .verificationFailed : .failure, error.reason)
    default:
        return (.failure, String(describing: error))
    }
}

/// Output conventions: results on stdout, everything for people on stderr. Lines for people go
/// through `TerminalText`: they may quote what a sender or a relay chose.
package enum Terminal {
    package static func info(_ message: String) {
        StandardStreams.writeError(TerminalText.neutralised(message, keepingLineBreaks: true) + "\n")
    }

    /// One line: an error may carry a relay's reason, which must not start lines of its own.
    package static func error(_ message: String) {
        // A progress line may be half drawn: the error starts on a cleared line.
        let clear = stderrIsTerminal ? "\r\u{1B}[K" : ""
        StandardStreams.writeError(clear + "secmail: error: " + TerminalText.neutralised(message) + "\n")
    }

    package static func output(_ text: String) {
        StandardStreams.writeOutput(text)
    }

    /// Whether stderr is a terminal (progress lines are for people, not logs).
    package static let stderrIsTerminal = StandardStreams.isStandardErrorTerminal

    /// A progress line on stderr for long work (transfers of 8 MiB and more, log walks of 5,000
    /// entries and more), redrawn at most 10 times a second, and only when stderr is a terminal.
    package final class ProgressLine: @unchecked Sendable {
        // @unchecked: one operation reports at a time (sealing, then uploading), never concurrently.
        package enum Unit {
            case bytes, entries

            var threshold: UInt64 { self == .bytes ? 8 << 20 : 5000 }
        }

        private let label: String
        private let unit: Unit
        private var lastDraw = Date.distantPast
        private var isVisible = false

        package init(_ label: String, unit: Unit = .bytes) {
            self.label = label
            self.unit = unit
        }

        package func update(_ done: UInt64, _ total: UInt64) {
            guard total >= unit.threshold, Terminal.stderrIsTerminal else { return }
            let now = Date()
            guard done == total || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
            lastDraw = now
            let percent = Int(Double(done) / Double(max(total, 1)) * 100)
            let line = switch unit {
            case .bytes: "\r\(label) \(rightAligned(percent, width: 3))%  \(decimal(Double(done) / 1_048_576, places: 1)) / \(decimal(Double(total) / 1_048_576, places: 1)) MiB"
            case .entries: "\r\(label) \(rightAligned(percent, width: 3))%  \(done) / \(total) entries"
            }
            // Erase what a longer earlier line left to the right of this one.
            StandardStreams.writeError(line + "\u{1B}[K")
            isVisible = true
        }

        package func finish() {
            if isVisible { StandardStreams.writeError("\n") }
            isVisible = false
        }
    }

    /// For work that reports no progress of its own (image work): on a terminal, after one
    /// second "label… 3 s", counted up each half second, and erased when `finish` is called.
    package final class StatusLine: @unchecked Sendable {
        // @unchecked: `isVisible` is touched on `queue` only.
        private let queue = DispatchQueue(label: "secmail.status-line")
        private let timer: DispatchSourceTimer?
        private var isVisible = false

        package init(_ label: String) {
            guard Terminal.stderrIsTerminal else {
                timer = nil
                return
            }
            let start = Date()
            let timer = DispatchSource.makeTimerSource(queue: queue)
            self.timer = timer
            timer.schedule(deadline: .now() + 1, repeating: 0.5)
            timer.setEventHandler { [unowned self] in
                let seconds = Int(Date().timeIntervalSince(start))
                StandardStreams.writeError("\r\(label)… \(seconds) s\u{1B}[K")
                isVisible = true
            }
            timer.resume()
        }

        package func finish() {
            guard let timer else { return }
            timer.cancel()
            queue.sync {
                if isVisible { StandardStreams.writeError("\r\u{1B}[K") }
                isVisible = false
            }
        }
    }

    /// Runs `body` under a `StatusLine` labelled `label`, erased when `body` ends, however it ends.
    package static func withStatus<T>(_ label: String, _ body: () throws -> T) rethrows -> T {
        let line = StatusLine(label)
        defer { line.finish() }
        return try body()
    }

    /// "converting NAME to PNG… N s" while a received image converts for longer than a second.
    package static let imageConversionStatus: ImageConversionObserver = { name in
        let line = StatusLine("converting \(TerminalText.neutralised(name)) to PNG")
        return { line.finish() }
    }
}

/// Runs `body` with one `RelayClient` for the relay pinned in `home` (or `client`, when given),
/// closing its connection afterwards whatever happens.
package func withRelay<T>(_ home: SecmailHome, client: RelayClient? = nil, _ body: (RelayClient) async throws -> T) async throws -> T {
    let relay = try client ?? RelayClient(home: home)
    do {
        let result = try await body(relay)
        await relay.close()
        return result
    } catch {
        await relay.close()
        throw error
    }
}

/// "1 message", "3 messages".
package func counted(_ count: Int, _ one: String, _ many: String) -> String { "\(count) \(count == 1 ? one : many)" }

/// `value` with `places` decimals, rounded to nearest, as printf's "%.1f" shows it (without
/// String(format:), which is Foundation's and not FoundationEssentials').
package func decimal(_ value: Double, places: Int) -> String {
    var factor: UInt64 = 1
    for _ in 0..<places { factor *= 10 }
    let scaled = (abs(value) * Double(factor)).rounded()
    guard scaled.isFinite, scaled < 1e18 else { return "\(value)" }
    let units = UInt64(scaled)
    let sign = value < 0 && units > 0 ? "-" : ""
    guard places > 0 else { return sign + String(units) }
    let fraction = String(units % factor)
    return sign + String(units / factor) + "." + String(repeating: "0", count: places - fraction.count) + fraction
}

/// `value` right-aligned in `width` columns, as printf's "%3d".
package func rightAligned(_ value: Int, width: Int) -> String {
    let digits = String(value)
    return String(repeating: " ", count: max(0, width - digits.count)) + digits
}

/// `text` padded with spaces (or cut) to `width` characters, as a column of a table.
package func leftAligned(_ text: String, width: Int) -> String {
    text.count >= width ? String(text.prefix(width)) : text + String(repeating: " ", count: width - text.count)
}

/// Formats a byte count for people: "512 B", "41.1 KiB", "1.5 MiB", "2.25 GiB", rounded as
/// printf's "%.1f" rounds (to nearest, ties to even). In integers rather than through
/// String(format:), whose first use costs a short command a visible part of its run.
package func formatBytes(_ count: UInt64) -> String {
    /// count / 2^shift in units of 10^-places, rounded to nearest, ties to even.
    func scaled(_ shift: UInt64, places: Int) -> String {
        let unit = UInt64(1) << shift, factor: UInt64 = places == 1 ? 10 : 100
        let whole = count >> shift, rest = count & (unit - 1)
        // rest * factor stays far below 2^64 (rest < 2^30).
        var fraction = rest * factor / unit
        let remainder = rest * factor % unit
        if remainder * 2 > unit || (remainder * 2 == unit && fraction % 2 == 1) { fraction += 1 }
        let (integer, decimals) = fraction == factor ? (whole + 1, UInt64(0)) : (whole, fraction)
        let digits = String(decimals)
        return "\(integer)." + String(repeating: "0", count: places - digits.count) + digits
    }
    if count < 1024 { return "\(count) B" }
    if count < 1 << 20 { return scaled(10, places: 1) + " KiB" }
    if count < 1 << 30 { return scaled(20, places: 1) + " MiB" }
    return scaled(30, places: 2) + " GiB"
}
