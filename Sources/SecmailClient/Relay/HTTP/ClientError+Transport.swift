import FoundationEssentials
import Glibc
import NIOCore
import SecmailAPI
import SecmailTLS

/// Where a client's trust in the relay's TLS key comes from, for saying why a handshake failed.
enum RelayKeyTrust {
    /// A CA file (a first contact with --ca).
    case certificateAuthority
    /// A pin the user gave for a first contact (--tls-pin).
    case givenPin
    /// The pin taken at registration (relay.json).
    case pinnedAtRegistration
}

extension ClientError {
    /// One sentence for a person, naming the relay and what to do, for a transport failure
    /// (never a NIO type name or a raw status line).
    static func transport(_ error: Error, relay: String, trust: RelayKeyTrust) -> ClientError {
        if let error = error as? ClientError { return error }
        let failure = TransportFailure(error, relay: relay, trust: trust)
        return ClientError(failure.code, failure.advice.map { "\(failure.fact): \($0)" } ?? failure.fact)
    }
}

/// A transport failure in words: what happened, naming the relay, and what to do about it.
struct TransportFailure {
    var code: ClientError.Code
    var fact: String
    var advice: String?

    init(_ code: ClientError.Code, _ fact: String, advice: String? = nil) {
        self.code = code
        self.fact = fact
        self.advice = advice
    }

    init(_ error: Error, relay: String, trust: RelayKeyTrust) {
        switch error {
        case RelayTransportError.cannotConnect(let cause):
            self.init(.relayUnreachable, "cannot reach the relay at \(relay) (\(ConnectFailure.describe(cause) ?? "the connection failed"))", advice: "is it running, and is the address right?")
        case _ where RelayTransportError.meansClosedBeforeAnswer(error):
            self = Self.closedBeforeAnswer(relay)
        case RelayTransportError.closedDuringAnswer:
            self.init(.relayUnreachable, "the relay at \(relay) closed the connection in the middle of its answer", advice: "try again")
        case RelayTransportError.timedOut(let seconds):
            self.init(.relayUnreachable, "the relay at \(relay) did not answer within \(seconds) s", advice: "try again later")
        case RelayTransportError.answerTooLarge(let limit):
            self.init(.malformedAnswer, "the relay at \(relay) sent an answer larger than \(limit >> 20) MiB; it was refused")
        case RelayTransportError.downloadTooLarge(let announced, let limit):
            self.init(.malformedAnswer, "the relay at \(relay) sent \(announced) bytes or more for a message it listed at \(limit) bytes; the download was stopped")
        case RelayTransportError.cannotSave(let reason, let diskFull):
            self.init(.io, "cannot save what the relay at \(relay) sent: \(reason)", advice: diskFull ? "free some disk space and try again" : nil)
        case let error as TLSError:
            self = Self.tls(error, relay: relay, trust: trust)
        case let error as IOError where [ECONNRESET, EPIPE].contains(error.errnoCode):
            self.init(.relayUnreachable, "the relay at \(relay) reset the connection", advice: "try again")
        case let error as IOError:
            self.init(.relayUnreachable, "the connection to the relay at \(relay) failed (\(ConnectFailure.describe(error) ?? "\(error.errnoCode)"))", advice: "try again")
        default:
            self.init(.relayUnreachable, "the connection to the relay at \(relay) failed", advice: "try again")
        }
    }

    private static func closedBeforeAnswer(_ relay: String) -> TransportFailure {
        TransportFailure(.relayUnreachable, "the relay at \(relay) closed the connection before answering",
                         advice: "try again; if it keeps happening, the relay may be stopping or overloaded")
    }

    private static func tls(_ error: TLSError, relay: String, trust: RelayKeyTrust) -> TransportFailure {
        switch error.code {
        case .certificateVerificationFailed where trust == .pinnedAtRegistration:
            TransportFailure(.pinMismatch, "the relay at \(relay) presents another TLS key than the one pinned when you registered", advice: "it may be an impostor (or a reinstalled relay); nothing was sent")
        case .certificateVerificationFailed where trust == .givenPin:
            TransportFailure(.pinMismatch, "the relay at \(relay) presents another TLS key than the one given with --tls-pin", advice: "it may be an impostor, or the pin was copied wrongly; nothing was sent")
        case .certificateVerificationFailed:
            TransportFailure(.verificationFailed, "the relay's certificate at \(relay) does not verify: \(error.reason)")
        case .uncleanShutdown, .closed:
            closedBeforeAnswer(relay)
        case .handshakeTimeout:
            TransportFailure(.relayUnreachable, "the relay at \(relay) did not complete the TLS handshake in time", advice: "is it a secmail relay, and is it overloaded?")
        case .handshakeFailed, .protocolError, .invalidConfiguration:
            TransportFailure(.relayUnreachable, "TLS with the relay at \(relay) failed (\(error.reason))", advice: "is it a secmail relay speaking TLS 1.3?")
        }
    }
}

extension ClientError {
    /// The relay's refusal (`ErrorResponse`) as a client error with a code tests can match;
    /// `notFound` is what a `404` means for the route asked (a name, a message).
    static func refusal(_ response: RelayResponse, relay: String, notFound: Code) -> ClientError {
        guard let body = try? JSONDecoder().decode(ErrorResponse.self, from: Data(response.body)) else {
            return ClientError(.malformedAnswer, "the relay at \(relay) answered status \(response.status) without an explanation")
        }
        let code: Code = switch body.code {
        case .notFound: notFound
        case .nameTaken: .nameTaken
        case .quotaExceeded, .tooLarge: .limitExceeded
        case .rateLimited: .rateLimited
        case .notCurrentKey: .keyNotCurrent
        default: .relayRefused
        }
        return ClientError(code, "the relay refused: \(body.reason)")
    }
}

extension RelayTransportError {
    /// Whether `error` means the relay closed the connection before any of its answer arrived
    /// (however the layers below report it): the one failure after which an idempotent request
    /// may be sent again on a new connection, and the one reported as "closed before answering".
    static func meansClosedBeforeAnswer(_ error: Error) -> Bool {
        switch error {
        case RelayTransportError.closedBeforeAnswer, ChannelError.ioOnClosedChannel, ChannelError.alreadyClosed, ChannelError.eof: true
        case let error as TLSError: error.code == .uncleanShutdown || error.code == .closed
        default: false
        }
    }

    /// Whether `error` means the connection broke before the relay's answer was complete: closed
    /// or reset by the relay (or a relay that stopped), before or during its answer. Not a time-out:
    /// the relay may still be working on the request.
    static func meansConnectionBroke(_ error: Error) -> Bool {
        switch error {
        case _ where meansClosedBeforeAnswer(error): true
        case RelayTransportError.closedDuringAnswer: true
        case let error as IOError: [ECONNRESET, EPIPE].contains(error.errnoCode)
        default: false
        }
    }
}
