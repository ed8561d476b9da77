internal import CSystemCalls
import Dispatch
import FoundationEssentials
import Glibc
import SecmailCrypto
import Synchronization

/// A file read with `pread` and written with `write` into and from buffers the caller reuses.
///
/// This is the format layer's only system-call boundary. It exists for speed: Foundation's
/// FileHandle returns a freshly allocated Data per read, and on the chunk path that allocation
/// (page faults on every large buffer) cost more than the cryptography itself.
public final class PositionalFile: @unchecked Sendable {
    // @unchecked: the descriptor is fixed for the object's life; pread carries its own offset;
    // the counters of what was written, reserved and scheduled belong to the one writer at a
    // time; what background syncs share with the writer is behind `backgroundSync`.
    private let descriptor: Int32
    public let path: String
    /// Bytes written so far, up to where the kernel was last asked to start writing them to
    /// disk, and how many of them a background data sync was last asked for.
    private var written: UInt64 = 0
    private var writebackStarted: UInt64 = 0
    private var dataSyncRequested: UInt64 = 0
    /// Whether reads and writes go between the caller's memory and the device
    /// (`writeAroundPageCache()`, `readAroundPageCache()`).
    private var bypassesPageCache = false
    /// The length the file is expected to reach, and where the disk blocks reserved for it end.
    private let expectedLength: UInt64
    private var reservedEnd: UInt64 = 0
    /// The queue a created file's background syncs run on (one at a time; nil for a file only
    /// read or a scratch file, which are never written to disk ahead of time), whether one is
    /// waiting to start, how many ran, and the first one's failure.
    private let backgroundSyncs: DispatchQueue?
    private let backgroundSync = Mutex<(queued: Bool, completed: Int, failure: FormatError?)>((false, 0, nil))

    /// How much newly written data makes a step, once `scheduled` bytes were: a quarter of that,
    /// from 256 KiB up to 8 MiB. At each step the kernel starts writing what came since
    /// (sync_file_range), and from `backgroundSyncStart` on a data sync (`fdatasync`) runs in the
    /// background too. Measured on the test machine's virtual disk, where making written data
    /// durable costs a flush about as long as the writes: a file written at 540 MB/s waited in its
    /// final fsync 1.8 ms (1 MiB), 6.3 (4 MiB) and 66 (64 MiB) with writeback started at each
    /// step, 1.8, 0.9 and 7.9 ms with data syncs from the first MiB on; written as fast as the
    /// page cache takes it, a data sync at every step of a small file cost 0.2–0.6 ms more than
    /// writeback alone (the syncs queue up behind each other), from the first MiB on nothing.
    /// When the file's `expectedLength` is known, steps also shrink to a quarter of what is left
    /// (not below 256 KiB), so that the final fsync waits for the last few hundred KiB instead of
    /// up to 8 MiB (6.4 ms at the end of a 64 MiB deposit, traced).
    static func stepInterval(after scheduled: UInt64, expectedLength: UInt64 = 0) -> UInt64 {
        let step = min(8 << 20, max(256 << 10, scheduled / 4))
        guard expectedLength > scheduled else { return step }
        return min(step, max(256 << 10, (expectedLength - scheduled) / 4))
    }

    static let backgroundSyncStart: UInt64 = 1 << 20

