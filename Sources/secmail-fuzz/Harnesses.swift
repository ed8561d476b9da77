import Foundation
import SecmailAPI
import SecmailCrypto
import SecmailFormat
import SecmailImages

/// One parser (or a family of them) that takes bytes from the network or a file. Each harness
/// must return normally for every input: a thrown error is a refusal, which is fine; a trap, a
/// sanitizer report or a hang is a finding.
enum FuzzTarget: String, CaseIterable {
    /// Envelope header, size and trailer checks, signature check (EnvelopeHeader, EnvelopeOpener).
    case envelope
    /// The message structure inside a decrypted payload (text, attachment names, types, lengths).
    case content
    /// Identity bundles, binary and armored; names and fingerprints as typed or received.
    case bundle
    /// Signed notes, checkpoints and verifier keys.
    case note
    /// Directory log leaves, map heads, name map nodes and proofs, replay state, Merkle proofs.
    case directory
    /// Every JSON body of the relay's HTTP API (SecmailAPI).
    case json
    /// The PNG decoder (libpng behind CImageCodecs) and the pixel checks after it.
    case png
    /// The JPEG decoder (libjpeg-turbo), EXIF orientation and the metadata stripper.
    case jpeg
    /// The key agent's frames, requests and answers (a process of the same user may send anything).
    case agent
    /// Compressed attachments (encoding 1): the declared length and the DEFLATE stream.
    case inflate
    /// The JPEG XL decoder (libjxl): pixels, and the JPEG a recompressed stream gives back.
    case jxl

    func run(_ bytes: [UInt8]) {
        switch self {
        case .envelope: Self.envelope(bytes)
        case .content: Self.content(bytes)
        case .bundle: Self.bundle(bytes)
        case .note: Self.note(bytes)
        case .directory: Self.directory(bytes)
        case .json: Self.json(bytes)
        case .png: Self.image(bytes, only: .png)
        case .jpeg: Self.image(bytes, only: .jpeg)
        case .agent: Self.agent(bytes)
        case .inflate: Self.inflate(bytes)
        case .jxl: Self.image(bytes, only: .jxl)
        }
    }

    private static func envelope(_ bytes: [UInt8]) {
        _ = try? EnvelopeHeader(encoded: bytes)
        _ = try? SentCopyKey(encoded: bytes)
        let source = MemoryEnvelopeSource(bytes)
        guard (try? EnvelopeOpener.readHeader(source)) != nil else { return }
        let fixtures = EnvelopeFixtures.shared
        _ = try? EnvelopeOpener.verifySignature(source, sender: fixtures.sender)
        if let verified = try? EnvelopeOpener.verify(source, sender: fixtures.sender, keys: fixtures.recipientKeys) {
            _ = try? verified.decrypt(into: MemoryContentSink())
        }
    }

    private static func inflate(_ bytes: [UInt8]) {
        guard let file = try? AttachmentCompression.decompress(bytes) else { return }
        let declared = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        precondition(UInt64(file.count) == declared, "an attachment inflated to other than its declared length")
    }

    private static func agent(_ bytes: [UInt8]) {
        _ = try? AgentFrame.length(fromPrefix: Array(bytes.prefix(4)))
        if let request = try? AgentRequest(encoded: bytes) {
            precondition((try? AgentRequest(encoded: request.encoded)) == request, "an agent request does not parse again from its encoding")
            _ = AgentSigningPolicy.allows(bytes)
        }
        if let answer = try? AgentResponse(encoded: bytes) {
            precondition((try? AgentResponse(encoded: answer.encoded)) == answer, "an agent answer does not parse again from its encoding")
        }
    }

    private static func content(_ bytes: [UInt8]) {
        _ = try? MessageContentDecoder.decode(PlaintextBytes(bytes), payloadLength: UInt64(bytes.count), into: DiscardingContentSink())
    }

