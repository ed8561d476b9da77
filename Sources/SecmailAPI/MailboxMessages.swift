/// `POST /v1/messages` answered `201`: the deposited message.
public struct DepositResponse: Codable, Sendable {
    /// 32 hex digits.
    public let messageId: String
    public let size: Int
    public let recipients: [String]

    public init(messageId: String, size: Int, recipients: [String]) {
        self.messageId = messageId
        self.size = size
        self.recipients = recipients
    }
}

/// `GET /v1/mailbox[?after=CURSOR&limit=N]`: one page of the owner's messages, oldest first;
/// `next` is the cursor of the page after it (absent on the last page).
public struct MailboxListResponse: Codable, Sendable {
    public struct Message: Codable, Sendable, Equatable {
        /// The message id, 32 hex digits.
        public let id: String
        /// The sender the envelope names (the reader verifies the signature).
        public let from: String
        /// When the relay received it, in seconds since the epoch.
        public let time: Int64
        public let size: Int

        public init(id: String, from: String, time: Int64, size: Int) {
            self.id = id
            self.from = from
            self.time = time
            self.size = size
        }
    }

    /// How full the owner's mailbox is, on every page.
    public struct Usage: Codable, Sendable, Equatable {
        /// Bytes the waiting messages take.
        public let bytes: Int
        /// The most they may take: a deposit that would pass it is refused.
        public let quota: Int

        public init(bytes: Int, quota: Int) {
            self.bytes = bytes
            self.quota = quota
        }
    }

    public let messages: [Message]
    /// Pass as `after` for the next page; nil when this page is the last.
    public let next: String?
    /// Absent from relays that predate it.
    public let usage: Usage?

    /// Most messages one page holds (and the default).
    public static let pageLimit = 1000

    public init(messages: [Message], next: String?, usage: Usage?) {
        self.messages = messages
        self.next = next
        self.usage = usage
    }
}
