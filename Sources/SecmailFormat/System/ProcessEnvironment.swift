import Glibc

/// One environment variable, read where it is: `ProcessInfo.processInfo.environment` copies every
/// variable into a dictionary at each use, and its first use builds `ProcessInfo` (a tenth of a
/// millisecond or more of each command, for one or two variables).
public enum ProcessEnvironment {
    public static func value(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
