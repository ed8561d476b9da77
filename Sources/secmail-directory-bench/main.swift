// Release-mode benchmark of the key directory (issue 4), driven by scripts/bench-directory.sh.
//
//   secmail-directory-bench build-log DB LEAVES
//       Appends LEAVES log leaves to the relay database DB through LogStore, as registrations
//       do, then times inclusion and consistency proofs at the full size (the script measures the
//       database's size once this process has closed it).
//   secmail-directory-bench load URL CA REGISTRATIONS CLIENTS SECONDS
//       Against a running `secmail relay`: registers REGISTRATIONS new identities over HTTPS
//       (8 at a time), then runs CLIENTS concurrent clients for SECONDS, each looking up random
//       registered names and verifying every answer as `secmail lookup` does.
//   secmail-directory-bench mail URL CA SENDERS SECONDS BIG_MIB RELAY_PID [TLS_BENCH PORT CA]
//       Against a running `secmail relay`: SENDERS registered users deposit pre-sealed 1 KiB
//       messages to each other for SECONDS (messages per second, latency, RELAY_PID's CPU time
//       and storage writes per message; a pool of sealed
//       messages that runs dry early is resized and the run repeated), then 400 more under strace
//       (syncs per deposit), then one envelope with a BIG_MIB attachment is deposited and fetched
//       three times (MB/s); the relay's peak RSS (VmHWM of RELAY_PID) is read after each phase.
//       With TLS_BENCH (the secmail-tls-bench binary) and the PORT and CA of its `serve`, each of
//       the three rounds begins with scripts/bench-tls.sh's bulk measurement (`download`, 2 s),
//       and the 64 MiB figures are reported as fractions of it, round by round.
//   secmail-directory-bench abuse URL CA FOLDER CLIENTS SECONDS
//       The honest side of scripts/bench-abuse.sh (AbuseLoad.swift): registers CLIENTS users and
//       an attacker account, writes the attacker's token and spam registrations to FOLDER, then,
//       after each line read from standard input, runs the honest clients for SECONDS.
//
// Output: one `key=value ...` line per measurement.
import Foundation
import SecmailFormat

let arguments = CommandLine.arguments
do {
    switch arguments.dropFirst().first {
    case "build-log" where arguments.count == 4:
        guard let leaves = Int(arguments[3]), leaves > 0 else { fail("LEAVES is a positive number") }
        try await buildLog(databasePath: arguments[2], leaves: leaves)
    case "load" where arguments.count == 7:
        guard let url = URL(string: arguments[2]), let registrations = Int(arguments[4]), let clients = Int(arguments[5]),
              let seconds = Double(arguments[6]), registrations > 0, clients > 0, seconds > 0 else {
            fail("usage: load URL CA REGISTRATIONS CLIENTS SECONDS")
        }
        try await load(url: url, caFile: arguments[3], registrations: registrations, clients: clients, seconds: seconds)
    case "mail" where arguments.count == 8 || arguments.count == 11:
        guard let url = URL(string: arguments[2]), let senders = Int(arguments[4]), let seconds = Double(arguments[5]),
              let big = Int(arguments[6]), let pid = Int32(arguments[7]), senders >= 4, seconds > 0, big > 0 else {
            fail("usage: mail URL CA SENDERS SECONDS BIG_MIB RELAY_PID [TLS_BENCH PORT CA] (SENDERS at least 4)")
        }
        let reference = arguments.count == 11 ? TLSBulkReference(benchmark: arguments[8], port: arguments[9], caFile: arguments[10]) : nil
        // This process stands in for `secmail send` and `read`, which keep freed memory for reuse.
        ProcessMemory.keepFreedMemoryForReuse()
        // BIG_ROUNDS: how many times the large envelope is deposited and fetched (3 unless set).
        let bigRounds = ProcessInfo.processInfo.environment["BIG_ROUNDS"].flatMap { Int($0) }.map { max(1, $0) } ?? 3
        try await mailLoad(url: url, caFile: arguments[3], senders: senders, seconds: seconds, bigMiB: big, bigRounds: bigRounds, relayPID: pid,
                           tlsReference: reference)
    case "abuse" where arguments.count == 7:
        guard let url = URL(string: arguments[2]), let clients = Int(arguments[5]), let seconds = Double(arguments[6]), clients >= 2, seconds > 0 else {
            fail("usage: abuse URL CA FOLDER CLIENTS SECONDS (CLIENTS at least 2)")
        }
        try await abuseLoad(url: url, caFile: arguments[3], folder: URL(fileURLWithPath: arguments[4], isDirectory: true), clients: clients, seconds: seconds)
    default:
        fail("usage: secmail-directory-bench build-log DB LEAVES | load URL CA REGISTRATIONS CLIENTS SECONDS | mail URL CA SENDERS SECONDS BIG_MIB RELAY_PID [TLS_BENCH PORT CA] | abuse URL CA FOLDER CLIENTS SECONDS")
    }
} catch {
    fail("\(error)")
}
