import FoundationEssentials
import Glibc
import SecmailFormat

/// The client's state directory: `$SECMAIL_HOME`, or `~/.secmail` when unset.
public struct SecmailHome: Sendable {
    public let url: URL

    public init(url: URL) {
        self.url = url
    }

    /// The home named by `SECMAIL_HOME`, else `~/.secmail`: `$HOME`'s, or where the user database
    /// puts your home when HOME is unset (HOME is what a login shell sets, and what gpg reads).
    public static func resolve() -> SecmailHome {
        if let path = ProcessEnvironment.value("SECMAIL_HOME"), !path.isEmpty {
            return SecmailHome(url: URL(fileURLWithPath: path, isDirectory: true))
        }
        let yours = ProcessEnvironment.value("HOME").flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0, isDirectory: true) }
            ?? FileManager.default.homeDirectoryForCurrentUser
        return SecmailHome(url: yours.appendingPathComponent(".secmail", isDirectory: true))
    }

    /// Refuses a home that another user owns, or that group or others may enter (gpg warns of
    /// the same, ssh refuses such key files): whoever may enter it sees whom you write to and
    /// which mail you have, and whoever may also write there can replace the keys you pinned.
    /// secmail creates its home 700; one that is not there yet is created so, and a path that is
    /// there but not a folder is refused. The check follows a symbolic link to what it names.
    public func checkPrivate() throws {
        guard let status = try? FileStatus(path: url.path, followingLinks: true) else { return }
        guard status.kind == .directory else {
            throw ClientError(.invalidInput, "\(url.path) is not a folder: a secmail home is a folder (give SECMAIL_HOME or --home another path)")
        }
        let you = geteuid()
        guard status.owner == you else {
            throw ClientError(.insecurePermissions, "\(url.path) belongs to another user (uid \(status.owner)), not to you (uid \(you)): a secmail home is used by its owner only")
        }
        guard status.permissions & 0o077 == 0 else {
            throw ClientError(.insecurePermissions, "\(url.path) has permissions \(String(status.permissions, radix: 8)): others may see your contacts and mail, and where they may write, replace the keys you pinned; a secmail home must be 700 (run: chmod 700 '\(url.path)')")
        }
    }

    /// For a command that creates an identity here: a home that is there, yours, empty and open
    /// to others (made with mkdir under the usual umask, 755) becomes 700, since nothing in it
    /// was exposed, and is looked at again, so that anything planted in it through a group- or
    /// world-writable mode before the change is refused. Returns the permissions it had when it
    /// changed them; anything else is left to `checkPrivate`.
    public func makePrivateIfEmpty() throws -> Int? {
        func isEmpty() -> Bool { (try? FileManager.default.contentsOfDirectory(atPath: url.path))?.isEmpty == true }
        guard let status = try? FileStatus(path: url.path, followingLinks: true), status.kind == .directory,
              status.owner == geteuid(), status.permissions & 0o077 != 0, isEmpty(), chmod(url.path, 0o700) == 0 else { return nil }
        guard isEmpty() else {
            throw ClientError(.insecurePermissions, "\(url.path) was open to others (permissions \(String(status.permissions, radix: 8))) and something appeared in it as it was made private: start again with a new empty folder")
        }
        return status.permissions
    }

    /// Creates the home (mode 0700) if it does not exist.
    func ensureExists() throws {
        try FileSystem.createPrivateDirectory(url)
    }

    /// Takes the lock file `name` in the home (flock; released when the returned lock goes, or
    /// the process ends), waiting up to `patience` for another command to let go of it; then
    /// `homeBusy`, saying what the holder is `doing` ("changing the keys of", with the home's path).
    func lock(_ name: String, waitingUpTo patience: Duration, holderIs doing: String) throws -> ExclusiveFileLock {
        try ensureExists()
        let acquired: (lock: ExclusiveFileLock?, holder: Int32?)
        do {
            acquired = try ExclusiveFileLock.acquire(url.appendingPathComponent(name).path, waitingUpTo: patience)
        } catch let error as FormatError {
            throw ClientError(.io, error.reason)
        }
        guard let lock = acquired.lock else {
            let holder = acquired.holder.map { " (process \($0))" } ?? ""
            throw ClientError(.homeBusy, "another secmail command\(holder) is \(doing) \(url.path); run this again once it has finished")
        }
        return lock
    }
}

