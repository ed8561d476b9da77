import FoundationEssentials
import Glibc
import SecmailAPI
import SecmailCrypto
import SecmailFormat

/// The client's directory operations over one `RelayClient`: registration (first contact and
/// pinning), verified lookups (inclusion, log consistency, contact pins), trust, rotation and
/// audit. Nothing is saved unless every check passed.
public struct DirectoryClient {
    public let relay: RelayClient
    public var home: SecmailHome { relay.home }

    public init(relay: RelayClient) {
        self.relay = relay
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
        /// The verified lookup it came from (its checkpoint is the tree a history must match).
        public let lookup: VerifiedLookup

        /// What the contact's client reads beyond the base format.
        public var readerFeatures: Set<ReaderFeature> { lookup.readerFeatures }

        /// What every one of `contacts` reads (all this client knows, for none): what a message
        /// to all of them may use.
        public static func commonReaderFeatures(_ contacts: [Contact]) -> Set<ReaderFeature> {
            contacts.map(\.readerFeatures).reduce(Set(ReaderFeature.allCases)) { $0.intersection($1) }
        }
    }

    /// Registers `bundle` on the relay `pinRelay` pinned, with the reader features of this client
    /// (so that even the first message to the new name can use them), and proves with a verified
    /// lookup that the log now holds exactly these keys as the name's current ones.
    public func register(_ bundle: IdentityBundle, invite: String?) async throws -> RelaySettings {
        guard relay.settings != nil else { preconditionFailure("register follows pinRelay") }
        let declaration = DeclaredReaderFeatures(home: home, relayAddress: relay.address)
        let request = try RelayRequest(.POST, Endpoint.register.path(),
                                       json: BundleRequest(bundle: Data(bundle.encoded).base64EncodedString(), invite: invite,
                                                           readerFeatures: declaration.features))
        var refusal: ClientError?
        do {
            try await relay.expect(201, request)
        } catch let error as ClientError where error.code == .nameTaken {
            // Registering again with the same keys is fine: the lookup below proves they are ours.
            refusal = error
        }
        let lookup: VerifiedLookup
        do {
            lookup = try await relay.verifiedLookup(bundle.name)
        } catch let error as ClientError where error.code == .notRegistered && refusal != nil {
            // Taken by a look-alike (`b0b` for `bob`): the relay's refusal names it.
            throw refusal ?? error
        }
        guard lookup.bundle == bundle else {
            throw ClientError(.nameTaken, "the name \(bundle.name) is registered on this relay with other keys (fingerprint \(lookup.bundle.fingerprint.grouped))")
        }
        // Remembered only when the lookup shows them: a relay from before features at
        // registration ignores them, and the next `inbox` or `read` then declares them.
        if lookup.readerFeatures.map(\.rawValue).sorted() == declaration.features.sorted() { try declaration.remember() }
        try await relay.saveLogView()
        try ContactPins(home: home).pin(bundle, reason: .compared)
        guard let settings = relay.settings else { preconditionFailure("pinRelay sets the settings") }
        return settings
    }

    /// First contact (in memory until `saveLogView`): the relay's TLS key as seen on this
    /// connection, its log key, whose origin must name this relay (`checkOrigin`), and its
    /// current signed checkpoint, which every later one must extend. A pin or log key the user
    /// gave (`contact`) must be the one the relay shows, or nothing is pinned.
    public func pinRelay(_ contact: FirstContact) async throws {
        let info = try await relay.info()
        let (verifierKey, keyAnswer) = try await servedLogKey()
        guard let pin = keyAnswer.relayKeyPin else {
            throw ClientError(.verificationFailed, "the relay's TLS key could not be read for pinning")
        }
        try contact.check(relayKeyPin: pin, logVerifierKey: verifierKey, relay: relay.address)
        let verifier: NoteVerifier
        do { verifier = try NoteVerifier(verifierKey: verifierKey) } catch {
            throw ClientError(.malformedAnswer, "the relay's log key is not a valid verifier key")
        }
        try Self.checkOrigin(verifier.name, announced: info.origin, relayHost: relay.url.host ?? "", certificateNames: keyAnswer.relayDNSNames)
        let note = String(decoding: try await relay.expect(200, RelayRequest(.GET, Endpoint.checkpoint.path())).body, as: UTF8.self)
        _ = try DirectoryVerification.signedCheckpoint(note, logVerifier: verifier)
        relay.pinFirstContact(logVerifierKey: verifierKey, relayKeyPin: pin, checkpointNote: note, caFile: contact.caFile)
    }

