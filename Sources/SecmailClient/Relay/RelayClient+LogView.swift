import Foundation
import SecmailAPI
import SecmailFormat

extension RelayClient {
    /// The pinned log key (relay.json).
    func logVerifier() throws -> NoteVerifier {
        guard let settings else {
            throw ClientError(.noIdentity, "no relay is pinned in \(home.url.path) yet; run: secmail register NAME --relay https://HOST:PORT --ca CA.pem")
        }
        return try settings.logVerifier
    }

    /// Writes the pins and the last accepted checkpoint to relay.json.
    public func saveLogView() throws {
        try settings?.save(to: home)
    }

    /// Takes the pins of a relay contacted for the first time: its TLS key as seen on this
    /// connection, its log key, and the first checkpoint (not saved until `saveLogView`).
    func pinFirstContact(logVerifierKey: String, relayKeyPin: [UInt8], checkpointNote: String, caFile: String) {
        settings = RelaySettings(url: url.absoluteString, caFile: caFile, relayKeyPin: hexEncoded(relayKeyPin),
                                 logVerifierKey: logVerifierKey, checkpoint: checkpointNote)
    }

    /// The current key version of `name`, verified (DirectoryVerification.verifyLookup) under a
    /// checkpoint that extends the stored one.
    func verifiedLookup(_ name: IdentityName) async throws -> VerifiedLookup {
        let answer = try await expect(200, RelayRequest(.GET, Endpoint.lookup.path(name.value)))
        let lookup = try DirectoryVerification.verifyLookup(answer.body, name: name, logVerifier: try logVerifier())
        try await advance(to: lookup.checkpoint, note: lookup.checkpointNote)
        return lookup
    }

    /// The relay's current signed checkpoint, verified and extending the stored one.
    func verifiedCurrentCheckpoint() async throws -> Checkpoint {
        let verifier = try logVerifier()
        let answer = try await expect(200, RelayRequest(.GET, Endpoint.checkpoint.path()))
        let note = String(decoding: answer.body, as: UTF8.self)
        let checkpoint: Checkpoint
        do {
            checkpoint = try Checkpoint(text: SignedNote.open(note, verifier: verifier))
        } catch let error as FormatError {
            throw ClientError(.verificationFailed, "the relay's checkpoint failed verification: \(error.reason)")
        }
        guard checkpoint.origin == verifier.name else {
            throw ClientError(.verificationFailed, "the relay's checkpoint is for the log \(checkpoint.origin), not \(verifier.name)")
        }
        try await advance(to: checkpoint, note: note)
        return checkpoint
    }

    /// Every key version of `name`, proven in the same tree as `lookup` and forming one
    /// continuity chain (DirectoryVerification.verifyHistory).
    func verifiedHistory(_ name: IdentityName, at lookup: VerifiedLookup) async throws -> [IdentityBundle] {
        let answer = try await expect(200, RelayRequest(
            .GET, Endpoint.history.path(name.value, query: [(Endpoint.Query.treeSize, String(lookup.checkpoint.size))])))
        return try DirectoryVerification.verifyHistory(answer.body, name: name, logVerifier: try logVerifier(), checkpoint: lookup.checkpoint)
    }

    /// Checks that `checkpoint` extends the stored one (a consistency proof from the relay when
    /// it grew) and makes it the stored one.
    private func advance(to checkpoint: Checkpoint, note: String) async throws {
        let verifier = try logVerifier()
        if let storedNote = settings?.checkpoint {
            let stored: Checkpoint
            do {
                stored = try Checkpoint(text: SignedNote.open(storedNote, verifier: verifier))
            } catch {
                throw ClientError(.corruptState, "the checkpoint stored in relay.json does not verify with the pinned log key")
            }
            if stored.size > 0 {
                var proof: [[UInt8]] = []
                if checkpoint.size > stored.size {
                    let answer = try await call(RelayRequest(.GET, Endpoint.consistency.path(query: [
                        (Endpoint.Query.from, String(stored.size)), (Endpoint.Query.to, String(checkpoint.size)),
                    ])), as: ConsistencyResponse.self)
                    proof = try answer.proof.map(DirectoryVerification.decode)
                }
                try DirectoryVerification.verifyExtension(of: stored, to: checkpoint, proof: proof)
            }
        }
        settings?.checkpoint = note
    }
}