    /// Opens an existing file for reading.
    public init(readingAtPath path: String) throws {
        self.path = path
        expectedLength = 0
        backgroundSyncs = nil
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw systemCallError("cannot open \(path)") }
    }

    /// Creates a new file (failing if it exists) with `permissions`, for writing.
    ///
    /// Nearly every file the project writes is synced before it counts, so a created file is
    /// written to disk as it grows (at each `stepInterval`; past the first MiB also synced, on a
    /// queue of its own that never holds up the writer), and the final `synchronize()` waits for
    /// the last few MiB instead of all of it. A `scratch` file, only read back and removed, is
    /// left to the page cache.
    ///
    /// With the `expectedLength` the file will reach (a download's or an upload's declared
    /// length), its disk blocks are reserved ahead of the writes (`reservationStep` at a time,
    /// the first one here; what was not filled is given back by `synchronize()`), so that a disk too full for the file fails at once or early, and
    /// the filesystem finds blocks once a step instead of page by page. Measured on the test
    /// machine's ext4, 64 MiB written in 256 KiB pieces (writeback started every MiB, then a
    /// data sync) cost the whole machine 28 ms of CPU, 23–25 with 8 MiB reserved at a time and
    /// 22–26 with all 64 reserved at once. Step by step, so that a declared length never holds
    /// more disk than the bytes that came plus one step: a client that declares 256 MiB and
    /// sends slowly cannot hold the relay's disk with bytes it never sends.
    public init(creatingAtPath path: String, permissions: UInt32 = 0o600, scratch: Bool = false, expectedLength: UInt64 = 0) throws {
        self.path = path
        self.expectedLength = expectedLength
        backgroundSyncs = scratch ? nil : DispatchQueue(label: "secmail.positional-file.sync")
        descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(permissions))
        guard descriptor >= 0 else { throw systemCallError("cannot create \(path)") }
        do {
            try reserve(through: 0)
        } catch {
            unlink(path)  // deinit closes the descriptor
            throw error
        }
    }

    /// How far ahead of the writes disk blocks are reserved, at most.
    static let reservationStep: UInt64 = 8 << 20

    /// Reserves the disk blocks from where the reservation ends up to the next step past
    /// `offset`, within `expectedLength`. A filesystem that cannot preallocate is left to
    /// allocate as it writes.
    private func reserve(through offset: UInt64) throws {
        guard reservedEnd < expectedLength, offset >= reservedEnd else { return }
        let end = min(expectedLength, max(offset, reservedEnd) + Self.reservationStep)
        while secmail_reserve_blocks(descriptor, off_t(reservedEnd), off_t(end - reservedEnd)) != 0 {
            switch errno {
            case EINTR: continue
            case EOPNOTSUPP, ENOSYS:
                reservedEnd = expectedLength
                return
            default: throw systemCallError("cannot reserve disk space for \(path)")
            }
        }
        reservedEnd = end
    }

    deinit {
        close(descriptor)
    }

    /// What reads and writes around the page cache must be aligned to, in address, file offset and
    /// length: a page, a multiple of any device's logical block.
    public static let directIOAlignment = 4096

    /// From here on, writes go from the caller's memory straight to the device (O_DIRECT), where
    /// the filesystem allows it; returns whether it does. For a large file written once and read
    /// back rarely (a deposited envelope): its bytes are neither copied into new page-cache pages
    /// nor written back from them later, which on the 2-core test machine cost about as much CPU
    /// as the TLS layer that brought them (each new page 1.3 µs). Writes must then come from
    /// memory aligned to `directIOAlignment`, in multiples of it (`AlignedBlockWriter`); the
    /// first that does not (a file's last, partial block) turns it off for the rest of the file.
    public func writeAroundPageCache() -> Bool {
        guard written % UInt64(Self.directIOAlignment) == 0 else { return false }
        bypassesPageCache = secmail_set_direct_io(descriptor, 1) == 0
        return bypassesPageCache
    }

    /// From here on, reads come from the device straight into the caller's memory (O_DIRECT),
    /// where the filesystem allows it; returns whether it does. For a large file read once, in
    /// order (an envelope a relay sends): none of it is copied into new page-cache pages first,
    /// which on the test machine took a relay thread 120 ms of CPU per 64 MiB fetch. Reads must
    /// then go through `readAligned(at:into:)`.
    public func readAroundPageCache() -> Bool {
        bypassesPageCache = secmail_set_direct_io(descriptor, 1) == 0
        return bypassesPageCache
    }

    /// Reads from `offset` (a multiple of `directIOAlignment`) into the part of `destination`
    /// that begins at the first aligned address, as many whole aligned blocks as fit, stopping
    /// early only at end of file: what a file read around the page cache needs, and fine for any
    /// other. Returns how many bytes at the front of `destination` were skipped to align it, and
    /// how many were read after them.
    public func readAligned(at offset: UInt64, into destination: UnsafeMutableRawBufferPointer) throws -> (skipped: Int, count: Int) {
        precondition(offset % UInt64(Self.directIOAlignment) == 0, "an aligned read starts at an aligned offset")
        guard let base = destination.baseAddress else { return (0, 0) }
        let alignment = UInt(Self.directIOAlignment)
        let skipped = Int((alignment - UInt(bitPattern: base) % alignment) % alignment)
        let usable = max(0, destination.count - skipped) / Self.directIOAlignment * Self.directIOAlignment
        guard usable > 0 else { return (skipped, 0) }
        let aligned = UnsafeMutableRawBufferPointer(start: base + skipped, count: usable)
        return (skipped, try readRepeatedly(at: offset, into: aligned, stoppingWithinABlock: true))
    }

    /// Back to writes through the page cache; what was written around it is on the device already,
    /// so the steps that start writeback begin from here.
    private func stopBypassingPageCache() throws {
        guard secmail_set_direct_io(descriptor, 0) == 0 else { throw systemCallError("cannot turn direct I/O off for \(path)") }
        bypassesPageCache = false
        writebackStarted = written
        dataSyncRequested = written
    }

    /// Current size in bytes.
    public func size() throws -> UInt64 {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw systemCallError("cannot stat \(path)") }
        return UInt64(info.st_size)
    }

    /// Reads into `buffer[range]` from `offset`, stopping early only at end of file.
    /// Returns the number of bytes read.
    public func read(at offset: UInt64, into buffer: inout [UInt8], range: Range<Int>) throws -> Int {
        precondition(range.lowerBound >= 0 && range.upperBound <= buffer.count, "read range outside the buffer")
        return try buffer.withUnsafeMutableBytes { raw in
            try read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: raw[range]))
        }
    }

    /// Whether the files at `first` and `second` hold the same bytes, read a megabyte at a time
    /// and compared with memcmp (false when either cannot be read). The comparison is here, with
    /// the other raw buffers: in a debug build, `==` on two array slices of 57 MiB took 4 s
    /// (generic code, element by element).
    public static func sameContent(_ first: String, _ second: String) -> Bool {
        guard let left = try? PositionalFile(readingAtPath: first), let right = try? PositionalFile(readingAtPath: second),
              let size = try? left.size(), size == (try? right.size()) else { return false }
        let chunk = 1 << 20
        let leftBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        let rightBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer {
            leftBuffer.deallocate()
            rightBuffer.deallocate()
        }
        guard let leftBase = leftBuffer.baseAddress, let rightBase = rightBuffer.baseAddress else { return false }
        var offset: UInt64 = 0
        while offset < size {
            let count = Int(min(UInt64(chunk), size - offset))
            guard (try? left.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: leftBuffer[..<count]))) == count,
                  (try? right.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: rightBuffer[..<count]))) == count,
                  memcmp(leftBase, rightBase, count) == 0 else { return false }
            offset += UInt64(count)
        }
        return true
    }

    /// Reads into memory another owner lends (a network buffer being filled, so that the bytes
    /// are not copied once more), from `offset`, stopping early only at end of file. Returns the
    /// number of bytes read.
    public func read(at offset: UInt64, into destination: UnsafeMutableRawBufferPointer) throws -> Int {
        try readRepeatedly(at: offset, into: destination, stoppingWithinABlock: false)
    }

    /// pread(2) until `destination` is full or the file ends, again after a signal or a short
    /// read; with `stoppingWithinABlock`, also after a read that ended within a direct-I/O block:
    /// only the end of the file does that, and a read from there would start unaligned, which
    /// direct I/O refuses.
    private func readRepeatedly(at offset: UInt64, into destination: UnsafeMutableRawBufferPointer, stoppingWithinABlock: Bool) throws -> Int {
        guard let base = destination.baseAddress else { return 0 }
        var done = 0
        while done < destination.count {
            let count = pread(descriptor, base + done, destination.count - done, off_t(offset) + off_t(done))
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                throw systemCallError("reading \(path) failed")
            }
            done += count
            if stoppingWithinABlock, count % Self.directIOAlignment != 0 { break }
        }
        return done
    }

    /// Writes every byte of `bytes` at the current end of what was written.
    public func write(_ bytes: some ContiguousByteStorage) throws {
        let count = try bytes.withUnsafeBytes { raw in
            if bypassesPageCache, !Self.isAlignedForDirectWrite(raw) { try stopBypassingPageCache() }
            try writeAll(raw)
            return raw.count
        }
        written += UInt64(count)
        if backgroundSyncs != nil, !bypassesPageCache, written - writebackStarted >= Self.stepInterval(after: writebackStarted, expectedLength: expectedLength) {
            if writebackStarted >= Self.backgroundSyncStart { syncInBackground() } else { startWriteback() }
        }
    }

    private static func isAlignedForDirectWrite(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        return UInt(bitPattern: base) % UInt(directIOAlignment) == 0 && bytes.count % directIOAlignment == 0
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        try reserve(through: written + UInt64(bytes.count) - 1)
        var done = 0
        while done < bytes.count {
            let count = Glibc.write(descriptor, base + done, bytes.count - done)
            if count < 0 {
                if errno == EINTR { continue }
                throw systemCallError("writing \(path) failed")
            }
            done += count
        }
    }

    /// Asks the kernel to start writing to disk what was written since the last such request,
    /// without waiting.
    private func startWriteback() {
        guard written > writebackStarted else { return }
        // Advisory: a failure here changes nothing that the final fsync would not report.
        _ = secmail_start_writeback(descriptor, off_t(writebackStarted), off_t(written - writebackStarted))
        writebackStarted = written
    }

    /// Starts writing everything written so far to disk and a data sync of it, without waiting
    /// for either: a later `synchronize()` then waits only for what came after. At most one sync
    /// waits to start; a request while one waits is covered by it.
    public func syncInBackground() {
        guard let backgroundSyncs else { return }
        startWriteback()
        guard written > dataSyncRequested else { return }
        dataSyncRequested = written
        let alreadyQueued = backgroundSync.withLock { state in
            let queued = state.queued
            state.queued = true
            return queued
        }
        guard !alreadyQueued else { return }
        backgroundSyncs.async { [self] in
            backgroundSync.withLock { $0.queued = false }
            let failure = fdatasync(descriptor) == 0 ? nil : systemCallError("fsync of \(path) failed")
            backgroundSync.withLock { state in
                state.completed += 1
                state.failure = state.failure ?? failure
            }
        }
    }

    /// How many background syncs have run.
    var completedBackgroundSyncs: Int { backgroundSync.withLock { $0.completed } }

    /// Flushes written data to stable storage. A background sync's failure is reported here:
    /// the kernel tells a failed writeback to one sync call only, which may have been that one.
    public func synchronize() throws {
        backgroundSyncs?.sync {}
        if let failure = backgroundSync.withLock({ $0.failure }) { throw failure }
        try releaseUnusedReservation()
        guard fsync(descriptor) == 0 else { throw systemCallError("fsync of \(path) failed") }
    }

    /// Gives back the blocks reserved past what was written (a download that came shorter than
    /// its expected length must not keep disk it never filled): truncating the file to its own
    /// size frees them. Writes after this reserve again.
    private func releaseUnusedReservation() throws {
        guard reservedEnd > written else { return }
        guard ftruncate(descriptor, off_t(written)) == 0 else { throw systemCallError("cannot truncate \(path)") }
        reservedEnd = written
    }
}

