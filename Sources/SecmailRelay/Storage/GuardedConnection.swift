import Foundation
import Logging
import NIOCore
import PostgresNIO

/// A PostgresNIO connection whose every statement ends with an answer or an error.
///
/// PostgresNIO (1.33) writes a statement to its channel without a write promise: a statement
/// sent while the channel is closing (the server stopped a moment ago, the check for a closed
/// connection came just before) is dropped, and its answer is never completed. A transaction
/// waiting for it would hold its connection slot for ever, and after eight such statements the
/// relay would answer nothing more. So each statement's answer is also failed when the
/// connection closes, and when the server stays silent past a time limit.
final class GuardedConnection: @unchecked Sendable {
    // @unchecked: `pending` is guarded by `lock`.
    let connection: PostgresConnection
    private let lock = NSLock()
    private var pending: EventLoopPromise<PostgresQueryResult>?
    private let timeLimit: TimeAmount

    /// `timeLimit`: longer than any statement of ours should take, including a write waiting for
    /// the write lock behind other relays' transactions.
    init(_ connection: PostgresConnection, timeLimit: TimeAmount = .seconds(60)) {
        self.connection = connection
        self.timeLimit = timeLimit
        connection.closeFuture.whenComplete { [weak self] _ in self?.failPending(with: .closed) }
    }

    /// A new connection to `address` (`id` names it in PostgresNIO's log).
    static func open(_ address: PostgresAddress, id: Int, timeLimit: TimeAmount = .seconds(60)) throws -> GuardedConnection {
        GuardedConnection(try PostgresConnection.connect(on: PostgresConnection.defaultEventLoopGroup.any(),
                                                         configuration: address.connectionConfiguration,
                                                         id: id, logger: PostgresTransaction.logger).wait(), timeLimit: timeLimit)
    }

    var isClosed: Bool { connection.isClosed }

    /// The answer to `query`; one statement at a time (the connection's transaction runs on one
    /// thread).
    func answer(to query: PostgresQuery, logger: Logger) throws -> PostgresQueryResult {
        let answer = connection.eventLoop.makePromise(of: PostgresQueryResult.self)
        lock.withLock { pending = answer }
        defer { lock.withLock { pending = nil } }
        // Checked after `pending` is set: a close from now on fails `answer` through
        // `closeFuture`, and one before it is seen here.
        guard !connection.isClosed else {
            answer.fail(ConnectionFailure.closed)  // NIO refuses to drop an uncompleted promise.
            throw ConnectionFailure.closed
        }
        let silence = connection.eventLoop.scheduleTask(in: timeLimit) { [weak self, timeLimit] in
            self?.failPending(with: .silent(timeLimit))
        }
        defer { silence.cancel() }
        connection.query(query, logger: logger).cascade(to: answer)
        return try answer.futureResult.wait()
    }

    private func failPending(with failure: ConnectionFailure) {
        // A promise completed twice keeps its first result: an answer that came first stands.
        lock.withLock { pending }?.fail(failure)
    }

    func close() {
        try? connection.close().wait()
    }
}

/// Why a statement got no answer from PostgreSQL.
enum ConnectionFailure: Error, CustomStringConvertible {
    case closed
    case silent(TimeAmount)

    var description: String {
        switch self {
        case .closed: "the connection closed before the answer came"
        case .silent(let limit): "no answer within \(limit.nanoseconds / 1_000_000_000) s"
        }
    }
}
