import FoundationEssentials
import Glibc
import SecmailAPI
import SecmailFormat

/// How far `secmail audit` or `secmail monitor` has replayed the log ($SECMAIL_HOME/audit.state,
/// monitor.state): the Merkle frontier of the replayed prefix (to recompute the signed root) and
/// the name map after it (to recompute every map root a leaf commits). Memory and file size
/// grow with the number of names, not of log entries.
struct LogReplayState {
    var frontier: MerkleFrontier
    var replay: NameMapReplay

    enum Kind: String {
        case audit, monitor
    }

    static let magic: [UInt8] = Array("SMRS".utf8)

    static func url(_ kind: Kind, in home: SecmailHome) -> URL { home.url.appendingPathComponent("\(kind.rawValue).state") }

    static func load(_ kind: Kind, from home: SecmailHome) throws -> LogReplayState {
        let url = url(kind, in: home)
        guard FileManager.default.fileExists(atPath: url.path) else {
            return LogReplayState(frontier: MerkleFrontier(), replay: NameMapReplay())
        }
        do {
            let bytes = try FileSystem.read(url)
            guard bytes.starts(with: magic), bytes.count >= 9 else { throw FormatError(.badMagic, "not a replay state") }
            var offset = magic.count
            let hashCount = Int(bytes[offset])
            offset += 1
            let hashes = try (0..<hashCount).map { index -> [UInt8] in
                let start = offset + 32 * index
                guard start + 32 <= bytes.count else { throw FormatError(.truncated, "the frontier is truncated") }
                return Array(bytes[start..<start + 32])
            }
            offset += 32 * hashCount
            let replay = try NameMapReplay(encodedState: Array(bytes[offset...]))
            return LogReplayState(frontier: try MerkleFrontier(size: replay.size, hashes: hashes), replay: replay)
        } catch {
            throw ClientError(.corruptState, "\(url.path) is damaged (\(error)); remove it to replay the whole log again")
        }
    }

    /// `SMRS` ‖ u8 frontier hash count ‖ the hashes (largest subtree first) ‖ NameMapReplay's state.
    func save(_ kind: Kind, to home: SecmailHome) throws {
        var bytes = Self.magic + [UInt8(frontier.hashes.count)]
        for hash in frontier.hashes { bytes += hash }
        bytes += replay.encodedState
        try home.ensureExists()
        try FileSystem.replaceFile(Self.url(kind, in: home), bytes: bytes)
    }
}

extension RelayClient {
    /// Replays the log from `state`'s position to `checkpoint` (verified and extending the
    /// stored view): reads the entries a page at a time, appends each to the frontier, applies it
    /// to the name map (NameMapReplay: registrations of new names, continuous rotations, every
    /// committed map root recomputed) and shows it to `visit`; then the frontier's root must be
    /// the checkpoint's. A finding is a `verificationFailed` naming the entry.
    func replayLog(_ state: inout LogReplayState, to checkpoint: Checkpoint,
                   progress: (UInt64, UInt64) -> Void, visit: (UInt64, LogLeaf) -> Void) async throws {
        guard state.frontier.size <= checkpoint.size else {
            throw ClientError(.verificationFailed, "the relay's log has \(checkpoint.size) entries but \(state.frontier.size) were replayed before: it was rolled back")
        }
        let first = state.frontier.size
        while state.frontier.size < checkpoint.size {
            let start = state.frontier.size
            let page = try await call(RelayRequest(.GET, Endpoint.entries.path(query: [
                (Endpoint.Query.start, String(start)), (Endpoint.Query.end, String(checkpoint.size)),
            ])), as: LogEntriesResponse.self)
            guard page.start == start, !page.leaves.isEmpty, page.leaves.count <= checkpoint.size - start else {
                throw ClientError(.verificationFailed, "the relay answered entries from \(page.start) (\(page.leaves.count)) when asked for \(start) ..< \(checkpoint.size)")
            }
            for encoded in page.leaves {
                let leafData = try DirectoryVerification.decode(encoded)
                let index = state.frontier.size
                let leaf: LogLeaf
                do { leaf = try state.replay.apply(leafData) } catch let error as FormatError {
                    throw ClientError(.verificationFailed, error.reason)
                }
                state.frontier.append(leafHash: MerkleHash.leaf(leafData))
                visit(index, leaf)
            }
            progress(state.frontier.size - first, checkpoint.size - first)
        }
        guard state.frontier.root == checkpoint.rootHash else {
            throw ClientError(.verificationFailed, "the relay's log entries do not produce the root of its signed checkpoint of \(checkpoint.size) entries: the log was altered")
        }
    }
}
