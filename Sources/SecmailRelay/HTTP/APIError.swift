import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SecmailAPI
import SecmailFormat

/// Every error the API returns: an HTTP status and a JSON `ErrorResponse` body.
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    /// An `ErrorCode`, or a format error's code.
    let code: String
    let reason: String
    /// For a `500`: what actually failed (SQLite's message, say), for the relay's log only.
    let internalDetail: String?
    /// Seconds for the `Retry-After` header of a `429` that a request rate refused.
    var retryAfter: Int?

    init(status: HTTPResponse.Status, code: ErrorCode, reason: String, internalDetail: String? = nil) {
        self.init(status: status, code: code.rawValue, reason: reason, internalDetail: internalDetail)
    }

    init(status: HTTPResponse.Status, code: String, reason: String, internalDetail: String? = nil) {
        self.status = status
        self.code = code
        self.reason = reason
        self.internalDetail = internalDetail
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try jsonResponse(status, ErrorResponse(error: code, reason: reason))
        if let retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        return response
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
            case .inviteRequired, .forbidden, .challengeExpired, .notCurrentKey: .forbidden
            case .unauthorized: .unauthorized
            case .storage, .schemaMismatch, .internalError: .internalServerError
            case .storageFull: .insufficientStorage
            }
            // Storage details stay in the relay's log, not in responses.
            switch status {
            case .internalServerError:
                return couldNotComplete(error.code, internalDetail: error.description)
            case .insufficientStorage:
                return storageFull(internalDetail: error.description)
            default:
                var answer = APIError(status: status, code: error.code, reason: error.reason)
                answer.retryAfter = error.retryAfter
                return answer
            }
        // The relay's own files (a deposit being written, say): its failure, not the request's.
        case let error as FormatError where error.code == .noSpace:
            return storageFull(internalDetail: error.reason)
        case let error as FormatError where error.code == .io:
            return couldNotComplete(.storage, internalDetail: error.reason)
        case let error as FormatError:
            return APIError(status: .badRequest, code: error.code.rawValue, reason: error.reason)
        case let error as HTTPError where error.status == .notFound:
            return APIError(status: .notFound, code: .noSuchRoute, reason: "no such route; the API is described in docs/API.md")
        case let error as HTTPError:
            return APIError(status: error.status, code: .http, reason: error.body ?? "\(error.status)")
        default:
            return couldNotComplete(.internalError, internalDetail: String(describing: error))
        }
    }
}

extension APIError {
    /// A `500`: the relay's own failure, whose details (`internalDetail`) go to its log only.
    static func couldNotComplete(_ code: ErrorCode, internalDetail: String) -> APIError {
        APIError(status: .internalServerError, code: code, reason: "the relay could not complete the request", internalDetail: internalDetail)
    }

    /// The relay's disk or database is full: the request stored nothing (a deposit's partial file
    /// is removed), and the same request may succeed once there is room.
    static func storageFull(internalDetail: String) -> APIError {
        APIError(status: .insufficientStorage, code: .storageFull,
                 reason: "the relay's storage is full, so nothing was stored; try again later, or tell the relay's operator",
                 internalDetail: internalDetail)
    }
}

extension HTTPResponse.Status {
    /// 507 (RFC 4918): the server cannot store what the request needs stored.
    static let insufficientStorage = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
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
    } catch is NIOTooManyBytesError {
        throw APIError(status: .contentTooLarge, code: .tooLarge, reason: "the request body is larger than \(limit) bytes")
    } catch {
        // Not a size: the body is not valid HTTP (a malformed chunk) or broke off.
        throw APIError(status: .badRequest, code: .malformedRequest, reason: "the request body could not be read: it is not valid HTTP/1.1, or it ended early")
    }
    do {
        return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
    } catch {
        throw APIError(status: .badRequest, code: .malformedRequest, reason: "the request body is not the expected JSON")
    }
}

/// One log line per request at `info`: the client's address group, the method, the path
/// without its query (which names recipients), the status, the time taken and the bytes declared
/// in and sent out where known; never a header value, a token or any content. A `500` or `507`
/// is logged at `error` with what failed, which its answer does not say.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = RelayRequestContext
    let grouping: AddressGrouping

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            log(request, context, status: response.status.code, bytesOut: response.body.contentLength, since: started, failure: nil)
            return response
        } catch {
            let answer = APIError.from(error)
            log(request, context, status: answer.status.code, bytesOut: nil, since: started, failure: answer.internalDetail)
            throw answer
        }
    }

    private func log(_ request: Request, _ context: Context, status: Int, bytesOut: Int?, since started: ContinuousClock.Instant,
                     failure: String?) {
        let elapsed = ContinuousClock.now - started
        var metadata: Logger.Metadata = [
            "address": .string(grouping.group(of: context.remoteAddress)), "method": .string(request.method.rawValue),
            "path": .string(request.uri.path), "status": .stringConvertible(status),
            "ms": .string(String(format: "%.1f", Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)),
        ]
        if let declared = request.headers[.contentLength] { metadata["in"] = .string(declared) }
        if let bytesOut { metadata["out"] = .stringConvertible(bytesOut) }
        if let failure {
            context.logger.error("request failed: \(failure)", metadata: metadata)
        } else {
            context.logger.info("request", metadata: metadata)
        }
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
