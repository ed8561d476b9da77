import Foundation
import Hummingbird
import Logging
import NIOCore
import SecmailCrypto
import SecmailFormat
import SecmailTLS

/// How to run a relay.
public struct RelayConfiguration: Sendable {
    /// The log key, the origin file, development certificates and staged uploads; with SQLite
    /// (no `database`), the database and large envelopes too.
    public var dataDirectory: URL
    /// A PostgreSQL database shared with other relays instead of SQLite in the data directory.
    public var database: PostgresAddress?
    public var host: String
    public var port: Int
    /// The relay's certificate chain and key; development certificates are generated when nil.
    public var certificateFile: URL?
    public var privateKeyFile: URL?
    public var requiresInvite: Bool
    /// Accept a key that another name uses (load tests only; see `Directory.sharesKeys`).
    public var sharesKeys = false
    /// The log's origin (checkpoint first line and note key name) asked for with `--origin`. It is
    /// chosen once, at the first start, and kept in the data directory (`RelayOrigin`).
    public var origin: String?
    /// Largest envelope and mailbox quota, in bytes.
    public var maximumEnvelopeSize = 256 << 20
    public var mailboxQuota = 1 << 30
    /// The share of a mailbox one sender's messages may take (never less than one envelope).
    public var senderShare = 0.25
    /// Deposits under way at once per depositor.
    public var uploadsPerIdentity = 4
    /// Registrations per hour per address group, and in all (invited ones are not counted).
    public var registrationsPerHourPerAddress: Double = 10
    public var registrationsPerHour: Double = 1000
    /// Requests per second (bursts twice that) per client address and per identity.
    public var requestsPerSecondPerAddress: Double = 200
    public var requestsPerSecondPerIdentity: Double = 50
    public var maximumConnections = 512
    /// Open connections per address group (`addressGrouping`).
    public var maximumConnectionsPerAddress = 32
    /// New connections per second per address group (bursts of twice that).
    public var connectionsPerSecondPerAddress: Double = 20
    public var addressGrouping = AddressGrouping()
    /// Header, body, write and idle deadlines of every connection.
    public var deadlines = ConnectionDeadlines()
    /// The signed times a deposited envelope may carry.
    public var envelopeTimeWindow = EnvelopeTimeWindow.standard

    public init(dataDirectory: URL, host: String = "127.0.0.1", port: Int = 8443, certificateFile: URL? = nil,
                privateKeyFile: URL? = nil, requiresInvite: Bool = false, origin: String? = nil) {
        self.dataDirectory = dataDirectory
        self.host = host
        self.port = port
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
        self.requiresInvite = requiresInvite
        self.origin = origin
    }
}

/// A relay ready to serve: what clients need to know, and the services behind it.
public struct PreparedRelay: Sendable {
    public let configuration: RelayConfiguration
    /// The log's origin, as persisted in the data directory.
    public let origin: String
    public let services: RelayServices
    /// The certificate served, reloaded on SIGHUP when `run` is asked to.
    public let certificate: ServingCertificate
    /// The CA file clients trust (development certificates only).
    public let certificateAuthorityFile: URL?
    /// SHA-256 of the relay certificate's public key, for pinning clients.
    public var publicKeyPin: [UInt8] { certificate.publicKeyPin }
    /// The log key in verifier-key form (`name+hash+base64`), for clients to pin.
    public let logVerifierKey: String
    /// The SQLite file, or the PostgreSQL database (without its password).
    public var databaseLocation: String { services.directory.database.location }
    /// The migrations this start applied to a database an older relay left (none for a new one).
    public var upgradeMigrations: [String] {
        let database = services.directory.database
        return database.isNew ? [] : database.appliedMigrations
    }

