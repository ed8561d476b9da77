import SecmailFormat
import SecmailTLS

/// How a client trusts a relay it has never talked to (`register`, a first `monitor`), before
/// anything is pinned: a CA file the relay's certificate must chain to, the SHA-256 pin of the
/// relay's TLS key, or both; and, if given, the log key the relay must serve. `secmail relay`
/// prints the pin and the log key when it starts, so a person can carry both to a client out of
/// band: then even the first contact cannot be answered by another relay or another log.
public struct FirstContact: Sendable {
    public let caFile: String?
    /// The relay's TLS key pin (SHA-256 of its SubjectPublicKeyInfo), if given.
    public let relayKeyPin: Fingerprint?
    /// The log's verifier key, if given.
    public let logVerifierKey: String?

    /// Checks the form of what was given: at least one of `caFile` and `relayKeyPin`;
    /// `relayKeyPin` as the relay prints it (`sha256/` and 64 hex digits, or the digits alone);
    /// `logVerifierKey` a valid note verifier key.
    public init(caFile: String?, relayKeyPin: String?, logVerifierKey: String?) throws {
        guard caFile != nil || relayKeyPin != nil else {
            throw ClientError(.invalidInput, "a first contact needs --ca CA.pem or --tls-pin sha256/… (secmail relay prints both when it starts)")
        }
        self.caFile = caFile
        self.relayKeyPin = try relayKeyPin.map { text in
            let digits = text.hasPrefix("sha256/") ? String(text.dropFirst("sha256/".count)) : text
            guard digits.count == 64, let pin = try? Fingerprint(hex: digits) else {
                throw ClientError(.invalidInput, "--tls-pin takes sha256/ and 64 hex digits, as secmail relay prints it; got \(text)")
            }
            return pin
        }
        if let logVerifierKey { try Self.checkLogKeyForm(logVerifierKey) }
        self.logVerifierKey = logVerifierKey
    }

    /// Refuses a `--log-key` that is not a note verifier key (ORIGIN+HASH+KEY).
    public static func checkLogKeyForm(_ logVerifierKey: String) throws {
        if (try? NoteVerifier(verifierKey: logVerifierKey)) == nil {
            throw ClientError(.invalidInput, "--log-key takes the log key as secmail relay prints it (ORIGIN+HASH+KEY); got \(logVerifierKey)")
        }
    }

    /// The CA file when there is one (the pin, if also given, is compared once connected);
    /// otherwise the pin alone.
    var trust: TLSConfiguration.Trust {
        if let caFile { return .certificateAuthorities(file: caFile) }
        guard let relayKeyPin else { preconditionFailure("init requires a CA file or a pin") }
        return .pinnedPublicKey(sha256: relayKeyPin.bytes)
    }

    /// Where `trust` comes from, for saying why a handshake failed.
    var keyTrust: RelayKeyTrust { caFile == nil ? .givenPin : .certificateAuthority }

    /// Refuses a relay whose TLS key or log key is not the one given (`pinMismatch`, exit 2).
    func check(relayKeyPin seen: [UInt8], logVerifierKey served: String, relay: String) throws {
        if let relayKeyPin, relayKeyPin.bytes != seen {
            throw ClientError(.pinMismatch, "the relay at \(relay) presents the TLS key sha256/\(hexEncoded(seen)), not the one given with --tls-pin (sha256/\(hexEncoded(relayKeyPin.bytes))): it may be an impostor, or the pin was copied wrongly; nothing was pinned")
        }
        if let logVerifierKey, logVerifierKey != served {
            throw ClientError(.pinMismatch, "the relay at \(relay) serves the log key \(served), not the one given with --log-key (\(logVerifierKey)): it may be another relay's log, or the key was copied wrongly; nothing was pinned")
        }
    }
}
