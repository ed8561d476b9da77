import FoundationEssentials
import Glibc
import Synchronization

/// Temporary files and staging folders that hold plaintext or half-transferred envelopes. Each
/// carries this process's id in its name (`.PREFIX-PID-UUID`), is registered while it exists, and
/// is removed by `removeAll()` when the process is interrupted (the CLI calls it on SIGINT and
/// SIGTERM). One left by a process that died anyway (SIGKILL, a crash, a power cut) is found by
/// `sweep` at a later run: its process is gone.
public enum TemporaryFiles {
    private static let registered = Mutex<Set<String>>([])

    /// A new temporary path in `directory`, registered for removal on interruption.
    public static func path(in directory: URL, prefix: String, isDirectory: Bool = false) -> URL {
        let url = directory.appendingPathComponent(".\(prefix)-\(getpid())-\(UUID().uuidString)", isDirectory: isDirectory)
        registered.withLock { _ = $0.insert(url.path) }
        return url
    }

    /// `url` is gone or kept for good: no longer removed on interruption.
    public static func release(_ url: URL) {
        registered.withLock { _ = $0.remove(url.path) }
    }

    /// Removes `url` and releases it.
    public static func remove(_ url: URL) {
        try? FileManager.default.removeItem(at: url)
        release(url)
    }

    /// Removes every registered path (on interruption; called from a signal handler's queue).
    public static func removeAll() {
        let paths = registered.withLock { $0 }
        for path in paths { try? FileManager.default.removeItem(atPath: path) }
    }

    /// Removes temporary paths with one of `prefixes` in `directory` whose process is no longer
    /// running (a process id still in use by another program only delays the removal).
    public static func sweep(_ directory: URL, prefixes: [String]) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return }
        for name in names {
            guard let prefix = prefixes.first(where: { name.hasPrefix(".\($0)-") }) else { continue }
            let rest = name.dropFirst(prefix.count + 2)
            guard let pid = Int32(rest.prefix(while: { $0 != "-" })), pid != getpid() else { continue }
            if kill(pid, 0) != 0, errno == ESRCH {
                try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
            }
        }
    }
}
