import Dispatch
import FoundationEssentials
import Glibc
import Synchronization
import SecmailClient
import SecmailFormat

/// Ctrl-C (SIGINT) and SIGTERM during a client command: the terminal gets its echo back if a
/// passphrase was being read, every registered temporary file (staged plaintext attachments,
/// half-fetched or half-sealed envelopes) is removed, and the command ends at once with 130 (143
/// for SIGTERM). The relay keeps its own graceful shutdown and does not install this.
package enum Interruption {
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []
    private static let state = Mutex(InterruptionState())

    package static func install() {
        for (signalNumber, status) in [(SIGINT, Int32(130)), (SIGTERM, Int32(143))] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global(qos: .userInteractive))
            source.setEventHandler {
                state.withLock { $0.begun = true }
                TerminalInput.restoreAfterInterruption()
                TemporaryFiles.removeAll()
                let clear = Terminal.stderrIsTerminal ? "\r\u{1B}[K" : ""
                let outcome = state.withLock { $0.outcome } ?? "nothing decrypted or half-written was kept"
                StandardStreams.writeError("\(clear)secmail: interrupted; \(outcome)\n")
                _exit(status)
            }
            source.resume()
            sources.append(source)
        }
    }

    /// What an interruption from now on leaves behind, said instead of the general "nothing
    /// decrypted or half-written was kept" (`send` says whether its message may have gone).
    package static func wouldLeave(_ outcome: String) {
        state.withLock { $0.outcome = outcome }
    }

    /// For a command about to report a failure: once an interruption is being handled, the
    /// failure is most likely its doing (the clean-up removed the files the command was writing),
    /// and the handler ends the process with 130 or 143 in a moment; so this waits for that
    /// instead of reporting the failure and exiting 1 first.
    package static func waitIfInterrupted() {
        guard state.withLock({ $0.begun }) else { return }
        while true { sleep(60) }
    }
}

private struct InterruptionState {
    var begun = false
    var outcome: String?
}
