import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import SecmailCrypto
import SecmailFormat
import SecmailRelay
import SecmailTLS
import SecmailTestSupport
import Synchronization

/// The committed throw-away identities of the format tests (keys encrypted, passphrase below).
public enum ThrowawayIdentities {
    public static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("SecmailFormatTests/Fixtures", isDirectory: true)
    public static let passphrase = try! Passphrase("throwaway test passphrase")

    public static func bundle(_ name: String) throws -> IdentityBundle {
        try IdentityBundle(armoredOrBinary: Array(Data(contentsOf: directory.appendingPathComponent("\(name).id"))))
    }

    public static func signingKey(_ name: String) throws -> RSAPrivateKey {
        try key("\(name)-signing")
    }

    public static func encryptionKey(_ name: String) throws -> RSAPrivateKey {
        try key("\(name)-encryption")
    }

    /// Each key file decrypted once: scrypt makes decrypting slow on purpose, and the relay and
    /// CLI tests ask for these keys dozens of times, mostly from the cooperative threads that the
    /// whole test process shares.
    private static func key(_ file: String) throws -> RSAPrivateKey {
        if let known = decrypted.withLock({ $0[file] }) { return known }
        let key = try RSAPrivateKey(encryptedPEM: String(contentsOf: directory.appendingPathComponent("throwaway-test-keys/\(file).key.pem"), encoding: .utf8),
                                    passphrase: passphrase)
        decrypted.withLock { $0[file] = key }
        return key
    }

    private static let decrypted = Mutex<[String: RSAPrivateKey]>([:])
}

/// A relay application on 127.0.0.1 behind secmail's TLS, with a temporary database.
public final class RunningRelay: @unchecked Sendable {
    // @unchecked: `port` is written once by the server's start callback, read after `started`.
    public let folder: URL
    public let services: RelayServices
    let task: Task<Void, Error>
    public private(set) var port = 0
    public static let certs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("certs", isDirectory: true)

    /// Deadlines for tests that are not about deadlines: this relay's request handlers share the
    /// test process's two cooperative threads with every other test running, and a test that
    /// blocks one (waiting for a child process, say) must not make the relay close a connection
    /// the client under test is using.
    public static let patientDeadlines = ConnectionDeadlines(header: .seconds(120), bodyGrace: .seconds(120), write: .seconds(120),
                                                            idleBeforeSignIn: .seconds(300), idle: .seconds(300))

    public init(engine: EngineUnderTest = .sqlite, requiresInvite: Bool = false, maximumEnvelopeSize: Int = 256 << 20, mailboxQuota: Int = 1 << 30,
                limits: RelayLimits = RelayLimits(deadlines: RunningRelay.patientDeadlines),
                perIdentity: RateLimiter.Limit = .init(perSecond: 50, burst: 100),
                authenticationClock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) },
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws {
        folder = try makeTemporaryDirectory("relay-http")
        let database = try await engine.database(in: folder)
        let nodeCache = LogNodeCache(), sessions = SessionCache.forDatabase(database)
        let log = LogStore(database: database, nodeCache: nodeCache)
        services = RelayServices(directory: Directory(database: database, requiresInvite: requiresInvite, nodeCache: nodeCache, sessions: sessions), log: log,
                                 signer: CheckpointSigner(origin: "localhost/secmail", key: try Ed25519PrivateKey.generate()),
                                 authenticator: Authenticator(database: database, origin: "localhost/secmail",
                                                              relayKeyPin: try DevelopmentCertificates.publicKeyPin(certificateFile: Self.certs.appendingPathComponent("relay.pem")),
                                                              perIdentity: perIdentity, sessions: sessions, clock: authenticationClock),
                                 mailboxes: try MailboxStore(database: database, directory: folder.appendingPathComponent("envelopes", isDirectory: true),
                                                             maximumEnvelopeSize: maximumEnvelopeSize, mailboxQuota: mailboxQuota),
                                 limits: limits)
        let certificate = try ServingCertificate(chainFile: Self.certs.appendingPathComponent("relay.pem"),
                                                 keyFile: Self.certs.appendingPathComponent("throwaway-relay.key.pem"))
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        // Warnings only: a line per request would bury the test output.
        var logger = Logger(label: "secmail-relay")
        logger.logLevel = .warning
        let app = buildRelayApplication(services: services, certificate: certificate, host: "127.0.0.1", port: 0, logger: logger,
                                        eventLoopGroup: eventLoopGroup) { port in
            continuation.yield(port)
        }
        task = Task { try await app.runService(gracefulShutdownSignals: []) }
        for await port in stream {
            self.port = port
            break
        }
    }

    public func stop() async {
        task.cancel()
        _ = await task.result
        services.directory.database.close()
        try? FileManager.default.removeItem(at: folder)
    }

    /// A bearer token for a registered throw-away identity.
    public func token(_ name: String) async throws -> String {
        try await RelayCurl(port: port, caFile: Self.certs.appendingPathComponent("dev-ca.pem")).authenticate(name)
    }

    /// curl against the relay, trusting the development CA. Returns (HTTP status, body).
    public func curl(_ path: String, method: String = "GET", json: String? = nil,
                     headers: [String] = [], file: URL? = nil, output: URL? = nil) async throws -> (status: Int, body: String) {
        try await RelayCurl(port: port, caFile: Self.certs.appendingPathComponent("dev-ca.pem"))
            .call(path, method: method, json: json, headers: headers, file: file, output: output)
    }
}

