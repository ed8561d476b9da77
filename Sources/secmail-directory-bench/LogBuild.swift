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
    // many times), so leaf sizes and hashing are those of real registrations. The name map gets
    // one synthetic name per leaf ("bench-<index>"), updated in the leaf's transaction as a
    // registration does, and each leaf commits the map's root after it.
    let bundles = try makeBundles(count: 64, prefix: "log-bench")
    let start = ContinuousClock.now
    var appended = try await log.size()
    let target = appended + UInt64(leaves)
    var mapSeconds = 0.0
    while appended < target {
        let batch = min(1000, target - appended), first = appended
        mapSeconds += try await database.write { db in
            var map = NameMap(store: DatabaseMapNodes(db: db))
            var seconds = 0.0
            for offset in 0..<batch {
                let index = first + offset
                let bundle = bundles[Int(index % 64)]
                let value = NameMapValue(keyVersion: 1, logIndex: index, fingerprint: bundle.fingerprint)
                let t = ContinuousClock.now
                let root = try map.set(NameMapKey.of(try IdentityName("bench-\(index)")), valueHash: value.hash)
                seconds += elapsed(since: t)
                let entry = try DirectoryEntry(kind: .registration, time: Int64(index), bundle: bundle, mapRoot: root)
                _ = try LogStore.append(entry.encoded, time: Int64(index), in: db)
            }
            return seconds
        }
        appended += batch
    }
    let buildSeconds = elapsed(since: start)
    let size = try await log.size()
    report(String(format: "log_build leaves=%d seconds=%.2f appends_per_second=%.0f map_update_us=%.1f",
                 leaves, buildSeconds, Double(leaves) / buildSeconds, mapSeconds / Double(leaves) * 1e6))
    try await measureMapProofs(database: database, names: size)

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
    report(String(format: "log_proofs size=%llu inclusion_us_p50=%.0f inclusion_us_p99=%.0f consistency_us_p50=%.0f consistency_us_p99=%.0f root_us=%.0f",
                 size, percentile(inclusion, 0.5), percentile(inclusion, 0.99), percentile(consistency, 0.5), percentile(consistency, 0.99), rootMicros))
}


/// Map proofs for random names at the current size: generation time (one read transaction each),
/// wire size, and client verification time; half of the names asked are registered, half not.
func measureMapProofs(database: RelayDatabase, names: UInt64) async throws {
    var generator = SystemRandomNumberGenerator()
    let root = try await database.read { db in try NameMap(store: DatabaseMapNodes(db: db)).root() }
    let stored = try await database.read { db in
        try db.fetchRow("SELECT COUNT(*) AS nodes, SUM(length(prefix) + length(node) + 2) AS bytes FROM map_nodes")
    }
    let nodes: Int = try stored?.get("nodes") ?? 0, nodeBytes: Int = try stored?.get("bytes") ?? 0
    report(String(format: "map_storage names=%llu interior_nodes=%d nodes_per_name=%.2f node_payload_bytes_per_name=%.0f",
                 names, nodes, Double(nodes) / Double(max(names, 1)), Double(nodeBytes) / Double(max(names, 1))))
    var generation: [Double] = [], verification: [Double] = [], sizes: [Double] = []
    for sample in 0..<2000 {
        let name = sample % 2 == 0 ? "bench-\(UInt64.random(in: 0..<names, using: &generator))" : "absent-\(sample)"
        let key = NameMapKey.of(try IdentityName(name))
        let t = ContinuousClock.now
        let proof = try await database.read { db in try NameMap(store: DatabaseMapNodes(db: db)).proof(for: key) }
        generation.append(elapsed(since: t) * 1e6)
        let encoded = proof.encoded
        sizes.append(Double(encoded.count))
        var valueHash: [UInt8]?
        if case .found(let hash) = proof.terminal { valueHash = hash }
        let v = ContinuousClock.now
        let parsed = try NameMapProof(encoded: encoded, foundValueHash: valueHash)
        guard parsed.root(for: key) == root else { fail("a map proof for \(name) does not verify") }
        verification.append(elapsed(since: v) * 1e6)
    }
    generation.sort()
    verification.sort()
    sizes.sort()
    report(String(format: "map_proofs names=%llu proof_bytes_p50=%.0f proof_bytes_p99=%.0f proof_bytes_max=%.0f generate_us_p50=%.0f generate_us_p99=%.0f verify_us_p50=%.0f verify_us_p99=%.0f",
                 names, percentile(sizes, 0.5), percentile(sizes, 0.99), sizes.last ?? 0, percentile(generation, 0.5), percentile(generation, 0.99),
                 percentile(verification, 0.5), percentile(verification, 0.99)))
}
