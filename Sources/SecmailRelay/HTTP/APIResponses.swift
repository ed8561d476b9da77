import Hummingbird
import SecmailAPI

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
extension DepositResponse: ResponseEncodable {}
extension MailboxListResponse: ResponseEncodable {}
