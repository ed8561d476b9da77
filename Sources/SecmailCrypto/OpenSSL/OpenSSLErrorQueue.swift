internal import COpenSSL

/// Access to OpenSSL's per-thread error queue. Callers clear it before a call and drain it
/// right after, with no suspension point between, because the queue belongs to the thread.
enum OpenSSLErrorQueue {
    static func clear() {
        ERR_clear_error()
    }

    /// Empties the queue and returns its entries joined, oldest first.
    static func drain() -> String? {
        var messages: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while true {
            let code = secmail_err_pop(&buffer, buffer.count)
            if code == 0 { break }
            let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            messages.append(text)
        }
        return messages.isEmpty ? nil : messages.joined(separator: "; ")
    }

    /// A `CryptoError` carrying whatever OpenSSL queued, draining the queue.
    static func error(_ code: CryptoError.Code, _ reason: String) -> CryptoError {
        CryptoError(code, reason, openSSLMessage: drain())
    }

    /// Frees the calling thread's OpenSSL state (this queue among it), for a thread that is about
    /// to end: OpenSSL would free it in a thread-exit destructor, but a process that ends while
    /// such a thread is still exiting leaves it allocated (LeakSanitizer found one queue of 904
    /// bytes so in the envelope fuzz target, from `concurrently`'s thread). OpenSSL sets the
    /// state up again should the thread use it after all.
    static func releaseThreadState() {
        OPENSSL_thread_stop()
    }

    /// Runs `body` with a clean queue; a return value of `false` becomes a thrown error.
    static func check(_ code: CryptoError.Code, _ reason: String, _ body: () -> Bool) throws {
        clear()
        guard body() else { throw error(code, reason) }
        _ = drain()
    }
}