    /// Creates on first start (and reuses afterwards) the data directory (0700), the database,
    /// the Ed25519 log key (`log-key.ed25519`, 0600), the log origin (`origin`) and, without a
    /// configured certificate, development TLS certificates under `tls/`.
    public static func prepare(_ configuration: RelayConfiguration) throws -> PreparedRelay {
        let data = configuration.dataDirectory
        // Everything the relay writes (database, WAL, keys, envelopes) is its user's alone.
        ExclusiveFileLock.restrictNewFilesToOwner()
        do {
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw RelayError(.storage, "cannot create the data directory \(data.path): \(error.localizedDescription)")
        }
        try restrictToOwner(data)
        try refuseBackupMark(in: data)
        let database = try configuration.database.map { try RelayDatabase(postgres: $0) }
            ?? RelayDatabase(path: data.appendingPathComponent("relay.sqlite").path)
        let logKey = try loadOrCreateLogKey(at: data.appendingPathComponent("log-key.ed25519"))

        let (chain, key, ca) = try certificateFiles(configuration)
        let certificate = try ServingCertificate(chainFile: chain, keyFile: key)
        let publicKeyPin = certificate.publicKeyPin
        let listenHost = configuration.host == "::1" ? "localhost" : configuration.host
        let origin = try RelayOrigin.resolve(in: data, requested: configuration.origin, database: database,
                                             legacyOrigin: "\(listenHost)/secmail") {
            "\(((try? DevelopmentCertificates.dnsNames(certificateFile: chain))?.first) ?? listenHost)/secmail"
        }
        let signer = CheckpointSigner(origin: origin, key: logKey)
        if database.kind == .postgres { try checkSharedLogSigner(signer, in: database) }
        let nodeCache = LogNodeCache(), sessions = SessionCache.forDatabase(database)
        return PreparedRelay(
            configuration: configuration, origin: origin,
            services: RelayServices(directory: Directory(database: database, requiresInvite: configuration.requiresInvite, sharesKeys: configuration.sharesKeys,
                                                                       nodeCache: nodeCache, sessions: sessions),
                                    log: LogStore(database: database, nodeCache: nodeCache), signer: signer,
                                    authenticator: Authenticator(database: database, origin: origin, relayKeyPin: publicKeyPin,
                                                                 perIdentity: .init(perSecond: configuration.requestsPerSecondPerIdentity,
                                                                                    burst: 2 * configuration.requestsPerSecondPerIdentity),
                                                                 sessions: sessions),
                                    mailboxes: try MailboxStore(database: database, directory: data.appendingPathComponent("envelopes", isDirectory: true),
                                                                maximumEnvelopeSize: configuration.maximumEnvelopeSize,
                                                                mailboxQuota: configuration.mailboxQuota, senderShare: configuration.senderShare,
                                                                timeWindow: configuration.envelopeTimeWindow),
                                    limits: configuration.limits),
            certificate: certificate, certificateAuthorityFile: ca,
            logVerifierKey: try signer.verifier.verifierKey)
    }

    /// The certificate chain and key to serve, and the CA file clients need: the configured pair,
    /// else development certificates under `tls/` (made on first start).
    private static func certificateFiles(_ configuration: RelayConfiguration) throws -> (chain: URL, key: URL, certificateAuthority: URL?) {
        if let certificate = configuration.certificateFile, let privateKey = configuration.privateKeyFile {
            return (certificate, privateKey, nil)
        }
        if configuration.certificateFile != nil || configuration.privateKeyFile != nil {
            throw RelayError(.invalidRequest, "give both --cert and --key, or neither for development certificates")
        }
        let tlsDirectory = configuration.dataDirectory.appendingPathComponent("tls", isDirectory: true)
        var files = DevelopmentCertificates.files(in: tlsDirectory)
        if !FileManager.default.fileExists(atPath: files.certificateChain.path) {
            files = try DevelopmentCertificates.generate(in: tlsDirectory)
        }
        return (files.certificateChain, files.privateKey, files.certificateAuthority)
    }

