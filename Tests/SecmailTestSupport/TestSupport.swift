import Foundation

/// Hex decoding for test vectors and fixtures.
public func hexBytes(_ hex: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var iterator = hex.makeIterator()
    while let high = iterator.next(), let low = iterator.next() {
        guard let h = high.hexDigitValue, let l = low.hexDigitValue else { preconditionFailure("not hex: \(hex)") }
        bytes.append(UInt8(h << 4 | l))
    }
    return bytes
}

public func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

/// What an external process did.
public struct ProcessResult: Sendable {
    public let status: Int32
    public let stdout: Data
    public let stderr: String
    public var text: String { String(decoding: stdout, as: UTF8.self) }
}

/// A test's own failure, said in a sentence (a child that hung, a fixture that did not start).
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// How long a child that `runProcess` started may run (or hold its output open) before it is
/// killed and its test fails: far beyond any command's time in a full parallel run (the slowest
/// take a few minutes on a loaded CI machine) and inside scripts/test.sh's watchdog, so that a
/// hung child fails one test by name instead of holding the whole run.
public let childProcessTimeLimit: TimeInterval = 600

/// Runs `executable` with `arguments`; `environment` entries override (nil removes) the test
/// process's own. Both output pipes are drained concurrently so a chatty child cannot block.
/// Throws `TestFailure` for a child still running after `childProcessTimeLimit`.
public func runProcess(
    _ executable: URL, _ arguments: [String], environment: [String: String?] = [:],
    directory: URL? = nil, input: Data? = nil
) throws -> ProcessResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    process.environment = env
    if let directory { process.currentDirectoryURL = directory }
    let out = Pipe(), err = Pipe(), inPipe = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = inPipe
    try process.run()
    if let input { inPipe.fileHandleForWriting.write(input) }
    try inPipe.fileHandleForWriting.close()
    let group = DispatchGroup()
    nonisolated(unsafe) var stdoutData = Data()
    nonisolated(unsafe) var stderrData = Data()
    group.enter()
    DispatchQueue.global().async { stdoutData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { stderrData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    if group.wait(timeout: .now() + childProcessTimeLimit) == .timedOut {
        killAndReap(process)
        throw TestFailure("\(([executable.lastPathComponent] + arguments).joined(separator: " ")) did not end within \(Int(childProcessTimeLimit)) s; killed")
    }
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: stdoutData, stderr: String(decoding: stderrData, as: UTF8.self))
}

/// Runs a command found on PATH (openssl, python3).
@discardableResult
public func run(_ command: String, _ arguments: [String], input: Data? = nil) throws -> ProcessResult {
    try runProcess(URL(fileURLWithPath: "/usr/bin/env"), [command] + arguments, input: input)
}

/// `runProcess` for async code: the child is waited for on a thread of its own. A test process
/// has as many cooperative threads as cores (two here); a test that held one while a child ran
/// would stall every other test's requests, timers and relays' answers behind it, which under a
/// full parallel run made connections sit idle past relays' timeouts.
public func runProcess(
    _ executable: URL, _ arguments: [String], environment: [String: String?] = [:],
    directory: URL? = nil, input: Data? = nil
) async throws -> ProcessResult {
    try await onThreadOfItsOwn { try runProcess(executable, arguments, environment: environment, directory: directory, input: input) }
}

/// `run` for async code (see the async `runProcess`).
@discardableResult
public func run(_ command: String, _ arguments: [String], input: Data? = nil) async throws -> ProcessResult {
    try await onThreadOfItsOwn { try run(command, arguments, input: input) }
}

/// Whether `process` has ended, waiting for it up to `seconds` (looked at every 50 ms, without
/// holding a thread).
public func exits(_ process: Process, within seconds: Double) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while process.isRunning, Date() < deadline { try? await Task.sleep(nanoseconds: 50_000_000) }
    return !process.isRunning
}

/// Whether `condition` holds, looking every 50 ms for up to `seconds` (without holding a thread).
public func eventually(within seconds: Double, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        guard Date() < deadline else { return false }
        try? await Task.sleep(nanoseconds: 50_000_000)
    }
    return true
}

/// Ends a child of the test process for sure and reaps it. A child inherits the signal mask of the
/// thread that started it, and the test process's threads block SIGTERM and SIGINT (seen on an
/// `openssl s_client` started by a test: both blocked), so `terminate()` and `interrupt()` do
/// nothing to a program that does not unblock them itself (openssl, strace, python, unlike the
/// relay): waiting for it after them waited forever.
public func killAndReap(_ process: Process) {
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
}

/// `work`, which blocks, on a new thread, awaited without holding a cooperative thread.
public func onThreadOfItsOwn<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

/// The folder that holds every test's temporary folders, one per test process, removed with
/// everything in it when the process exits: a test that fails half-way (or never removes what it
/// made) leaves nothing behind; a test process that crashes leaves this one folder, which the
/// next process with the same id replaces. Created at the first use, which comes before the
/// first relay starts, so its exit hook runs after theirs (atexit runs hooks in reverse order).
public enum TestScratch {
    public static let root: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("secmail-tests-\(getpid())", isDirectory: true)
        try? FileManager.default.removeItem(at: url)
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            fatalError("cannot create the tests' temporary folder \(url.path): \(error)")
        }
        atexit { try? FileManager.default.removeItem(at: TestScratch.root) }
        return url
    }()
}

/// A fresh temporary directory in `TestScratch.root` (removed at the latest when the test process exits).
public func makeTemporaryDirectory(_ label: String = "secmail-test") throws -> URL {
    let url = TestScratch.root.appendingPathComponent("\(label)-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Runs `arguments` (the first found on PATH) with no input or output and returns its exit
/// status, waiting with waitpid on a thread of its own. For commands that start daemons
/// (`pg_ctl start`), whose exit Foundation's `Process` was seen to miss (the child left a
/// zombie, the test waited for ever). A command still running after `timeLimit` seconds is
/// killed with its process group and answers 124, as timeout(1) does: a test never waits for ever.
public func runDetached(_ arguments: [String], timeLimit: TimeInterval = 120) async throws -> Int32 {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            let argv = arguments.map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            for (descriptor, flags) in [(Int32(0), O_RDONLY), (1, O_WRONLY), (2, O_WRONLY)] {
                posix_spawn_file_actions_addopen(&actions, descriptor, "/dev/null", flags, 0)
            }
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            // A group of its own, so that a command over its time is killed with its children.
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
            posix_spawnattr_setpgroup(&attributes, 0)
            var pid: pid_t = 0
            guard let program = argv[0] else { preconditionFailure("runDetached needs a command") }
            let spawned = posix_spawnp(&pid, program, &actions, &attributes, argv, environ)
            guard spawned == 0 else {
                continuation.resume(throwing: POSIXError(POSIXErrorCode(rawValue: spawned) ?? .ENOENT))
                return
            }
            let deadline = Date().addingTimeInterval(timeLimit)
            var status: Int32 = 0
            while true {
                let waited = waitpid(pid, &status, WNOHANG)
                if waited == pid { break }
                if waited == -1, errno != EINTR { break }
                if Date() > deadline {
                    kill(-pid, SIGKILL)
                    while waitpid(pid, &status, 0) == -1, errno == EINTR {}
                    continuation.resume(returning: 124)
                    return
                }
                usleep(20_000)
            }
            // WIFEXITED / WEXITSTATUS, which Swift does not import.
            continuation.resume(returning: status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F))
        }
    }
}
