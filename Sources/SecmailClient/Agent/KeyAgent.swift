import FoundationEssentials
import Glibc
import SecmailCrypto
import SecmailFormat

/// The key agent (`secmail agent`): holds one home's unlocked private keys in memory and signs and
/// unwraps for the commands of the same user, over `agent.sock` in the home (docs/AGENT.md).
///
/// - The socket is 0600 inside the 0700 home, and every connection's peer user id (SO_PEERCRED)
///   must be the agent's own: a process of another user is refused even where permissions were
///   widened by mistake.
/// - Keys come only from the home's own keystore, unlocked with a passphrase a client sends
///   (`load`); they are never written anywhere. OpenSSL keeps their private components in its
///   secure heap (locked in memory, out of core dumps, cleansed on free); the process cannot dump
///   core and other processes cannot read its memory (PR_SET_DUMPABLE 0).
/// - After `idleTimeout` without a request, or on `lock`, SIGINT, SIGTERM or SIGHUP, it forgets
///   the keys (freeing them, which wipes them) and ends, removing the socket.
public final class KeyAgent {
    public let home: SecmailHome
    public let idleTimeout: TimeInterval
    private let log: (String) -> Void
    private var held: HeldKeys?
    private var lastUse = Date()

    /// The keys of one identity, all versions.
    private struct HeldKeys {
        let name: IdentityName
        let signers: [Fingerprint: any MessageSigner]
        let unwrappers: [Fingerprint: any KeyUnwrapper]
    }

    /// Seconds a client has to send its request once connected.
    static let clientTimeoutSeconds = 5

    public init(home: SecmailHome, idleTimeout: TimeInterval, log: @escaping (String) -> Void) {
        self.home = home
        self.idleTimeout = idleTimeout
        self.log = log
    }

    /// The socket path of the agent for `home`.
    public static func socketPath(for home: SecmailHome) -> String {
        home.url.appendingPathComponent("agent.sock").path
    }

    /// The home's agent lock, held by the one agent that serves it, taken before the socket is
    /// looked at. Without it two agents started at once (two `unlock`s) both found no one
    /// listening and both bound the socket, the later replacing the earlier's file; the earlier
    /// ran on unreached, and on leaving removed the later's socket, whose keys `lock` could then
    /// no longer reach. An agent that holds the lock but no longer answers is stopped first
    /// (`stopUnreachable`), and this one takes its place.
    private func takeAgentLock() throws -> ExclusiveFileLock {
        let path = Self.lockPath(for: home)
        let (lock, holder) = try ExclusiveFileLock.acquire(path)
        if let lock { return lock }
        let busy = { (holder: Int32?) in
            ClientError(.homeBusy, "a key agent\(holder.map { " (process \($0))" } ?? "") already serves \(self.home.url.path); `secmail lock` stops it")
        }
        guard let holder, try Self.stop(holder, ifUnreachableIn: home) else { throw busy(holder) }
        log("the agent process \(holder) holds this home but does not answer on its socket; it was told to stop")
        guard let taken = try ExclusiveFileLock.acquire(path, waitingUpTo: .seconds(5)).lock else { throw busy(holder) }
        return taken
    }

    static func lockPath(for home: SecmailHome) -> String {
        home.url.appendingPathComponent("agent.lock").path
    }

    /// An agent that holds `home`'s agent lock but does not answer on its socket (its file
    /// removed by someone else) can be reached by no command, not even `lock`: it is told to stop
    /// (SIGTERM, on which it forgets its keys, as on `lock`). Returns its process id; nil when no
    /// agent holds the home, or the one that does answers.
    public static func stopUnreachable(in home: SecmailHome) throws -> Int32? {
        let path = lockPath(for: home)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let (lock, holder) = try ExclusiveFileLock.acquire(path)
        guard lock == nil, let holder else { return nil }
        return try stop(holder, ifUnreachableIn: home) ? holder : nil
    }

    /// Sends SIGTERM to `holder`, the agent holding `home`'s lock, when nothing answers on the
    /// home's socket; whether it did.
    private static func stop(_ holder: Int32, ifUnreachableIn home: SecmailHome) throws -> Bool {
        guard try UnixSocketStream.connect(toPath: socketPath(for: home), timeoutSeconds: 1) == nil else { return false }
        kill(holder, SIGTERM)
        return true
    }

