import Foundation
import Testing
import SecmailCommandLine

/// `formatBytes` computes in integers what printf's "%.1f" / "%.2f" would print.
@Suite struct FormatBytesTests {
    func printf(_ count: UInt64) -> String {
        if count < 1024 { return "\(count) B" }
        if count < 1 << 20 { return String(format: "%.1f KiB", Double(count) / 1024) }
        if count < 1 << 30 { return String(format: "%.1f MiB", Double(count) / 1_048_576) }
        return String(format: "%.2f GiB", Double(count) / 1_073_741_824)
    }

    @Test func matchesPrintfIncludingTiesToEven() {
        // Unit edges, exact ties (1280 B is 1.25 KiB: "1.2"; 1.75 KiB: "1.8"), carries into the
        // next whole number, and the largest counts.
        var counts: [UInt64] = [0, 1, 1023, 1024, 1025, 1280, 1792, 2047, 2048, 1_048_575, 1 << 20, (1 << 20) + (1 << 18),
                                (1 << 30) - 1, 1 << 30, (1 << 30) + (1 << 27), 5 << 30, UInt64.max >> 1, UInt64.max]
        var random = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            counts.append(UInt64.random(in: 0..<(1 << 34), using: &random) >> UInt64.random(in: 0...30, using: &random))
        }
        for count in counts {
            #expect(formatBytes(count) == printf(count), "\(count)")
        }
        #expect(formatBytes(1280) == "1.2 KiB" && formatBytes(1792) == "1.8 KiB" && formatBytes(1_048_575) == "1024.0 KiB")
    }
}
