/// The key agent's wire format (docs/AGENT.md): one request and one answer per connection over
/// the agent's Unix socket, each a frame of a u32 big-endian length and that many bytes.
public enum AgentFrame {
    /// Largest frame either side accepts: an envelope signature message for many recipients fits.
    public static let maximumLength = 1 << 20

    /// `body` with its length in front.
    public static func encode(_ body: [UInt8]) -> [UInt8] {
        var writer = ByteWriter(reservingCapacity: body.count + 4)
        writer.append(UInt32(body.count))
        writer.append(raw: body)
        return writer.bytes
    }

    /// The length announced by a frame's first four bytes, checked against the limit.
    public static func length(fromPrefix prefix: [UInt8]) throws -> Int {
        var reader = ByteReader(prefix, subject: "agent frame")
        let length = Int(try reader.readUInt32())
        guard length <= maximumLength else {
            throw FormatError(.tooLarge, "an agent message of \(length) bytes is over the limit of \(maximumLength)")
        }
        return length
    }
}

/// What a client asks the agent.
public enum AgentRequest: Equatable, Sendable {
    /// Who the agent holds keys for, and which.
    case status
    /// Unlock the keystore of the agent's home with this passphrase (its UTF-8 bytes) and hold
    /// the keys (replacing those held, e.g. after a rotation).
    case load(passphrase: [UInt8])
    /// Sign `message` with the signing key of the bundle `fingerprint` (see `AgentSigningPolicy`).
    case sign(fingerprint: Fingerprint, message: [UInt8])
    /// Unwrap a content key wrapped for the encryption key of the bundle `fingerprint`.
    case unwrap(fingerprint: Fingerprint, wrappedKey: [UInt8])
    /// Forget the keys and stop.
    case lock

    public var encoded: [UInt8] {
        var writer = ByteWriter()
        switch self {
        case .status:
            writer.append(UInt8(1))
        case .load(let passphrase):
            writer.append(UInt8(2))
            writer.append(u16Prefixed: passphrase)
        case .sign(let fingerprint, let message):
            writer.append(UInt8(3))
            writer.append(raw: fingerprint.bytes)
            writer.append(UInt32(message.count))
            writer.append(raw: message)
        case .unwrap(let fingerprint, let wrappedKey):
            writer.append(UInt8(4))
            writer.append(raw: fingerprint.bytes)
            writer.append(u16Prefixed: wrappedKey)
        case .lock:
            writer.append(UInt8(5))
        }
        return writer.bytes
    }

    public init(encoded: [UInt8]) throws {
        var reader = ByteReader(encoded, subject: "agent request")
        switch try reader.readUInt8() {
        case 1:
            self = .status
        case 2:
            self = .load(passphrase: try reader.readU16Prefixed("passphrase", allowed: 1...4096))
        case 3:
            let fingerprint = try Fingerprint(bytes: reader.read(count: Fingerprint.byteCount))
            let length = Int(try reader.readUInt32())
            self = .sign(fingerprint: fingerprint, message: try reader.read(count: length))
        case 4:
            let fingerprint = try Fingerprint(bytes: reader.read(count: Fingerprint.byteCount))
            self = .unwrap(fingerprint: fingerprint, wrappedKey: try reader.readU16Prefixed("wrapped key", allowed: 1...1024))
        case 5:
            self = .lock
        case let kind:
            throw FormatError(.invalidField, "unknown agent request kind \(kind)")
        }
        try reader.expectEnd()
    }
}

/// What the agent holds: the name, the current key version and the keys by bundle fingerprint.
public struct AgentStatus: Equatable, Sendable {
    public enum Role: UInt8, Sendable { case signing = 1, encryption = 2 }

    public struct HeldKey: Equatable, Sendable {
        public let role: Role
        public let fingerprint: Fingerprint
        public init(role: Role, fingerprint: Fingerprint) {
            self.role = role
            self.fingerprint = fingerprint
        }
    }

    /// The identity's name; nil while the agent holds no keys.
    public let name: String?
    public let keys: [HeldKey]
    /// Seconds until the agent stops for lack of use.
    public let secondsLeft: UInt32
    public let processID: UInt32