    /// Confirms that the relay answering at its address, or at a new one (`RelayClient(home:at:)`),
    /// is the one pinned in this home and still holds `identity`: the connection proved the pinned
    /// TLS key; the log key must be the pinned one, the origin must name the relay at that address,
    /// and the log must extend the stored checkpoint and hold `identity` as its name's current
    /// key. Then relay.json takes the address; nothing is registered again.
    public func confirmRegistration(holding identity: IdentityBundle) async throws {
        let info = try await relay.info()
        let (served, keyAnswer) = try await servedLogKey()
        let verifier = try relay.logVerifier()
        guard served == relay.settings?.logVerifierKey else {
            throw ClientError(.verificationFailed, "the relay at \(relay.address) presents the pinned TLS key but serves another log key (\(served)) than the pinned one")
        }
        try Self.checkOrigin(verifier.name, announced: info.origin, relayHost: relay.url.host ?? "", certificateNames: keyAnswer.relayDNSNames)
        let own = try await verifiedContact(identity.name)
        guard own.bundle.fingerprint == identity.fingerprint else {
            throw ClientError(.keyNotCurrent, "the relay's log holds key version \(own.bundle.keyVersion) of \(identity.name), not this home's key version \(identity.keyVersion)")
        }
        try await relay.saveLogView()
    }

    /// How a home followed its relay's new log.
    public enum FollowedLog: Sendable {
        /// The new log holds the home's current key.
        case found
        /// It did not (the registration was made after the backup the relay was restored from),
        /// and the identity was registered again.
        case registeredAgain
        /// It held an earlier key version of this home, `from` (the rotations after it were made
        /// after the backup), or none (nil: registered and rotated after the backup), and what it
        /// lacked was registered and logged again.
        case rotationsLoggedAgain(from: UInt32?)
        /// The home holds no identity: it monitors the log only.
        case monitoredOnly
    }

    /// Follows the new log of the pinned relay (`RelayClient(home:at:newLogKey:)`): the relay must
    /// serve exactly the new log key, whose origin names it; the view starts at its current
    /// checkpoint, and the log must hold `identity`, or else `identity` (key version 1 only: a
    /// relay registers nothing later) is registered again. relay.json then pins the new log key;
    /// the old view and the audit and monitor positions in it are kept in an evidence folder
    /// (returned); contact pins stay as they are. When the log holds an earlier key version of
    /// this home (`keystore`), the rotations since are logged again, each signed in with the
    /// version before it (`signer` unlocks a version's signing key).
    public func followNewLog(holding identity: IdentityBundle?, invite: String?,
                             keystore: Keystore? = nil, signer: ((UInt32) throws -> SenderIdentity)? = nil) async throws -> (FollowedLog, retiredView: String) {
        guard let retired = relay.savedSettings, let given = relay.settings?.logVerifierKey else {
            preconditionFailure("followNewLog follows RelayClient(home:at:newLogKey:)")
        }
        let info = try await relay.info()
        let (served, keyAnswer) = try await servedLogKey()
        guard served == given else {
            throw ClientError(.pinMismatch, "the relay at \(relay.address) serves the log key \(served), not the one given (\(given)): nothing was changed")
        }
        try Self.checkOrigin(try relay.logVerifier().name, announced: info.origin, relayHost: relay.url.host ?? "", certificateNames: keyAnswer.relayDNSNames)
        _ = try await relay.verifiedCurrentCheckpoint()
        let outcome = try await findOrRegisterAgain(identity, invite: invite, keystore: keystore, signer: signer)
        let evidence = try relay.keepRetiredLogView(retired)
        try await relay.saveLogView()
        try relay.retireReplayStates(into: evidence)
        return (outcome, evidence.path)
    }

