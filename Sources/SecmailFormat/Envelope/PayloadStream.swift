import SecmailCrypto

/// Cuts plaintext into 64 KiB chunks, seals each (STREAM nonces), writes the ciphertext and
/// hashes it for the signature. Holds at most one chunk in memory.
final class ChunkWriter {
    private let cipher: AESGCM
    private let sink: ByteSink
    private let hasher: SHA256
    private let totalLength: UInt64
    private let chunkSize: Int
    private var buffer: [UInt8] = []
    private var appended: UInt64 = 0
    private var chunkIndex: UInt64 = 0
    private(set) var ciphertextBytesWritten: UInt64 = 0

    init(cipher: AESGCM, totalLength: UInt64, chunkSize: Int, sink: ByteSink) throws {
        self.cipher = cipher
        self.totalLength = totalLength
        self.chunkSize = chunkSize
        self.sink = sink
        self.hasher = try SHA256()
        buffer.reserveCapacity(chunkSize)
    }

    var plaintextBytesAppended: UInt64 { appended }

    func append(_ bytes: some Collection<UInt8>) throws {
        var rest = bytes[...]
        guard appended + UInt64(rest.count) <= totalLength else {
            throw FormatError(.invalidField, "the content grew while it was being sealed (a file changed?)")
        }
        while !rest.isEmpty {
            let take = min(chunkSize - buffer.count, rest.count)
            buffer.append(contentsOf: rest.prefix(take))
            rest = rest.dropFirst(take)
            appended += UInt64(take)
            // A full chunk is final only if nothing follows; that is decided in finish().
            if buffer.count == chunkSize, appended < totalLength {
                try emit(isFinal: false)
            }
        }
    }

    /// Seals the last chunk and returns the SHA-256 of all ciphertext.
    func finish() throws -> [UInt8] {
        guard appended == totalLength else {
            throw FormatError(.invalidField, "the content shrank while it was being sealed (a file changed?)")
        }
        try emit(isFinal: true)
        return hasher.finalize()
    }

    private func emit(isFinal: Bool) throws {
        let sealed = try cipher.seal(buffer, nonce: PayloadKeys.nonce(chunk: chunkIndex, isFinal: isFinal))
        hasher.update(sealed)
        try sink.write(sealed)
        ciphertextBytesWritten += UInt64(sealed.count)
        chunkIndex += 1
        SymmetricKey.wipe(&buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Decrypts the chunks of a verified envelope in order and hands out plaintext on demand.
final class PlaintextCursor {
    private let cipher: AESGCM
    private let source: EnvelopeSource
    private let header: EnvelopeHeader
    private let payloadOffset: UInt64
    private var nextChunk: UInt64 = 0
    private var current: [UInt8] = []
    private var position = 0
    private(set) var plaintextBytesConsumed: UInt64 = 0

    init(cipher: AESGCM, source: EnvelopeSource, header: EnvelopeHeader, payloadOffset: UInt64) {
        self.cipher = cipher
        self.source = source
        self.header = header
        self.payloadOffset = payloadOffset
    }

    /// Exactly `count` bytes (for small fields).
    func take(_ count: Int) throws -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(count)
        try forward(UInt64(count)) { result.append(contentsOf: $0) }
        return result
    }

    /// Passes the next `count` bytes to `body`, a chunk-sized piece at a time.
    func forward(_ count: UInt64, to body: (ArraySlice<UInt8>) throws -> Void) throws {
        var remaining = count
        while remaining > 0 {
            if position == current.count { try loadNextChunk() }
            let take = Int(min(UInt64(current.count - position), remaining))
            try body(current[position..<position + take])
            position += take
            remaining -= UInt64(take)
            plaintextBytesConsumed += UInt64(take)
        }
    }

    /// Fails unless every plaintext byte has been consumed.
    func expectEnd() throws {
        guard position == current.count, nextChunk == header.chunkCount else {
            throw FormatError(.invalidField, "the payload has bytes after the last attachment")
        }
    }

    private func loadNextChunk() throws {
        guard nextChunk < header.chunkCount else {
            throw FormatError(.truncated, "the payload ended before the message structure did")
        }
        let chunkSize = UInt64(header.chunkSize)
        let plainStart = nextChunk * chunkSize
        let plainCount = min(chunkSize, header.payloadLength - plainStart)
        let sealedSize = UInt64(header.chunkSize) + UInt64(AESGCM.tagByteCount)
        let offset = payloadOffset + nextChunk * sealedSize
        let sealed = try source.read(at: offset, count: Int(plainCount) + AESGCM.tagByteCount)
        guard sealed.count == Int(plainCount) + AESGCM.tagByteCount else {
            throw FormatError(.truncated, "the envelope ended inside chunk \(nextChunk)")
        }
        let isFinal = nextChunk == header.chunkCount - 1
        SymmetricKey.wipe(&current)
        do {
            current = try cipher.open(sealed, nonce: PayloadKeys.nonce(chunk: nextChunk, isFinal: isFinal))
        } catch {
            throw FormatError(.authenticationFailed, "chunk \(nextChunk) of the payload failed authentication: the envelope was changed")
        }
        position = 0
        nextChunk += 1
    }
}
