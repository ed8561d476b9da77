import Foundation
import Logging
import NIOCore
import PostgresNIO
import SecmailTLS

/// One PostgreSQL transaction as a `StorageTransaction`, on a thread of `PostgresEngine` that
/// waits for each answer. Portable statements' `?` placeholders become `$1`, `$2`, …; integers
/// bind as int8, text as text, blobs as bytea.
struct PostgresTransaction: StorageTransaction {
    let connection: GuardedConnection
    /// PostgresNIO's log, errors only (the relay reports storage failures itself).
    static let logger: Logger = {
        var logger = Logger(label: "secmail-relay.postgres")
        logger.logLevel = .error
        return logger
    }()

    func execute(_ sql: String, _ arguments: [any StorageArgument]) throws -> Int {
        try connection.answer(to: Self.query(sql, arguments), logger: Self.logger).metadata.rows ?? 0
    }

    func fetchRows(_ sql: String, _ arguments: [any StorageArgument]) throws -> [StorageRow] {
        let result = try connection.answer(to: Self.query(sql, arguments), logger: Self.logger)
        return try result.rows.map { row in
            var columns: [String] = [], values: [StorageValue] = []
            columns.reserveCapacity(row.count)
            values.reserveCapacity(row.count)
            for cell in row {
                columns.append(cell.columnName)
                values.append(try Self.value(of: cell))
            }
            return StorageRow(columns: columns, values: values)
        }
    }

    func executeScript(_ sql: String) throws {
        for statement in ScriptStatements.split(sql) { _ = try execute(statement, []) }
    }

    func inSavepoint(_ body: () throws -> Void) throws {
        try executeScript("SAVEPOINT item")
        do {
            try body()
            try executeScript("RELEASE SAVEPOINT item")
        } catch {
            // A failed statement aborts the transaction until the savepoint is rolled back.
            try executeScript("ROLLBACK TO SAVEPOINT item; RELEASE SAVEPOINT item")
            throw error
        }
    }

    private static func query(_ sql: String, _ arguments: [any StorageArgument]) throws -> PostgresQuery {
        var bindings = PostgresBindings(capacity: arguments.count)
        for argument in arguments {
            switch argument.storageValue {
            case .null: bindings.appendNull()
            case .integer(let integer): bindings.append(integer)
            case .text(let text): bindings.append(text)
            case .blob(let data): bindings.append(ByteBuffer(bytes: data))
            }
        }
        return PostgresQuery(unsafeSQL: PlaceholderNumbering.shared.numbered(sql), binds: bindings)
    }

    private static func value(of cell: PostgresCell) throws -> StorageValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int8, .int4, .int2: return .integer(try cell.decode(Int64.self))
        case .bool: return .integer(try cell.decode(Bool.self) ? 1 : 0)
        case .bytea: return .blob(Data(try cell.decode(ByteBuffer.self).readableBytesView))
        case .text, .varchar, .name, .bpchar: return .text(try cell.decode(String.self))
        default:
            throw RelayError(.storage, "PostgreSQL answered column \(cell.columnName) with type \(cell.dataType), which the relay does not read")
        }
    }

    /// PostgreSQL's own words for `error`, or what failed on the way to it.
    static func message(of error: any Error, address: PostgresAddress) -> String {
        if let error = error as? PostgresDecodingError {
            return "a column of type \(error.postgresType) could not be read as \(error.targetType)"
        }
        if let error = error as? ConnectionFailure { return "\(address): \(error)" }
        guard let error = error as? PSQLError else { return "the connection to \(address) failed: \(error)" }
        if let info = error.serverInfo {
            let state = info[.sqlState].map { " (\($0))" } ?? ""
            return (info[.message] ?? "an error") + state
        }
        guard let underlying = error.underlying else { return "the connection to \(address) failed (\(error.code))" }
        return "the connection to \(address) failed (\(ConnectFailure.describe(underlying) ?? "\(underlying)"))"
    }

    /// Whether `error` came from PostgreSQL or the connection to it (not from the transaction's
    /// own checks, which go on to the caller as they are).
    static func isDatabaseError(_ error: any Error) -> Bool {
        error is PSQLError || error is PostgresError || error is PostgresDecodingError || error is ChannelError || error is IOError
            || error is ConnectionFailure
    }

    /// Whether PostgreSQL refused for want of disk space (SQLSTATE 53100, disk_full).
    static func meansDiskFull(_ error: any Error) -> Bool {
        (error as? PSQLError)?.serverInfo?[.sqlState] == "53100"
    }

    /// Whether the connection is still usable after `error`: the server refused a statement, or
    /// an answer did not decode.
    static func leavesConnectionUsable(_ error: any Error) -> Bool {
        error is PostgresDecodingError || (error as? PSQLError)?.serverInfo != nil
    }
}

/// `?` → `$1`, `$2`, … outside quoted text, once per distinct statement.
final class PlaceholderNumbering: @unchecked Sendable {
    // @unchecked: `numberedStatements` is guarded by `lock`.
    static let shared = PlaceholderNumbering()
    private let lock = NSLock()
    private var numberedStatements: [String: String] = [:]

    func numbered(_ sql: String) -> String {
        if let known = lock.withLock({ numberedStatements[sql] }) { return known }
        var result = "", count = 0, quote: Character?
        for character in sql {
            if let open = quote {
                if character == open { quote = nil }
                result.append(character)
            } else if character == "'" || character == "\"" {
                quote = character
                result.append(character)
            } else if character == "?" {
                count += 1
                result += "$\(count)"
            } else {
                result.append(character)
            }
        }
        lock.withLock { numberedStatements[sql] = result }
        return result
    }
}

/// The statements of a script (a migration, `BEGIN; SELECT …`): PostgreSQL's extended protocol
/// takes one statement at a time. Splits at semicolons outside quotes and `--` comments; the
/// scripts are ours, with no function bodies.
enum ScriptStatements {
    static func split(_ script: String) -> [String] {
        var statements: [String] = [], current = "", quote: Character?, inComment = false
        for character in script {
            if inComment {
                if character == "\n" { inComment = false; current.append(" ") }
                continue
            }
            if let open = quote {
                if character == open { quote = nil }
                current.append(character)
            } else if character == "-", current.hasSuffix("-") {
                current.removeLast()
                inComment = true
            } else if character == "'" || character == "\"" {
                quote = character
                current.append(character)
            } else if character == ";" {
                statements.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        statements.append(current)
        return statements.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
    }
}
