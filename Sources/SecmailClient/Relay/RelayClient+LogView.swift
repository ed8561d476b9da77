import FoundationEssentials
import Glibc
import SecmailAPI
import SecmailFormat

extension RelayClient {
    /// The pinned log key (relay.json).
    func logVerifier() throws -> NoteVerifier {
        guard let settings else {
            throw ClientError(.noIdentity, "no relay is pinned in \(home.url.path) yet; run: secmail register NAME --relay https://HOST:PORT --tls-pin sha256/… (or --ca CA.pem)")
        }
        return try settings.logVerifier
    }

    /// Writes the pins and the last accepted checkpoint to relay.json, when they changed: most
    /// commands see the checkpoint they already stored, and an unchanged file is not rewritten.
    /// Another command of this home may have saved a checkpoint since this one read relay.json
    /// (two commands at once): the two must be consistent, checked as a sender's checkpoint is,
    /// and the newer is written, so the stored view never goes back to an older tree, nor to a
    /// fork of the other command's, unnoticed.
    public func saveLogView() async throws {
        guard settings != nil, settings != savedSettings else { return }
        // Held from reading relay.json again to writing it, so that two commands saving at once
        // take turns (a holder keeps it for one consistency proof at most).
        let turn = try home.lock("relay.lock", waitingUpTo: .seconds(10), holderIs: "saving the relay's log view in")
        defer { withExtendedLifetime(turn) {} }
        if let onDisk = try? RelaySettings.load(from: home), let saved = savedSettings,
           onDisk.logVerifierKey == saved.logVerifierKey, onDisk.logVerifierKey == settings?.logVerifierKey, let note = onDisk.checkpoint,
           note != saved.checkpoint, note != settings?.checkpoint {
            try await reconcile(withCheckpointSavedMeanwhile: note)
        }
        guard let settings else { return }
        try settings.save(to: home)
        savedSettings = settings
    }

    /// `note`, which another command of this home saved while this one ran, against this
    /// command's view: the newer of the two becomes this command's view; a fork is refused.
    private func reconcile(withCheckpointSavedMeanwhile note: String) async throws {
        let theirs: Checkpoint
        do {
            theirs = try Checkpoint(text: SignedNote.open(note, verifier: try logVerifier()))
        } catch {
            throw ClientError(.corruptState, "the checkpoint another secmail command saved in relay.json meanwhile does not verify with the pinned log key")
        }
        let ours = try storedCheckpoint()
        guard try await isConsistentWithView(theirs, note: note, ours: ours) else {
            let path = try keepForkEvidence(note, from: "saved meanwhile by another secmail command of this home", label: "home",
                                            finding: "the checkpoint another command saved (\(theirs.size) entries) and this command's (\(ours?.size ?? 0) entries) are not consistent")
            throw ClientError(.logInconsistent, "the relay showed two secmail commands of this home logs that are not consistent (\(theirs.size) and \(ours?.size ?? 0) entries): it shows different views of its log. Do not trust keys from it; both signed checkpoints are kept as evidence in \(path)")
        }
    }

    /// Whether `theirs`, a checkpoint of this relay's log, and this client's view `ours` (its
    /// `storedCheckpoint()`) are consistent (a proof asked of the relay from the smaller tree to
    /// the larger, which it cannot make between two forks); when they are and `theirs` is newer,
    /// it becomes this client's view.
    private func isConsistentWithView(_ theirs: Checkpoint, note: String, ours: Checkpoint?) async throws -> Bool {
        guard let ours, ours.size > 0 else {
            settings?.checkpoint = note
            return true
        }
        let (older, newer) = theirs.size <= ours.size ? (theirs, ours) : (ours, theirs)
        let proof = newer.size > older.size ? try await consistencyProof(from: older.size, to: newer.size) : []
        guard older.size == 0 || MerkleProof.verifyConsistency(oldSize: older.size, newSize: newer.size, oldRoot: older.rootHash,
                                                               newRoot: newer.rootHash, proof: proof) else { return false }
        if theirs.size > ours.size { settings?.checkpoint = note }
        return true
    }

    /// Takes the pins of a relay contacted for the first time: its TLS key as seen on this
    /// connection, its log key, and the first checkpoint (not saved until `saveLogView`).
    func pinFirstContact(logVerifierKey: String, relayKeyPin: [UInt8], checkpointNote: String, caFile: String?) {
        settings = RelaySettings(url: url.absoluteString, caFile: caFile, relayKeyPin: hexEncoded(relayKeyPin),
                                 logVerifierKey: logVerifierKey, checkpoint: checkpointNote)
    }

