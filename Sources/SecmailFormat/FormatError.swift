/// The one error type of `SecmailFormat`: a parse, policy or verification failure.
public struct FormatError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Classes of failure that callers (and the CLI's exit codes) branch on.
    public enum Code: String, Sendable {
        /// The input ended before the structure did.
        case truncated
        /// Bytes follow the end of the structure.
        case trailingBytes
        /// The input does not start with the expected magic bytes: it is not this kind of object.
        case badMagic
        /// A format version this build does not know.
        case unsupportedVersion
        /// A cryptographic suite this build does not know.
        case unsupportedSuite
        /// A field is out of range or badly formed (length, name, key size, UTF-8, ...).
        case invalidField
        /// None of the reader's keys is among the envelope's recipients.
        case notARecipient
        /// The envelope names a different sender than the bundle the reader trusts.
        case senderMismatch
        /// A signature, tag or commitment did not verify: the bytes were changed.
        case authenticationFailed
        /// Reading or writing the underlying file failed.
        case io
        /// Writing failed because the disk is full (no space left, or a disk quota reached).
        case noSpace
        /// An input exceeds a size limit of the format.
        case tooLarge
    }

    public var code: Code
    /// A sentence for a person, saying what to do next where there is something to do.
    public var reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { reason }
}
