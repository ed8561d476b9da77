import Foundation
import Hummingbird
import SecmailAPI
import SecmailFormat

/// `/v1/auth`: challenge-response authentication giving a short-lived bearer token.
struct AuthController: Sendable {
    let authenticator: Authenticator
    static let bodyLimit = 8 * 1024

    func addRoutes(to router: Router<RelayRequestContext>) {
        router.on(.challenge) { request, _ in
            let body = try await decodeBody(ChallengeRequest.self, from: request, limit: Self.bodyLimit)
            let nonce = try await authenticator.challenge(for: IdentityName(normalised: body.name))
            return ChallengeResponse(nonce: Data(nonce).base64EncodedString(), expiresIn: Authenticator.challengeLifetime)
        }
        router.on(.token) { request, _ in
            let body = try await decodeBody(TokenRequest.self, from: request, limit: Self.bodyLimit)
            guard let nonce = Data(base64Encoded: body.nonce), let signature = Data(base64Encoded: body.signature) else {
                throw APIError(status: .badRequest, code: .malformedRequest, reason: "nonce and signature are base64")
            }
            let issued = try await authenticator.redeem(name: IdentityName(normalised: body.name), nonce: Array(nonce), signature: Array(signature))
            return TokenResponse(token: issued.token, expiresIn: issued.expiresIn)
        }
        router.on(.whoami) { request, _ in WhoAmIResponse(name: try await authenticatedName(request, authenticator).value) }
    }
}

/// The name behind the request's `Authorization: Bearer <token>` header, within its rate.
func authenticatedName(_ request: Request, _ authenticator: Authenticator) async throws -> IdentityName {
    let name = try await authenticator.authenticate(token: try bearerToken(request))
    try authenticator.identityLimiter.take(name.value, what: name.value)
    return name
}

/// The token of the request's `Authorization: Bearer <token>` header.
func bearerToken(_ request: Request) throws -> String {
    guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
        throw RelayError(.unauthorized, "this route needs Authorization: Bearer <token> (POST /v1/auth/challenge, then /v1/auth/token)")
    }
    return String(header.dropFirst("Bearer ".count))
}
