import FoundationEssentials
import Glibc
import SecmailCrypto
import SecmailFormat

/// A command's side of the key agent: one connection per request to `agent.sock` in the home.
public struct AgentClient: Sendable {
    public let home: SecmailHome
    private let socketPath: String

    /// Seconds to wait for an answer: an unlock runs scrypt once per key file.
    static let answerTimeoutSeconds = 30

    public init(home: SecmailHome) {
        self.home = home
        socketPath = KeyAgent.socketPath(for: home)
    }

    /// What the agent holds; nil when no agent serves this home.
    public func status() throws -> AgentStatus? {
        switch try exchange(.status) {
        case nil: return nil
        case .status(let status)?: return status
        case let other?: throw unexpected(other)
        }
    }

    /// Hands `passphrase` to the agent, which unlocks the home's keystore and holds its keys.
    /// Throws `CryptoError(.wrongPassphrase)` for a wrong one.
    public func load(_ passphrase: Passphrase) throws -> AgentStatus {
        var bytes = passphrase.withUTF8Bytes { $0 }
        defer { SecretBytes.wipe(&bytes) }
        switch try exchange(.load(passphrase: bytes)) {
        case .status(let status)?:
            return status
        case .failure(.wrongPassphrase, _)?:
            throw CryptoError(.wrongPassphrase, "wrong passphrase")
        case nil:
            throw ClientError(.agentFailed, "the key agent for \(home.url.path) stopped")
        case let other?:
            throw unexpected(other)
        }
    }

    /// Makes the agent forget the keys and stop, and returns once its socket is gone (it has
    /// stopped); false when none was running.
    public func lock() throws -> Bool {
        switch try exchange(.lock) {
        case nil:
            return false
        case .done?:
            let deadline = Date().addingTimeInterval(5)
            while FileManager.default.fileExists(atPath: socketPath), Date() < deadline { usleep(10_000) }
            return true
        case let other?:
            throw unexpected(other)
        }
    }

    /// The current identity with its signing key held by the agent; nil when the agent does not
    /// hold the current key version (not unlocked since a rotation).
    public func sender(from keystore: Keystore, status: AgentStatus) throws -> SenderIdentity? {
        let bundle = try keystore.currentBundle()
        guard status.holds(.signing, for: bundle.fingerprint) else { return nil }
        return try SenderIdentity(bundle: bundle, signer: AgentSigner(agent: self, fingerprint: bundle.fingerprint))
    }

    /// Every key version's encryption key, or only the versions `wanted` names (which the caller
    /// read from the keystore already), held by the agent; nil unless it holds them all.
    public func recipientKeys(from keystore: Keystore, status: AgentStatus, only wanted: Set<Fingerprint>? = nil) throws -> [RecipientKey]? {
        let fingerprints = try wanted.map(Array.init) ?? keystore.recipientFingerprints()
        guard fingerprints.allSatisfy({ status.holds(.encryption, for: $0) }) else { return nil }
        return fingerprints.map { RecipientKey(fingerprint: $0, unwrapper: AgentUnwrapper(agent: self, fingerprint: $0)) }
    }

    fileprivate func sign(_ message: [UInt8], fingerprint: Fingerprint) throws -> [UInt8] {
        switch try exchange(.sign(fingerprint: fingerprint, message: message)) {
        case .signature(let signature)?: return signature
        case let other: throw failure(other, doing: "sign")
        }
    }

    fileprivate func unwrap(_ wrappedKey: [UInt8], fingerprint: Fingerprint) throws -> SymmetricKey {
        switch try exchange(.unwrap(fingerprint: fingerprint, wrappedKey: wrappedKey)) {
        case .contentKey(var bytes)?:
            defer { SecretBytes.wipe(&bytes) }
            return SymmetricKey(bytes: bytes)
        case .failure(.failed, let reason)?:
            throw CryptoError(.authenticationFailed, reason)
        case let other:
            throw failure(other, doing: "unwrap a key")
        }
    }

    /// One request and its answer; nil when no agent listens.
    private func exchange(_ request: AgentRequest) throws -> AgentResponse? {
        do {
            guard let stream = try UnixSocketStream.connect(toPath: socketPath, timeoutSeconds: Self.answerTimeoutSeconds) else { return nil }
            var frame = AgentFrame.encode(request.encoded)
            defer { SecretBytes.wipe(&frame) }
            try stream.write(frame)
            guard let prefix = try stream.read(exactly: 4) else { return nil }
            guard let body = try stream.read(exactly: AgentFrame.length(fromPrefix: prefix)) else {
                throw FormatError(.truncated, "the agent closed the connection without an answer")
            }
            return try AgentResponse(encoded: body)
        } catch let error as FormatError {
            throw ClientError(.agentFailed, "the key agent at \(socketPath) failed: \(error.reason); stop it with `secmail lock`")
        }
    }

    private func failure(_ answer: AgentResponse?, doing what: String) -> ClientError {
        switch answer {
        case nil: ClientError(.agentFailed, "the key agent stopped before it could \(what); run the command again (it will ask for the passphrase, or run `secmail unlock` first)")
        case .failure(_, let reason)?: ClientError(.agentFailed, "the key agent could not \(what): \(reason)")
        case let other?: unexpected(other)
        }
    }

    private func unexpected(_ answer: AgentResponse) -> ClientError {
        ClientError(.agentFailed, "the key agent at \(socketPath) gave an unexpected answer (\(answer.kindName))")
    }
}

private struct AgentSigner: MessageSigner {
    let agent: AgentClient
    let fingerprint: Fingerprint

    func sign(_ message: [UInt8]) throws -> [UInt8] {
        try agent.sign(message, fingerprint: fingerprint)
    }

    func signs(for bundle: IdentityBundle) throws -> Bool {
        bundle.fingerprint == fingerprint
    }
}

private struct AgentUnwrapper: KeyUnwrapper {
    let agent: AgentClient
    let fingerprint: Fingerprint

    func unwrapContentKey(_ wrapped: [UInt8]) throws -> SymmetricKey {
        try agent.unwrap(wrapped, fingerprint: fingerprint)
    }
}

extension AgentResponse {
    var kindName: String {
        switch self {
        case .status: "status"
        case .signature: "signature"
        case .contentKey: "content key"
        case .done: "done"
        case .failure(_, let reason): "failure: \(reason)"
        }
    }
}
