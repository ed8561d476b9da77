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
    /// one decimal number, a request line that is not one), sent by `openssl s_client`: a `400`
    /// with the JSON error body (code `http`, a reason that names what was wrong), and the
    /// connection closed.
    @Test func aRequestThatIsNotHTTPGetsA400WithTheErrorBody() async throws {
        let document = try String(contentsOf: Self.document, encoding: .utf8)
        #expect(document.contains("`400 http` with a reason that says what was wrong, and `Connection: close`"))
        let relay = try await RunningRelay(engine: .sqlite)
        defer { Task { await relay.stop() } }
        let requests = ["abc", "-1", "1, 2"].map { ("POST /v1/messages?to=bob HTTP/1.1\r\nHost: localhost\r\nContent-Length: \($0)\r\n\r\n", "Content-Length") }
            + [("GARBAGE\r\n\r\n", "request line"), ("GET /v1/relay HTTP/1.1\r\nHost: localhost\r\nBad Header: x\r\n\r\n", "header"),
               // Behind a good request, whose answer comes first and whole.
               ("GET /v1/relay HTTP/1.1\r\nHost: localhost\r\n\r\nGARBAGE\r\n\r\n", "request line")]
        for (request, named) in requests {
            let answer = try await run("openssl", ["s_client", "-connect", "127.0.0.1:\(relay.port)", "-quiet", "-ign_eof",
                                                   "-CAfile", RunningRelay.certs.appendingPathComponent("dev-ca.pem").path],
                                       input: Data(request.utf8))
            // Split at each status line (a reason may itself say "HTTP/1.1").
            let text = answer.text
            let starts = text.ranges(of: try Regex("HTTP/1\\.1 [0-9]{3} ")).map(\.lowerBound)
            let ends = Array(starts.dropFirst()) + [text.endIndex]
            let answers = zip(starts, ends).map { start, end in String(text[start..<end]) }
            #expect(answers.count == (request.hasPrefix("GET /v1/relay HTTP/1.1\r\nHost: localhost\r\n\r\n") ? 2 : 1), "\(answer.text)")
            if answers.count == 2 {
                let info = answers[0].components(separatedBy: "\r\n\r\n")
                #expect(info[0].hasPrefix("HTTP/1.1 200 OK") && (try? JSONDecoder().decode(RelayInfo.self, from: Data(info[1].utf8))) != nil, "\(answers[0])")
            }
            let parts = (answers.last ?? "").components(separatedBy: "\r\n\r\n")
            let lines = parts[0].components(separatedBy: "\r\n")
            let body = parts.count == 2 ? parts[1] : ""
            #expect(lines.first == "HTTP/1.1 400 Bad Request" && lines.contains("Connection: close") && lines.contains("Content-Type: application/json")
                    && lines.contains("Content-Length: \(body.utf8.count)"), "\(request.debugDescription): \(answer.text)")
            let error = try? JSONDecoder().decode(ErrorResponse.self, from: Data(body.utf8))
            #expect(error?.code == .http && error?.reason.contains(named) == true, "\(request.debugDescription): \(answer.text)")
        }
    }
}