/// curl against a relay on 127.0.0.1 (in this process or not) that `caFile` certifies.
public struct RelayCurl: Sendable {
    public let port: Int
    public let caFile: URL

    public init(port: Int, caFile: URL) {
        self.port = port
        self.caFile = caFile
    }

    /// Returns (HTTP status, body); status 0 when no answer came (the relay died, say).
    public func call(_ path: String, method: String = "GET", json: String? = nil,
                     headers: [String] = [], file: URL? = nil, output: URL? = nil) async throws -> (status: Int, body: String) {
        let curlArguments = arguments(path, method: method, json: json, headers: headers, file: file, output: output) + ["--write-out", "\n%{http_code}"]
        let result = try await run("curl", curlArguments, input: json.map { Data($0.utf8) })
        let text = result.text
        guard let split = text.lastIndex(of: "\n") else { return (0, result.stderr) }
        return (Int(text[text.index(after: split)...]) ?? 0, String(text[..<split]))
    }

    /// curl's own exit status for a GET whose body goes to `output`: for an answer that breaks
    /// off, which `call` reports only by what arrived (18: the transfer closed with bytes
    /// outstanding; 28: it timed out).
    public func exitStatus(_ path: String, headers: [String] = [], output: URL) async throws -> Int32 {
        try await run("curl", arguments(path, method: "GET", json: nil, headers: headers, file: nil, output: output)).status
    }

    private func arguments(_ path: String, method: String, json: String?, headers: [String], file: URL?, output: URL?) -> [String] {
        var arguments = ["--silent", "--show-error", "--max-time", "60", "--cacert", caFile.path, "-X", method]
        for header in headers { arguments += ["-H", header] }
        if let file { arguments += ["-H", "content-type: application/octet-stream", "--data-binary", "@\(file.path)"] }
        if let output { arguments += ["-o", output.path] }
        if json != nil { arguments += ["-H", "content-type: application/json", "--data-binary", "@-"] }
        return arguments + ["https://localhost:\(port)\(path)"]
    }

    /// Registers a throw-away identity (if it is not yet) and returns a bearer token for it.
    public func registerAndAuthenticate(_ name: String) async throws -> String {
        let bundle = try ThrowawayIdentities.bundle(name)
        let registration = String(decoding: try JSONSerialization.data(withJSONObject: ["bundle": Data(bundle.encoded).base64EncodedString()]), as: UTF8.self)
        let registered = try await call("/v1/directory/register", method: "POST", json: registration)
        guard registered.status == 201 || registered.status == 409 else { throw TestFailure("register \(name): \(registered)") }
        return try await authenticate(name)
    }