    private static func bundle(_ bytes: [UInt8]) {
        if let bundle = try? IdentityBundle(armoredOrBinary: bytes) {
            // A parsed bundle must encode back to the bytes it was parsed from.
            precondition((try? IdentityBundle(encoded: bundle.encoded)) == bundle, "a parsed bundle does not parse again from its encoding")
        }
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? Armor.decode(text, label: Armor.identityLabel)
        if let name = try? IdentityName(text) {
            _ = name.skeleton
            _ = name.isReserved
        }
        _ = try? Fingerprint(hex: text)
        _ = try? Fingerprint(bytes: bytes)
    }

    private static func note(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        if let checkpoint = try? Checkpoint(text: text) {
            precondition((try? Checkpoint(text: checkpoint.text)) == checkpoint, "a parsed checkpoint does not parse again from its text")
        }
        _ = try? SignedNote.open(text, verifier: NoteFixtures.shared.verifier)
        _ = try? NoteVerifier(verifierKey: text)
    }

    private static func directory(_ bytes: [UInt8]) {
        _ = try? DirectoryEntry(encoded: bytes)
        _ = try? MapHead(encoded: bytes)
        _ = try? NameMapNode(encoded: bytes)
        _ = try? NameMapReplay(encodedState: bytes)
        if (try? LogLeaf(encoded: bytes)) != nil {
            var replay = NameMapReplay()
            _ = try? replay.apply(bytes)
        }
        // A map proof, for a key and a value hash taken from the input's first 64 bytes.
        let key = Array(bytes.prefix(32)) + Array(repeating: 0, count: max(0, 32 - bytes.count))
        let valueHash = Array(bytes.dropFirst(32).prefix(32)) + Array(repeating: 0, count: max(0, 64 - max(bytes.count, 32)))
        for found in [nil, valueHash] {
            if let proof = try? NameMapProof(encoded: Array(bytes.dropFirst(64)), foundValueHash: found) {
                _ = proof.root(for: key)
            }
        }
        // Merkle proofs: index and size (or old and new size) from the first 16 bytes, then
        // 32-byte hashes (leaf or old root, root, proof path).
        guard bytes.count >= 16 else { return }
        let first = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let second = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        var hashes = stride(from: 16, to: bytes.count, by: 32).map { Array(bytes[$0..<min($0 + 32, bytes.count)]) }
        guard hashes.count >= 2 else { return }
        let a = hashes.removeFirst(), b = hashes.removeFirst()
        _ = MerkleProof.verifyInclusion(leafHash: a, index: first, size: second, proof: hashes, root: b)
        _ = MerkleProof.verifyConsistency(oldSize: first, newSize: second, oldRoot: a, newRoot: b, proof: hashes)
    }

    private static func json(_ bytes: [UInt8]) {
        let data = Data(bytes)
        let decoder = JSONDecoder()
        func attempt<T: Decodable>(_ type: T.Type) { _ = try? decoder.decode(type, from: data) }
        attempt(ChallengeRequest.self)
        attempt(ChallengeResponse.self)
        attempt(TokenRequest.self)
        attempt(TokenResponse.self)
        attempt(WhoAmIResponse.self)
        attempt(ReaderFeaturesBody.self)
        attempt(ErrorResponse.self)
        attempt(HistoryResponse.self)
        attempt(LogEntriesResponse.self)
        attempt(ConsistencyResponse.self)
        attempt(LookupResponse.self)
        attempt(NameMapEvidence.self)
        attempt(NotRegisteredResponse.self)
        attempt(BundleRequest.self)
        attempt(RegisteredResponse.self)
        attempt(DepositResponse.self)
        attempt(MailboxListResponse.self)
        attempt(RelayInfo.self)
    }

    private static func image(_ bytes: [UInt8], only format: ImageFormat) {
        guard ImageFormat.detect(bytes) == format else { return }
        // Limits small enough that a valid header cannot ask the harness for gigabytes.
        let pipeline = ImagePipeline(limits: ImageLimits(maxWidth: 4096, maxHeight: 4096, maxPixels: 1 << 22))
        if format == .jxl { _ = try? pipeline.jpegAsSent(bytes) }
        guard let (_, image) = try? pipeline.decode(bytes) else { return }
        precondition(image.samples.count == image.width * image.height * 4 * (image.bitDepth / 8), "a decoded image's samples do not fill it")
        if format == .jpeg { _ = try? pipeline.strippedJPEG(bytes, decoded: image) }
        // A small PNG's wire form at the fast level: the chunk walks (metadata stripping, an
        // APNG's frames kept) and the optimiser's own decode-and-compare, at fuzzing speed.
        if format == .png, image.pixelCount <= 64 * 64 {
            _ = try? ImagePipeline(limits: ImageLimits(maxWidth: 64, maxHeight: 64, maxPixels: 64 * 64), effort: .fast).wireForm(of: bytes)
        }
    }
}

