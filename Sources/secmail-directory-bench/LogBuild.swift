import Foundation
import NIOCore
import NIOPosix
import SecmailAPI
import SecmailClient
import SecmailCrypto
import SecmailFormat
import SecmailRelay
import SecmailTLS

func buildLog(databasePath: String, leaves: Int) async throws {
    let database = try RelayDatabase(path: databasePath)
    let log = LogStore(database: database)
    // Real leaves: DirectoryEntry encodings of real bundles (64 distinct ones, each logged at
    // many times), so leaf sizes and hashing are those of real registrations.
    let bundles = try makeBundles(count: 64, prefix: "log-bench")
    let start = ContinuousClock.now
    var appended = try await log.size()
    let target = appended + UInt64(leaves)
    while appended < target {
        let batch = min(1000, target - appended), first = appended
        try await database.write { db in
            for offset in 0..<batch {
                let index = first + offset
                let entry = try DirectoryEntry(kind: .registration, time: Int64(index), bundle: bundles[Int(index % 64)])
                _ = try LogStore.append(entry.encoded, time: Int64(index), in: db)
            }
        }
        appended += batch
    }
    let buildSeconds = elapsed(since: start)
    let size = try await log.size()
    print(String(format: "log_build leaves=%d seconds=%.2f appends_per_second=%.0f", leaves, buildSeconds, Double(leaves) / buildSeconds))

    var generator = SystemRandomNumberGenerator()
    let samples = 2000
    var inclusion: [Double] = []
    for _ in 0..<samples {
        let index = UInt64.random(in: 0..<size, using: &generator)
        let t = ContinuousClock.now
        _ = try await log.inclusionProof(index: index, size: size)
        inclusion.append(elapsed(since: t) * 1e6)
    }
    var consistency: [Double] = []
    for _ in 0..<samples {
        let old = UInt64.random(in: 1...size, using: &generator)
        let t = ContinuousClock.now
        _ = try await log.consistencyProof(from: old, to: size)
        consistency.append(elapsed(since: t) * 1e6)
    }
    let rootStart = ContinuousClock.now
    for _ in 0..<samples { _ = try await log.root() }
    let rootMicros = elapsed(since: rootStart) * 1e6 / Double(samples)
    inclusion.sort()
    consistency.sort()
    print(String(format: "log_proofs size=%llu inclusion_us_p50=%.0f inclusion_us_p99=%.0f consistency_us_p50=%.0f consistency_us_p99=%.0f root_us=%.0f",
                 size, percentile(inclusion, 0.5), percentile(inclusion, 0.99), percentile(consistency, 0.5), percentile(consistency, 0.99), rootMicros))
}

