import Foundation
import Logging
import NIOCore
import PostgresNIO
@testable import SecmailRelay
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// Every statement the PostgreSQL engine sends ends, with an answer or an error, whatever the
/// server or the connection does: a relay whose transactions waited for ever would stop answering
/// once its eight connections were stuck.
@Suite(.enabled(if: TestPostgres.isAvailable, "no PostgreSQL cluster (scripts/test.sh starts one)"), .threadsOfTheirOwn)
struct PostgresConnectionTests {
    private static let logger = Logger(label: "secmail-tests.postgres")

    /// Runs `sql` as the cluster's superuser, from outside the relay; blocks until psql ends.
    private static func psql(_ address: PostgresAddress, _ sql: String) throws -> String {
        guard let directory = TestPostgres.socketDirectory else { throw TestFailure("SECMAIL_TEST_POSTGRES is not set") }
        let result = try run("psql", TestPostgres.psqlArguments(sql, database: address.database, socketDirectory: directory))
        guard result.status == 0 else { throw TestFailure("psql failed: \(result.stderr)") }
        return result.text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func aStatementPastTheTimeLimitFailsWithoutWaitingForTheAnswer() async throws {
        let connection = try GuardedConnection.open(try await TestPostgres.freshDatabase("silent"), id: 1, timeLimit: .seconds(1))
        defer { connection.close() }
        // The answer would come after 20 s; the time limit ends the wait after one.
        #expect {
            _ = try connection.answer(to: "SELECT pg_sleep(20)", logger: Self.logger)
        } throws: { error in
            guard case .silent = error as? ConnectionFailure else { return false }
            return true
        }
    }

    @Test func aStatementOnAClosedConnectionFails() async throws {
        let connection = try GuardedConnection.open(try await TestPostgres.freshDatabase("closed"), id: 1, timeLimit: .seconds(60))
        connection.close()
        #expect {
            _ = try connection.answer(to: "SELECT 1", logger: Self.logger)
        } throws: { error in
            guard case .closed = error as? ConnectionFailure else { return false }
            return true
        }
    }

    /// The server ends the connection while a statement waits for its answer (what a restart
    /// does): the statement fails because the connection closed, not at the time limit.
    @Test func aStatementWhoseConnectionTheServerEndsFails() async throws {
        let address = try await TestPostgres.freshDatabase("ended")
        // The time limit is far beyond the watch for the statement below (120 s): the backend must
        // be ended well before the limit could end the statement instead.
        let connection = try GuardedConnection.open(address, id: 1, timeLimit: .seconds(300))
        defer { connection.close() }
        let backend = try connection.answer(to: "SELECT pg_backend_pid()", logger: Self.logger).rows.first?.decode(Int32.self)
        let pid = try #require(backend)
        // On a thread of its own: the statement blocks its thread until it ends. Started from a
        // child task, which keeps the suite's thread-per-job preference: an unstructured `Task`
        // runs on the cooperative threads instead, and in a full parallel run one had not sent
        // its statement 120 s later.
        async let waiting = onThreadOfItsOwn { try connection.answer(to: "SELECT pg_sleep(600)", logger: Self.logger) }
        // Before the implicit wait for `waiting` when this scope ends early (cleanups run in
        // reverse order): closing ends the statement, which would otherwise wait for the limit.
        defer { connection.close() }
        // Watching for the statement and ending its backend on one thread of their own: no wait for
        // a cooperative thread between seeing the statement and ending it (with one psql call per
        // await, a loaded run ended the backend more than 60 s after the statement was sent).
        let ended = try await onThreadOfItsOwn { () throws -> Bool in
            let deadline = Date().addingTimeInterval(120)
            let running = "SELECT count(*) FROM pg_stat_activity WHERE pid = \(pid) AND state = 'active' AND query LIKE '%pg_sleep(600)%'"
            while try Self.psql(address, running) != "1" {
                guard Date() < deadline else { throw TestFailure("the statement did not start within 120 s") }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return try Self.psql(address, "SELECT pg_terminate_backend(\(pid))") == "t"
        }
        #expect(ended, "PostgreSQL did not end the backend")
        do {
            _ = try await waiting
            Issue.record("the statement was answered although its connection ended")
        } catch {
            if case .silent = error as? ConnectionFailure { Issue.record("the statement waited for the time limit: \(error)") }
        }
    }

    /// The engine runs as many transactions at once as it has connections: eight reads each wait
    /// inside PostgreSQL until eight sessions have arrived (or 30 s pass). No read leaves before
    /// the eighth arrives, so eight reports of eight mean all eight were inside at once; an engine
    /// that ran fewer at once would have its first reads give up and report fewer. No timing is
    /// asserted.
    @Test func theEngineRunsEightTransactionsAtOnce() async throws {
        let address = try await TestPostgres.freshDatabase("concurrent")
        _ = try await onThreadOfItsOwn { try Self.psql(address, """
            CREATE FUNCTION wait_for_peers(wanted int) RETURNS int LANGUAGE plpgsql AS $$
            DECLARE arrived int; deadline timestamptz := clock_timestamp() + interval '30 seconds';
            BEGIN
              -- A session-level mark, so a read that has left still counts as having arrived.
              PERFORM set_config('application_name', 'arrived', false);
              LOOP
                PERFORM pg_stat_clear_snapshot();
                SELECT count(*) INTO arrived FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name = 'arrived';
                EXIT WHEN arrived >= wanted OR clock_timestamp() > deadline;
                PERFORM pg_sleep(0.01);
              END LOOP;
              RETURN arrived;
            END $$;
            """) }
        let database = try RelayDatabase(postgres: address)
        defer { database.close() }
        let arrivals = try await withThrowingTaskGroup(of: Int64.self) { group in
            for _ in 0..<8 {
                group.addTask { try await database.read { db in try db.fetchOne(Int64.self, "SELECT wait_for_peers(8)") } ?? 0 }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(arrivals == Array(repeating: 8, count: 8), "arrivals seen by each read: \(arrivals)")
    }

    /// The server ends every connection of an idle engine (a restart between requests): each
    /// transaction afterwards ends, at most one per connection fails with a storage error, and
    /// the engine works again without being reopened.
    @Test func theEngineReplacesConnectionsTheServerEnded() async throws {
        let address = try await TestPostgres.freshDatabase("replaced")
        let database = try RelayDatabase(postgres: address)
        defer { database.close() }
        // Open several connections: concurrent reads each take a slot of their own. A read that
        // finishes before the next starts hands its connection on, so rounds go on until two are
        // open.
        let engineConnections = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        for _ in 0..<10 {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask { _ = try await database.read { db in try db.fetchOne(Int64.self, "SELECT 1 FROM pg_sleep(0.5)") } }
                }
                try await group.waitForAll()
            }
            let open = try await onThreadOfItsOwn { try Self.psql(address, engineConnections) }
            if (Int(open) ?? 0) >= 2 { break }
        }
        let ended = try await onThreadOfItsOwn { try Self.psql(address, """
            SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() OFFSET 0) AS others
            """) }
        #expect((Int(ended) ?? 0) >= 2, "the engine had \(ended) connections")
        var failures = 0
        for _ in 0..<24 {
            do {
                _ = try await database.read { db in try db.fetchOne(Int64.self, "SELECT 1") }
            } catch let error as RelayError {
                #expect(error.code == .storage, "\(error)")
                failures += 1
            }
        }
        #expect(failures <= 8)
        let answer = try await database.write { db in try db.fetchOne(Int64.self, "SELECT 41 + 1") }
        #expect(answer == 42)
    }
}
