/// `POST /v1/auth/challenge`: ask for a single-use nonce for a registered name.
public struct ChallengeRequest: Codable, Sendable {
    public let name: String

    public init(name: String) {
        self.name = name
    }
}

/// The nonce (base64, 32 bytes) and how many seconds it stays valid.
public struct ChallengeResponse: Codable, Sendable {
    public let nonce: String
    public let expiresIn: Int64

    public init(nonce: String, expiresIn: Int64) {
        self.nonce = nonce
        self.expiresIn = expiresIn
    }
}

/// `POST /v1/auth/token`: the nonce signed with the name's current signing key (base64 each).
public struct TokenRequest: Codable, Sendable {
    public let name: String
    public let nonce: String
    public let signature: String

    public init(name: String, nonce: String, signature: String) {
        self.name = name
        self.nonce = nonce
        self.signature = signature
    }
}

/// A bearer token and how many seconds it stays valid.
public struct TokenResponse: Codable, Sendable {
    public let token: String
    public let expiresIn: Int64

    public init(token: String, expiresIn: Int64) {
        self.token = token
        self.expiresIn = expiresIn
    }
}

/// `GET /v1/auth/whoami`: whom the token belongs to.
public struct WhoAmIResponse: Codable, Sendable {
    public let name: String

    public init(name: String) {
        self.name = name
    }
}