    /// Whether the (verified) new log holds `identity` as its name's current key; registers it
    /// again when it holds no key for the name, and logs again the rotations it lacks.
    private func findOrRegisterAgain(_ identity: IdentityBundle?, invite: String?, keystore: Keystore?,
                                     signer: ((UInt32) throws -> SenderIdentity)?) async throws -> FollowedLog {
        guard let identity else { return .monitoredOnly }
        let own: VerifiedLookup?
        do {
            own = try await relay.verifiedLookup(identity.name)
        } catch let error as ClientError where error.code == .notRegistered {
            own = nil
        }
        if let own {
            if own.bundle.fingerprint == identity.fingerprint { return .found }
            let mine = own.bundle.keyVersion < identity.keyVersion && (try? keystore?.bundle(version: own.bundle.keyVersion)) == own.bundle
            guard mine, let keystore, let signer else {
                let advice = mine ? ": `secmail register \(identity.name) --relay URL --new-log --log-key KEY` logs the rotations since again" : ""
                throw ClientError(.keyNotCurrent, "the new log holds key version \(own.bundle.keyVersion) of \(identity.name) (fingerprint \(own.bundle.fingerprint.grouped)), not this home's key version \(identity.keyVersion): nothing was changed\(advice)")
            }
            try await logRotationsAgain(from: own.bundle.keyVersion, to: identity, keystore: keystore, signer: signer)
            return .rotationsLoggedAgain(from: own.bundle.keyVersion)
        }
        guard identity.keyVersion > 1 else {
            _ = try await register(identity, invite: invite)
            return .registeredAgain
        }
        // Registered and rotated after the backup: version 1 again, then the rotations.
        guard let keystore, let signer, let first = try? keystore.bundle(version: 1) else {
            throw ClientError(.keyNotCurrent, "the new log does not hold \(identity.name), and this identity is at key version \(identity.keyVersion) (a relay registers version 1 only): nothing was changed; `secmail register \(identity.name) --relay URL --new-log --log-key KEY` registers version 1 again and logs the rotations since")
        }
        _ = try await register(first, invite: invite)
        try await logRotationsAgain(from: 1, to: identity, keystore: keystore, signer: signer)
        return .rotationsLoggedAgain(from: nil)
    }

    /// `POST /v1/directory/rotate` of `next`, with the token of the key version it replaces.
    private func postRotation(_ next: IdentityBundle, token: String) async throws {
        try await relay.expect(200, try RelayRequest(.POST, Endpoint.rotate.path(),
                                                     json: BundleRequest(bundle: Data(next.encoded).base64EncodedString()), bearer: token))
    }

    /// Logs this home's rotations from key version `first` up to `current` again, in order, each
    /// signed in with the version it replaces (the relay takes a rotation from the current key's
    /// token only), and checks that the log then holds `current`. Each bundle carries its
    /// continuity signature already: nothing new is signed but the sign-ins.
    private func logRotationsAgain(from first: UInt32, to current: IdentityBundle, keystore: Keystore,
                                   signer: (UInt32) throws -> SenderIdentity) async throws {
        for version in first..<current.keyVersion {
            let next = try keystore.bundle(version: version + 1)
            try await postRotation(next, token: try await relay.token(for: try signer(version)))
        }
        let logged = try await relay.verifiedLookup(current.name)
        guard logged.bundle == current else {
            throw ClientError(.verificationFailed, "the relay took the rotations of \(current.name) up to key version \(current.keyVersion) but serves version \(logged.bundle.keyVersion) (\(logged.bundle.fingerprint.grouped))")
        }
        // One's own key, pinned as at a rotation (registering version 1 again pinned that one).
        try ContactPins(home: home).pin(current, reason: .compared)
    }

