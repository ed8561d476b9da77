import Glibc

/// Another of secmail's programs, started in this process's place: `secmail relay …` and
/// `secmail demo` are the `secmail-relay` program's, which the client leaves out (the relay's
/// storage engines and HTTP server cost every client command start-up time).
public enum CompanionProgram {
    /// Replaces this process with the program `name`, found next to this process's own program
    /// file, else on PATH, given `arguments`. Returns only when no such program could be started,
    /// with a reason for people.
    public static func replaceProcess(with name: String, arguments: [String]) -> String {
        let argv: [UnsafeMutablePointer<CChar>?] = ([name] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let folder = ownFolder()
        if let sibling = folder.map({ $0 + "/" + name }), access(sibling, X_OK) == 0 {
            execv(sibling, argv)
            return "cannot start \(sibling): \(String(cString: strerror(errno)))"
        }
        execvp(name, argv)
        let failure = errno
        guard failure == ENOENT else { return "cannot start \(name): \(String(cString: strerror(failure)))" }
        return "the \(name) program is neither next to this one\(folder.map { " (in \($0))" } ?? "") nor on PATH"
    }

    /// The folder that holds this process's program file (/proc/self/exe).
    static func ownFolder() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, Int(PATH_MAX))
        guard length > 0 else { return nil }
        let path = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = path.lastIndex(of: "/") else { return nil }
        return String(path[..<slash])
    }
}
