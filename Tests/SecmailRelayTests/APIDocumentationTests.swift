import Foundation
import SecmailAPI
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// docs/API.md, the shared `Endpoint` list and the running relay agree: every documented route
/// exists and every route is documented; every error answer, on every route and on routes that
/// do not exist, is the documented JSON error body with a documented code.
@Suite struct APIDocumentationTests {
    static let document = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/API.md")

    /// `METHOD /v1/...` in backticks, with `{name}` parameters as the router's `:name`.
    static func documentedRoutes() throws -> Set<String> {
        let text = try String(contentsOf: document, encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: "`(GET|POST|DELETE|PUT|PATCH) (/v1/[^`\\s\\[?]*)")
        let matches = pattern.matches(in: text, range: NSRange(text.startIndex..., in: text))
        return Set(matches.compactMap { match -> String? in
            guard let method = Range(match.range(at: 1), in: text), let path = Range(match.range(at: 2), in: text) else { return nil }
            let template = text[path].replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: "")
            return "\(text[method]) \(template)"
        })
    }

    /// The error codes of the table under "## Errors" and the format codes after it.
    static func documentedErrorCodes() throws -> Set<String> {
        let text = try String(contentsOf: document, encoding: .utf8)
        guard let start = text.range(of: "## Errors"), let end = text.range(of: "## Relay") else { return [] }
        let section = String(text[start.upperBound..<end.lowerBound])
        let pattern = try NSRegularExpression(pattern: "`([a-zA-Z]+)`")
        return Set(pattern.matches(in: section, range: NSRange(section.startIndex..., in: section)).compactMap {
            Range($0.range(at: 1), in: section).map { String(section[$0]) }
        })
    }

    @Test func everyDocumentedRouteIsAnEndpointAndEveryEndpointIsDocumented() throws {
        let endpoints = Set(Endpoint.all.map(\.description))
        let documented = try Self.documentedRoutes()
        #expect(documented == endpoints, "only documented: \(documented.subtracting(endpoints)); only served: \(endpoints.subtracting(documented))")
        let codes = try Self.documentedErrorCodes()
        let undocumented = Set(ErrorCode.allCases.map(\.rawValue)).subtracting(codes)
        #expect(undocumented.isEmpty, "undocumented codes: \(undocumented)")
    }

    @Test(arguments: EngineUnderTest.available) func everyRouteExistsAndAnswersErrorsWithTheDocumentedBody(engine: EngineUnderTest) async throws {
        let relay = try await RunningRelay(engine: engine)
        defer { Task { await relay.stop() } }
        let codes = try Self.documentedErrorCodes()
        for endpoint in Endpoint.all {
            // Placeholders: no such name or message, no token, no body: each route refuses, but
            // as itself, never as an unknown route.
            let path = endpoint.template.replacingOccurrences(of: ":name", with: "nobody")
                .replacingOccurrences(of: ":id", with: String(repeating: "0", count: 32))
            let answer = try await relay.curl(path, method: endpoint.method, json: endpoint.method == "POST" ? "{}" : nil)
            #expect(answer.status != 0, "\(endpoint) did not answer")
            guard answer.status >= 400 else { continue }
            let body = try? JSONDecoder().decode(ErrorResponse.self, from: Data(answer.body.utf8))
            #expect(body != nil, "\(endpoint) answered \(answer.status) with \(answer.body)")
            #expect(body?.code != .noSuchRoute, "\(endpoint) is not served")
            #expect(body.map { codes.contains($0.error) } == true, "\(endpoint): undocumented code \(body?.error ?? "")")
        }
        for (method, path) in [("GET", "/v1/nothing-here"), ("GET", "/"), ("PUT", "/v1/health"), ("POST", "/v1/mailbox")] {
            let answer = try await relay.curl(path, method: method)
            #expect(answer.status == 404, "\(method) \(path): \(answer.status)")
            #expect(try JSONDecoder().decode(ErrorResponse.self, from: Data(answer.body.utf8)).code == .noSuchRoute, "\(answer.body)")
        }
    }

    /// What the document says of a request that is not HTTP/1.1 (a `Content-Length` that is not
    /// one decimal number, here), sent by `openssl s_client`: a `400` with an empty body, and the
    /// connection closed.
    @Test func aRequestThatIsNotHTTPGetsABare400() async throws {
        let document = try String(contentsOf: Self.document, encoding: .utf8)
        #expect(document.contains("`400` with an empty body and `Connection: close`"))
        let relay = try await RunningRelay(engine: .sqlite)
        defer { Task { await relay.stop() } }
        for length in ["abc", "-1", "1, 2"] {
            let request = "POST /v1/messages?to=bob HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(length)\r\n\r\n"
            let answer = try await run("openssl", ["s_client", "-connect", "127.0.0.1:\(relay.port)", "-quiet", "-ign_eof",
                                                   "-CAfile", RunningRelay.certs.appendingPathComponent("dev-ca.pem").path],
                                       input: Data(request.utf8))
            let lines = answer.text.components(separatedBy: "\r\n")
            #expect(lines.first == "HTTP/1.1 400 Bad Request" && lines.contains("Connection: close") && lines.contains("Content-Length: 0")
                    && answer.text.hasSuffix("\r\n\r\n"), "Content-Length: \(length): \(answer.text)")
        }
    }
}
