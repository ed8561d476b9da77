import Foundation
import NIOHTTP1
import SecmailFormat
import SecmailTLS

/// The client's directory operations: registration (first contact and pinning) and verified
/// lookups (inclusion, log consistency, contact pins). Nothing is saved unless every check passed.
public struct DirectoryClient: Sendable {
    public let home: SecmailHome

    public init(home: SecmailHome) {
        self.home = home
    }

    /// The result of a lookup that passed every check.
    public struct Contact: Sendable {
        public let bundle: IdentityBundle
        /// True when this lookup pinned the contact for the first time.
        public let isNewPin: Bool
    }

    /// Registers `bundle` on the relay at `url` (verified with the CA in `caFile`), then pins the
    /// relay's TLS key and the log key, and stores the first checkpoint.
    public func register(_ bundle: IdentityBundle, relay url: URL, caFile: String, invite: String?) async throws -> RelaySettings {
        let connection = try RelayConnection(url: url, trust: .certificateAuthorities(file: caFile))
        let keyResponse = try await Self.expect(200, try await connection.send(.GET, "/v1/log/key"))
        let verifierKey = String(decoding: keyResponse.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let verifier: NoteVerifier
        do { verifier = try NoteVerifier(verifierKey: verifierKey) } catch {
            throw ClientError(.verificationFailed, "the relay's log key is not a valid verifier key")
        }
        var body: [String: String] = ["bundle": Data(bundle.encoded).base64EncodedString()]
        if let invite { body["invite"] = invite }
        let registered = try await connection.send(.POST, "/v1/directory/register", json: try JSONSerialization.data(withJSONObject: body))
        // Registering again with the same keys is fine: the lookup below proves they are ours.
        if registered.status != 201, registered.status != 409 { _ = try Self.expect(201, registered) }
        let answer = try await Self.expect(200, try await connection.send(.GET, "/v1/directory/\(bundle.name.value)"))
        let lookup = try DirectoryVerification.verifyLookup(answer.body, name: bundle.name, logVerifier: verifier)
        guard lookup.bundle == bundle else {
            throw ClientError(.relayRefused, "the name \(bundle.name) is registered on this relay with other keys (fingerprint \(lookup.bundle.fingerprint.grouped))")
        }
        guard let pin = answer.relayKeyPin else {
            throw ClientError(.verificationFailed, "the relay's TLS key could not be read for pinning")
        }
        let settings = RelaySettings(url: url.absoluteString, caFile: caFile, relayKeyPin: hexEncoded(pin),
                                     logVerifierKey: verifierKey, checkpoint: lookup.checkpointNote)
        try settings.save(to: home)
        try ContactPins(home: home).pin(bundle)
        return settings
    }

    /// Looks `name` up on the pinned relay and verifies the answer: the pinned TLS key, the pinned
    /// log key, the inclusion proof, the consistency of the new checkpoint with the stored one,
    /// and the contact pin (a changed key is a hard stop).
    public func lookup(_ name: IdentityName) async throws -> Contact {
        var settings = try RelaySettings.load(from: home)
        guard let url = URL(string: settings.url) else { throw ClientError(.corruptState, "the relay URL in relay.json is damaged") }
        let connection = try RelayConnection(url: url, trust: settings.trust)
        let verifier = try settings.logVerifier
        let answer = try await connection.send(.GET, "/v1/directory/\(name.value)")
        _ = try Self.expect(200, answer)
        let lookup = try DirectoryVerification.verifyLookup(answer.body, name: name, logVerifier: verifier)

        if let storedNote = settings.checkpoint {
            let stored = try Checkpoint(text: SignedNote.open(storedNote, verifier: verifier))
            var proof: [[UInt8]] = []
            if stored.size > 0, lookup.checkpoint.size > stored.size {
                let response = try await Self.expect(200, try await connection.send(.GET, "/v1/log/consistency?from=\(stored.size)&to=\(lookup.checkpoint.size)"))
                struct Consistency: Decodable { let proof: [String] }
                guard let decoded = try? JSONDecoder().decode(Consistency.self, from: Data(response.body)) else {
                    throw ClientError(.verificationFailed, "the relay's consistency proof is not the expected JSON")
                }
                proof = try decoded.proof.map(DirectoryVerification.decode)
            }
            if stored.size > 0 {
                try DirectoryVerification.verifyExtension(of: stored, to: lookup.checkpoint, proof: proof)
            }
        }
        let isNew = try ContactPins(home: home).check(lookup.bundle)
        settings.checkpoint = lookup.checkpointNote
        try settings.save(to: home)
        return Contact(bundle: lookup.bundle, isNewPin: isNew)
    }

    /// The response if it has `status`; otherwise the relay's own reason as an error.
    static func expect(_ status: Int, _ response: RelayConnection.Response) throws -> RelayConnection.Response {
        guard response.status != status else { return response }
        struct Refusal: Decodable { let error: String; let reason: String }
        let reason = (try? JSONDecoder().decode(Refusal.self, from: Data(response.body)))?.reason
            ?? String(decoding: response.body.prefix(200), as: UTF8.self)
        throw ClientError(.relayRefused, "the relay answered \(response.status): \(reason)")
    }
}

/// Contact keys pinned on first use ($SECMAIL_HOME/contacts/NAME.id, the armored bundle).
public struct ContactPins: Sendable {
    public let home: SecmailHome

    public init(home: SecmailHome) {
        self.home = home
    }

    var directory: URL { home.url.appendingPathComponent("contacts", isDirectory: true) }

    public func pinned(_ name: IdentityName) throws -> IdentityBundle? {
        let url = directory.appendingPathComponent("\(name.value).id")
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        do {
            return try IdentityBundle(armoredOrBinary: FileSystem.read(url))
        } catch let error as FormatError {
            throw ClientError(.corruptState, "the pinned key \(url.path) is damaged: \(error.reason)")
        }
    }

    /// Pins `bundle` for its name, replacing any earlier pin.
    public func pin(_ bundle: IdentityBundle) throws {
        try FileSystem.createPrivateDirectory(directory)
        let url = directory.appendingPathComponent("\(bundle.name.value).id")
        try? FileManager.default.removeItem(at: url)
        try FileSystem.createFile(url, bytes: Array(bundle.armored.utf8), permissions: 0o600)
    }

    /// Pins a first-seen key (returns true) or checks it against the pin. A different key is a
    /// hard stop: accepting it silently would let a relay swap keys (P5).
    public func check(_ bundle: IdentityBundle) throws -> Bool {
        guard let pinned = try pinned(bundle.name) else {
            try pin(bundle)
            return true
        }
        guard pinned.fingerprint == bundle.fingerprint else {
            throw ClientError(.verificationFailed, """
                the key of \(bundle.name) CHANGED: pinned \(pinned.fingerprint.grouped) (version \(pinned.keyVersion)), \
                the relay now serves \(bundle.fingerprint.grouped) (version \(bundle.keyVersion)). \
                Do not send anything until you have compared the new fingerprint with \(bundle.name) in person.
                """)
        }
        return false
    }
}
