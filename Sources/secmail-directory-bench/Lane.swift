import Foundation
import NIOCore
import SecmailAPI
import SecmailClient
import SecmailTLS

/// How a benchmark client talks to the relay.
enum ConnectionMode: String, CaseIterable {
    /// A new TLS connection for every request, as every command made them before `RelayClient`.
    case newConnection = "new_connection"
    /// One connection per client, kept alive, as `RelayClient` keeps one per command.
    case keptAlive = "kept_alive"
}

/// One concurrent benchmark client: its requests go one at a time, over a connection per
/// request or one kept alive, as `mode` says.
final class Lane {
    let relay: RelayAddress
    let mode: ConnectionMode
    /// The address this client connects from (nil: the system's choice).
    let source: SocketAddress?
    private var connection: RelayHTTPConnection?

    init(_ relay: RelayAddress, mode: ConnectionMode, source: SocketAddress? = nil) {
        self.relay = relay
        self.mode = mode
        self.source = source
    }

    func send(_ request: RelayRequest) async throws -> RelayResponse {
        switch mode {
        case .newConnection:
            let fresh = try await relay.open(from: source)
            do {
                let response = try await fresh.send(request)
                await fresh.close()
                return response
            } catch {
                await fresh.close()
                throw error
            }
        case .keptAlive:
            if let connection, await connection.isReusable { return try await connection.send(request) }
            let fresh = try await relay.open(from: source)
            connection = fresh
            return try await fresh.send(request)
        }
    }

    /// Sends `request`; anything but `status` is a failure.
    func expect(_ status: Int, _ request: RelayRequest) async throws -> RelayResponse {
        let response = try await send(request)
        guard response.status == status else {
            throw BenchFailure("\(request.method) \(request.path) answered \(response.status): \(String(decoding: response.body.prefix(300), as: UTF8.self))")
        }
        return response
    }

    func close() async {
        await connection?.close()
        connection = nil
    }
}

/// What one timed load run measured.
struct LoadRun {
    let latencies: [Double]
    let failures: Int
    let firstFailure: String?
    let seconds: Double
    /// The work ran out before the deadline: the run measured less than its whole time.
    let ranDry: Bool
}

/// `clients` concurrent lanes each run `operation` back to back (or `pause` apart) until `seconds`
/// pass or it returns false (nothing left to do); every operation's latency, or its failure, is
/// recorded.
func runLanes(relay: RelayAddress, mode: ConnectionMode, clients: Int, seconds: Double, pause: Duration = .zero,
              sources: [SocketAddress] = [], operation: @escaping @Sendable (Lane) async throws -> Bool) async throws -> LoadRun {
    let tally = Tally()
    let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
    let start = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for client in 0..<clients {
            group.addTask {
                let lane = Lane(relay, mode: mode, source: sources.isEmpty ? nil : sources[client % sources.count])
                while ContinuousClock.now < deadline {
                    let t = ContinuousClock.now
                    do {
                        guard try await operation(lane) else { break }
                        await tally.record(elapsed(since: t))
                    } catch {
                        await tally.fail(error)
                    }
                    if pause > .zero { try? await Task.sleep(for: pause) }
                }
                await lane.close()
            }
        }
        try await group.waitForAll()
    }
    return LoadRun(latencies: await tally.latencies, failures: await tally.failures, firstFailure: await tally.firstFailure,
                   seconds: elapsed(since: start), ranDry: ContinuousClock.now < deadline)
}

/// Where the relay is and how to trust it.
struct RelayAddress: Sendable {
    let host: String
    let port: Int
    let tls: TLSContext

    init(url: URL, caFile: String) throws {
        guard let host = url.host, let port = url.port else { throw BenchFailure("a relay URL looks like https://host:port") }
        self.host = host
        self.port = port
        tls = try TLSContext(configuration: .client(trust: .certificateAuthorities(file: caFile)))
    }

    func open(from source: SocketAddress? = nil) async throws -> RelayHTTPConnection {
        try await RelayHTTPConnection.open(host: host, port: port, tls: tls, localAddress: source)
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