/// `what` failed, with errno's explanation; a full disk (which a write, or only the sync after
/// it, reports) has a code of its own.
private func systemCallError(_ what: String) -> FormatError {
    let number = errno
    return FormatError(number == ENOSPC || number == EDQUOT ? .noSpace : .io, "\(what): \(String(cString: strerror(number)))")
}

/// Moving files into place in one step.
public enum AtomicRename {
    /// Moves `source` to `target` unless something is there, even something created an instant
    /// before (a check and then a rename(2) would replace that); answers false, moving nothing,
    /// when `target` exists.
    public static func moveWithoutReplacing(_ source: URL, to target: URL) throws -> Bool {
        if secmail_rename_no_replace(source.path, target.path) == 0 { return true }
        if errno == EEXIST { return false }
        throw systemCallError("cannot move \(source.path) to \(target.path)")
    }

    /// Moves `source` over `target` in one step (rename(2)): readers see the old file or the new
    /// one, never a missing or partial one. (Foundation's replaceItemAt on Linux can fail after
    /// removing the target.)
    public static func replace(_ target: URL, with source: URL) throws {
        guard rename(source.path, target.path) == 0 else {
            throw systemCallError("cannot move \(source.path) to \(target.path)")
        }
    }
}

/// Facts about the process's standard streams.
public enum StandardStreams {
    /// Whether standard error is a terminal (progress lines are for people, not logs).
    public static var isStandardErrorTerminal: Bool { isatty(STDERR_FILENO) == 1 }

