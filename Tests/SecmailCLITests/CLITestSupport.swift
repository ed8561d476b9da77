import Foundation
import SecmailTestSupport
import Testing

/// Runs the real `secmail` executable built by `swift build`/`swift test`.
enum SecmailBinary {
    static let url: URL = {
        if let path = ProcessInfo.processInfo.environment["SECMAIL_BIN"] {
            return URL(fileURLWithPath: path)
        }
        // The test runner lives in the same products directory as the executable.
        let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = runner.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("secmail")
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                return candidate
            }
            directory = directory.deletingLastPathComponent()
        }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return packageRoot.appendingPathComponent(".build/debug/secmail")
    }()
}

/// One user of the CLI: their own SECMAIL_HOME and passphrase.
struct CLIUser {
    let name: String
    let home: URL
    let passphrase: String

    /// A user whose home (not yet created) is `NAME-home` in `folder`.
    static func fresh(_ name: String, in folder: URL) -> CLIUser {
        CLIUser(name: name, home: folder.appendingPathComponent("\(name)-home"), passphrase: "\(name) long passphrase")
    }

    /// Registers this user (creating the identity) on the relay at `port`, expecting success.
    @discardableResult
    func register(port: Int, ca: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> CLIResult {
        let result = try await run(["register", name, "--relay", "https://localhost:\(port)", "--ca", ca])
        #expect(result.status == 0, "\(result.stderr)", sourceLocation: sourceLocation)
        return result
    }

    /// Points the user's relay settings at another port (the relay restarted on a new one, or a
    /// test puts something else there).
    func retarget(port: Int) throws {
        let url = home.appendingPathComponent("relay.json")
        var settings = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        settings["url"] = "https://localhost:\(port)"
        try JSONSerialization.data(withJSONObject: settings).write(to: url)
    }

    @discardableResult
    func run(_ arguments: [String], passphrase override: String? = nil, in directory: URL? = nil) throws -> CLIResult {
        try runSecmail(arguments, environment: environment(passphrase: override), in: directory)
    }

    /// `run` for async tests, waiting on a thread of its own (see the async `runProcess`).
    @discardableResult
    func run(_ arguments: [String], passphrase override: String? = nil, in directory: URL? = nil) async throws -> CLIResult {
        try await runSecmail(arguments, environment: environment(passphrase: override), in: directory)
    }

    /// Runs the CLI as this user and sends SIGINT once `ready` holds; returns its exit status and
    /// standard error. Polls on a thread of its own (a task might wait seconds for a turn while
    /// other tests run, and the polling, seconds of it, must not hold one of the few threads
    /// every test's tasks share).
    func runInterrupted(_ arguments: [String], when ready: @escaping @Sendable () -> Bool,
                        sourceLocation: SourceLocation = #_sourceLocation) async throws -> (status: Int32, stderr: String) {
        let (status, stderr, wasRunning) = try await onThreadOfItsOwn { try runInterruptedNow(arguments, when: ready) }
        #expect(wasRunning, "\(arguments[0]) finished before it could be interrupted", sourceLocation: sourceLocation)
        return (status, stderr)
    }

    /// The exit status, standard error, and whether the command still ran when SIGINT was sent.
    private func runInterruptedNow(_ arguments: [String], when ready: () -> Bool) throws -> (Int32, String, Bool) {
        let process = Process()
        process.executableURL = SecmailBinary.url
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment(passphrase: nil)) { $1 }
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        // The command runs a millisecond at a time and is looked at while stopped, so that the
        // moment is caught however busy the machine is.
        let pid = process.processIdentifier, deadline = Date().addingTimeInterval(300)
        while process.isRunning, Date() < deadline {
            kill(pid, SIGSTOP)
            usleep(200)
            if ready() { break }
            kill(pid, SIGCONT)
            usleep(1000)
        }
        let wasRunning = process.isRunning
        kill(pid, SIGINT)
        kill(pid, SIGCONT)
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stderr, as: UTF8.self), wasRunning)
    }

    private func environment(passphrase override: String?) -> [String: String] {
        ["SECMAIL_HOME": home.path, "SECMAIL_PASSPHRASE": override ?? passphrase]
    }
}

/// Runs the secmail binary with a clean passphrase environment plus `environment`.
func runSecmail(_ arguments: [String], environment: [String: String], in directory: URL? = nil, input: Data? = nil) throws -> CLIResult {
    var overrides: [String: String?] = ["SECMAIL_PASSPHRASE": nil]
    for (key, value) in environment { overrides[key] = value }
    let result = try runProcess(SecmailBinary.url, arguments, environment: overrides, directory: directory, input: input)
    return CLIResult(status: result.status, stdout: result.text, stderr: result.stderr)
}

/// `runSecmail` for async tests, waiting on a thread of its own (see the async `runProcess`).
func runSecmail(_ arguments: [String], environment: [String: String], in directory: URL? = nil) async throws -> CLIResult {
    try await onThreadOfItsOwn { try runSecmail(arguments, environment: environment, in: directory) }
}

struct CLIResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// alice, bob and carol, created once per test process through `secmail init`, with their
/// exported identities in `workspace`.
enum Users {
    static let workspace: URL = {
        try! makeTemporaryDirectory("secmail-cli")
    }()

    static func make(_ name: String) -> CLIUser {
        let user = CLIUser(name: name, home: workspace.appendingPathComponent("\(name)-home", isDirectory: true),
                           passphrase: "\(name) has a long passphrase")
        let created = try! user.run(["init", name])
        precondition(created.status == 0, "secmail init \(name) failed: \(created.stderr)")
        let exported = try! user.run(["export", "-o", workspace.appendingPathComponent("\(name).id").path])
        precondition(exported.status == 0, "secmail export failed: \(exported.stderr)")
        return user
    }

    static func bundle(_ name: String) -> URL {
        _ = all
        return workspace.appendingPathComponent("\(name).id")
    }

    private static let all: [String: CLIUser] = Dictionary(uniqueKeysWithValues: ["alice", "bob", "carol"].map { ($0, make($0)) })
    static var alice: CLIUser { all["alice"]! }
    static var bob: CLIUser { all["bob"]! }
    static var carol: CLIUser { all["carol"]! }
}

func temporaryDirectory(_ label: String) throws -> URL {
    let url = Users.workspace.appendingPathComponent("\(label)-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func contents(of directory: URL) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
}

func permissions(_ url: URL) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.posixPermissions] as? NSNumber)?.intValue ?? -1
}
