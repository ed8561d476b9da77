import Foundation
import NIOHTTP1
import SecmailCrypto
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
        public enum PinChange: Sendable, Equatable {
            /// Seen for the first time and pinned.
            case new
            /// Matches the pin.
            case unchanged
            /// The contact rotated from the pinned version; the continuity chain and its log
            /// entries were verified, and the pin moved to the new version.
            case rotated(fromVersion: UInt32)
        }
        public let bundle: IdentityBundle
        public let pin: PinChange
    }

    /// Registers `bundle` on the relay at `url` (verified with the CA in `caFile`), then pins the
    /// relay's TLS key and the log key, and stores the first checkpoint.
    public func register(_ bundle: IdentityBundle, relay url: URL, caFile: String, invite: String?) async throws -> RelaySettings {
        let connection = try RelayConnection(url: url, trust: .certificateAuthorities(file: caFile))
        let keyResponse = try Self.expect(200, await connection.send(.GET, "/v1/log/key"))
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
        let answer = try Self.expect(200, await connection.send(.GET, "/v1/directory/\(bundle.name.value)"))
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
    /// and the contact pin. A changed key is accepted only as a logged rotation whose continuity
    /// signatures lead from the pinned version; anything else is a hard stop (P5).
    public func lookup(_ name: IdentityName) async throws -> Contact {
        var session = try RelaySession(home: home)
        let lookup = try await session.verifiedLookup(name)
        let pins = ContactPins(home: home)
        let change: Contact.PinChange
        if let pinned = try pins.pinned(name) {
            if pinned == lookup.bundle {
                change = .unchanged
            } else {
                guard lookup.bundle.keyVersion > pinned.keyVersion else { throw ContactPins.keyChanged(pinned: pinned, served: lookup.bundle) }
                let history = try await session.verifiedHistory(name, at: lookup)
                try DirectoryVerification.verifyRotation(from: pinned, to: lookup.bundle, history: history)
                try pins.pin(lookup.bundle)
                change = .rotated(fromVersion: pinned.keyVersion)
            }
        } else {
            try pins.pin(lookup.bundle)
            change = .new
        }
        try session.save()
        return Contact(bundle: lookup.bundle, pin: change)
    }

    /// The explicit override of a hard stop: pins the key the relay serves for `name` if, and
    /// only if, it has the fingerprint the user compared out of band, and it passes every log
    /// check. Returns the earlier pin, if any.
    public func trust(_ name: IdentityName, fingerprint: Fingerprint) async throws -> (bundle: IdentityBundle, replaced: IdentityBundle?) {
        var session = try RelaySession(home: home)
        let lookup = try await session.verifiedLookup(name)
        guard lookup.bundle.fingerprint == fingerprint else {
            throw ClientError(.verificationFailed, """
                the relay serves \(name)'s key \(lookup.bundle.fingerprint.grouped), not the fingerprint you gave \
                (\(fingerprint.grouped)); nothing was pinned
                """)
        }
        let pins = ContactPins(home: home)
        let earlier = try pins.pinned(name)
        try pins.pin(lookup.bundle)
        try session.save()
        return (lookup.bundle, earlier)
    }

    /// Rotates the keystore's identity: prepares the next key version (or resumes a pending one),
    /// proves ownership with the current key (P8), has the relay log it, verifies the logged
    /// result, and only then makes it current. A refused rotation leaves the keystore as it was.
    public func rotate(_ keystore: Keystore, passphrase: Passphrase) async throws -> IdentityBundle {
        var session = try RelaySession(home: home)
        let current = try keystore.unlockSender(passphrase: passphrase)
        let next = try keystore.prepareRotation(from: current, passphrase: passphrase)
        // A definite refusal by the relay; a network failure instead keeps the pending version,
        // since the relay may have logged it without this client hearing the answer.
        var refusal: ClientError?
        do {
            let token = try await session.authenticate(current)
            let body = try JSONSerialization.data(withJSONObject: ["bundle": Data(next.encoded).base64EncodedString()])
            _ = try Self.expect(200, await session.connection.send(.POST, "/v1/directory/rotate", json: body, bearer: token))
        } catch let error as ClientError where error.code == .relayRefused {
            refusal = error
        } catch let error as ClientError where error.code == .io {
            throw ClientError(.io, "\(error.reason); key version \(next.keyVersion) is prepared but not confirmed: run secmail rotate again to finish")
        }
        // Whatever the answer, the log decides: an earlier attempt may have been logged already.
        let logged = try await session.verifiedLookup(next.name)
        guard logged.bundle == next else {
            if let refusal {
                try keystore.discardPendingRotation()
                throw refusal
            }
            throw ClientError(.verificationFailed, "the relay accepted key version \(next.keyVersion) of \(next.name) but serves version \(logged.bundle.keyVersion) (\(logged.bundle.fingerprint.grouped))")
        }
        try keystore.commitRotation(next)
        try ContactPins(home: home).pin(next)
        try session.save()
        return next
    }

    /// What `audit` found.
    public struct AuditReport: Sendable {
        /// Log size now audited.
        public let treeSize: UInt64
        /// Entries read in this run (the ones appended since the last audit).
        public let entriesRead: UInt64
        /// Every log entry for the owner's name seen in this run.
        public let ownEntries: [AuditedEntry]
        /// Those among them whose key is not in the keystore: made by someone else.
        public var foreignEntries: [AuditedEntry] { ownEntries.filter { !$0.isMine } }
    }

    public struct AuditedEntry: Sendable {
        public let logIndex: UInt64
        public let entry: DirectoryEntry
        public let isMine: Bool
    }

    /// Owner monitoring (P6): reads every log entry appended since the last audit, checks that
    /// they produce exactly the root of the relay's signed checkpoint (which must extend the one
    /// stored), and lists the entries for the owner's name whose keys the keystore does not hold.
    /// The audit position advances only when nothing foreign was found, so a finding is reported
    /// again by every later audit until it is dealt with.
    public func audit(_ keystore: Keystore, progress: (UInt64, UInt64) -> Void = { _, _ in }) async throws -> AuditReport {
        var session = try RelaySession(home: home)
        let own = try keystore.allBundles()
        guard let name = own.first?.name else { throw ClientError(.noIdentity, "no identity in \(home.url.path)") }
        let ownFingerprints = Set(own.map(\.fingerprint))
        let checkpoint = try await session.verifiedCurrentCheckpoint()
        var state = try AuditState.load(from: home)
        guard state.frontier.size <= checkpoint.size else {
            throw ClientError(.verificationFailed, "the relay's log has \(checkpoint.size) entries but \(state.frontier.size) were audited before: it was rolled back")
        }
        let first = state.frontier.size
        var found: [AuditedEntry] = []
        while state.frontier.size < checkpoint.size {
            let start = state.frontier.size
            let response = try await session.connection.send(.GET, "/v1/log/entries?start=\(start)&end=\(checkpoint.size)")
            let page: LogEntriesMessage
            do {
                page = try JSONDecoder().decode(LogEntriesMessage.self, from: Data(try Self.expect(200, response).body))
            } catch let error as ClientError { throw error } catch {
                throw ClientError(.verificationFailed, "the relay's log entries are not the expected JSON")
            }
            guard page.start == start, !page.leaves.isEmpty, page.leaves.count <= checkpoint.size - start else {
                throw ClientError(.verificationFailed, "the relay answered entries from \(page.start) (\(page.leaves.count)) when asked for \(start) ..< \(checkpoint.size)")
            }
            for leaf in page.leaves {
                let leafData = try DirectoryVerification.decode(leaf)
                let index = state.frontier.size
                state.frontier.append(leafHash: MerkleHash.leaf(leafData))
                let entry: DirectoryEntry
                do { entry = try DirectoryEntry(encoded: leafData) } catch let error as FormatError {
                    throw ClientError(.verificationFailed, "log entry #\(index) is not a valid directory entry: \(error.reason)")
                }
                if entry.bundle.name == name {
                    found.append(AuditedEntry(logIndex: index, entry: entry, isMine: ownFingerprints.contains(entry.bundle.fingerprint)))
                }
            }
            progress(state.frontier.size - first, checkpoint.size - first)
        }
        guard state.frontier.root == checkpoint.rootHash else {
            throw ClientError(.verificationFailed, "the relay's log entries do not produce the root of its signed checkpoint of \(checkpoint.size) entries: the log was altered")
        }
        let report = AuditReport(treeSize: checkpoint.size, entriesRead: checkpoint.size - first, ownEntries: found)
        if report.foreignEntries.isEmpty {
            try state.save(to: home)
            try session.save()
        }
        return report
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

    /// Every pinned contact, by name.
    public func all() throws -> [IdentityBundle] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return try files.filter { $0.hasSuffix(".id") }.sorted().compactMap { file in
            // Files whose names are not identity names are not pins (e.g. an editor's backup).
            guard let name = try? IdentityName(String(file.dropLast(3))), name.value == String(file.dropLast(3)) else { return nil }
            return try pinned(name)
        }
    }

    /// Pins `bundle` for its name, replacing any earlier pin.
    public func pin(_ bundle: IdentityBundle) throws {
        try FileSystem.createPrivateDirectory(directory)
        let url = directory.appendingPathComponent("\(bundle.name.value).id")
        try FileSystem.replaceFile(url, bytes: Array(bundle.armored.utf8), permissions: 0o600)
    }

    /// The hard stop when a contact's key changed without a verifiable rotation (P5).
    static func keyChanged(pinned: IdentityBundle, served: IdentityBundle) -> ClientError {
        ClientError(.verificationFailed, """
            the key of \(served.name) CHANGED: pinned \(pinned.fingerprint.grouped) (version \(pinned.keyVersion)), \
            the relay now serves \(served.fingerprint.grouped) (version \(served.keyVersion)). \
            Do not send anything until you have compared the new fingerprint with \(served.name) in person; \
            then accept it with: secmail trust \(served.name) --fingerprint \(served.fingerprint.hex)
            """)
    }
}
