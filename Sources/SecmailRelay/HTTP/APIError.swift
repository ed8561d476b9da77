import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SecmailFormat

/// Every error the API returns: an HTTP status and a JSON body {"error": code, "reason": text}.
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    let code: String
    let reason: String

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = try JSONEncoder().encode(["error": code, "reason": reason])
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// Maps the relay's and the format's errors to HTTP.
    static func from(_ error: Error) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as RelayError:
            let status: HTTPResponse.Status = switch error.code {
            case .notFound: .notFound
            case .nameTaken, .conflict: .conflict
            case .quotaExceeded: .contentTooLarge
            case .rateLimited: .tooManyRequests
            case .invalidRequest: .badRequest
            case .inviteRequired, .forbidden: .forbidden
            case .unauthorized: .unauthorized
            case .storage, .schemaMismatch: .internalServerError
            }
            // Storage details stay in the relay's log, not in responses.
            let reason = status == .internalServerError ? "the relay could not complete the request" : error.reason
            return APIError(status: status, code: error.code.rawValue, reason: reason)
        case let error as FormatError:
            return APIError(status: .badRequest, code: error.code.rawValue, reason: error.reason)
        case let error as HTTPError:
            return APIError(status: error.status, code: "http", reason: error.body ?? "\(error.status)")
        default:
            return APIError(status: .internalServerError, code: "internal", reason: "the relay could not complete the request")
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
        throw APIError(status: .contentTooLarge, code: "tooLarge", reason: "the request body is larger than \(limit) bytes")
    }
    do {
        return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
    } catch {
        throw APIError(status: .badRequest, code: "malformedRequest", reason: "the request body is not the expected JSON")
    }
}