    /// Serves until SIGINT or SIGTERM (graceful shutdown: open requests finish), logging at
    /// `logLevel` (one line per request at `info`). `quiet` keeps the log to critical errors (for
    /// the embedded relay of `secmail demo`). With `reloadsOnHangup`, SIGHUP reads the
    /// certificate and key files again (`ServingCertificate.reload`) and logs the outcome.
    /// Only one relay serves a data directory: it holds `relay.lock` while it runs.
    public func run(quiet: Bool = false, logLevel: Logger.Level = .info, reloadsOnHangup: Bool = false,
                    onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let lockFile = configuration.dataDirectory.appendingPathComponent("relay.lock").path
        // A little patience: `relay status` takes the lock for an instant to see whether a relay serves.
        let (lock, holder) = try ExclusiveFileLock.acquire(lockFile, waitingUpTo: .milliseconds(500))
        guard let lock else {
            throw RelayError(.storage, "another relay\(holder.map { " (process \($0))" } ?? "") is serving \(configuration.dataDirectory.path); stop it first, or give another --data")
        }
        defer { withExtendedLifetime(lock) {} }
        try services.mailboxes.removeOrphans()
        try services.directory.commitMapIfMissing()
        try services.directory.backfillRegistrationIndexes()
        var logger = Logger(label: "secmail-relay")
        logger.logLevel = quiet ? .critical : logLevel
        if let warning = certificate.validityWarning() { logger.warning("\(warning)") }
        let hangups = reloadsOnHangup ? Self.reloadOnHangup(certificate, logger: logger) : nil
        defer { hangups?.cancel() }
        let app = buildRelayApplication(services: services, certificate: certificate, host: configuration.host, port: configuration.port,
                                        logger: logger, onRunning: onRunning)
        do {
            try await app.runService()
        } catch let error as IOError {
            throw Self.listenFailure(error, host: configuration.host, port: configuration.port)
        }
    }

    /// A socket error at start-up as one sentence for the operator instead of NIO's
    /// "bind(descriptor:ptr:bytes:): Address already in use) (errno: 98)".
    static func listenFailure(_ error: IOError, host: String, port: Int) -> RelayError {
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let reason = switch error.errnoCode {
        case EADDRINUSE: "the address is in use: is another relay (or another program) listening there? Choose another with --listen"
        case EACCES: "permission denied (ports below 1024 need privileges): choose a port from 1024 up with --listen"
        case EADDRNOTAVAIL: "no network interface of this machine has that address"
        default: String(cString: strerror(error.errnoCode))
        }
        return RelayError(.storage, "cannot listen on \(address): \(reason)")
    }

    /// Reloads `certificate` at every SIGHUP until the returned source is cancelled.
    private static func reloadOnHangup(_ certificate: ServingCertificate, logger: Logger) -> DispatchSourceSignal {
        signal(SIGHUP, SIG_IGN)  // the default action would end the process
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler {
            do {
                try certificate.reload()
                logger.notice("SIGHUP: new connections get the certificate now in \(certificate.chainFile.path), \(certificate.validitySummary())")
                if let warning = certificate.validityWarning() { logger.warning("\(warning)") }
            } catch {
                logger.error("SIGHUP: kept the certificate in use: \(error)")
            }
        }
        source.resume()
        return source
    }

    /// Relays sharing a database sign one log: the first to serve it records its origin and log
    /// key there, and a relay with another one is refused before it signs anything.
    private static func checkSharedLogSigner(_ signer: CheckpointSigner, in database: RelayDatabase) throws {
        let verifierKey = try signer.verifier.verifierKey
        try database.write { db in
            guard let row = try db.fetchRow("SELECT origin, verifier_key FROM log_signer") else {
                try db.execute("INSERT INTO log_signer (origin, verifier_key) VALUES (?, ?)", [signer.origin, verifierKey])
                return
            }
            let origin: String = try row.get("origin"), recorded: String = try row.get("verifier_key")
            guard origin == signer.origin, recorded == verifierKey else {
                throw RelayError(.invalidRequest, """
                    the log in \(database.location) is signed as "\(origin)" with log key \(recorded); this relay has "\(signer.origin)" \
                    and \(verifierKey). Relays sharing a database share the log key and origin: copy log-key.ed25519 and origin \
                    from the first relay's data directory into this one's (docs/DEPLOY.md)
                    """)
            }
        }
    }

