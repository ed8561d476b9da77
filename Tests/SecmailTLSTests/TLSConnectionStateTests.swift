@testable import SecmailTLS
import Testing

@Suite struct TLSConnectionStateTests {
    @Test func startsOnceAndRoutesInputByPhase() {
        var state = TLSConnectionState()
        #expect(state.inputStep == .ignore)
        let first = state.start(), second = state.start()
        #expect(first && !second)
        #expect(state.inputStep == .continueHandshake)
        #expect(!state.isEstablished)
        #expect(state.acceptsWrites)
        state.handshakeCompleted()
        #expect(state.inputStep == .readApplicationData)
        #expect(state.isEstablished)
    }

    @Test func closingAnEstablishedConnectionSendsCloseNotifyThenRefusesWrites() {
        var state = TLSConnectionState()
        _ = state.start()
        state.handshakeCompleted()
        let firstClose = state.requestClose()
        #expect(firstClose == .sendCloseNotify)
        #expect(state.phase == .closing)
        #expect(!state.acceptsWrites)
        #expect(state.inputStep == .readApplicationData)  // the peer's close_notify still arrives
        #expect(state.needsRead(userReadPending: false))
        let secondClose = state.requestClose()
        #expect(secondClose == .joinPendingClose)
        let issued = state.issueClose(), issuedAgain = state.issueClose()
        #expect(issued && !issuedAgain)
        #expect(!state.reportsErrors)
        let lateClose = state.requestClose()
        #expect(lateClose == .alreadyClosed)
        let end = state.channelInactive()
        #expect(end == .none)
    }

    @Test func closingBeforeTheHandshakeEndsClosesTheChannel() {
        var idle = TLSConnectionState()
        let idleClose = idle.requestClose()
        #expect(idleClose == .closeChannel)
        var handshaking = TLSConnectionState()
        _ = handshaking.start()
        let handshakingClose = handshaking.requestClose()
        #expect(handshakingClose == .closeChannel)
    }

    @Test func theEndOfTheConnectionIsReportedByPhase() {
        var handshaking = TLSConnectionState()
        _ = handshaking.start()
        let duringHandshake = handshaking.channelInactive()
        #expect(duringHandshake == .handshakeInterrupted)
        #expect(handshaking.inputStep == .ignore)

        var active = TLSConnectionState()
        _ = active.start()
        active.handshakeCompleted()
        let whileActive = active.channelInactive()
        #expect(whileActive == .uncleanShutdown)

        var neverStarted = TLSConnectionState()
        let beforeStart = neverStarted.channelInactive()
        #expect(beforeStart == .none)
    }

    @Test func readsAreRequestedOnlyWhenSomethingNeedsThem() {
        var state = TLSConnectionState()
        #expect(!state.needsRead(userReadPending: true))
        _ = state.start()
        #expect(state.needsRead(userReadPending: false))
        state.handshakeCompleted()
        #expect(!state.needsRead(userReadPending: false))
        #expect(state.needsRead(userReadPending: true))
    }
}
