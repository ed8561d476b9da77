import Glibc
import NIOCore
import NIOPosix

/// Why a TCP connection (to a relay, to PostgreSQL) could not be made, in words for a person:
/// "connection refused", "its host name does not resolve", not NIO's
/// `SingleConnectionFailure(target: …) (errno: 111)`.
public enum ConnectFailure {
    /// The words for `error`, nil when it is none of the failures to connect NIO reports.
    public static func describe(_ error: any Error) -> String? {
        switch error {
        case let error as NIOConnectionError:
            guard let failure = error.connectionErrors.first else { return "its host name does not resolve" }
            return describe(failure.error)
        case ChannelError.connectTimeout(let timeout):
            return "no answer within \(timeout.nanoseconds / 1_000_000_000) s"
        case let error as IOError:
            return String(cString: strerror(error.errnoCode)).lowercased()
        default:
            return nil
        }
    }
}
