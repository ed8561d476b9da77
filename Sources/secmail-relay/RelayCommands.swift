import ArgumentParser
import Foundation
import Logging
import SecmailCommandLine
import SecmailFormat
import SecmailRelay

/// Options shared by the relay subcommands.
struct RelayDataOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The relay's data directory.", valueName: "dir"))
    var data: String

    @Option(name: .long, help: ArgumentHelp("""
        A PostgreSQL database to share with other relays (postgres://USER@HOST:PORT/DATABASE, or ?host=/run/postgresql for \
        the Unix socket; the password from the URL or PGPASSWORD) instead of SQLite in the data directory.
        """, valueName: "url"))
    var database: String?

    var dataDirectory: URL { URL(fileURLWithPath: data, isDirectory: true) }

    func validate() throws {
        // An empty path names the current folder, which the relay would make private (700)
        // and fill.
        guard !data.isEmpty else { throw ValidationError("--data is empty: give the relay's data directory") }
        _ = try postgresAddress()
    }

    /// The PostgreSQL database `--database` names, nil for SQLite in the data directory.
    func postgresAddress() throws -> PostgresAddress? {
        guard let database else { return nil }
        do {
            guard let address = try PostgresAddress(database) else {
                throw ValidationError("--database takes a postgres:// URL; without it the relay keeps SQLite in --data")
            }
            return address
        } catch let error as RelayError {
            throw ValidationError(error.reason)
        }
    }

    /// The configuration for the data directory and database these options name.
    func configuration() throws -> RelayConfiguration {
        var configuration = RelayConfiguration(dataDirectory: dataDirectory)
        configuration.database = try postgresAddress()
        return configuration
    }
}

