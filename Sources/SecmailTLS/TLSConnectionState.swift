/// The decisions of a TLS connection, with no I/O: `TLSHandler` asks, then carries out.
///
///     idle ──start──▶ handshaking ──handshakeCompleted──▶ active ──requestClose──▶ closing
///       │                 │                                  │                       │
///       └──────────── requestClose / failure / channel inactive ─────────────────────┴─▶ closed
struct TLSConnectionState {
    enum Phase: Equatable {
        /// The channel is not active yet.
        case idle
        case handshaking
        case active
        /// close_notify sent; waiting (a bounded time) for the peer's.
        case closing
        case closed
    }

    private(set) var phase = Phase.idle
    /// The peer sent close_notify.
    private(set) var peerSentCloseNotify = false
    /// The handler has asked the channel to close; nothing more is sent or reported after that.
    private(set) var closeIssued = false

    /// Starts the handshake; false if it was already started (handlerAdded and channelActive
    /// can both arrive).
    mutating func start() -> Bool {
        guard phase == .idle else { return false }
        phase = .handshaking
        return true
    }

    /// What to do with ciphertext that just arrived.
    enum InputStep: Equatable {
        case ignore
        case continueHandshake
        case readApplicationData
    }

    var inputStep: InputStep {
        switch phase {
        case .idle, .closed: .ignore
        case .handshaking: .continueHandshake
        case .active, .closing: .readApplicationData
        }
    }

    mutating func handshakeCompleted() {
        precondition(phase == .handshaking, "handshake completed outside the handshake")
        phase = .active
    }

    /// Whether the handler must ask for more input itself: the handshake and the shutdown need
    /// reads whatever autoRead says, and a user read that produced no plaintext is still owed.
    func needsRead(userReadPending: Bool) -> Bool {
        switch phase {
        case .handshaking, .closing: true
        case .active: userReadPending
        case .idle, .closed: false
        }
    }

    /// Whether new writes are accepted (they are held until the handshake completes).
    var acceptsWrites: Bool {
        switch phase {
        case .idle, .handshaking, .active: true
        case .closing, .closed: false
        }
    }

    /// Whether application data can be encrypted now.
    var isEstablished: Bool { phase == .active }

    enum CloseStep: Equatable {
        /// No session to end cleanly: close the channel.
        case closeChannel
        /// Send close_notify, then wait for the peer's or the timeout.
        case sendCloseNotify
        /// A close is already under way: join it.
        case joinPendingClose
        /// Already closed.
        case alreadyClosed
    }

    mutating func requestClose() -> CloseStep {
        switch phase {
        case .idle, .handshaking:
            return .closeChannel
        case .active:
            phase = .closing
            return .sendCloseNotify
        case .closing:
            return .joinPendingClose
        case .closed:
            return .alreadyClosed
        }
    }

    mutating func receivedCloseNotify() {
        peerSentCloseNotify = true
    }

    /// Marks the channel close as issued; false if it already was (then do nothing).
    mutating func issueClose() -> Bool {
        guard !closeIssued else { return false }
        closeIssued = true
        phase = .closed
        return true
    }

    /// Whether an error should still be reported (not after the handler closed the channel).
    var reportsErrors: Bool { !closeIssued }

    /// What the end of the connection means.
    enum EndReport: Equatable {
        case none
        /// The connection ended during the handshake.
        case handshakeInterrupted
        /// The connection ended without close_notify: data may have been truncated.
        case uncleanShutdown
    }

    mutating func channelInactive() -> EndReport {
        defer { phase = .closed }
        switch phase {
        case .handshaking: return .handshakeInterrupted
        case .active: return .uncleanShutdown
        case .idle, .closing, .closed: return .none
        }
    }
}
