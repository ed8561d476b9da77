import SecmailCrypto

/// Gathers the pieces of a file written in order (a request body's buffers, of any size and
/// address) into one page-aligned block, and writes the block each time it fills: what a file
/// written around the page cache (`PositionalFile.writeAroundPageCache()`) takes. The last,
/// partial block goes out with `flush()`. Used by one thread at a time.
public final class AlignedBlockWriter: @unchecked Sendable {
    // @unchecked: `block` and `filled` belong to the one thread writing at a time.
    public let file: PositionalFile
    private let block: UnsafeMutableRawBufferPointer
    private var filled = 0
    /// 512 KiB: one request to the test machine's virtual disk (about 0.25 ms there), few enough
    /// system calls, and memory the relay's allocator keeps for reuse
    /// (`ProcessMemory.keepStreamingBuffersForReuse`); with blocks the allocator mapped afresh
    /// each time, a deposit took 257 more first-touch page faults.
    public static let blockSize = 512 << 10

    public init(file: PositionalFile) {
        self.file = file
        block = .allocate(byteCount: Self.blockSize, alignment: PositionalFile.directIOAlignment)
    }

    deinit {
        block.deallocate()
    }

    /// Copies `bytes` after what was gathered, writing the block whenever it fills.
    public func write(_ bytes: some ContiguousByteStorage) throws {
        try bytes.withUnsafeBytes { piece in
            guard let source = piece.baseAddress, let destination = block.baseAddress else { return }
            var copied = 0
            while copied < piece.count {
                let count = min(block.count - filled, piece.count - copied)
                (destination + filled).copyMemory(from: source + copied, byteCount: count)
                filled += count
                copied += count
                if filled == block.count { try flush() }
            }
        }
    }

    /// Writes what is gathered, a partial block included: its whole pages as they are, the bytes
    /// after them (the end of the file) in a write of their own, which a file written around the
    /// page cache takes through it.
    public func flush() throws {
        let wholePages = filled / PositionalFile.directIOAlignment * PositionalFile.directIOAlignment
        if wholePages > 0 { try file.write(UnsafeRawBufferPointer(rebasing: block[..<wholePages])) }
        if filled > wholePages { try file.write(UnsafeRawBufferPointer(rebasing: block[wholePages..<filled])) }
        filled = 0
    }
}