struct RelayServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve (the default). Stops gracefully on SIGINT or SIGTERM; SIGHUP reloads --cert and --key.",
        discussion: """
            On first start the data directory gets the SQLite database, the Ed25519 log key and, \
            unless --cert and --key are given, development TLS certificates for localhost, \
            127.0.0.1 and ::1. The relay prints what clients need: its URL, the CA file or key pin, \
            and the log key.
            """)

    @OptionGroup var dataOptions: RelayDataOptions

    @Option(name: .long, help: ArgumentHelp("Address and port to listen on (port 0 picks a free one).", valueName: "host:port"))
    var listen: String = "127.0.0.1:8443"

    /// Not an option: `--port` is what people try first, and the parser's own answer to an
    /// unknown option suggested `--cert`.
    @Option(name: .long, help: .hidden)
    var port: String?

    @Option(name: .long, help: ArgumentHelp("PEM certificate chain (with --key).", valueName: "file"))
    var cert: String?

    @Option(name: .long, help: ArgumentHelp("PEM private key for --cert.", valueName: "file"))
    var key: String?

    @Flag(name: .long, help: "Require an invite code (secmail relay invite) to register.")
    var requireInvite = false

    @Flag(name: .long, help: "Let several names register the same keys (load tests only: one key pair then speaks for many names).")
    var allowSharedKeys = false

    @Option(name: .long, help: ArgumentHelp("Largest envelope accepted, in MiB.", valueName: "mib"))
    var maxEnvelopeMib = 256

    @Option(name: .long, help: ArgumentHelp("Most a mailbox may hold, in MiB.", valueName: "mib"))
    var mailboxQuotaMib = 1024

    @Option(name: .long, help: ArgumentHelp("Percent of a mailbox one sender's messages may take (at least one envelope).", valueName: "percent"))
    var senderShare = 25

    @Option(name: .long, help: ArgumentHelp("Deposits one identity may have under way at once.", valueName: "n"))
    var uploadsPerIdentity = 4

    @Option(name: .long, help: ArgumentHelp("Registrations an hour from one client address (invited ones not counted).", valueName: "n"))
    var registrationsPerHourPerAddress = 10

    @Option(name: .long, help: ArgumentHelp("Registrations an hour in all (invited ones not counted).", valueName: "n"))
    var registrationsPerHour = 1000

    @Option(name: .long, help: ArgumentHelp("Requests per second per client address (bursts of twice that).", valueName: "n"))
    var ratePerAddress = 200.0

    @Option(name: .long, help: ArgumentHelp("Authenticated requests per second per identity (bursts of twice that).", valueName: "n"))
    var ratePerIdentity = 50.0

    @Option(name: .long, help: ArgumentHelp("Open connections at most; more wait to be accepted.", valueName: "n"))
    var maxConnections = 512

    @Option(name: .long, help: ArgumentHelp("Open connections per client address (one IPv4 address, one IPv6 /64) at most; more are closed at once.", valueName: "n"))
    var maxConnectionsPerAddress = 32

    @Option(name: .long, help: ArgumentHelp("New connections per second per client address (bursts of twice that); faster ones are closed before the TLS handshake.", valueName: "n"))
    var connectionRatePerAddress = 20.0

    @Option(name: .long, help: ArgumentHelp("IPv4 addresses sharing this many leading bits count as one client.", valueName: "bits"))
    var ipv4Prefix = 32

    @Option(name: .long, help: ArgumentHelp("IPv6 addresses sharing this many leading bits count as one client.", valueName: "bits"))
    var ipv6Prefix = 64

    @Option(name: .long, help: ArgumentHelp("Seconds an idle connection stays open once it carried an authenticated request.", valueName: "seconds"))
    var idleTimeout = 60

    @Option(name: .long, help: ArgumentHelp("Seconds an idle connection stays open before that.", valueName: "seconds"))
    var idleTimeoutBeforeSignIn = 15

    @Option(name: .long, help: ArgumentHelp("Seconds from a request's first byte to its complete head.", valueName: "seconds"))
    var headerTimeout = 10

    @Option(name: .long, help: ArgumentHelp("Bytes a second a request body must average (after 10 s).", valueName: "bytes"))
    var minBodyRate = 1024

    @Option(name: .long, help: ArgumentHelp("Seconds an answer may wait for the client to read it.", valueName: "seconds"))
    var writeTimeout = 30

    @Option(name: .long, help: ArgumentHelp("""
        The log's origin, kept in the data directory from the first start and fixed from the first registration (default: the certificate's first DNS name, else the listen host, followed by /secmail).
        """, valueName: "name"))
    var origin: String?

    @Option(name: .long, help: ArgumentHelp("trace, debug, info (one line per request), notice, warning, error or critical.", valueName: "level"))
    var logLevel = "info"

    @Option(name: .long, help: ArgumentHelp("Refuse envelopes signed more than this many seconds ahead of the relay's clock.", valueName: "seconds"))
    var maxClockSkew: Int64 = EnvelopeTimeWindow.standard.futureSkew

    @Option(name: .long, help: ArgumentHelp("Refuse envelopes signed more than this many seconds ago.", valueName: "seconds"))
    var maxEnvelopeAge: Int64 = EnvelopeTimeWindow.standard.maximumAge

    func validate() throws {
        if let port { throw ValidationError("there is no --port: give the address and port together, --listen 127.0.0.1:\(port) (or [::1]:\(port))") }
        _ = try parseListen()
        guard maxEnvelopeMib > 0, mailboxQuotaMib > 0, ratePerAddress > 0, ratePerIdentity > 0, maxConnections > 0, idleTimeout > 0,
              maxClockSkew > 0, maxEnvelopeAge > 0, maxConnectionsPerAddress > 0, connectionRatePerAddress > 0, idleTimeoutBeforeSignIn > 0, headerTimeout > 0,
              minBodyRate >= 0, writeTimeout > 0, (1...100).contains(senderShare), uploadsPerIdentity > 0,
              registrationsPerHourPerAddress > 0, registrationsPerHour > 0 else {
            throw ValidationError("limits are positive numbers")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level is one of trace, debug, info, notice, warning, error, critical")
        }
        guard (8...32).contains(ipv4Prefix), (16...128).contains(ipv6Prefix) else {
            throw ValidationError("--ipv4-prefix is 8 to 32 bits, --ipv6-prefix 16 to 128")
        }
    }

    func parseListen() throws -> (host: String, port: Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen takes host:port, e.g. 127.0.0.1:8443 or [::1]:8443")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ValidationError("--listen needs a host, e.g. 127.0.0.1:8443") }
        return (host, port)
    }

    func run() async throws {
        let (host, port) = try parseListen()
        var configuration = try dataOptions.configuration()
        configuration.host = host
        configuration.port = port
        configuration.certificateFile = cert.map { URL(fileURLWithPath: $0) }
        configuration.privateKeyFile = key.map { URL(fileURLWithPath: $0) }
        configuration.requiresInvite = requireInvite
        configuration.origin = origin
        configuration.sharesKeys = allowSharedKeys
        configuration.envelopeTimeWindow = EnvelopeTimeWindow(futureSkew: maxClockSkew, maximumAge: maxEnvelopeAge)
        configuration.maximumEnvelopeSize = maxEnvelopeMib << 20
        configuration.mailboxQuota = mailboxQuotaMib << 20
        configuration.senderShare = Double(senderShare) / 100
        configuration.uploadsPerIdentity = uploadsPerIdentity
        configuration.registrationsPerHourPerAddress = Double(registrationsPerHourPerAddress)
        configuration.registrationsPerHour = Double(registrationsPerHour)
        configuration.requestsPerSecondPerAddress = ratePerAddress
        configuration.requestsPerSecondPerIdentity = ratePerIdentity
        configuration.maximumConnections = maxConnections
        configuration.maximumConnectionsPerAddress = maxConnectionsPerAddress
        configuration.connectionsPerSecondPerAddress = connectionRatePerAddress
        configuration.addressGrouping = AddressGrouping(ipv4PrefixBits: ipv4Prefix, ipv6PrefixBits: ipv6Prefix)
        configuration.deadlines = ConnectionDeadlines(
            header: .seconds(Int64(headerTimeout)), minimumBodyRate: minBodyRate, write: .seconds(Int64(writeTimeout)),
            idleBeforeSignIn: .seconds(Int64(idleTimeoutBeforeSignIn)), idle: .seconds(Int64(idleTimeout)))
        let relay = try PreparedRelay.prepare(configuration)
        try await relay.run(logLevel: Logger.Level(rawValue: logLevel) ?? .info, reloadsOnHangup: true) { boundPort in
            let urlHost = host.contains(":") ? "[\(host)]" : host
            var lines = ["secmail relay listening on https://\(urlHost):\(boundPort)",
                         "  data directory: \(dataOptions.dataDirectory.path)",
                         "  database:       \(relay.databaseLocation)"]
            if !relay.upgradeMigrations.isEmpty {
                lines.append("  migrated:       \(relay.upgradeMigrations.joined(separator: ", ")) (an older relay cannot serve it now)")
            }
            if let ca = relay.certificateAuthorityFile {
                lines.append("  CA file:        \(ca.path)  (development certificate)")
            }
            let pin = "sha256/" + hexEncoded(relay.publicKeyPin)
            lines.append("  TLS key pin:    \(pin)")
            lines.append("  certificate:    \(relay.certificate.validitySummary())")
            lines.append("  log origin:     \(relay.origin)")
            lines.append("  log key:        \(relay.logVerifierKey)")
            lines.append("  invites:        \(requireInvite ? "required (secmail relay invite --data \(dataOptions.data))" : "not required")")
            // What a person carries to a client: with the pin and the log key checked on first
            // contact, no other relay or log can stand in for this one, and no CA file is needed.
            // A wildcard address is no address for clients; the origin's host is one the
            // certificate covers (registration checks that the origin names the relay).
            let clientHost = ["0.0.0.0", "::"].contains(host) ? String(relay.origin.prefix { $0 != "/" }) : urlHost
            lines.append("Clients register with:")
            lines.append("  secmail register NAME --relay https://\(clientHost):\(boundPort) --tls-pin \(pin) --log-key \(relay.logVerifierKey)\(requireInvite ? " --invite CODE" : "")")
            Terminal.output(lines.joined(separator: "\n") + "\n")
        }
        Terminal.info("secmail relay stopped")
    }
}

