/// The body of every error answer: `{"error": code, "reason": sentence}`.
public struct ErrorResponse: Codable, Sendable, Equatable {
    /// A machine-readable code (`ErrorCode` lists the relay's own; format errors add theirs).
    public let error: String
    /// One sentence for people.
    public let reason: String

    public init(error: String, reason: String) {
        self.error = error
        self.reason = reason
    }

    public init(_ code: ErrorCode, reason: String) {
        self.init(error: code.rawValue, reason: reason)
    }

    /// The code, when it is one of the relay's own.
    public var code: ErrorCode? { ErrorCode(rawValue: error) }
}

/// The relay's error codes (docs/API.md). Envelope and bundle parsing errors carry the format's
/// own codes (`truncated`, `authenticationFailed`, …) instead.
public enum ErrorCode: String, Sendable, CaseIterable, Equatable {
    /// No route has this method and path.
    case noSuchRoute
    /// The request body or parameters are not what the route takes.
    case malformedRequest
    /// The request body is larger than the route accepts.
    case tooLarge
    /// A name, message or log entry that does not exist.
    case notFound
    /// The name is registered already (first come, first served).
    case nameTaken
    /// The request is not allowed as made (wrong key version, bad continuity, wrong recipients).
    case invalidRequest
    /// This relay requires a valid, unused invite code to register.
    case inviteRequired
    /// The caller proved nothing (no valid token).
    case unauthorized
    /// The caller's proof was refused, or the caller may not do this (another user's mailbox).
    case forbidden
    /// The sign-in challenge outlived its minute (a client that slept, say): ask for a new one.
    case challengeExpired
    /// A sign-in answer that the name's current signing key did not make: a key rotated away
    /// (from another copy of the keystore, say), or someone else's.
    case notCurrentKey
    /// The request repeats something accepted once only (a message id per recipient).
    case conflict
    /// A mailbox quota or the envelope size limit.
    case quotaExceeded
    case rateLimited
    /// The database cannot be used (details stay in the relay's log).
    case storage
    /// The relay's disk or database is full: nothing was stored; a later try may succeed.
    case storageFull
    /// The database's schema history does not match the relay's migrations.
    case schemaMismatch
    case internalError = "internal"
    /// Another HTTP-level refusal (the reason says which).
    case http
}
