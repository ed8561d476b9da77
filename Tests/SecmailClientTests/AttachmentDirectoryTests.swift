import Foundation
import SecmailClient
import SecmailFormat
import SecmailImages
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// What a reader's client does with a decrypted message's attachments.
@Suite(.threadsOfTheirOwn) struct AttachmentDirectoryTests {
    /// The output folder is made with its missing parents, 0700, and taken away again when
    /// nothing was saved in it; a folder there already, or a link to one, is used as it is and
    /// stays; a file in the way is a clear error.
    @Test func theOutputFolderIsMadeWithItsParentsOrUsedOrRefused() throws {
        let root = try makeTemporaryDirectory("output-folder")
        let nested = root.appendingPathComponent("a/b/c", isDirectory: true)
        let made = try AttachmentDirectory(outputDirectory: nested)
        for folder in [root.appendingPathComponent("a"), root.appendingPathComponent("a/b"), nested] {
            let status = try FileStatus(path: folder.path)
            #expect(status.kind == .directory && status.permissions == 0o700, "\(folder.path)")
        }
        made.abort()
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("a").path))
        try FileManager.default.createDirectory(at: root.appendingPathComponent("a/b"), withIntermediateDirectories: true)
        // Only what it made goes: a/b was there, so a/b/c goes and a/b stays.
        try AttachmentDirectory(outputDirectory: nested).abort()
        #expect(!FileManager.default.fileExists(atPath: nested.path) && FileManager.default.fileExists(atPath: root.appendingPathComponent("a/b").path))
        try FileManager.default.createDirectory(at: nested, withIntermediateDirectories: false)
        let link = root.appendingPathComponent("link")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: nested)
        _ = try AttachmentDirectory(outputDirectory: link).abort()
        _ = try AttachmentDirectory(outputDirectory: nested).abort()
        #expect(FileManager.default.fileExists(atPath: nested.path))
        let file = root.appendingPathComponent("file")
        try Data("x".utf8).write(to: file)
        #expect {
            try AttachmentDirectory(outputDirectory: file.appendingPathComponent("inside"))
        } throws: { ($0 as? ClientError)?.reason.contains("Not a directory") == true }
        #expect {
            try AttachmentDirectory(outputDirectory: file)
        } throws: { ($0 as? ClientError)?.reason == "cannot create directory \(file.path): a file of that name is in the way" }
    }

    @Test func eachReceivedImageConversionIsAnnouncedAndEnded() throws {
        let ppm = try makeTemporaryDirectory("conversion").appendingPathComponent("photo.ppm")
        try Data(testPPM(width: 160, height: 120)).write(to: ppm)
        let jpeg = try run("cjpeg", ["-quality", "90", ppm.path])
        #expect(jpeg.status == 0, "\(jpeg.stderr)")
        let sink = MemorySink()
        _ = try EnvelopeSealer().seal(
            text: "a photo and a note",
            attachments: [try OutgoingAttachment(name: "photo.jpg", mediaType: "image/jpeg", bytes: Array(jpeg.stdout)),
                          try OutgoingAttachment(name: "note.txt", bytes: Array("not an image".utf8))],
            from: SenderIdentity(bundle: try ThrowawayIdentities.bundle("alice"), signingKey: try ThrowawayIdentities.signingKey("alice")),
            to: [try ThrowawayIdentities.bundle("bob")], into: sink)
        let bob = try ThrowawayIdentities.bundle("bob")
        let verified = try EnvelopeOpener.verify(MemoryEnvelopeSource(sink.bytes), sender: try ThrowawayIdentities.bundle("alice"),
                                                 keys: [RecipientKey(fingerprint: bob.fingerprint, encryptionKey: try ThrowawayIdentities.encryptionKey("bob"))])
        let events = Events()
        let output = try makeTemporaryDirectory("conversion-out")
        let opened = try AttachmentDirectory.decrypt(verified, into: output, converting: { name in
            events.add("start \(name)")
            return { events.add("end \(name)") }
        })
        // Only the image converts, and its announcement is closed.
        #expect(events.all == ["start photo.jpg", "end photo.jpg"])
        #expect(opened.saved.map(\.url.lastPathComponent).sorted() == ["note.txt", "photo.png"])
    }
    /// Two `read`s of one message into one folder at once (two terminals on one home): both
    /// save it, the folder ends with one copy of each attachment, and neither fails or replaces
    /// what the other saved (a name checked free and then taken by the other was "already
    /// exists", or replaced).
    @Test func decryptsIntoOneFolderAtOnceAllSucceedWithOneCopy() throws {
        let bob = try ThrowawayIdentities.bundle("bob")
        let sink = MemorySink()
        let attachments = try (0..<4).map { try OutgoingAttachment(name: "part\($0).bin", bytes: Array(repeating: UInt8($0), count: 50_000)) }
        _ = try EnvelopeSealer().seal(
            text: "four parts", attachments: attachments,
            from: SenderIdentity(bundle: try ThrowawayIdentities.bundle("alice"), signingKey: try ThrowawayIdentities.signingKey("alice")),
            to: [bob], into: sink)
        let envelope = sink.bytes
        let root = try makeTemporaryDirectory("decrypt-at-once")
        for round in 0..<10 {
            let output = root.appendingPathComponent("round-\(round)")
            let failures = Events()
            DispatchQueue.concurrentPerform(iterations: 4) { _ in
                do {
                    // Each reader verifies its own copy, as each process would.
                    let verified = try EnvelopeOpener.verify(
                        MemoryEnvelopeSource(envelope), sender: try ThrowawayIdentities.bundle("alice"),
                        keys: [RecipientKey(fingerprint: bob.fingerprint, encryptionKey: try ThrowawayIdentities.encryptionKey("bob"))])
                    let opened = try AttachmentDirectory.decrypt(verified, into: output)
                    if let failure = opened.saveFailure { failures.add(failure.reason) }
                } catch {
                    failures.add("\(error)")
                }
            }
            #expect(failures.all == [], "round \(round)")
            let saved = try FileManager.default.contentsOfDirectory(atPath: output.path).sorted()
            #expect(saved == ["part0.bin", "part1.bin", "part2.bin", "part3.bin"], "round \(round)")
        }
    }

    /// Received JPEGs become PNGs within a budget of pixels, per image and per message; past it
    /// an image is saved as it travelled, byte for byte, with a note that says which limit it met.
    @Test func imagesPastTheConversionBudgetAreSavedAsTheyTravelled() throws {
        let folder = try makeTemporaryDirectory("conversion-budget")
        func jpeg(_ name: String, width: Int, height: Int) throws -> (attachment: OutgoingAttachment, bytes: [UInt8]) {
            let ppm = folder.appendingPathComponent("\(name).ppm")
            try Data(testPPM(width: width, height: height)).write(to: ppm)
            let encoded = try run("cjpeg", ["-quality", "90", ppm.path])
            #expect(encoded.status == 0, "\(encoded.stderr)")
            return (try OutgoingAttachment(name: "\(name).jpg", mediaType: "image/jpeg", bytes: Array(encoded.stdout)), Array(encoded.stdout))
        }
        let bob = try ThrowawayIdentities.bundle("bob")
        func opened(_ attachments: [OutgoingAttachment], budget: ConversionBudget) throws -> [SavedAttachment] {
            let sink = MemorySink()
            _ = try EnvelopeSealer().seal(
                text: "photos", attachments: attachments,
                from: SenderIdentity(bundle: try ThrowawayIdentities.bundle("alice"), signingKey: try ThrowawayIdentities.signingKey("alice")),
                to: [bob], into: sink)
            let verified = try EnvelopeOpener.verify(MemoryEnvelopeSource(sink.bytes), sender: try ThrowawayIdentities.bundle("alice"),
                                                     keys: [RecipientKey(fingerprint: bob.fingerprint, encryptionKey: try ThrowawayIdentities.encryptionKey("bob"))])
            let decrypted = try AttachmentDirectory.decrypt(verified, into: try makeTemporaryDirectory("conversion-budget-out"), budget: budget)
            #expect(decrypted.saveFailure == nil)
            return decrypted.saved
        }
        let one = try jpeg("one", width: 1000, height: 1000), two = try jpeg("two", width: 1000, height: 1000)
        let three = try jpeg("three", width: 2000, height: 1500), small = try jpeg("small", width: 1000, height: 600)

        // A message's allowance used up exactly by the first image: the second is not tried.
        let exhausted = try opened([one, two].map(\.attachment), budget: ConversionBudget(perImage: 2_000_000, perMessage: 1_000_000))
        #expect(exhausted.map(\.url.lastPathComponent) == ["one.png", "two.jpg"])
        #expect(exhausted[0].sentence == "one.jpg arrived as JPEG; saved as PNG with the same pixels")
        #expect(exhausted[1].sentence == "two.jpg was not converted to PNG: this message's images passed 1 megapixels; saved as the JPEG it travelled as")

        // Over the per-image limit; then two that fit; then one larger than what the message has left.
        let mixed = try opened([three, one, two, small].map(\.attachment), budget: ConversionBudget(perImage: 2_000_000, perMessage: 2_500_000))
        #expect(mixed.map(\.url.lastPathComponent) == ["three.jpg", "one.png", "two.png", "small.jpg"])
        #expect(mixed[0].sentence == "three.jpg is larger than 2 megapixels; saved as the JPEG it travelled as")
        #expect(mixed[3].sentence == "small.jpg was not converted to PNG: this message's images passed 2 megapixels; saved as the JPEG it travelled as")
        for (saved, sent) in [(mixed[0], three), (mixed[3], small), (exhausted[1], two)] {
            #expect(Array(try Data(contentsOf: saved.url)) == sent.bytes, "\(saved.url.lastPathComponent)")
        }
        // A file that is not an image is saved as it came, with no note.
        let note = try OutgoingAttachment(name: "note.txt", bytes: Array("plain".utf8))
        #expect(try opened([note], budget: .standard).map(\.note) == [nil])
    }
}

/// Events recorded from the observer (which may be called from any thread).
private final class Events: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var recorded: [String] = []

    func add(_ event: String) { lock.withLock { recorded.append(event) } }
    var all: [String] { lock.withLock { recorded } }
}