struct RelayStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a relay's log, identities, waiting mail and free space (while it serves, too).",
        discussion: """
            Read from one consistent snapshot of the database; nothing is written. The log key is \
            the one clients pin (--log-key of `secmail register`).
            """)

    @OptionGroup var dataOptions: RelayDataOptions

    @Option(name: .long, help: ArgumentHelp("The certificate the relay serves (--cert of `secmail relay`), for the TLS key pin clients give; default: its development certificate.", valueName: "file"))
    var cert: String?

    @Flag(name: .long, help: "Print the status as JSON on standard output (times in seconds since the epoch, sizes in bytes).")
    var json = false

    func run() async throws {
        let data = try ServedRelayData(directory: dataOptions.dataDirectory, postgres: try dataOptions.postgresAddress())
        defer { data.database.close() }
        let status = try RelayStatus.read(data, certificateFile: cert.map { URL(fileURLWithPath: $0) })
        if json {
            try printJSON(status)
        } else {
            printTable(status)
        }
    }

    private func printJSON(_ status: RelayStatus) throws {
        var fields: [String: Any] = [
            "origin": status.origin, "logKey": status.logVerifierKey, "database": status.databaseLocation,
            "logEntries": status.logEntries, "names": status.names, "keyVersions": status.keyVersions,
            "messages": status.messages, "messageBytes": status.messageBytes, "waiting": status.waiting,
            "mailboxesHoldingMail": status.mailboxesHoldingMail, "unusedInvites": status.unusedInvites,
            "activeSessions": status.activeSessions, "serving": status.serving.running,
        ]
        fields["relayProcess"] = status.serving.process
        fields["databaseBytes"] = status.databaseBytes
        fields["availableBytes"] = status.availableBytes
        fields["lastLogEntryTime"] = status.lastLogEntryAt
        fields["oldestMessageTime"] = status.oldestMessageAt
        fields["fullestMailbox"] = status.fullestMailbox.map { ["name": $0.name, "bytes": $0.bytes] as [String: Any] }
        fields["certificate"] = status.certificate.map { ["file": $0.file, "tlsKeyPin": $0.keyPin, "notAfter": $0.notAfter] as [String: Any] }
        try Terminal.output(jsonText(fields))
    }

    private func printTable(_ status: RelayStatus) {
        var database = status.databaseLocation + (status.databaseBytes.map { " (\(formatBytes($0)))" } ?? "")
        if let free = status.availableBytes, dataOptions.database == nil { database += "; \(formatBytes(free)) free" }
        let newest = status.lastLogEntryAt.map { ", the newest \(HumanTime.describe($0))" } ?? ""
        var mail = status.messages == 0 ? "none waiting"
            : "\(counted(status.messages, "message", "messages")) (\(formatBytes(status.messageBytes))), "
                + "\(status.waiting) waiting in \(counted(status.mailboxesHoldingMail, "mailbox", "mailboxes"))"
        if let oldest = status.oldestMessageAt, status.messages > 0 { mail += "; the oldest from \(HumanTime.describe(oldest))" }
        if let fullest = status.fullestMailbox { mail += "; fullest: \(fullest.name) (\(formatBytes(fullest.bytes)))" }
        let serving = status.serving.running ? "serving\(status.serving.process.map { " (process \($0))" } ?? "")" : "not serving"
        let rows = [
            ("data", "\(dataOptions.data): \(serving)"),
            ("database", database),
            ("log", "\(status.origin): \(counted(Int(status.logEntries), "entry", "entries"))\(newest)"),
            ("log key", status.logVerifierKey),
            ("TLS key", status.certificate.map { "\($0.keyPin) (\($0.file), \(Int64(Date().timeIntervalSince1970) < $0.notAfter ? "valid until" : "expired on") \(HumanTime.describe($0.notAfter)))" }
                ?? "give the certificate the relay serves with --cert for its pin"),
            ("identities", "\(counted(status.names, "name", "names")) (\(counted(status.keyVersions, "key version", "key versions")))"),
            ("mail", mail),
            ("invites", "\(status.unusedInvites) unused"),
            ("signed in", counted(status.activeSessions, "session", "sessions")),
        ]
        for (label, value) in rows {
            Terminal.output(label.padding(toLength: 12, withPad: " ", startingAt: 0) + value + "\n")
        }
        if let pin = status.certificate?.keyPin {
            Terminal.info("Clients register with: secmail register NAME --relay https://HOST:PORT --tls-pin \(pin) --log-key \(status.logVerifierKey)")
        }
    }
}

