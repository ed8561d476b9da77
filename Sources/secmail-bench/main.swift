// Seal/open throughput and peak memory for one attachment size, in a release build.
// Usage: secmail-bench SIZE_MIB [ITERATIONS]. scripts/bench-envelope.sh runs it for each size in
// its own process (so peak RSS belongs to that size) beside `openssl speed` figures.
import Foundation
import SecmailClient
import SecmailCrypto
import SecmailFormat

/// Counts bytes and drops them: measures the format, not the disk.
final class DiscardingSink: ContentSink {
    var count: UInt64 = 0
    func beginAttachment(_ info: AttachmentInfo, index: Int) throws {}
    func write(_ bytes: ArraySlice<UInt8>) throws { count += UInt64(bytes.count) }
    func endAttachment() throws {}
}

/// Peak resident set size of this process (VmHWM), in bytes.
func peakRSS() -> UInt64 {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kib = UInt64(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
    return kib * 1024
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

let arguments = CommandLine.arguments
guard arguments.count >= 2, let sizeMiB = Int(arguments[1]), sizeMiB > 0 else {
    FileHandle.standardError.write(Data("usage: secmail-bench SIZE_MIB [ITERATIONS]\n".utf8))
    exit(64)
}
let iterations = arguments.count >= 3 ? max(1, Int(arguments[2]) ?? 1) : 1
let size = sizeMiB << 20

let directory = FileManager.default.temporaryDirectory.appendingPathComponent("secmail-bench-\(UUID().uuidString)", isDirectory: true)
try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: directory) }

func identity(_ name: String) throws -> (SenderIdentity, RecipientKey) {
    let signing = try RSAPrivateKey.generate(bitCount: 3072)
    let encryption = try RSAPrivateKey.generate(bitCount: 3072)
    let bundle = try IdentityBundle.create(name: IdentityName(name), createdAt: 0, signingKey: signing,
                                           encryptionKey: encryption.publicKey)
    return (try SenderIdentity(bundle: bundle, signingKey: signing),
            RecipientKey(fingerprint: bundle.fingerprint, encryptionKey: encryption))
}
let (alice, _) = try identity("alice")
let (bob, bobKey) = try identity("bob")

// The attachment, written in 1 MiB blocks so the benchmark itself never holds it.
let attachmentURL = directory.appendingPathComponent("attachment.bin")
_ = FileManager.default.createFile(atPath: attachmentURL.path, contents: nil)
let writer = try FileHandle(forWritingTo: attachmentURL)
let block = try SystemRandom().bytes(count: 1 << 20)
for _ in 0..<sizeMiB { try writer.write(contentsOf: block) }
try writer.close()
let rssBefore = peakRSS()

let envelopeURL = directory.appendingPathComponent("envelope.smsg")
var sealTimes: [Double] = [], openTimes: [Double] = [], verifyTimes: [Double] = [], openToDiskTimes: [Double] = []
for _ in 0..<iterations {
    try? FileManager.default.removeItem(at: envelopeURL)
    sealTimes.append(try seconds {
        let file = try PositionalFile(creatingAtPath: envelopeURL.path)
        _ = try EnvelopeSealer().seal(text: "benchmark", attachments: [OutgoingAttachment(file: attachmentURL)],
                                      from: alice, to: [bob.bundle], into: FileSink(file: file))
    })

    let sink = DiscardingSink()
    var verified: VerifiedEnvelope?
    let verifyTime = try seconds {
        verified = try EnvelopeOpener.verify(FileEnvelopeSource(url: envelopeURL), sender: alice.bundle, keys: [bobKey])
    }
    let decryptTime = try seconds { _ = try verified?.decrypt(into: sink) }
    precondition(sink.count == UInt64(size), "decrypted size differs")
    verifyTimes.append(verifyTime)
    openTimes.append(verifyTime + decryptTime)

    // The whole `secmail open` path: staging files, fsync, rename.
    let out = directory.appendingPathComponent("out-\(UUID().uuidString)", isDirectory: true)
    openToDiskTimes.append(try seconds {
        let verified = try EnvelopeOpener.verify(FileEnvelopeSource(url: envelopeURL), sender: alice.bundle, keys: [bobKey])
        let target = try AttachmentDirectory(outputDirectory: out)
        _ = try verified.decrypt(into: target)
        _ = try target.commit()
    })
    try? FileManager.default.removeItem(at: out)
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
func rate(_ time: Double) -> Double { Double(size) / time / 1e6 }
let envelopeSize = (try FileManager.default.attributesOfItem(atPath: envelopeURL.path)[.size] as? NSNumber)?.uint64Value ?? 0
print(String(format: "size_mib=%d iterations=%d envelope_bytes=%llu seal_mbps=%.1f open_mbps=%.1f verify_mbps=%.1f open_to_disk_mbps=%.1f peak_rss_mib=%.1f rss_before_mib=%.1f",
             sizeMiB, iterations, envelopeSize, rate(median(sealTimes)), rate(median(openTimes)), rate(median(verifyTimes)),
             rate(median(openToDiskTimes)), Double(peakRSS()) / 1_048_576, Double(rssBefore) / 1_048_576))
