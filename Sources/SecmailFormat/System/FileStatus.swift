import Glibc

/// What `lstat` says of a path: its kind, size, permission bits and modification time.
///
/// FileManager's `attributesOfItem` answers the same questions but also looks up the owner's and
/// group's names (reading /etc/passwd and /etc/group through NSS on every call), which cost the
/// one-shot commands a visible part of their run time for values nobody reads.
public struct FileStatus: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case regular, directory, symbolicLink, other }

    public let kind: Kind
    public let size: UInt64
    /// The permission bits (`st_mode & 0o7777`).
    public let permissions: Int
    /// Seconds since 1970 of the last modification.
    public let modified: Int64
    /// The owner's user id.
    public let owner: UInt32

    /// The status of `path` itself (a symbolic link is reported as one, not followed), or with
    /// `followingLinks` of what it leads to (`/dev/stdin`, `/dev/fd/63` for a pipe). Throws a
    /// `FormatError(.io)` whose reason is the path and the system's word for why (`/x: No such
    /// file or directory`), read where the call failed.
    public init(path: String, followingLinks: Bool = false) throws {
        var info = stat()
        guard (followingLinks ? stat(path, &info) : lstat(path, &info)) == 0 else {
            throw FormatError(.io, "\(path): \(String(cString: strerror(errno)))")
        }
        kind = switch info.st_mode & S_IFMT {
        case S_IFREG: .regular
        case S_IFDIR: .directory
        case S_IFLNK: .symbolicLink
        default: .other
        }
        size = UInt64(info.st_size)
        permissions = Int(info.st_mode & 0o7777)
        modified = Int64(info.st_mtim.tv_sec)
        owner = info.st_uid
    }
}
