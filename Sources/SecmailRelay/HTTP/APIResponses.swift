import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SecmailAPI

/// A JSON answer with its length, so the connection stays open for the next request.
func jsonResponse(_ status: HTTPResponse.Status, _ body: some Encodable) throws -> Response {
    let bytes = try JSONEncoder().encode(body)
    return Response(status: status, headers: [.contentType: "application/json", .contentLength: String(bytes.count)],
                    body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
}

// The shared API bodies (SecmailAPI) are the relay's JSON answers as they are.
extension RelayInfo: ResponseEncodable {}
extension LookupResponse: ResponseEncodable {}
extension HistoryResponse: ResponseEncodable {}
extension RegisteredResponse: ResponseEncodable {}
extension LogEntriesResponse: ResponseEncodable {}
extension ConsistencyResponse: ResponseEncodable {}
extension ChallengeResponse: ResponseEncodable {}
extension TokenResponse: ResponseEncodable {}
extension WhoAmIResponse: ResponseEncodable {}
extension ReaderFeaturesBody: ResponseEncodable {}
extension DepositResponse: ResponseEncodable {}
extension MailboxListResponse: ResponseEncodable {}
