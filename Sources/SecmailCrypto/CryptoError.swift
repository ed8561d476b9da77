/// The one error type of `SecmailCrypto`: what failed, why, and OpenSSL's own words where it spoke.
public struct CryptoError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Broad classes of failure that callers branch on.
    public enum Code: String, Sendable {
        /// Input bytes were not a key, PEM block or ciphertext of the expected shape.
        case malformedInput
        /// A key of the wrong type or size for the operation.
        case unsupportedKey
        /// An authentication tag, padding or signature check failed.
        case authenticationFailed
        /// The passphrase did not decrypt the private key.
        case wrongPassphrase
        /// A parameter outside what the primitive allows (nonce length, output size, ...).
        case invalidParameter
        /// OpenSSL failed for a reason unrelated to the input (allocation, provider missing).
        case internalFailure
        /// The terminal could not be used to read a passphrase.
        case passphraseUnavailable
    }

    /// The class of failure.
    public var code: Code
    /// A sentence for a person: what went wrong and, where possible, what to do next.
    public var reason: String
    /// OpenSSL's error string, when OpenSSL reported one.
    public var openSSLMessage: String?

    public init(_ code: Code, _ reason: String, openSSLMessage: String? = nil) {
        self.code = code
        self.reason = reason
        self.openSSLMessage = openSSLMessage
    }

    public var description: String {
        guard let openSSLMessage, !openSSLMessage.isEmpty else { return reason }
        return "\(reason) (OpenSSL: \(openSSLMessage))"
    }
}