    /// The log verifier key the relay serves, and the answer that carried it (with the TLS key and
    /// certificate names of the connection).
    private func servedLogKey() async throws -> (key: String, answer: RelayResponse) {
        let answer = try await relay.expect(200, RelayRequest(.GET, Endpoint.logKey.path()))
        return (String(decoding: answer.body, as: UTF8.self).trimmed(\.isWhitespace), answer)
    }

    /// The log key's origin must be the one the relay announces and must name this relay: its host
    /// part (before the first '/') is the host in the relay's URL or a DNS name its certificate
    /// is issued for. So a client never pins, for relay A, a log that calls itself another relay.
    static func checkOrigin(_ origin: String, announced: String, relayHost: String, certificateNames: [String]) throws {
        guard origin == announced else {
            throw ClientError(.verificationFailed, "the relay announces the log origin \(announced) but its log key is named \(origin)")
        }
        let host = String(origin.prefix { $0 != "/" }).lowercased()
        let relayHost = relayHost.trimmed { $0 == "[" || $0 == "]" }.lowercased()
        guard host == relayHost || certificateNames.contains(where: { $0.lowercased() == host }) else {
            throw ClientError(.verificationFailed, "the relay's log origin \(origin) does not name this relay (\(relayHost), certificate for \(certificateNames.joined(separator: ", "))): refusing to pin it")
        }
    }

    /// Looks each of `names` up on the pinned relay and verifies the answers (`verifiedContact`);
    /// only when all of them passed are their pins and the advanced log view saved, so that a
    /// list with one unknown or changed key pins none of the others behind the user's back.
    public func lookup(_ names: [IdentityName]) async throws -> [Contact] {
        var contacts: [Contact] = []
        for name in names { contacts.append(try await verifiedContact(name, pinning: false)) }
        for contact in contacts { try savePin(contact) }
        try await relay.saveLogView()
        return contacts
    }

    /// Looks `name` up and verifies the answer: the pinned TLS key, the pinned log key, the
    /// inclusion proof, the consistency of the new checkpoint with the stored one, and the contact
    /// pin. A changed key is accepted only as a logged rotation whose continuity signatures lead
    /// from the pinned version; anything else is a hard stop (P5). With `pinning`, the pin is saved
    /// (else `savePin` saves it); the log view is the caller's to save. An unknown name is reported
    /// with the pinned contacts it resembles. With `reusingLookup`, a lookup of `name` verified
    /// earlier in this command serves (`RelayClient.verifiedLookup(_:reusing:)`); the pins are
    /// compared anew.
    public func verifiedContact(_ name: IdentityName, pinning: Bool = true, reusingLookup: Bool = false) async throws -> Contact {
        let lookup: VerifiedLookup
        do {
            lookup = try await relay.verifiedLookup(name, reusing: reusingLookup)
        } catch let error as ClientError where error.code == .notRegistered {
            throw ClientError(.notRegistered, "no one is registered as \(name) on the relay at \(relay.address)" + ContactPins(home: home).suggestion(for: name),
                              subject: name.value)
        }
        let change: Contact.PinChange
        if let pinned = try ContactPins(home: home).pinned(name) {
            if pinned == lookup.bundle {
                change = .unchanged
            } else {
                guard lookup.bundle.keyVersion > pinned.keyVersion else { throw ContactPins.keyChanged(pinned: pinned, served: lookup.bundle) }
                let history = try await relay.verifiedHistory(name, at: lookup)
                try DirectoryVerification.verifyRotation(from: pinned, to: lookup.bundle, history: history)
                change = .rotated(fromVersion: pinned.keyVersion)
            }
        } else {
            change = .new
        }
        let contact = Contact(bundle: lookup.bundle, pin: change, lookup: lookup)
        if pinning { try savePin(contact) }
        return contact
    }

