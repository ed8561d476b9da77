@testable import SecmailRelay
import Testing

/// The code of the `RelayError` that `body` throws; an issue is recorded (and nil returned) when
/// it throws nothing or something else.
func relayErrorCode(sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async -> RelayError.Code? {
    await #expect(throws: RelayError.self, sourceLocation: sourceLocation) { try await body() }?.code
}