/// A decrypted payload, as the content decoder reads it, from the fuzzer's bytes.
final class PlaintextBytes: PlaintextReader {
    private let bytes: [UInt8]
    private(set) var plaintextBytesConsumed: UInt64 = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func forward(_ count: UInt64, to body: (ArraySlice<UInt8>) throws -> Void) throws {
        guard count <= UInt64(bytes.count) - plaintextBytesConsumed else {
            throw FormatError(.truncated, "the payload ended before the message structure did")
        }
        var offset = Int(plaintextBytesConsumed)
        let end = offset + Int(count)
        // Pieces of at most 4 KiB, as a chunked payload hands them out.
        while offset < end {
            let next = min(end, offset + 4096)
            try body(bytes[offset..<next])
            offset = next
        }
        plaintextBytesConsumed += count
    }

    func expectEnd() throws {
        guard plaintextBytesConsumed == UInt64(bytes.count) else {
            throw FormatError(.invalidField, "the payload has bytes after the last attachment")
        }
    }
}

/// The committed throw-away identities (Tests/SecmailFormatTests/Fixtures, or the folder named by
/// SECMAIL_FUZZ_FIXTURES): alice sent the golden envelopes to bob, so seeds made from them reach
/// the signature check. Without the folder, fresh keys: every signature check then fails.
final class EnvelopeFixtures: Sendable {
    static let shared = EnvelopeFixtures()
    let sender: IdentityBundle
    let recipientKeys: [RecipientKey]

    private init() {
        (sender, recipientKeys) = Self.load()
    }

    private static func load() -> (IdentityBundle, [RecipientKey]) {
        let folder = URL(fileURLWithPath: ProcessInfo.processInfo.environment["SECMAIL_FUZZ_FIXTURES"] ?? "Tests/SecmailFormatTests/Fixtures")
        do {
            let passphrase = try Passphrase("throwaway test passphrase")
            let alice = try IdentityBundle(armoredOrBinary: Array(Data(contentsOf: folder.appendingPathComponent("alice.id"))))
            let bob = try IdentityBundle(armoredOrBinary: Array(Data(contentsOf: folder.appendingPathComponent("bob.id"))))
            let bobKey = try RSAPrivateKey(encryptedPEM: String(contentsOf: folder.appendingPathComponent("throwaway-test-keys/bob-encryption.key.pem"), encoding: .utf8),
                                           passphrase: passphrase)
            return (alice, [RecipientKey(fingerprint: bob.fingerprint, encryptionKey: bobKey)])
        } catch {
            FileHandle.standardError.write(Data("secmail-fuzz: no fixtures in \(folder.path) (\(error)); using fresh keys\n".utf8))
            do {
                let signing = try RSAPrivateKey.generate(bitCount: 3072), encryption = try RSAPrivateKey.generate(bitCount: 3072)
                let bundle = try IdentityBundle.create(name: IdentityName("alice"), createdAt: 1, signingKey: signing, encryptionKey: encryption.publicKey)
                return (bundle, [RecipientKey(fingerprint: bundle.fingerprint, encryptionKey: encryption)])
            } catch {
                preconditionFailure("secmail-fuzz: cannot make keys for the envelope harness: \(error)")
            }
        }
    }
}

/// A fixed log key for signed-note checks.
final class NoteFixtures: Sendable {
    static let shared = NoteFixtures()
    let verifier: NoteVerifier

    private init() {
        do {
            verifier = try NoteVerifier(name: "localhost/secmail", publicKey: Ed25519PrivateKey.generate().publicKey)
        } catch {
            preconditionFailure("secmail-fuzz: cannot make a note verifier: \(error)")
        }
    }
}
