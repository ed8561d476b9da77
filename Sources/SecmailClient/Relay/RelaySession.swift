import Foundation
import SecmailFormat

/// One command's conversation with the pinned relay. Every checkpoint the relay shows is checked
/// against the pinned log key and must extend the last one stored (P6); it replaces the stored
/// one in memory, and reaches relay.json only through `save()`, once the command's other checks
/// passed.
struct RelaySession {
    let home: SecmailHome
    private(set) var settings: RelaySettings
    let connection: RelayConnection
    let verifier: NoteVerifier

    init(home: SecmailHome) throws {
        self.home = home
        settings = try RelaySettings.load(from: home)
        guard let url = URL(string: settings.url) else { throw ClientError(.corruptState, "the relay URL in relay.json is damaged") }
        connection = try RelayConnection(url: url, trust: settings.trust)
        verifier = try settings.logVerifier
    }

    func save() throws {
        try settings.save(to: home)
    }

    /// The current key version of `name`, verified (DirectoryVerification.verifyLookup) under a
    /// checkpoint that extends the stored one.
    mutating func verifiedLookup(_ name: IdentityName) async throws -> VerifiedLookup {
        let answer = try DirectoryClient.expect(200, try await connection.send(.GET, "/v1/directory/\(name.value)"))
        let lookup = try DirectoryVerification.verifyLookup(answer.body, name: name, logVerifier: verifier)
        try await advance(to: lookup.checkpoint, note: lookup.checkpointNote)
        return lookup
    }

    /// The relay's current signed checkpoint, verified and extending the stored one.
    mutating func verifiedCurrentCheckpoint() async throws -> Checkpoint {
        let answer = try DirectoryClient.expect(200, try await connection.send(.GET, "/v1/log/checkpoint"))
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
        let answer = try DirectoryClient.expect(200, try await connection.send(
            .GET, "/v1/directory/\(name.value)/history?treeSize=\(lookup.checkpoint.size)"))
        return try DirectoryVerification.verifyHistory(answer.body, name: name, logVerifier: verifier, checkpoint: lookup.checkpoint)
    }

    /// A bearer token for `identity`'s name: the relay's nonce signed with the current signing key (P8).
    func authenticate(_ identity: SenderIdentity) async throws -> String {
        let name = identity.bundle.name
        struct Challenge: Decodable { let nonce: String }
        struct Token: Decodable { let token: String }
        let challengeBody = try JSONSerialization.data(withJSONObject: ["name": name.value])
        let challengeAnswer = try DirectoryClient.expect(200, try await connection.send(.POST, "/v1/auth/challenge", json: challengeBody))
        guard let challenge = try? JSONDecoder().decode(Challenge.self, from: Data(challengeAnswer.body)),
              let nonce = Data(base64Encoded: challenge.nonce) else {
            throw ClientError(.verificationFailed, "the relay's challenge is not the expected JSON")
        }
        let signature = try identity.signingKey.signature(
            for: AuthChallenge.signedMessage(origin: verifier.name, name: name, nonce: Array(nonce)))
        let tokenBody = try JSONSerialization.data(withJSONObject: [
            "name": name.value, "nonce": nonce.base64EncodedString(), "signature": Data(signature).base64EncodedString(),
        ])
        let tokenAnswer = try DirectoryClient.expect(200, try await connection.send(.POST, "/v1/auth/token", json: tokenBody))
        guard let token = try? JSONDecoder().decode(Token.self, from: Data(tokenAnswer.body)).token else {
            throw ClientError(.verificationFailed, "the relay's token answer is not the expected JSON")
        }
        return token
    }

    /// Checks that `checkpoint` extends the stored one (a consistency proof from the relay when
    /// it grew) and makes it the stored one.
    private mutating func advance(to checkpoint: Checkpoint, note: String) async throws {
        if let storedNote = settings.checkpoint {
            let stored: Checkpoint
            do {
                stored = try Checkpoint(text: SignedNote.open(storedNote, verifier: verifier))
            } catch {
                throw ClientError(.corruptState, "the checkpoint stored in relay.json does not verify with the pinned log key")
            }
            if stored.size > 0 {
                var proof: [[UInt8]] = []
                if checkpoint.size > stored.size {
                    struct Consistency: Decodable { let proof: [String] }
                    let answer = try DirectoryClient.expect(200, try await connection.send(
                        .GET, "/v1/log/consistency?from=\(stored.size)&to=\(checkpoint.size)"))
                    guard let decoded = try? JSONDecoder().decode(Consistency.self, from: Data(answer.body)) else {
                        throw ClientError(.verificationFailed, "the relay's consistency proof is not the expected JSON")
                    }
                    proof = try decoded.proof.map(DirectoryVerification.decode)
                }
                try DirectoryVerification.verifyExtension(of: stored, to: checkpoint, proof: proof)
            }
        }
        settings.checkpoint = note
    }
}

/// How far `secmail audit` has read the log ($SECMAIL_HOME/audit.json): the frontier of the
/// audited prefix, from which the next audit continues.
struct AuditState {
    var frontier: MerkleFrontier

    private struct Stored: Codable {
        let treeSize: UInt64
        /// Base64 subtree hashes of the audited prefix, largest first (MerkleFrontier).
        let frontier: [String]
    }

    static func url(in home: SecmailHome) -> URL { home.url.appendingPathComponent("audit.json") }

    static func load(from home: SecmailHome) throws -> AuditState {
        let url = url(in: home)
        guard FileManager.default.fileExists(atPath: url.path) else { return AuditState(frontier: MerkleFrontier()) }
        do {
            let stored = try JSONDecoder().decode(Stored.self, from: Data(FileSystem.read(url)))
            let hashes = try stored.frontier.map { encoded in
                guard let data = Data(base64Encoded: encoded) else { throw FormatError(.invalidField, "invalid base64") }
                return Array(data)
            }
            return AuditState(frontier: try MerkleFrontier(size: stored.treeSize, hashes: hashes))
        } catch {
            throw ClientError(.corruptState, "\(url.path) is damaged (\(error)); remove it to audit the whole log again")
        }
    }

    func save(to home: SecmailHome) throws {
        let stored = Stored(treeSize: frontier.size, frontier: frontier.hashes.map { Data($0).base64EncodedString() })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileSystem.replaceFile(Self.url(in: home), bytes: Array(try encoder.encode(stored)), permissions: 0o600)
    }
}