/// File operations with the permissions secmail promises: directories 0700, secrets 0600,
/// and whole-file replacement through a temporary file and rename.
enum FileSystem {
    /// Creates `url` and any missing parents, 0700; an existing directory (or a link to one) is
    /// left as it is. With mkdir(2) directly: FileManager's createDirectory costs a short command
    /// about half a millisecond on first use. Returns the outermost directory it created (`url`
    /// or a parent of it), nil when `url` was there.
    @discardableResult
    static func createPrivateDirectory(_ url: URL) throws -> URL? {
        let path = url.path
        func isDirectory() -> Bool {
            var info = stat()
            return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
        }
        if mkdir(path, 0o700) == 0 { return url }
        var failure = errno
        if failure == ENOENT, url.pathComponents.count > 1 {
            let outermost = try createPrivateDirectory(url.deletingLastPathComponent())
            if mkdir(path, 0o700) == 0 { return outermost ?? url }
            failure = errno
        }
        if failure == EEXIST, isDirectory() { return nil }
        let reason = failure == EEXIST ? "a file of that name is in the way" : String(cString: strerror(failure))
        throw ClientError(.io, "cannot create directory \(path): \(reason)")
    }

    /// Removes the empty directory `url`, then each empty parent up to and including `outermost`
    /// (rmdir(2) refuses a directory that is not empty, which ends the walk).
    static func removeEmptyDirectories(from url: URL, upTo outermost: URL) {
        var folder = url
        while rmdir(folder.path) == 0, folder.path != outermost.path {
            folder = folder.deletingLastPathComponent()
        }
    }

    /// Writes `bytes` to a new file with `permissions`, failing if it exists.
    static func createFile(_ url: URL, bytes: [UInt8], permissions: Int) throws {
        guard !FileManager.default.fileExists(atPath: url.path) else {
            throw ClientError(.io, "\(url.path) exists already")
        }
        guard FileManager.default.createFile(atPath: url.path, contents: Data(bytes),
                                             attributes: [.posixPermissions: permissions]) else {
            throw ClientError(.io, "cannot write \(url.path)")
        }
    }

    /// Like `createFile`, then flushed to stable storage: for keys that must survive a crash
    /// once something outside this machine (the relay) may depend on them.
    static func createDurableFile(_ url: URL, bytes: [UInt8], permissions: Int) throws {
        do {
            let file = try PositionalFile(creatingAtPath: url.path, permissions: UInt32(permissions))
            try file.write(bytes[...])
            try file.synchronize()
        } catch let error as FormatError {
            throw ClientError(.io, error.reason)
        }
    }

    /// Puts `bytes` (0600) at `url` in one step: through a synced temporary file named with
    /// `temporaryPrefix` (so that one left by a crash is swept, `TemporaryFiles`), renamed over
    /// `url`. The directory itself is not synced.
    static func placeDurably(_ bytes: [UInt8], at url: URL, temporaryPrefix: String) throws {
        let draft = TemporaryFiles.path(in: url.deletingLastPathComponent(), prefix: temporaryPrefix)
        defer { TemporaryFiles.remove(draft) }
        try createDurableFile(draft, bytes: bytes, permissions: 0o600)
        do {
            try AtomicRename.replace(url, with: draft)
        } catch let error as FormatError {
            throw ClientError(.io, error.reason)
        }
    }

    /// Flushes a file's data, or a directory's entries (new and renamed files), to stable storage.
    static func synchronize(_ url: URL) throws {
        do {
            try PositionalFile(readingAtPath: url.path).synchronize()
        } catch let error as FormatError {
            throw ClientError(.io, error.reason)
        }
    }

    /// Replaces `url` with `bytes` (0600) in one step (`placeDurably`), its directory synced too.
    static func replaceFile(_ url: URL, bytes: [UInt8]) throws {
        try placeDurably(bytes, at: url, temporaryPrefix: "replacing")
        try synchronize(url.deletingLastPathComponent())
    }

    static func read(_ url: URL) throws -> [UInt8] {
        do {
            return Array(try Data(contentsOf: url))
        } catch {
            throw ClientError(.io, "cannot read \(url.path): \(String(describing: error))")
        }
    }

    /// Refuses a secret file that group or others may read, as ssh does.
    static func checkPrivate(_ url: URL) throws {
        guard let mode = (try? FileStatus(path: url.path))?.permissions else {
            throw ClientError(.io, "cannot read the permissions of \(url.path)")
        }
        guard mode & 0o077 == 0 else {
            throw ClientError(.insecurePermissions, "\(url.path) has permissions \(String(mode, radix: 8)); a private key file must be 600 (run: chmod 600 '\(url.path)')")
        }
    }
}
