import Foundation
import SecmailAPI
import Testing

@Suite struct EndpointTests {
    @Test func pathsFillParametersInOrderAndEncodeQueries() {
        #expect(Endpoint.lookup.path("alice") == "/v1/directory/alice")
        #expect(Endpoint.history.path("bob", query: [(Endpoint.Query.treeSize, "12")]) == "/v1/directory/bob/history?treeSize=12")
        #expect(Endpoint.deposit.path(query: [("to", "a"), ("to", "b")]) == "/v1/messages?to=a&to=b")
        #expect(Endpoint.fetchMessage.path("00ff") == "/v1/mailbox/00ff")
        // Nothing a caller passes can add a path segment or a query parameter.
        #expect(Endpoint.lookup.path("a/b?c=d") == "/v1/directory/a%2Fb%3Fc%3Dd")
        #expect(Endpoint.entries.path(query: [("start", "1&end=2")]) == "/v1/log/entries?start=1%26end%3D2")
        // Every UTF-8 byte outside RFC 3986's unreserved set is encoded, as Foundation's
        // addingPercentEncoding does with that set.
        #expect(Endpoint.lookup.path("é ~-._%+") == "/v1/directory/%C3%A9%20~-._%25%2B")
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        for value in ["Zoë", "a b", "日本", "x\u{0}y", "%41", "#frag", "🙂", "[::1]"] {
            #expect(Endpoint.lookup.path(value) == "/v1/directory/" + value.addingPercentEncoding(withAllowedCharacters: unreserved)!, "\(value)")
        }
    }

    @Test func everyEndpointIsListedOnceWithAValidMethod() {
        #expect(Set(Endpoint.all).count == Endpoint.all.count)
        #expect(Endpoint.all.allSatisfy { ["GET", "POST", "PUT", "DELETE"].contains($0.method) && $0.template.hasPrefix("/v1/") })
    }

    @Test func errorBodiesRoundTripAndKnowTheirCodes() throws {
        let body = try JSONEncoder().encode(ErrorResponse(.quotaExceeded, reason: "full"))
        let decoded = try JSONDecoder().decode(ErrorResponse.self, from: body)
        #expect(decoded == ErrorResponse(error: "quotaExceeded", reason: "full"))
        #expect(decoded.code == .quotaExceeded)
        #expect(ErrorResponse(error: "truncated", reason: "x").code == nil)
        #expect(try JSONSerialization.jsonObject(with: body) as? [String: String] == ["error": "quotaExceeded", "reason": "full"])
    }
}