    /// Saves the pin change `contact` was verified with: a first use, or a rotation followed.
    public func savePin(_ contact: Contact) throws {
        switch contact.pin {
        case .new: try ContactPins(home: home).pin(contact.bundle, reason: .firstUse)
        case .rotated: try ContactPins(home: home).pin(contact.bundle, reason: .rotation)
        case .unchanged: break
        }
    }

    /// The explicit override of a hard stop: pins the key the relay serves for `name` if, and
    /// only if, it has the fingerprint the user compared out of band, and it passes every log
    /// check. Returns the earlier pin, if any.
    public func trust(_ name: IdentityName, fingerprint: Fingerprint) async throws -> (bundle: IdentityBundle, replaced: IdentityBundle?) {
        let lookup = try await relay.verifiedLookup(name)
        guard lookup.bundle.fingerprint == fingerprint else {
            throw ClientError(.verificationFailed, """
                the relay serves \(name)'s key \(lookup.bundle.fingerprint.grouped), not the fingerprint you gave \
                (\(fingerprint.grouped)); nothing was pinned
                """)
        }
        let pins = ContactPins(home: home)
        let earlier = try pins.pinned(name)
        try pins.pin(lookup.bundle, reason: .compared)
        try await relay.saveLogView()
        return (lookup.bundle, earlier)
    }

    /// Rotates the keystore's identity: prepares the next key version (or resumes a pending one),
    /// proves ownership with the current key (P8), has the relay log it, verifies the logged
    /// result, and only then makes it current. A refused rotation leaves the keystore as it was.
    public func rotate(_ keystore: Keystore, passphrase: Passphrase) async throws -> IdentityBundle {
        let keyChange = try keystore.lockForKeyChange()
        defer { withExtendedLifetime(keyChange) {} }
        let current = try keystore.unlockSender(passphrase: passphrase)
        let next = try keystore.prepareRotation(from: current, passphrase: passphrase)
        // A definite refusal by the relay; a network failure instead keeps the pending version,
        // since the relay may have logged it without this client hearing the answer.
        var refusal: ClientError?
        do {
            try await postRotation(next, token: try await relay.token(for: current))
        } catch let error as ClientError where error.code == .relayUnreachable {
            throw ClientError(.relayUnreachable, "\(error.reason); key version \(next.keyVersion) is prepared but not confirmed: run secmail rotate again to finish")
        } catch let error as ClientError where !error.isVerificationFailure {
            refusal = error
        }
        // Whatever the answer, the log decides: an earlier attempt may have been logged already.
        let logged = try await relay.verifiedLookup(next.name)
        guard logged.bundle == next else {
            if let refusal {
                try keystore.discardPendingRotation()
                throw refusal
            }
            throw ClientError(.verificationFailed, "the relay accepted key version \(next.keyVersion) of \(next.name) but serves version \(logged.bundle.keyVersion) (\(logged.bundle.fingerprint.grouped))")
        }
        try keystore.commitRotation(next)
        // One's own new key needs no comparing: this home made it (as at registration).
        try ContactPins(home: home).pin(next, reason: .compared)
        try await relay.saveLogView()
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
        /// The key version the name map holds as the owner's current one.
        public let currentInMap: NameMapValue?
    }

    public struct AuditedEntry: Sendable {
        public let logIndex: UInt64
        public let entry: DirectoryEntry
        public let isMine: Bool
    }

