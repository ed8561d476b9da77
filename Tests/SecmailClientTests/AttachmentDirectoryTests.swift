import Foundation
import SecmailClient
import SecmailFormat
import SecmailImages
import SecmailRelayTestSupport
import SecmailTestSupport
import Testing

/// What a reader's client does with a decrypted message's attachments.
@Suite struct AttachmentDirectoryTests {
    /// The output folder is made with its missing parents, 0700; a folder there already, or a
    /// link to one, is used as it is; a file in the way is a clear error.
    @Test func theOutputFolderIsMadeWithItsParentsOrUsedOrRefused() throws {
        let root = try makeTemporaryDirectory("output-folder")
        let nested = root.appendingPathComponent("a/b/c", isDirectory: true)
        _ = try AttachmentDirectory(outputDirectory: nested).abort()
        for folder in [root.appendingPathComponent("a"), root.appendingPathComponent("a/b"), nested] {
            let status = try FileStatus(path: folder.path)
            #expect(status.kind == .directory && status.permissions == 0o700, "\(folder.path)")
        }
        let link = root.appendingPathComponent("link")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: nested)
        _ = try AttachmentDirectory(outputDirectory: link).abort()
        _ = try AttachmentDirectory(outputDirectory: nested).abort()
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
        #expect(opened.saved.map(\.lastPathComponent).sorted() == ["note.txt", "photo.png"])
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