    public init(name: String?, keys: [HeldKey], secondsLeft: UInt32, processID: UInt32) {
        self.name = name
        self.keys = keys
        self.secondsLeft = secondsLeft
        self.processID = processID
    }

    public func holds(_ role: Role, for fingerprint: Fingerprint) -> Bool {
        keys.contains(HeldKey(role: role, fingerprint: fingerprint))
    }
}

/// What the agent answers.
public enum AgentResponse: Equatable, Sendable {
    public enum FailureCode: UInt8, Sendable {
        case wrongPassphrase = 1
        /// The agent holds no key for that fingerprint and role.
        case noSuchKey = 2
        /// The request is well formed but not allowed (e.g. a message outside the signing policy).
        case refused = 3
        case malformedRequest = 4
        /// The keystore could not be read, or a key operation failed.
        case failed = 5
    }

    case status(AgentStatus)
    case signature([UInt8])
    case contentKey([UInt8])
    case done
    case failure(FailureCode, String)

    public var encoded: [UInt8] {
        var writer = ByteWriter()
        switch self {
        case .status(let status):
            writer.append(UInt8(0x81))
            writer.append(u8Prefixed: Array((status.name ?? "").utf8))
            writer.append(UInt16(status.keys.count))
            for key in status.keys {
                writer.append(key.role.rawValue)
                writer.append(raw: key.fingerprint.bytes)
            }
            writer.append(status.secondsLeft)
            writer.append(status.processID)
        case .signature(let signature):
            writer.append(UInt8(0x82))
            writer.append(u16Prefixed: signature)
        case .contentKey(let key):
            writer.append(UInt8(0x83))
            writer.append(u8Prefixed: key)
        case .done:
            writer.append(UInt8(0x84))
        case .failure(let code, let message):
            writer.append(UInt8(0x80))
            writer.append(code.rawValue)
            writer.append(u16Prefixed: Array(message.utf8.prefix(1000)))
        }
        return writer.bytes
    }

    public init(encoded: [UInt8]) throws {
        var reader = ByteReader(encoded, subject: "agent answer")
        switch try reader.readUInt8() {
        case 0x81:
            let nameBytes = try reader.readU8Prefixed("name", allowed: 0...IdentityName.maximumLength)
            let name = nameBytes.isEmpty ? nil : try IdentityName(String(decoding: nameBytes, as: UTF8.self)).value
            let count = Int(try reader.readUInt16())
            guard count <= 4096 else { throw FormatError(.invalidField, "the agent's status lists \(count) keys") }
            var keys: [AgentStatus.HeldKey] = []
            for _ in 0..<count {
                guard let role = AgentStatus.Role(rawValue: try reader.readUInt8()) else {
                    throw FormatError(.invalidField, "the agent's status names an unknown key role")
                }
                keys.append(AgentStatus.HeldKey(role: role, fingerprint: try Fingerprint(bytes: reader.read(count: Fingerprint.byteCount))))
            }
            self = .status(AgentStatus(name: name, keys: keys, secondsLeft: try reader.readUInt32(), processID: try reader.readUInt32()))
        case 0x82:
            self = .signature(try reader.readU16Prefixed("signature", allowed: 1...1024))
        case 0x83:
            self = .contentKey(try reader.readU8Prefixed("content key", allowed: 1...64))
        case 0x84:
            self = .done
        case 0x80:
            guard let code = FailureCode(rawValue: try reader.readUInt8()) else {
                throw FormatError(.invalidField, "the agent's failure code is unknown")
            }
            let message = String(decoding: try reader.readU16Prefixed("message", allowed: 0...1000), as: UTF8.self)
            self = .failure(code, message)
        case let kind:
            throw FormatError(.invalidField, "unknown agent answer kind \(kind)")
        }
        try reader.expectEnd()
    }
}

/// The messages the agent signs: envelope signatures and sign-in answers, recognised by their
/// domain-separation prefixes. Never an identity bundle's self- or continuity signature: a
/// process that can reach the socket must not be able to rotate the identity to keys of its own
/// choosing, so a rotation still needs the passphrase.
public enum AgentSigningPolicy {
    public static func allows(_ message: [UInt8]) -> Bool {
        [EnvelopeSealer.signatureContext, AuthChallenge.context].contains { message.starts(with: $0) }
    }
}
