import SecmailCrypto

/// The hash the sender's signature covers (SHA-256 of the payload ciphertext), computed while an
/// envelope's bytes arrive in order, so that a receiver that stores them (the relay, at deposit)
/// checks the signature without reading the envelope a second time
/// (`EnvelopeOpener.verifySignature(_:sender:payloadDigest:)`). It needs nothing but the bytes:
/// it parses the header from the first ones to learn where the payload lies.
public final class EnvelopePayloadDigester: @unchecked Sendable {
    // @unchecked: one owner feeds it in order (in the relay, the deposit's connection handler).
    /// What the digest covers, and the digest.
    public struct Digest: Sendable, Equatable {
        public let payloadOffset: UInt64
        public let payloadLength: UInt64
        public let sha256: [UInt8]
    }

    private let hasher: SHA256
    /// The first bytes, until the header parses.
    private var prefix: [UInt8] = []
    private var payload: Range<UInt64>?
    private var received: UInt64 = 0
    /// Set when the header does not parse: the digest is then unavailable, and a full
    /// verification reports why.
    private var isUnusable = false

    public init() throws {
        hasher = try SHA256()
    }

    /// Feeds the next bytes of the envelope.
    public func update(_ bytes: some ContiguousByteStorage) {
        guard !isUnusable else { return }
        bytes.withUnsafeBytes { bytes in
            let start = received
            received += UInt64(bytes.count)
            guard let payload else {
                prefix.append(contentsOf: bytes)
                if prefix.count >= EnvelopeHeader.maximumEncodedLength { locatePayload() }
                return
            }
            hash(bytes, at: start, within: payload)
        }
    }

    /// The digest, once every byte was fed; nil when the header did not parse or the payload is
    /// not all there.
    public func finalize() -> Digest? {
        if payload == nil, !isUnusable { locatePayload() }
        guard !isUnusable, let payload, received >= payload.upperBound else { return nil }
        return Digest(payloadOffset: payload.lowerBound, payloadLength: UInt64(payload.count), sha256: hasher.finalize())
    }

    private func locatePayload() {
        var reader = ByteReader(prefix, subject: "envelope header")
        guard let header = try? EnvelopeHeader(reading: &reader) else {
            isUnusable = true
            return
        }
        let start = UInt64(reader.offset)
        let range = start..<start + header.ciphertextLength
        payload = range
        prefix.withUnsafeBytes { hash($0, at: 0, within: range) }
        prefix = []
    }

    /// Hashes the part of `bytes` (which begin at envelope offset `start`) inside `range`.
    private func hash(_ bytes: UnsafeRawBufferPointer, at start: UInt64, within range: Range<UInt64>) {
        let end = start + UInt64(bytes.count)
        let lower = max(start, range.lowerBound), upper = min(end, range.upperBound)
        guard lower < upper else { return }
        hasher.update(UnsafeRawBufferPointer(rebasing: bytes[Int(lower - start)..<Int(upper - start)]))
    }
}