    /// Whether standard output is a terminal (where binary output does not belong).
    public static var isStandardOutputTerminal: Bool { isatty(STDOUT_FILENO) == 1 }

    /// Writes all of `text` to standard output (write(2), again after a signal or a short write).
    /// The first failure is kept in `outputFailure`, for the command to end with it (a result
    /// that did not reach a full disk or a closed pipe is a failed command; Foundation's
    /// FileHandle traps on such a failure).
    public static func writeOutput(_ text: String) {
        var text = text
        text.withUTF8 { keepFailure(of: UnsafeRawBufferPointer($0)) }
    }

    /// As `writeOutput(_:)`, for binary output (`secmail seal -o -`).
    public static func writeOutput(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { keepFailure(of: $0) }
    }

    private static func keepFailure(of bytes: UnsafeRawBufferPointer) {
        if let failure = write(bytes, to: STDOUT_FILENO) {
            outputFailureStorage.withLock { if $0 == nil { $0 = failure } }
        }
    }

    /// Why something written to standard output did not get there, if it did not.
    public static var outputFailure: String? { outputFailureStorage.withLock { $0?.reason } }

    /// Whether standard output failed because its reader had gone (`secmail read ID | head`):
    /// a reader that stops early, not a result lost.
    public static var outputReaderLeft: Bool { outputFailureStorage.withLock { $0?.errorNumber == EPIPE } }

    /// As `writeOutput`, to standard error; a failure there has nowhere to be said.
    public static func writeError(_ text: String) {
        var text = text
        _ = text.withUTF8 { write(UnsafeRawBufferPointer($0), to: STDERR_FILENO) }
    }

    private struct WriteFailure {
        let reason: String
        /// errno, or 0 for a write that wrote nothing without an error.
        let errorNumber: Int32
    }

    private static let outputFailureStorage = Mutex<WriteFailure?>(nil)

    /// nil, or why the write failed.
    private static func write(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32) -> WriteFailure? {
        guard let start = bytes.baseAddress else { return nil }
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(descriptor, start + offset, bytes.count - offset)
            if written > 0 {
                offset += written
            } else if written < 0, errno == EINTR {
                continue
            } else if written < 0 {
                let errorNumber = errno
                return WriteFailure(reason: String(cString: strerror(errorNumber)), errorNumber: errorNumber)
            } else {
                return WriteFailure(reason: "nothing was written", errorNumber: 0)
            }
        }
        return nil
    }
}
