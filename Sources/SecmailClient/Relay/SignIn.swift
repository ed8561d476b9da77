import FoundationEssentials
import Glibc
import SecmailAPI
import SecmailCrypto
import SecmailFormat

/// The client's half of challenge-response sign-in (P8, docs/API.md "Authentication").
public enum SignIn {
    /// The token request that answers `challenge`: its nonce signed with `identity`'s signing key
    /// for the relay of log `origin` whose TLS key has the SHA-256 `relayKeyPin`
    /// (AuthChallenge.signedMessage).
    public static func answer(_ challenge: ChallengeResponse, as identity: SenderIdentity, origin: String, relayKeyPin: [UInt8]) throws -> TokenRequest {
        guard let nonce = Data(base64Encoded: challenge.nonce) else {
            throw ClientError(.malformedAnswer, "the relay's sign-in challenge is not base64")
        }
        let name = identity.bundle.name
        let signature = try identity.signer.sign(AuthChallenge.signedMessage(origin: origin, relayKeyPin: relayKeyPin, name: name, nonce: Array(nonce)))
        return TokenRequest(name: name.value, nonce: challenge.nonce, signature: Data(signature).base64EncodedString())
    }
}