    /// Serves until idle, locked or stopped (`stop` is called from a signal handler's queue).
    /// Throws when it cannot listen (e.g. another agent serves this home).
    public func run(listeningStarted: (UnixSocketListener) -> Void = { _ in }) throws {
        try KeyHolderProcess.harden()
        switch SecureHeap.enable(byteCount: 1 << 18) {
        case .locked: break
        case .notLocked: log("the secure heap could not be locked into memory (RLIMIT_MEMLOCK); keys may be swapped out")
        case .unavailable: log("OpenSSL's secure heap is unavailable; keys are held in ordinary memory")
        }
        try home.ensureExists()
        let lock = try takeAgentLock()
        // Held until the socket is gone (the listener's `defer` below runs first).
        defer { withExtendedLifetime(lock) {} }
        let listener = try UnixSocketListener(path: Self.socketPath(for: home))
        listeningStarted(listener)
        log("serving \(listener.path), stopping after \(Int(idleTimeout)) s without use")
        defer {
            held = nil
            listener.close()
            log("stopped; keys forgotten")
        }
        while true {
            let idleFor = Date().timeIntervalSince(lastUse)
            guard idleFor < idleTimeout else {
                log("idle for \(Int(idleTimeout)) s")
                return
            }
            switch try listener.accept(waitingAtMost: idleTimeout - idleFor, clientTimeoutSeconds: Self.clientTimeoutSeconds) {
            case .idle:
                continue
            case .woken:
                log("stopped by a signal")
                return
            case .connection(let client):
                if try serve(client) == .stop { return }
            }
        }
    }

    private enum Next { case goOn, stop }

    /// One request and its answer. A client of another user gets no answer at all.
    private func serve(_ client: UnixSocketStream) throws -> Next {
        do {
            let peer = try client.peerUserID()
            guard peer == geteuid() else {
                log("refused a connection from user id \(peer)")
                return .goOn
            }
            guard let prefix = try client.read(exactly: 4) else { return .goOn }
            guard var body = try client.read(exactly: AgentFrame.length(fromPrefix: prefix)) else { return .goOn }
            defer { SecretBytes.wipe(&body) }
            let request: AgentRequest
            do {
                request = try AgentRequest(encoded: body)
            } catch let error as FormatError {
                try client.write(AgentFrame.encode(AgentResponse.failure(.malformedRequest, error.reason).encoded))
                return .goOn
            }
            // Use of the keys keeps the agent alive; asking what it holds does not.
            if request != .status { lastUse = Date() }
            var frame = AgentFrame.encode(answer(request).encoded)
            defer { SecretBytes.wipe(&frame) }
            try client.write(frame)
            if request == .lock {
                log("locked by a client")
                return .stop
            }
        } catch let error as FormatError {
            // A client that vanished or sent garbage: its problem, not the agent's.
            log("a client failed: \(error.reason)")
        }
        return .goOn
    }

    private func answer(_ request: AgentRequest) -> AgentResponse {
        switch request {
        case .status:
            return .status(status)
        case .load(var passphraseBytes):
            defer { SecretBytes.wipe(&passphraseBytes) }
            do {
                let loaded = try load(Passphrase(utf8Bytes: passphraseBytes))
                held = loaded
                log("holding the keys of \(loaded.name) (\(loaded.unwrappers.count) key version(s))")
                return .status(status)
            } catch let error as CryptoError where error.code == .wrongPassphrase {
                return .failure(.wrongPassphrase, "wrong passphrase")
            } catch {
                return .failure(.failed, "cannot unlock the keystore in \(home.url.path): \(error)")
            }
        case .sign(let fingerprint, let message):
            guard AgentSigningPolicy.allows(message) else {
                return .failure(.refused, "the agent signs envelopes and sign-in answers only; a rotation needs the passphrase")
            }
            guard let key = held?.signers[fingerprint] else {
                return .failure(.noSuchKey, "the agent holds no signing key of bundle \(fingerprint)")
            }
            do {
                return .signature(try key.sign(message))
            } catch {
                return .failure(.failed, "signing failed: \(error)")
            }
        case .unwrap(let fingerprint, let wrappedKey):
            guard let key = held?.unwrappers[fingerprint] else {
                return .failure(.noSuchKey, "the agent holds no encryption key of bundle \(fingerprint)")
            }
            do {
                return .contentKey(try key.unwrapContentKey(wrappedKey).bytesForTransfer())
            } catch {
                return .failure(.failed, "the wrapped key does not open with this key")
            }
        case .lock:
            held = nil
            return .done
        }
    }

    private var status: AgentStatus {
        let keys = (held?.signers.keys.map { AgentStatus.HeldKey(role: .signing, fingerprint: $0) } ?? [])
            + (held?.unwrappers.keys.map { AgentStatus.HeldKey(role: .encryption, fingerprint: $0) } ?? [])
        let left = max(0, idleTimeout - Date().timeIntervalSince(lastUse))
        return AgentStatus(name: held?.name.value, keys: keys, secondsLeft: UInt32(left), processID: UInt32(getpid()))
    }

    /// Every key version of the home's identity, unlocked with `passphrase`.
    private func load(_ passphrase: Passphrase) throws -> HeldKeys {
        let (sender, recipients) = try Keystore(home: home).unlockSenderAndRecipientKeys(passphrase: passphrase)
        return HeldKeys(
            name: sender.bundle.name,
            signers: [sender.bundle.fingerprint: sender.signer],
            unwrappers: Dictionary(recipients.map { ($0.fingerprint, $0.unwrapper) }, uniquingKeysWith: { first, _ in first }))
    }
}