    /// The current key version of `name`, verified (DirectoryVerification.verifyLookup) under a
    /// checkpoint that extends the stored one. A `404` must prove that `name` is not registered
    /// (DirectoryVerification.verifyAbsence); it is then `ClientError.notRegistered`. With
    /// `reusing`, a lookup of `name` verified earlier in this command is taken instead of asking
    /// again: for the senders of the mail one command reads, so that `read --all` looks each
    /// sender up once, not once a message.
    func verifiedLookup(_ name: IdentityName, reusing: Bool = false) async throws -> VerifiedLookup {
        if reusing, let earlier = latestLookups[name] { return earlier }
        let answer = try await send(RelayRequest(.GET, Endpoint.lookup.path(name.value)))
        switch answer.status {
        case 200:
            let lookup = try underPinnedLog { try DirectoryVerification.verifyLookup(answer.body, name: name, logVerifier: $0) }
            try await advance(to: lookup.checkpoint, note: lookup.checkpointNote)
            latestLookups[name] = lookup
            return lookup
        case 404:
            let absence = try underPinnedLog { try DirectoryVerification.verifyAbsence(answer.body, name: name, logVerifier: $0) }
            try await advance(to: absence.checkpoint, note: absence.note)
            throw ClientError(.notRegistered, "no one is registered as \(name) on the relay at \(address)")
        default:
            throw ClientError.refusal(answer, relay: address, notFound: .notRegistered)
        }
    }

    /// The relay's current signed checkpoint, verified and extending the stored one.
    func verifiedCurrentCheckpoint() async throws -> Checkpoint {
        let answer = try await expect(200, RelayRequest(.GET, Endpoint.checkpoint.path()))
        let note = String(decoding: answer.body, as: UTF8.self)
        let checkpoint = try underPinnedLog { try DirectoryVerification.signedCheckpoint(note, logVerifier: $0) }
        try await advance(to: checkpoint, note: note)
        return checkpoint
    }

    /// Every key version of `name`, proven in the same tree as `lookup` and forming one
    /// continuity chain (DirectoryVerification.verifyHistory).
    func verifiedHistory(_ name: IdentityName, at lookup: VerifiedLookup) async throws -> [LoggedKeyVersion] {
        if let proven = provenHistories[name], proven.checkpoint == lookup.checkpoint { return proven.chain }
        let answer = try await expect(200, RelayRequest(
            .GET, Endpoint.history.path(name.value, query: [(Endpoint.Query.treeSize, String(lookup.checkpoint.size))])))
        let chain = try underPinnedLog { try DirectoryVerification.verifyHistory(answer.body, name: name, logVerifier: $0, checkpoint: lookup.checkpoint) }
        provenHistories[name] = (lookup.checkpoint, chain)
        return chain
    }

    /// `check` of what the relay served, under the pinned log key; a checkpoint of a new log is
    /// said with the command that follows it from this home.
    private func underPinnedLog<Checked>(_ check: (NoteVerifier) throws -> Checked) throws -> Checked {
        let verifier = try logVerifier()
        do {
            return try check(verifier)
        } catch let error as ClientError where error.code == .newLog {
            throw newLog(error.subject ?? "another origin", pinned: verifier.name)
        }
    }

    /// The relay signs its log as `origin`, not as the pinned `pinned`: said with the command that
    /// follows the new log, naming this relay and the home's identity (when it has one).
    func newLog(_ origin: String, pinned: String) -> ClientError {
        ClientError.newLog(origin, pinned: pinned, relayURL: url.absoluteString, name: Keystore(home: home).nameToType)
    }

    /// Checks that `checkpoint` extends the stored one (a consistency proof from the relay when
    /// it grew) and makes it the stored one.
    func advance(to checkpoint: Checkpoint, note: String) async throws {
        if let stored = try storedCheckpoint(), stored.size > 0 {
            let proof = checkpoint.size > stored.size ? try await consistencyProof(from: stored.size, to: checkpoint.size) : []
            try DirectoryVerification.verifyExtension(of: stored, to: checkpoint, proof: proof)
        }
        settings?.checkpoint = note
    }

    /// Split-view detection (DESIGN 3): `note` is the checkpoint a message's sender had verified
    /// when sealing, signed with the message. If it is a checkpoint of this relay's log, it must be
    /// consistent with this client's own: a consistency proof from the smaller tree to the larger
    /// (asked of the relay, which cannot make one between two forks). A newer one advances this
    /// client's view. Inconsistent checkpoints are a fork: both are kept under evidence/ and the
    /// error says where. A checkpoint of another log (another origin) is not comparable and is
    /// ignored.
    func compareView(withSenderCheckpoint note: String?, sender: IdentityName, messageID: MessageID) async throws {
        guard let note, let verifier = try? logVerifier() else { return }
        guard note.hasPrefix(verifier.name + "\n") else { return }
        // Evidence of a fork keeps the sender's checkpoint with the message that carried it.
        let keepEvidence = { (finding: String) throws -> String in
            try self.keepForkEvidence(note, from: "signed by \(sender) with the message", message: "\(messageID) from \(sender)",
                                      label: String(messageID.hex.prefix(8)), finding: finding)
        }
        let theirs: Checkpoint
        do {
            theirs = try Checkpoint(text: SignedNote.open(note, verifier: verifier))
        } catch {
            let path = try keepEvidence("the sender's checkpoint names this log but is not signed by the pinned log key")
            throw ClientError(.logInconsistent, "the checkpoint \(sender) signed with message \(messageID) names this relay's log but is not signed by the log key you pinned: someone shows \(sender) a different log. Both views are kept as evidence in \(path)")
        }
        let ours = try storedCheckpoint()
        guard try await isConsistentWithView(theirs, note: note, ours: ours) else {
            let path = try keepEvidence("the sender's checkpoint (\(theirs.size) entries) and this client's (\(ours?.size ?? 0) entries) are not consistent")
            throw ClientError(.logInconsistent, "the relay's log that \(sender) saw (\(theirs.size) entries) and the one you saw (\(ours?.size ?? 0) entries) are not consistent: the relay shows different users different logs (a split view). Do not trust keys from it; both signed checkpoints are kept as evidence in \(path)")
        }
    }