    /// A backup is served only with a log of its own (`NewLog`): with the key that went on
    /// signing the original after the backup, its log would go back for every client that saw
    /// more, and that key would have signed two different trees of one size.
    private static func refuseBackupMark(in data: URL) throws {
        let mark = data.appendingPathComponent(RelayBackup.markName)
        guard let text = FileManager.default.contents(atPath: mark.path) else { return }
        let what = String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        throw RelayError(.invalidRequest, """
            \(data.path) is \(what). Its log would go back for every client that saw the relay after that: run \
            `secmail relay new-log --data \(data.path)` to serve it under a new log key, which users then follow \
            (docs/DEPLOY.md, "Restore"). If no relay served that log after the backup (a move to another \
            host with the relay stopped), remove \(mark.path) to serve it as it is
            """)
    }

    /// A data directory others can read or enter exposes identities, envelope metadata and token
    /// hashes: it is made the owner's alone, and the relay says so.
    private static func restrictToOwner(_ directory: URL) throws {
        let mode = ((try? FileManager.default.attributesOfItem(atPath: directory.path))?[.posixPermissions] as? NSNumber)?.intValue ?? 0o700
        guard mode & 0o077 != 0 else { return }
        do {
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory.path)
        } catch {
            throw RelayError(.storage, "\(directory.path) is readable by others (mode \(String(mode, radix: 8))) and cannot be made private: \(error.localizedDescription)")
        }
        StandardStreams.writeError("secmail relay: \(directory.path) was open to others (mode \(String(mode, radix: 8))); it is now 700\n")
    }

    private static func loadOrCreateLogKey(at url: URL) throws -> Ed25519PrivateKey {
        if let key = try loadLogKey(at: url) { return key }
        let key = try Ed25519PrivateKey.generate()
        guard FileManager.default.createFile(atPath: url.path, contents: Data(try key.seed), attributes: [.posixPermissions: 0o600]) else {
            throw RelayError(.storage, "cannot write the log key \(url.path)")
        }
        return key
    }

    /// The log key at `url`, nil when there is none; refused when others may read it or it is damaged.
    static func loadLogKey(at url: URL) throws -> Ed25519PrivateKey? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let attributes = try? FileManager.default.attributesOfItem(atPath: url.path)
        let mode = (attributes?[.posixPermissions] as? NSNumber)?.intValue ?? 0o777
        guard mode & 0o077 == 0 else {
            throw RelayError(.storage, "\(url.path) is readable by others (mode \(String(mode, radix: 8))); run: chmod 600 '\(url.path)'")
        }
        guard let seed = FileManager.default.contents(atPath: url.path), seed.count == 32 else {
            throw RelayError(.storage, "\(url.path) is not a 32-byte Ed25519 seed; the log key is damaged")
        }
        return try Ed25519PrivateKey(seed: Array(seed))
    }
}

extension RelayConfiguration {
    /// The connection, request, upload and registration limits this configuration sets.
    var limits: RelayLimits {
        RelayLimits(perAddress: .init(perSecond: requestsPerSecondPerAddress, burst: 2 * requestsPerSecondPerAddress),
                    maximumConnections: maximumConnections,
                    maximumConnectionsPerAddress: maximumConnectionsPerAddress,
                    connectionsPerSecondPerAddress: .init(perSecond: connectionsPerSecondPerAddress, burst: 2 * connectionsPerSecondPerAddress),
                    grouping: addressGrouping, deadlines: deadlines,
                    uploads: UploadBudget(perIdentity: uploadsPerIdentity, totalBytes: max(1 << 30, 2 * maximumEnvelopeSize)),
                    registrations: RegistrationLimits(perAddressPerHour: registrationsPerHourPerAddress, totalPerHour: registrationsPerHour,
                                                      grouping: addressGrouping))
    }
}
