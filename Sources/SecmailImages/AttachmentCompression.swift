/// Attachment encoding 1 (docs/PROTOCOL.md, "Payload plaintext"): `u64` length of the file ‖ a
/// raw DEFLATE stream giving exactly that many bytes, made with libdeflate. Used for files that
/// are not images (images have their own lossless forms) when it saves at least 5%.
public enum AttachmentCompression {
    /// Files up to this size are compressed (whole, in memory); a reader refuses to inflate more.
    public static let maximumFileSize = 64 << 20
    /// DEFLATE cannot shrink data by more than about 1032:1; a claim beyond is a bomb.
    static let maximumRatio = 1032
    static let level = 9

    /// The stored form of `file`, or nil when compressing it would save less than 5% (or it is
    /// over `maximumFileSize`). A large file is judged first by a 256 KiB sample from its middle,
    /// so an archive or a video costs one small trial, not a whole pass.
    public static func compress(_ file: [UInt8]) throws -> [UInt8]? {
        guard file.count >= 64, file.count <= maximumFileSize else { return nil }
        let worthwhile = { (original: Int, compressed: Int) in compressed <= original - original / 20 }
        if file.count > 1 << 20 {
            let start = file.count / 2 - (128 << 10)
            let sample = Array(file[start..<start + (256 << 10)])
            guard let trial = try ImageCodecs.deflate(sample, level: 1, format: .raw, limit: sample.count),
                  worthwhile(sample.count, trial.count) else { return nil }
        }
        let limit = file.count - file.count / 20 - 8
        guard let stream = try ImageCodecs.deflate(file, level: level, format: .raw, limit: limit) else { return nil }
        var stored = withUnsafeBytes(of: UInt64(file.count).bigEndian) { Array($0) }
        stored += stream
        return stored
    }

    /// The file a stored attachment gives back: exactly its declared length, never more (the
    /// inflater stops at the bound), within `maximumFileSize` and the ratio DEFLATE can reach.
    public static func decompress(_ stored: [UInt8]) throws -> [UInt8] {
        guard stored.count > 8 else { throw ImageError(.corrupt, "the compressed attachment is too short to hold its length") }
        let declared = stored.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let stream = Array(stored.dropFirst(8))
        guard declared <= UInt64(maximumFileSize) else {
            throw ImageError(.tooLarge, "the compressed attachment declares \(declared) bytes; at most \(maximumFileSize >> 20) MiB are inflated")
        }
        guard declared <= UInt64(stream.count) * UInt64(maximumRatio) else {
            throw ImageError(.corrupt, "the compressed attachment declares \(declared) bytes, more than \(stream.count) compressed bytes can hold")
        }
        return try ImageCodecs.inflate(stream, format: .raw, expectedSize: Int(declared))
    }
}
