import Foundation
import PostgresNIO

/// Where a PostgreSQL database is, from `--database postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`
/// (libpq's URL form; `postgresql://` too). `?host=/run/postgresql` reaches the server through its
/// Unix socket in that directory instead of TCP. Without a password in the URL, `PGPASSWORD` from
/// the environment is used (as libpq does), so a unit file need not put it on a command line.
public struct PostgresAddress: Sendable, Equatable, CustomStringConvertible {
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        /// The socket file (`<directory>/.s.PGSQL.<port>`).
        case unixSocket(path: String)
    }

    public let endpoint: Endpoint
    public let user: String
    public let password: String?
    public let database: String

    public init(endpoint: Endpoint, user: String, password: String?, database: String) {
        self.endpoint = endpoint
        self.user = user
        self.password = password
        self.database = database
    }

    /// PostgresNIO's settings for a connection to this address (TCP without TLS: a database
    /// beyond the host's own network belongs behind a tunnel or on its Unix socket).
    var connectionConfiguration: PostgresConnection.Configuration {
        switch endpoint {
        case .tcp(let host, let port):
            .init(host: host, port: port, username: user, password: password, database: database, tls: .disable)
        case .unixSocket(let path):
            .init(unixSocketPath: path, username: user, password: password, database: database)
        }
    }

    /// Parses `text`; nil when it is not a postgres:// or postgresql:// URL (an SQLite path, say).
    /// Throws for a PostgreSQL URL that is incomplete.
    public init?(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") else { return nil }
        guard let components = URLComponents(string: text) else {
            throw RelayError(.invalidRequest, "--database: \(text) is not a URL; write postgres://USER@HOST:PORT/DATABASE")
        }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else {
            throw RelayError(.invalidRequest, "--database: name the database after the host, as in postgres://secmail@localhost/secmail")
        }
        guard let user = components.user, !user.isEmpty else {
            throw RelayError(.invalidRequest, "--database: name the PostgreSQL user, as in postgres://secmail@localhost/secmail")
        }
        let port = components.port ?? 5432
        let socketDirectory = components.queryItems?.first { $0.name == "host" }?.value
        if let socketDirectory, socketDirectory.hasPrefix("/") {
            endpoint = .unixSocket(path: "\(socketDirectory)/.s.PGSQL.\(port)")
        } else if let host = components.host, !host.isEmpty {
            endpoint = .tcp(host: host, port: port)
        } else {
            throw RelayError(.invalidRequest, "--database: give a host (postgres://USER@HOST/DATABASE) or a socket directory (?host=/run/postgresql)")
        }
        self.user = user
        password = components.password ?? environment["PGPASSWORD"]
        self.database = database
    }

    /// The URL without its password: what logs and messages show.
    public var description: String {
        switch endpoint {
        case .tcp(let host, let port): "postgres://\(user)@\(host):\(port)/\(database)"
        case .unixSocket(let path): "postgres://\(user)@/\(database)?host=\((path as NSString).deletingLastPathComponent)"
        }
    }
}
