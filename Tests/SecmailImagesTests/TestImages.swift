import Foundation
@testable import SecmailImages
import SecmailTestSupport

extension TestPNG {
    /// What a decoder must produce, by the specification: RGBA at 8 bits (16 for 16-bit
    /// sources), grey and low depths scaled by bit replication, tRNS as alpha.
    var expected: RGBAImage {
        let wide = bitDepth == 16
        let maximum = (1 << bitDepth) - 1
        var samples: [UInt8] = []
        func put(_ value: Int) {
            if wide { samples += [UInt8(value >> 8), UInt8(value & 0xFF)] } else { samples.append(UInt8(value)) }
        }
        let scale = { (v: Int) in wide ? v : v * 255 / maximum }
        let opaque = wide ? 65535 : 255
        for y in 0..<height {
            for x in 0..<width {
                let s = (0..<channels).map { sample(x, y, $0) }
                switch colorType {
                case 0:
                    let g = scale(s[0])
                    [g, g, g].forEach(put)
                    put(transparency?.first == s[0] ? 0 : opaque)
                case 2:
                    s.map(scale).forEach(put)
                    put(transparency == s ? 0 : opaque)
                case 3:
                    let entry = palette[s[0]]
                    [Int(entry.0), Int(entry.1), Int(entry.2)].forEach(put)
                    put(s[0] < (transparency?.count ?? 0) ? transparency![s[0]] : 255)
                case 4:
                    let g = scale(s[0])
                    [g, g, g, scale(s[1])].forEach(put)
                default:
                    s.map(scale).forEach(put)
                }
            }
        }
        return RGBAImage(width: width, height: height, bitDepth: wide ? 16 : 8, samples: samples)
    }
}

/// Runs a command-line tool on `input` (a file) and returns its standard output bytes.
func tool(_ name: String, _ arguments: [String]) throws -> [UInt8] {
    let result = try run(name, arguments)
    guard result.status == 0 else { throw ImageError(.corrupt, "\(name) failed: \(result.stderr)") }
    return Array(result.stdout)
}

/// Writes bytes to a fresh temporary file.
func temporaryFile(_ bytes: [UInt8], suffix: String) throws -> URL {
    let url = try makeTemporaryDirectory("images").appendingPathComponent("file\(suffix)")
    try Data(bytes).write(to: url)
    return url
}
