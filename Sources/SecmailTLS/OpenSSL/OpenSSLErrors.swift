internal import COpenSSL

/// OpenSSL's per-thread error queue. Cleared before a call and drained right after, with no
/// suspension point in between.
enum OpenSSLErrors {
    static func clear() {
        ERR_clear_error()
    }

    /// Every queued error, oldest first, joined; empties the queue.
    static func drain() -> String? {
        var messages: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while secmail_err_pop(&buffer, buffer.count) != 0 {
            messages.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return messages.isEmpty ? nil : messages.joined(separator: "; ")
    }

    static func error(_ code: TLSError.Code, _ reason: String) -> TLSError {
        TLSError(code, reason, openSSLMessage: drain())
    }
}