struct RelayInviteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invite",
        abstract: "Create a single-use invite code for registering on this relay.")

    @OptionGroup var dataOptions: RelayDataOptions

    func run() async throws {
        // A mistyped --data is refused (it would otherwise become a new relay's directory, and the
        // code one that no serving relay knows), and the relay's files are left as they are.
        let data = try ServedRelayData(directory: dataOptions.dataDirectory, postgres: try dataOptions.postgresAddress())
        defer { data.database.close() }
        let code = try Directory(database: data.database).createInvite()
        Terminal.output(code + "\n")
        Terminal.info("Single use; the person registers with: secmail register NAME --invite \(code) --relay … (as the relay prints it)")
    }
}

struct RelayBackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Back up a relay's data directory while it serves.",
        discussion: """
            Writes into a new directory one consistent snapshot of the database (SQLite's online \
            backup), the envelope files it names, the log key, the origin and the development TLS \
            files, each synced to disk, and checks the copy's integrity. The backup holds the relay's \
            secrets and is made its owner's alone. To restore, give it a new log key (secmail relay \
            new-log --data DIR) and serve it. \
            A relay on PostgreSQL is backed up with pg_dump instead (docs/DEPLOY.md).
            """)

    @OptionGroup var dataOptions: RelayDataOptions

    @Option(name: .long, help: ArgumentHelp("The backup directory to create (must not exist).", valueName: "dir"))
    var to: String

    func validate() throws {
        guard !to.isEmpty else { throw ValidationError("--to is empty: give the backup directory to create") }
        guard dataOptions.database == nil else {
            throw ValidationError("relay backup copies an SQLite data directory; back up a PostgreSQL database with pg_dump (docs/DEPLOY.md)")
        }
    }

    func run() async throws {
        // At a terminal: how long the database snapshot takes, then the envelope files' bytes.
        var snapshotStatus: Terminal.StatusLine?
        let copying = Terminal.ProgressLine("copying envelope files")
        let summary: RelayBackup.Summary
        do {
            summary = try await RelayBackup.make(from: dataOptions.dataDirectory, to: URL(fileURLWithPath: to, isDirectory: true)) { progress in
                switch progress {
                case .database:
                    snapshotStatus = Terminal.StatusLine("backing up the database")
                case let .envelopeFiles(copied, total):
                    snapshotStatus?.finish()
                    snapshotStatus = nil
                    copying.update(copied, total)
                }
            }
        } catch {
            snapshotStatus?.finish()
            copying.finish()
            throw error
        }
        copying.finish()
        var lines = ["Backed up \(dataOptions.data) to \(to): \(counted(summary.identities, "identity", "identities")), "
            + "\(counted(summary.logLeaves, "log entry", "log entries")), \(counted(summary.messages, "message", "messages")) "
            + "(\(counted(summary.envelopeFiles, "envelope file", "envelope files")), \(formatBytes(UInt64(summary.envelopeBytes))))"]
        if summary.deletedDuringBackup > 0 {
            let one = summary.deletedDuringBackup == 1
            lines.append("\(counted(summary.deletedDuringBackup, "message", "messages")) deleted by \(one ? "its recipient" : "their recipients") "
                + "during the backup \(one ? "is" : "are") not in it")
        }
        Terminal.info(lines.joined(separator: "\n"))
    }
}

