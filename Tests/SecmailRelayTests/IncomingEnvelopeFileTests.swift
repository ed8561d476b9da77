import Foundation
import NIOCore
import SecmailFormat
@testable import SecmailRelay
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// The deposit's file written behind the request: batches written on a queue as they fill,
/// several queued at once, must still give the file every byte in order, and the digest taken on
/// the way must be that of the payload the signature covers.
@Suite struct IncomingEnvelopeFileTests {
    @Test func piecesOfEverySizeArriveInOrder() async throws {
        // Larger than batchesInFlight full batches, so that queueing waits for the oldest.
        let extra = (IncomingEnvelopeFile.batchesInFlight + 3) * IncomingEnvelopeFile.batchSize + 12_345
        let (id, envelope) = try RelayCurl.envelope(from: "alice", to: ["bob"], extra: extra)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("incoming-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }

        let whole = try EnvelopePayloadDigester()
        whole.update(envelope)
        let reference = whole.finalize()

        // Pieces as a TLS connection hands them over: odd sizes, some larger than a batch.
        for (round, sizes) in [[1, 16_384, 7], [300_000], [16_384], [65_537, 3, 1_000_000]].enumerated() {
            let file = try IncomingEnvelopeFile(url: folder.appendingPathComponent("\(round).sm"), declared: envelope.count)
            var offset = 0, index = 0
            while offset < envelope.count {
                let end = min(envelope.count, offset + sizes[index % sizes.count])
                try await file.append(ByteBuffer(bytes: envelope[offset..<end]))
                offset = end
                index += 1
            }
            let digest = try await file.finish()
            #expect(file.size == envelope.count)
            #expect(try Data(contentsOf: file.url) == Data(envelope), "pieces of \(sizes)")
            #expect(digest == reference, "pieces of \(sizes)")
        }
        #expect(try EnvelopeOpener.verifySignature(MemoryEnvelopeSource(envelope), sender: try ThrowawayIdentities.bundle("alice"),
                                                   payloadDigest: try #require(reference)).messageID == id)

        // Bytes that are no envelope are kept as they came, with no digest: the full check then
        // reports what is wrong with them.
        let junk = [UInt8](repeating: 0x41, count: 300_000)
        let file = try IncomingEnvelopeFile(url: folder.appendingPathComponent("junk.sm"), declared: junk.count)
        try await file.append(ByteBuffer(bytes: junk))
        #expect(try await file.finish() == nil)
        #expect(try Data(contentsOf: file.url) == Data(junk))
    }
}