    /// A bearer token for a registered throw-away identity, obtained as a client does: challenge,
    /// signature over the relay's origin (from `GET /v1/relay`) and TLS key (`relay.pem` beside
    /// the CA file, as in certs/ and a relay's tls/), token.
    public func authenticate(_ name: String) async throws -> String {
        let info = try await call("/v1/relay")
        guard let origin = (try JSONSerialization.jsonObject(with: Data(info.body.utf8)) as? [String: Any])?["origin"] as? String else {
            throw TestFailure("relay info: \(info)")
        }
        let pin = try DevelopmentCertificates.publicKeyPin(certificateFile: caFile.deletingLastPathComponent().appendingPathComponent("relay.pem"))
        // Unlocked beforehand (scrypt is slow on purpose), so the one-minute challenge does not
        // expire on a busy machine while the key is being decrypted.
        let signer = try Self.sender(name).signer
        // A challenge that expired before its answer arrived (a CI run stalled this process for
        // over a minute once) is replaced by a new one, once, as the client does.
        var expired: (status: Int, body: String)?
        for _ in 1...2 {
            let challenge = try await call("/v1/auth/challenge", method: "POST", json: "{\"name\":\"\(name)\"}")
            guard let object = try JSONSerialization.jsonObject(with: Data(challenge.body.utf8)) as? [String: Any],
                  let nonce = (object["nonce"] as? String).flatMap({ Data(base64Encoded: $0) }) else { throw TestFailure("challenge: \(challenge)") }
            let signature = try signer.sign(AuthChallenge.signedMessage(origin: origin, relayKeyPin: pin, name: IdentityName(name), nonce: Array(nonce)))
            let body = String(decoding: try JSONSerialization.data(withJSONObject: [
                "name": name, "nonce": nonce.base64EncodedString(), "signature": Data(signature).base64EncodedString()]), as: UTF8.self)
            let token = try await call("/v1/auth/token", method: "POST", json: body)
            if token.status == 403, token.body.contains("challengeExpired") { expired = token; continue }
            guard let tokenObject = try JSONSerialization.jsonObject(with: Data(token.body.utf8)) as? [String: Any],
                  let value = tokenObject["token"] as? String else { throw TestFailure("token: \(token)") }
            return value
        }
        throw TestFailure("two challenges for \(name) expired before they were answered: \(String(describing: expired))")
    }

    /// A sealed envelope from one throw-away identity to others, with `extra` random bytes attached.
    public static func envelope(from sender: String, to recipients: [String], extra: Int = 0) throws -> (id: MessageID, bytes: [UInt8]) {
        let sink = MemorySink()
        let attachments = extra > 0 ? [try OutgoingAttachment(name: "data.bin", bytes: SystemRandom().bytes(count: extra))] : []
        let sealed = try EnvelopeSealer().seal(
            text: "from \(sender)", attachments: attachments,
            from: try Self.sender(sender), to: recipients.map { try ThrowawayIdentities.bundle($0) }, into: sink)
        return (sealed.header.messageID, sink.bytes)
    }

    /// A throw-away identity as a sender (`ThrowawayIdentities` unlocks each key once per process).
    static func sender(_ name: String) throws -> SenderIdentity {
        try SenderIdentity(bundle: ThrowawayIdentities.bundle(name), signingKey: ThrowawayIdentities.signingKey(name))
    }
}

/// What a relay that lies could do to its own database, for tests of the clients' checks. Each
/// method writes in one transaction, bypassing every check of `Directory`.
public struct RelayDatabaseForgery {
    public let database: RelayDatabase

    public init(_ database: RelayDatabase) {
        self.database = database
    }

    /// Logs `bundle` as a consistent relay would (map updated, leaf committing the new root, row
    /// added), without checking continuity or versions.
    public func log(_ kind: DirectoryEntry.Kind, _ bundle: IdentityBundle, time: Int64 = 0) async throws {
        try await database.write { db in
            let index = try LogStore.currentSize(db)
            var map = NameMap(store: DatabaseMapNodes(db: db))
            let value = NameMapValue(keyVersion: bundle.keyVersion, logIndex: index, fingerprint: bundle.fingerprint)
            let root = try map.set(NameMapKey.of(bundle.name), valueHash: value.hash)
            let entry = try DirectoryEntry(kind: kind, time: time, bundle: bundle, mapRoot: root)
            _ = try LogStore.append(entry.encoded, time: time, in: db)
            try db.execute("INSERT INTO identities (name, key_version, bundle, fingerprint, log_index, created_at) VALUES (?, ?, ?, ?, ?, ?)", [bundle.name.value, Int64(bundle.keyVersion), Data(bundle.encoded), Data(bundle.fingerprint.bytes), Int64(index), time])
        }
    }