    /// Owner monitoring (P6): replays every log entry appended since the last audit (the
    /// frontier must produce the root of the relay's signed checkpoint, which must extend the one
    /// stored; the name map is recomputed and every map root a leaf commits checked), lists the
    /// entries for the owner's name whose keys the keystore does not hold, and checks that the
    /// map holds the owner's latest key as current. The audit position advances only when nothing
    /// was found, so a finding is reported again by every later audit until it is dealt with.
    public func audit(_ keystore: Keystore, progress: (UInt64, UInt64) -> Void = { _, _ in }) async throws -> AuditReport {
        let own = try keystore.allBundles()
        guard let name = own.first?.name, let latest = own.max(by: { $0.keyVersion < $1.keyVersion }) else {
            throw ClientError(.noIdentity, "no identity in \(home.url.path)")
        }
        let ownFingerprints = Set(own.map(\.fingerprint))
        let checkpoint = try await relay.verifiedCurrentCheckpoint()
        var state = try LogReplayState.load(.audit, from: home)
        let first = state.frontier.size
        var found: [AuditedEntry] = []
        try await relay.replayLog(&state, to: checkpoint, progress: progress) { index, leaf in
            guard let entry = leaf.entry, entry.bundle.name == name else { return }
            found.append(AuditedEntry(logIndex: index, entry: entry, isMine: ownFingerprints.contains(entry.bundle.fingerprint)))
        }
        let current = state.replay.values[NameMapKey.of(name)]
        let report = AuditReport(treeSize: checkpoint.size, entriesRead: checkpoint.size - first, ownEntries: found, currentInMap: current)
        if let current, report.foreignEntries.isEmpty, current.fingerprint != latest.fingerprint {
            throw ClientError(.verificationFailed, "the log's name map holds \(name) key version \(current.keyVersion) (\(current.fingerprint.grouped)) as current, but your keystore's latest is version \(latest.keyVersion) (\(latest.fingerprint.grouped)): contacts are sent to a key that is not your latest (run secmail rotate to finish a pending rotation)")
        }
        if report.foreignEntries.isEmpty {
            try state.save(.audit, to: home)
            try await relay.saveLogView()
        }
        return report
    }

    /// What `monitor` checked.
    public struct MonitorReport: Sendable {
        public let treeSize: UInt64
        public let entriesRead: UInt64
        public let names: Int
        public let mapRoot: [UInt8]
    }

    /// Monitoring by anyone (no identity needed): replays the log from where the last run stopped
    /// to the relay's current signed checkpoint, recomputes the name map and checks every entry
    /// and every map root the log commits (`RelayClient.replayLog`). The position advances only
    /// after a clean run.
    public func monitor(progress: (UInt64, UInt64) -> Void = { _, _ in }) async throws -> MonitorReport {
        let checkpoint = try await relay.verifiedCurrentCheckpoint()
        var state = try LogReplayState.load(.monitor, from: home)
        let first = state.frontier.size
        try await relay.replayLog(&state, to: checkpoint, progress: progress) { _, _ in }
        try state.save(.monitor, to: home)
        try await relay.saveLogView()
        return MonitorReport(treeSize: checkpoint.size, entriesRead: checkpoint.size - first, names: state.replay.values.count,
                             mapRoot: try state.replay.root())
    }
}

/// The number of single-character insertions, deletions and substitutions between two strings,
/// for "did you mean" hints (a near contact's name, a near command); with `swapsCountOnce`, two
/// neighbours typed in the wrong order are one edit, not two.
public func editDistance(_ a: String, _ b: String, swapsCountOnce: Bool = false) -> Int {
    let a = Array(a), b = Array(b)
    var beforePrevious: [Int] = [], previous = Array(0...b.count)
    for (i, x) in a.enumerated() {
        var current = [i + 1]
        for (j, y) in b.enumerated() {
            var edits = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1))
            if swapsCountOnce, i > 0, j > 0, x == b[j - 1], a[i - 1] == y {
                edits = min(edits, beforePrevious[j - 1] + 1)
            }
            current.append(edits)
        }
        (beforePrevious, previous) = (previous, current)
    }
    return previous[b.count]
}

private extension String {
    /// Without the characters `isTrimmed` accepts at either end (Foundation's
    /// `trimmingCharacters(in:)`, which FoundationEssentials does not have).
    func trimmed(_ isTrimmed: (Character) -> Bool) -> String {
        guard let first = firstIndex(where: { !isTrimmed($0) }), let last = lastIndex(where: { !isTrimmed($0) }) else { return "" }
        return String(self[first...last])
    }
}
