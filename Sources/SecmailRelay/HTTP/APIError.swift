import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SecmailAPI
import SecmailFormat

/// Every error the API returns: an HTTP status and a JSON `ErrorResponse` body.
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    /// An `ErrorCode`, or a format error's code.
    let code: String
    let reason: String

    init(status: HTTPResponse.Status, code: ErrorCode, reason: String) {
        self.init(status: status, code: code.rawValue, reason: reason)
    }

    init(status: HTTPResponse.Status, code: String, reason: String) {
        self.status = status
        self.code = code
        self.reason = reason
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = try JSONEncoder().encode(ErrorResponse(error: code, reason: reason))
        // With its length, an error answer keeps the connection open for the next request.
        return Response(status: status, headers: [.contentType: "application/json", .contentLength: String(body.count)],
                        body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// Maps the relay's and the format's errors to HTTP.
    static func from(_ error: Error) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as RelayError:
            let status: HTTPResponse.Status = switch error.code {
            case .notFound, .noSuchRoute: .notFound
            case .nameTaken, .conflict: .conflict
            case .quotaExceeded, .tooLarge: .contentTooLarge
            case .rateLimited: .tooManyRequests
            case .invalidRequest, .malformedRequest, .http: .badRequest
            case .inviteRequired, .forbidden: .forbidden
            case .unauthorized: .unauthorized
            case .storage, .schemaMismatch, .internalError: .internalServerError
            }
            // Storage details stay in the relay's log, not in responses.
            let reason = status == .internalServerError ? "the relay could not complete the request" : error.reason
            return APIError(status: status, code: error.code, reason: reason)
        case let error as FormatError:
            return APIError(status: .badRequest, code: error.code.rawValue, reason: error.reason)
        case let error as HTTPError where error.status == .notFound:
            return APIError(status: .notFound, code: .noSuchRoute, reason: "no such route; the API is described in docs/API.md")
        case let error as HTTPError:
            return APIError(status: error.status, code: .http, reason: error.body ?? "\(error.status)")
        default:
            return APIError(status: .internalServerError, code: .internalError, reason: "the relay could not complete the request")
        }
    }
}

/// Runs a route body, turning any error into an `APIError`.
func api<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch {
        throw APIError.from(error)
    }
}

/// Reads a JSON request body of at most `limit` bytes (413 beyond it).
func decodeBody<T: Decodable>(_ type: T.Type, from request: Request, limit: Int) async throws -> T {
    let buffer: ByteBuffer
    do {
        buffer = try await request.body.collect(upTo: limit)
    } catch {
        throw APIError(status: .contentTooLarge, code: .tooLarge, reason: "the request body is larger than \(limit) bytes")
    }
    do {
        return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
    } catch {
        throw APIError(status: .badRequest, code: .malformedRequest, reason: "the request body is not the expected JSON")
    }
}

/// Answers every error that no route turned into an `APIError` (an unknown route, a wrong
/// method, a body Hummingbird refused) with the same JSON error body.
struct JSONErrorMiddleware: RouterMiddleware {
    typealias Context = RelayRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            throw APIError.from(error)
        }
    }
}

extension Router where Context == RelayRequestContext {
    /// Serves `endpoint` with `handler`; any error it throws becomes an `APIError`.
    @discardableResult
    func on(_ endpoint: Endpoint, use handler: @escaping @Sendable (Request, Context) async throws -> some ResponseGenerator) -> Self {
        guard let method = HTTPRequest.Method(endpoint.method) else { preconditionFailure("\(endpoint) has no valid HTTP method") }
        return on(RouterPath(endpoint.template), method: method) { request, context in
            try await api { try await handler(request, context) }
        }
    }
}
