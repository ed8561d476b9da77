import Foundation
import SecmailFormat

/// A large envelope's bytes in the database itself (PostgreSQL, where relays share no file
/// system): rows of `envelope_chunks`, 1 MiB each, written from the deposit's staged file in the
/// transaction that commits the envelope, and read back one chunk per read transaction.
/// Neither way is an envelope ever whole in memory.
enum EnvelopeChunks {
    static let size = 1 << 20

    /// How many chunks an envelope of `bytes` bytes has.
    static func count(forEnvelopeOf bytes: Int) -> Int {
        (bytes + size - 1) / size
    }

    /// Copies the staged envelope `file` into `envelopeID`'s chunks within `db`.
    static func store(_ file: URL, as envelopeID: String, in db: any StorageTransaction) throws {
        var buffer = [UInt8](repeating: 0, count: size)
        do {
            let source = try PositionalFile(readingAtPath: file.path)
            var offset: UInt64 = 0, index = 0
            while true {
                var filled = 0
                while filled < size {
                    let read = try source.read(at: offset + UInt64(filled), into: &buffer, range: filled..<size)
                    if read == 0 { break }
                    filled += read
                }
                guard filled > 0 else { return }
                try db.execute("INSERT INTO envelope_chunks (envelope_id, chunk_index, data) VALUES (?, ?, ?)",
                               [envelopeID, index, Data(buffer[0..<filled])])
                offset += UInt64(filled)
                index += 1
                if filled < size { return }
            }
        } catch let error as FormatError {
            throw RelayError(.storage, "cannot read the staged envelope \(file.path): \(error.reason)")
        }
    }

    /// Chunk `index` of `envelopeID`.
    static func chunk(_ index: Int, of envelopeID: String, in db: any StorageTransaction) throws -> [UInt8]? {
        try db.fetchOne(Data.self, "SELECT data FROM envelope_chunks WHERE envelope_id = ? AND chunk_index = ?", [envelopeID, index])
            .map { Array($0) }
    }
}
