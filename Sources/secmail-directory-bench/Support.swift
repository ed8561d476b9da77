import Foundation
import NIOCore
import NIOPosix
import SecmailAPI
import SecmailClient
import SecmailCrypto
import SecmailFormat
import SecmailRelay
import SecmailTLS

/// Writes one measurement line to standard output at once (print's buffer would hold it back
/// when the output is a pipe, and the scripts show each line as it is made).
func report(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("secmail-directory-bench: \(message)\n".utf8))
    exit(1)
}

func elapsed(since start: ContinuousClock.Instant) -> Double {
    let duration = ContinuousClock.now - start
    return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// Counts finished operations and their latencies across tasks.
actor Tally {
    var latencies: [Double] = []
    var failures = 0
    var firstFailure: String?

    func record(_ seconds: Double) { latencies.append(seconds) }

    func fail(_ error: Error) {
        failures += 1
        if firstFailure == nil { firstFailure = String(describing: error) }
    }
}

/// The relay's peak resident set so far, in MiB (Linux /proc).
func peakRSS(pid: Int32) -> Double {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kib = Double(line.split(separator: " ").dropFirst().first ?? "") else { return -1 }
    return kib / 1024
}

/// The CPU time process `pid` has used so far, user and system, in seconds (fields 14 and 15 of
/// /proc/PID/stat, in clock ticks), or nil where that is not readable. Per message it says what
/// a deposit costs the relay, which varies less than a rate with how busy the machine is.
func cpuSeconds(pid: Int32) -> Double? {
    guard let fields = statFields(pid: pid), let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// The minor page faults process `pid` has taken so far (field 10 of /proc/PID/stat), or nil where
/// that is not readable: each is a page of memory the process touched for the first time since
/// it was mapped, zeroed by the kernel (buffers allocated afresh instead of reused).
func minorPageFaults(pid: Int32) -> Int? {
    statFields(pid: pid).flatMap { Int($0[7]) }
}

/// The context switches of process `pid`'s live threads so far, voluntary and not (summed over
/// /proc/PID/task/*/status), or nil where that is not readable: each is a thread handing its core
/// on, most of them a wait for another thread's work.
func contextSwitches(pid: Int32) -> Int? {
    guard let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return nil }
    return threads.reduce(0) { total, thread in
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/status", encoding: .utf8) else { return total }
        return total + status.split(separator: "\n").reduce(0) { sum, line in
            guard line.hasPrefix("voluntary_ctxt_switches:") || line.hasPrefix("nonvoluntary_ctxt_switches:") else { return sum }
            return sum + (Int(line.split(separator: "\t").last ?? "") ?? 0)
        }
    }
}

/// The machine's busy and total CPU time so far, in clock ticks summed over its cores (the first
/// line of /proc/stat: all but idle and iowait is busy), or nil where that is not readable.
/// Between two readings, busy over total says how much of the machine a phase kept working: near
/// 1 only CPU time saved makes it faster; well below, its threads waited for one another.
func machineCPUTicks() -> (busy: Int, total: Int)? {
    guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
          let line = stat.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
    let ticks = line.split(separator: " ").dropFirst().compactMap { Int($0) }
    guard ticks.count >= 5 else { return nil }
    // Fields: user nice system idle iowait irq softirq steal (guest time is counted in user).
    let total = ticks.prefix(8).reduce(0, +)
    return (total - ticks[3] - ticks[4], total)
}

/// Busy over total CPU ticks of the machine since `start` (`machineCPUTicks`), NaN where unknown.
func busyFraction(since start: (busy: Int, total: Int)?) -> Double {
    guard let start, let now = machineCPUTicks(), now.total > start.total else { return .nan }
    return Double(now.busy - start.busy) / Double(now.total - start.total)
}

/// /proc/PID/stat from field 3 (the state) on, after the command name in parentheses (which may
/// hold spaces), or nil where that is not readable.
private func statFields(pid: Int32) -> [Substring]? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let end = stat.lastIndex(of: ")") else { return nil }
    let fields = stat[stat.index(after: end)...].split(separator: " ")
    return fields.count > 12 ? fields : nil
}

/// Bytes process `pid` has caused to be written to storage so far (`write_bytes` of
/// /proc/PID/io: the WAL, checkpoints, envelope files), or nil where that is not readable.
func storageBytesWritten(pid: Int32) -> Int? {
    guard let io = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8),
          let line = io.split(separator: "\n").first(where: { $0.hasPrefix("write_bytes:") }) else { return nil }
    return Int(line.split(separator: " ").last ?? "")
}

/// Real bundles for `count` names. RSA-3072 signing is the cost (about 2 ms a bundle), so a few
/// key pairs are shared among the names; the relay checks each bundle's self-signature, not
/// that keys are unique.
func makeBundles(count: Int, prefix: String) throws -> [IdentityBundle] {
    let pairs = try (0..<4).map { _ in (try RSAPrivateKey.generate(bitCount: 3072), try RSAPrivateKey.generate(bitCount: 3072)) }
    let results = BundleSlots(count: count)
    DispatchQueue.concurrentPerform(iterations: count) { index in
        let (signing, encryption) = pairs[index % pairs.count]
        results.set(index, try? IdentityBundle.create(
            name: IdentityName("\(prefix)-\(index)"), createdAt: Int64(Date().timeIntervalSince1970),
            signingKey: signing, encryptionKey: encryption.publicKey))
    }
    return try results.all()
}

/// Bundles created in parallel, each into its own slot.
final class BundleSlots: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var slots: [IdentityBundle?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ bundle: IdentityBundle?) { lock.withLock { slots[index] = bundle } }

    func all() throws -> [IdentityBundle] {
        try lock.withLock {
            try slots.map { bundle in
                guard let bundle else { throw FormatError(.invalidField, "a benchmark bundle could not be created") }
                return bundle
            }
        }
    }
}

