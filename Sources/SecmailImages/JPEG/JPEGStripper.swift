/// Removes metadata from a JPEG file without touching its compressed image data: EXIF and XMP
/// (APP1), comments, maker and vendor segments, embedded thumbnails and anything after the end
/// of the image are dropped; what decoding depends on (tables, frame and scan headers, the
/// entropy-coded data, the JFIF header, an ICC profile, Adobe's colour-transform flag) stays.
enum JPEGStripper {
    /// The stripped file, or nil when the marker structure cannot be followed. The orientation
    /// of the first EXIF block before the image data (the one libjpeg reports, and the decoder
    /// reads) is kept, in a minimal block of its own: the one EXIF fact that changes how the
    /// image looks. Nothing here needs the pixels, so the stripped file can be made (and
    /// recompressed) while they are being decoded.
    static func strip(_ bytes: [UInt8]) -> [UInt8]? {
        guard bytes.count >= 4, bytes[0] == 0xFF, bytes[1] == 0xD8 else { return nil }
        var out: [UInt8] = [0xFF, 0xD8]
        var orientation: UInt16?
        var exifSeen = false, imageDataSeen = false
        var offset = 2
        while offset < bytes.count {
            guard bytes[offset] == 0xFF else { return nil }
            // Fill bytes (0xFF padding) may precede a marker.
            var markerAt = offset
            while markerAt + 1 < bytes.count, bytes[markerAt + 1] == 0xFF { markerAt += 1 }
            guard markerAt + 1 < bytes.count else { return nil }
            let marker = bytes[markerAt + 1]
            if marker == 0xD9 {  // EOI: the image ends; trailing data (thumbnails, vendor trailers) is dropped
                out += [0xFF, 0xD9]
                if let orientation, orientation != 1 {
                    let exif = Array("Exif".utf8) + [0, 0] + ExifOrientation.block(orientation)
                    out.insert(contentsOf: [0xFF, 0xE1, UInt8((exif.count + 2) >> 8), UInt8((exif.count + 2) & 0xFF)] + exif, at: 2)
                }
                return out
            }
            guard markerAt + 3 < bytes.count else { return nil }
            let length = Int(bytes[markerAt + 2]) << 8 | Int(bytes[markerAt + 3])
            guard length >= 2, markerAt + 2 + length <= bytes.count else { return nil }
            let segmentEnd = markerAt + 2 + length
            let payload = bytes[(markerAt + 4)..<segmentEnd]
            if marker == 0xE1, !exifSeen, !imageDataSeen, payload.count > 6, payload.starts(with: Array("Exif".utf8) + [0, 0]) {
                exifSeen = true
                orientation = ExifOrientation.read(Array(payload.dropFirst(6)))
            }
            if keeps(marker: marker, payload: payload) {
                out += bytes[markerAt..<segmentEnd]
            }
            offset = segmentEnd
            if marker == 0xDA {
                imageDataSeen = true
                // Entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or a restart marker.
                var scan = offset
                while scan + 1 < bytes.count {
                    if bytes[scan] == 0xFF, bytes[scan + 1] != 0x00, !(0xD0...0xD7).contains(bytes[scan + 1]), bytes[scan + 1] != 0xFF {
                        break
                    }
                    scan += 1
                }
                guard scan + 1 < bytes.count else { return nil }
                out += bytes[offset..<scan]
                offset = scan
            }
        }
        return nil
    }

    private static func keeps(marker: UInt8, payload: ArraySlice<UInt8>) -> Bool {
        switch marker {
        case 0xE0: return payload.starts(with: Array("JFIF".utf8) + [0])          // not JFXX thumbnails
        case 0xE2: return payload.starts(with: Array("ICC_PROFILE".utf8) + [0])   // not MPF, FPXR
        case 0xEE: return payload.starts(with: Array("Adobe".utf8))               // colour transform flag
        case 0xE1, 0xE3...0xED, 0xEF, 0xFE: return false                         // EXIF, XMP, vendor data, comments
        default: return true
        }
    }
}
