import SecmailFormat
import Testing
@testable import secmail

/// How `read --all` names a message whose reading failed.
@Suite struct ReadAllReportTests {
    /// Most reasons name the message already ("message ID is dated … in the future"): it is not
    /// named twice; a reason that does not is prefixed with it.
    @Test func aFailureNamesTheMessageOnce() throws {
        let id = try MessageID(hex: "2f39813df2a5ce8aef422111a367135c")
        #expect(ReadCommand.naming(id, "message \(id) is dated 59 minutes in the future") == "message \(id) is dated 59 minutes in the future")
        #expect(ReadCommand.naming(id, "the signature does not verify") == "message \(id): the signature does not verify")
    }
}