    /// Hides every key version of `name` above `keepVersion` from lookups (the rows go; the log
    /// and the map keep them): the relay then serves a superseded version, or "not found" when
    /// `keepVersion` is 0.
    public func hideVersions(of name: String, above keepVersion: UInt32) async throws {
        try await database.write { db in
            try db.execute("DELETE FROM identities WHERE name = ? AND key_version > ?", [name, Int64(keepVersion)])
        }
    }

    /// Rewrites the name map so that it holds `bundle`, logged at `logIndex`, as `name`'s current
    /// version, without any log entry saying so: the next leaf then commits a root that does not
    /// follow from the log.
    public func rewriteMap(_ bundle: IdentityBundle, loggedAt logIndex: UInt64) async throws {
        try await database.write { db in
            var map = NameMap(store: DatabaseMapNodes(db: db))
            let value = NameMapValue(keyVersion: bundle.keyVersion, logIndex: logIndex, fingerprint: bundle.fingerprint)
            try map.set(NameMapKey.of(bundle.name), valueHash: value.hash)
        }
    }
}

/// The throw-away PostgreSQL cluster of scripts/test.sh (`SECMAIL_TEST_POSTGRES`: its socket
/// directory; trust authentication as user postgres). Each test gets a database of its own.
public enum TestPostgres {
    public static let socketDirectory = ProcessInfo.processInfo.environment["SECMAIL_TEST_POSTGRES"]

    /// Whether the relay suites also run on PostgreSQL: always under CI (where a missing cluster
    /// must fail, not skip), elsewhere when scripts/test.sh started one.
    public static let isAvailable: Bool = {
        if socketDirectory != nil { return true }
        if ProcessInfo.processInfo.environment["CI"] != nil { return true }
        print("SECMAIL_TEST_POSTGRES is not set (scripts/test.sh sets it): the relay suites run on SQLite only")
        return false
    }()

    /// A new, empty database.
    public static func freshDatabase(_ label: String) async throws -> PostgresAddress {
        guard let socketDirectory else {
            throw TestFailure("SECMAIL_TEST_POSTGRES is not set: run the tests through scripts/test.sh")
        }
        let name = "\(label.lowercased().filter { $0.isLetter || $0.isNumber })_\(UUID().uuidString.prefix(8).lowercased())"
        let created = try await run("psql", psqlArguments("CREATE DATABASE \(name)", socketDirectory: socketDirectory))
        guard created.status == 0 else { throw TestFailure("cannot create a test database: \(created.stderr)") }
        return PostgresAddress(endpoint: .unixSocket(path: "\(socketDirectory)/.s.PGSQL.5432"), user: "postgres", password: nil, database: name)
    }

    /// psql's arguments to run `sql` in `database` as the superuser of the cluster whose socket
    /// is in `socketDirectory`, printing bare values (unaligned, rows only).
    public static func psqlArguments(_ sql: String, database: String = "postgres", socketDirectory: String) -> [String] {
        ["-X", "-q", "-A", "-t", "-h", socketDirectory, "-U", "postgres", "-d", database, "-c", sql]
    }

    /// `--database` for a relay process.
    public static func url(of address: PostgresAddress) -> String {
        address.description
    }
}

/// The storage engines the relay suites run on.
public enum EngineUnderTest: String, Sendable, CaseIterable, CustomStringConvertible {
    case sqlite
    case postgres

    /// SQLite always; PostgreSQL where `TestPostgres` has a cluster.
    public static let available: [EngineUnderTest] = TestPostgres.isAvailable ? [.sqlite, .postgres] : [.sqlite]

    public var description: String { rawValue }

    /// A new, empty relay database on this engine (SQLite's file in `folder`), opened on a thread
    /// of its own (opening blocks: migrations, fsyncs, PostgreSQL connections).
    public func database(in folder: URL) async throws -> RelayDatabase {
        try await onThreadOfItsOwn(try await opener(in: folder))
    }

    /// Opens one new relay database on this engine, again each time it is called (a restart).
    public func opener(in folder: URL) async throws -> @Sendable () throws -> RelayDatabase {
        switch self {
        case .sqlite:
            let path = folder.appendingPathComponent("relay.sqlite").path
            return { try RelayDatabase(path: path) }
        case .postgres:
            let address = try await TestPostgres.freshDatabase(String(folder.lastPathComponent.prefix(20)))
            return { try RelayDatabase(postgres: address) }
        }
    }
}