    /// The checkpoint stored in relay.json, verified with the pinned log key.
    private func storedCheckpoint() throws -> Checkpoint? {
        guard let storedNote = settings?.checkpoint else { return nil }
        do {
            return try Checkpoint(text: SignedNote.open(storedNote, verifier: try logVerifier()))
        } catch {
            throw ClientError(.corruptState, "the checkpoint stored in relay.json does not verify with the pinned log key")
        }
    }

    private func consistencyProof(from oldSize: UInt64, to newSize: UInt64) async throws -> [[UInt8]] {
        let answer = try await call(RelayRequest(.GET, Endpoint.consistency.path(query: [
            (Endpoint.Query.from, String(oldSize)), (Endpoint.Query.to, String(newSize)),
        ])), as: ConsistencyResponse.self)
        return try answer.proof.map(DirectoryVerification.decode)
    }

    /// Keeps the view of a log this home no longer follows (its last checkpoint, under its key)
    /// in a new folder $SECMAIL_HOME/evidence/retired-log-TIME/, what this client can show of
    /// that log later; returns the folder.
    func keepRetiredLogView(_ retired: RelaySettings) throws -> URL {
        let evidence = home.url.appendingPathComponent("evidence", isDirectory: true)
        try FileSystem.createPrivateDirectory(evidence)
        let folder = evidence.appendingPathComponent("retired-log-\(Int64(Date().timeIntervalSince1970))", isDirectory: true)
        guard try FileSystem.createPrivateDirectory(folder) != nil else {
            throw ClientError(.io, "\(folder.path) exists already; try again in a second")
        }
        let text = """
            secmail retired log view
            relay: \(retired.url)
            log key: \(retired.logVerifierKey)

            last checkpoint this client had accepted:
            \(retired.checkpoint ?? "(none)")
            """
        try FileSystem.createDurableFile(folder.appendingPathComponent("checkpoint.txt"), bytes: Array(text.utf8), permissions: 0o600)
        try FileSystem.synchronize(evidence)
        return folder
    }

    /// Moves how far `audit` and `monitor` replayed the retired log into its evidence `folder`:
    /// the new log is replayed from its start.
    func retireReplayStates(into folder: URL) throws {
        for kind in [LogReplayState.Kind.audit, .monitor] {
            let state = LogReplayState.url(kind, in: home)
            guard FileManager.default.fileExists(atPath: state.path) else { continue }
            do {
                try FileManager.default.moveItem(at: state, to: folder.appendingPathComponent(state.lastPathComponent))
            } catch {
                throw ClientError(.io, "cannot move \(state.path) into \(folder.path) (\(String(describing: error))): move it yourself, or audit and monitor refuse the new log")
            }
        }
        try FileSystem.synchronize(folder)
        try FileSystem.synchronize(home.url)
    }

    /// Writes both checkpoints of a fork to $SECMAIL_HOME/evidence/ and returns the file's path;
    /// `source` says where `theirs` came from (`message`: the one that carried it), `label` ends
    /// the file's name.
    private func keepForkEvidence(_ theirs: String, from source: String, message: String? = nil, label: String, finding: String) throws -> String {
        let directory = home.url.appendingPathComponent("evidence", isDirectory: true)
        try FileSystem.createPrivateDirectory(directory)
        let file = directory.appendingPathComponent("fork-\(Int64(Date().timeIntervalSince1970))-\(label).txt")
        let text = """
            secmail split-view evidence
            finding: \(finding)
            relay: \(url.absoluteString)\(message.map { "\nmessage: \($0)" } ?? "")

            checkpoint \(source):
            \(theirs)
            checkpoint this client had accepted:
            \(settings?.checkpoint ?? "(none)")
            """
        try FileSystem.createDurableFile(file, bytes: Array(text.utf8), permissions: 0o600)
        return file.path
    }
}