struct RelayNewLogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "new-log",
        abstract: "Give a restored relay a new log key and origin (the relay stopped), for clients to follow.",
        discussion: """
            A relay restored from a backup must not sign with the log key that went on signing the \
            original: every client that saw the log after the backup would see it go back, and \
            refuse it. This keeps the directory's entries and starts a new log over them, with a new \
            key and a new origin (by default the old one with /2 appended, or its number counted \
            up). The old key is kept beside it and signs nothing more. Publish the new log key; each \
            user follows it with: secmail register NAME --relay URL --new-log --log-key KEY. With \
            --database, copy log-key.ed25519 and origin to every relay sharing the database.
            """)

    @OptionGroup var dataOptions: RelayDataOptions

    @Option(name: .long, help: ArgumentHelp("The new log's origin (default: the old one with /2 appended, or its number counted up).", valueName: "name"))
    var origin: String?

    func run() async throws {
        let started = try NewLog.start(in: dataOptions.dataDirectory, postgres: try dataOptions.postgresAddress(), origin: origin)
        Terminal.output("""
            New log for \(dataOptions.data): \(counted(Int(started.size), "entry", "entries")) of the restored directory, signed from now on as
              log origin:     \(started.origin)  (was \(started.previousOrigin))
              log key:        \(started.logVerifierKey)
            The old log key is kept in \(started.retiredKey.path) and signs nothing more.
            Start the relay, publish the new log key, and tell users to run:
              secmail register NAME --relay URL --new-log --log-key \(started.logVerifierKey)
            \(dataOptions.database == nil ? "" : "Copy log-key.ed25519 and origin from \(dataOptions.data) into the data directory of every other relay sharing the database before it starts again.\n")
            """)
    }
}
