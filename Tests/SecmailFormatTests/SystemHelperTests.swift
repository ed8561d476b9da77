import Foundation
import Glibc
import SecmailCrypto
import Synchronization
@testable import SecmailFormat
import Testing

@Suite struct HumanTimeTests {
    @Test func formatsTheZoneOffsetAsISO8601() {
        #expect(HumanTime.iso8601(year: 2026, month: 11, day: 29, hour: 3, minute: 8, second: 56, offsetSeconds: 3600)
            == "2026-11-29T03:08:56+01:00")
        #expect(HumanTime.iso8601(year: 2026, month: 1, day: 2, hour: 0, minute: 0, second: 5, offsetSeconds: 0) == "2026-01-02T00:00:05Z")
        #expect(HumanTime.iso8601(year: 1999, month: 12, day: 31, hour: 23, minute: 59, second: 59, offsetSeconds: -(3 * 3600 + 30 * 60))
            == "1999-12-31T23:59:59-03:30")
        #expect(HumanTime.iso8601(year: 2024, month: 6, day: 1, hour: 12, minute: 0, second: 0, offsetSeconds: 5 * 3600 + 45 * 60)
            == "2024-06-01T12:00:00+05:45")
    }

    /// The line people read says what Foundation's ISO 8601 formatter says in the same zone.
    @Test func agreesWithFoundationsFormatterInTheLocalZone() {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = .current
        for seconds: Int64 in [0, 86_399, 951_782_400, 1_711_846_800, 1_795_000_000, 1_800_000_123, 4_102_444_800] {
            #expect(HumanTime.describe(seconds) == formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds))))
        }
    }

    @Test func aTimeNoCalendarHoldsIsShownAsSeconds() {
        #expect(HumanTime.describe(Int64.max) == "\(Int64.max) seconds after 1970")
    }
}

@Suite struct FileStatusTests {
    @Test func reportsKindSizePermissionsAndTime() throws {
        let folder = try makeTemporaryDirectory("filestatus")
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("f")
        try Data(repeating: 7, count: 1234).write(to: file)
        #expect(chmod(file.path, 0o640) == 0)
        let status = try FileStatus(path: file.path)
        #expect(status.kind == .regular)
        #expect(status.size == 1234)
        #expect(status.permissions == 0o640)
        #expect(abs(status.modified - Int64(Date().timeIntervalSince1970)) < 60)

        #expect(try FileStatus(path: folder.path).kind == .directory)
        let link = folder.appendingPathComponent("link")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: file)
        #expect(try FileStatus(path: link.path).kind == .symbolicLink)
        let missing = folder.appendingPathComponent("missing").path
        let error = #expect(throws: FormatError.self) { try FileStatus(path: missing) }
        #expect(error?.reason == "\(missing): No such file or directory")
    }
}

/// A move into place that never replaces what is there, even what appeared an instant before.
@Suite struct MoveWithoutReplacingTests {
    @Test func movesToAFreeNameAndLeavesATakenOneAlone() throws {
        let folder = try makeTemporaryDirectory("move-no-replace")
        defer { try? FileManager.default.removeItem(at: folder) }
        let source = folder.appendingPathComponent("source"), target = folder.appendingPathComponent("target")
        try Data("new".utf8).write(to: source)
        #expect(try AtomicRename.moveWithoutReplacing(source, to: target))
        #expect(!FileManager.default.fileExists(atPath: source.path))
        #expect(try Data(contentsOf: target) == Data("new".utf8))

        // A file there, or a link to nowhere (which a move must not follow or replace): false, and both stay.
        try Data("newer".utf8).write(to: source)
        #expect(try !AtomicRename.moveWithoutReplacing(source, to: target))
        #expect(try Data(contentsOf: target) == Data("new".utf8) && Data(contentsOf: source) == Data("newer".utf8))
        let link = folder.appendingPathComponent("link")
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: folder.appendingPathComponent("nowhere").path)
        #expect(try !AtomicRename.moveWithoutReplacing(source, to: link))
        #expect(try FileStatus(path: link.path).kind == .symbolicLink)
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("nowhere").path))

        let missing = folder.appendingPathComponent("missing/target")
        let error = #expect(throws: FormatError.self) { try AtomicRename.moveWithoutReplacing(source, to: missing) }
        #expect(error?.reason == "cannot move \(source.path) to \(missing.path): No such file or directory")
    }

    /// Eight threads move their own files to one name at the same moment, a hundred times: exactly
    /// one move succeeds each time, and the name holds that one's bytes.
    @Test func ofMovesToOneNameAtOnceExactlyOneWins() throws {
        let folder = try makeTemporaryDirectory("move-no-replace-race")
        defer { try? FileManager.default.removeItem(at: folder) }
        for round in 0..<100 {
            let target = folder.appendingPathComponent("target-\(round)")
            let sources = try (0..<8).map { index in
                let source = folder.appendingPathComponent("source-\(round)-\(index)")
                try Data("from \(index)".utf8).write(to: source)
                return source
            }
            let winners = Mutex<[Int]>([])
            DispatchQueue.concurrentPerform(iterations: sources.count) { index in
                if (try? AtomicRename.moveWithoutReplacing(sources[index], to: target)) == true { winners.withLock { $0.append(index) } }
            }
            let won = winners.withLock { $0 }
            #expect(won.count == 1, "round \(round): \(won)")
            if let winner = won.first { #expect(try Data(contentsOf: target) == Data("from \(winner)".utf8)) }
        }
    }
}

@Suite struct WriteToDiskScheduleTests {
    /// Steps come every 256 KiB, then every quarter of what was scheduled, up to 8 MiB at a time:
    /// a 1 MiB file is on its way to disk in four steps before its fsync, a 64 MiB one in two
    /// dozen, the later ones 8 MiB each.
    @Test func stepsComeEvery256KiBThenEveryQuarterUpTo8MiB() {
        let kib: UInt64 = 1 << 10, mib: UInt64 = 1 << 20
        var scheduled: UInt64 = 0
        var steps: [(from: UInt64, size: UInt64)] = []
        while scheduled < 64 * mib {
            let size = PositionalFile.stepInterval(after: scheduled)
            steps.append((scheduled, size))
            scheduled += size
        }
        #expect(steps.prefix(4).map(\.size) == [256 * kib, 256 * kib, 256 * kib, 256 * kib])
        #expect(steps.allSatisfy { $0.size == max(256 * kib, min(8 * mib, $0.from / 4)) })
        #expect(steps.filter { $0.from >= 32 * mib }.allSatisfy { $0.size == 8 * mib })
        #expect(steps.count < 30, "\(steps.count) steps for 64 MiB")
    }

    /// With the file's expected length known, the steps shrink towards its end, so the final fsync
    /// has little left to wait for: none of the last 2 MiB of a 64 MiB file is scheduled in a step
    /// over 512 KiB, every step is still at least 256 KiB, and up to the file's middle the steps
    /// are those of a file of unknown length.
    @Test func stepsShrinkTowardsAKnownEnd() {
        let kib: UInt64 = 1 << 10, mib: UInt64 = 1 << 20
        var scheduled: UInt64 = 0
        var steps: [(from: UInt64, size: UInt64)] = []
        while scheduled < 64 * mib {
            let size = PositionalFile.stepInterval(after: scheduled, expectedLength: 64 * mib)
            steps.append((scheduled, size))
            scheduled += size
        }
        #expect(steps.allSatisfy { $0.size >= 256 * kib })
        #expect(steps.filter { $0.from >= 62 * mib }.allSatisfy { $0.size <= 512 * kib })
        #expect(steps.filter { $0.from + 32 * mib <= 64 * mib }.allSatisfy { $0.size == PositionalFile.stepInterval(after: $0.from) })
        #expect(steps.count < 60, "\(steps.count) steps for 64 MiB")
    }

    /// Past its first MiB a created file syncs in the background as it grows, and `synchronize()`
    /// waits for those syncs: 4 MiB written in 64 KiB pieces have been synced at least once, and
    /// no more often than there are steps past the first MiB (a request while one waits is folded
    /// into it), by the time `synchronize()` returns; the file holds every byte. A file of 1 MiB,
    /// which only has the kernel start its writes, is synced by `synchronize()` alone, and so is
    /// a scratch file of 4 MiB.
    @Test func aCreatedFileSyncsAsItGrowsPastItsFirstMiB() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("secmail-sync-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let piece = [UInt8](repeating: 0x5a, count: 64 << 10)

        let small = try PositionalFile(creatingAtPath: folder.appendingPathComponent("small").path)
        for _ in 0..<16 { try small.write(piece[...]) }
        try small.synchronize()
        #expect(small.completedBackgroundSyncs == 0)

        let large = try PositionalFile(creatingAtPath: folder.appendingPathComponent("large").path)
        for _ in 0..<64 { try large.write(piece[...]) }
        try large.synchronize()
        var stepsPastFirstMiB = 0, scheduled: UInt64 = 0
        while scheduled + PositionalFile.stepInterval(after: scheduled) <= 4 << 20 {
            if scheduled >= PositionalFile.backgroundSyncStart { stepsPastFirstMiB += 1 }
            scheduled += PositionalFile.stepInterval(after: scheduled)
        }
        #expect(large.completedBackgroundSyncs >= 1)
        #expect(large.completedBackgroundSyncs <= stepsPastFirstMiB,
                "\(large.completedBackgroundSyncs) syncs for 4 MiB, \(stepsPastFirstMiB) steps past the first MiB")
        #expect(try large.size() == 4 << 20)

        // A scratch file (a download only checked and removed) is left to the page cache.
        let scratch = try PositionalFile(creatingAtPath: folder.appendingPathComponent("scratch").path, scratch: true)
        for _ in 0..<64 { try scratch.write(piece[...]) }
        try scratch.synchronize()
        #expect(scratch.completedBackgroundSyncs == 0)
        #expect(try scratch.size() == 4 << 20)
    }
}

@Suite struct DiskReservationTests {
    /// Disk bytes allocated to the file at `path` (st_blocks), whatever its size says.
    func allocated(_ path: String) -> UInt64 {
        var info = stat()
        #expect(stat(path, &info) == 0)
        return UInt64(info.st_blocks) * 512
    }

    /// A file created with the length it will reach has its disk blocks reserved ahead of the
    /// writes, one step (8 MiB) at a time: the first step at once, the next as the writes reach
    /// it, never past the expected length; its size is always what was written, and what was
    /// reserved but not written is given back when it is synchronised. One created
    /// without an expected length has nothing allocated before it is written (on a filesystem
    /// that preallocates, as the test machine's ext4 and tmpfs do).
    @Test func blocksAreReservedAheadOfTheWritesOneStepAtATime() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("secmail-reserve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let mib: UInt64 = 1 << 20, step = PositionalFile.reservationStep
        let path = folder.appendingPathComponent("upload").path
        let file = try PositionalFile(creatingAtPath: path, expectedLength: 20 * mib)
        #expect(try file.size() == 0)
        #expect(allocated(path) >= step && allocated(path) < 2 * step, "\(allocated(path)) bytes allocated at creation")

        let piece = [UInt8](repeating: 0x5a, count: 1 << 20)
        for _ in 0..<9 { try file.write(piece[...]) }  // 9 MiB: into the second step
        #expect(try file.size() == 9 * mib)
        #expect(allocated(path) >= 2 * step && allocated(path) < 20 * mib, "\(allocated(path)) bytes allocated after 9 MiB")
        for _ in 9..<20 { try file.write(piece[...]) }
        try file.synchronize()
        #expect(try file.size() == 20 * mib)
        #expect(allocated(path) >= 20 * mib && allocated(path) < 21 * mib, "\(allocated(path)) bytes allocated for 20 MiB")

        // A file that comes shorter than expected (a download the relay listed larger) keeps
        // no disk past its end once synchronised.
        let shortPath = folder.appendingPathComponent("short").path
        let short = try PositionalFile(creatingAtPath: shortPath, expectedLength: 20 * mib)
        try short.write(piece[...])
        #expect(allocated(shortPath) >= step)
        try short.synchronize()
        #expect(try short.size() == mib)
        #expect(allocated(shortPath) >= mib && allocated(shortPath) < 2 * mib, "\(allocated(shortPath)) bytes allocated for 1 MiB")

        let plainPath = folder.appendingPathComponent("plain").path
        let plain = try PositionalFile(creatingAtPath: plainPath)
        #expect(allocated(plainPath) == 0)
        try plain.write(piece[...])
        try plain.synchronize()
        #expect(try plain.size() == mib)
    }
}

@Suite struct ExclusiveFileLockTests {
    /// `holder(of:)` tells a held lock and its holder's process id, and a free or missing one,
    /// without keeping the lock from the next process that takes it; `acquire` of a held lock
    /// names the holder too.
    @Test func tellsWhetherTheLockIsHeldWithoutHoldingIt() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("secmail-lock-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("relay.lock").path
        #expect(try ExclusiveFileLock.holder(of: path) == (false, nil))
        var lock = try ExclusiveFileLock.acquire(path).lock
        #expect(lock != nil)
        let held = try ExclusiveFileLock.holder(of: path)
        #expect(held.held && held.holder == getpid())
        // A second taker (another open file, as another process has) is refused and told who holds it.
        let refused = try ExclusiveFileLock.acquire(path)
        #expect(refused.lock == nil && refused.holder == getpid())
        lock = nil
        #expect(try ExclusiveFileLock.holder(of: path) == (false, nil))
        // Asking left nothing behind: the lock is free for the next one.
        #expect(try ExclusiveFileLock.acquire(path).lock != nil)
    }
}

@Suite struct SameContentTests {
    /// Files of 2.5 MiB (three reads of a megabyte): the same bytes are the same content; one
    /// byte changed in the last, partial megabyte, or in the first byte, or one byte more, or a
    /// file that is not there, is not. Two empty files are the same.
    @Test func comparesEveryByteAcrossReadsOfAMegabyte() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("secmail-same-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func file(_ name: String, _ bytes: [UInt8]) throws -> String {
            let path = folder.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }
        let bytes = (0..<(5 << 19)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        let original = try file("original", bytes)
        var lastChanged = bytes, firstChanged = bytes
        lastChanged[bytes.count - 1] ^= 1
        firstChanged[0] ^= 0x80

        #expect(PositionalFile.sameContent(original, try file("copy", bytes)))
        #expect(!PositionalFile.sameContent(original, try file("last", lastChanged)))
        #expect(!PositionalFile.sameContent(original, try file("first", firstChanged)))
        #expect(!PositionalFile.sameContent(original, try file("longer", bytes + [0])))
        #expect(!PositionalFile.sameContent(original, folder.appendingPathComponent("absent").path))
        #expect(PositionalFile.sameContent(try file("empty", []), try file("empty too", [])))
    }
}

@Suite struct BoundedSerialQueueTests {
    /// Work runs in the order it was queued, and `async` holds its caller back while `depth`
    /// items are queued (the one running counts): with the first item held, a third `async` on a
    /// queue of depth 2 has not returned 200 ms after the second did, and returns once the first
    /// item finishes.
    @Test func runsInOrderAndHoldsTheProducerBackAtItsDepth() async throws {
        let queue = BoundedSerialQueue(label: "test.bounded", depth: 2)
        let gate = DispatchSemaphore(value: 0), produced = DispatchSemaphore(value: 0)
        let state = Mutex<(ran: [Int], queued: Int)>(([], 0))
        let producer = Thread {
            for item in 0..<3 {
                queue.async {
                    if item == 0 { gate.wait() }
                    state.withLock { $0.ran.append(item) }
                }
                state.withLock { $0.queued += 1 }
            }
            produced.signal()
        }
        producer.start()
        for _ in 0..<1000 where state.withLock({ $0.queued }) < 2 { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(200))
        #expect(state.withLock { $0.queued } == 2)
        gate.signal()
        #expect(produced.wait(timeout: .now() + 30) == .success)
        queue.waitUntilEmpty()
        #expect(state.withLock { $0.queued } == 3)
        #expect(state.withLock { $0.ran } == [0, 1, 2])
    }
}

/// The writer queues what it is given without copying it: a caller that reuses its array right
/// after handing over a slice of it must still find the bytes it handed over in the file.
@Suite struct BackgroundWriterTests {
    @Test func aReusedArrayDoesNotChangeWhatWasQueued() throws {
        let folder = try makeTemporaryDirectory("background-writer")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("out").path
        let writer = BackgroundWriter(file: try PositionalFile(creatingAtPath: path), depth: 4)
        var reused = [UInt8](repeating: 0, count: 64 * 1024)
        var expected: [UInt8] = []
        for round in 0..<200 {
            let length = 1 + (round * 7919) % reused.count
            for index in 0..<length { reused[index] = UInt8(truncatingIfNeeded: round &* 31 &+ index) }
            try writer.write(reused[0..<length])
            expected += reused[0..<length]
        }
        // Several pieces in one hop, as downloads hand them over.
        let pieces = (0..<5).map { piece in [UInt8](repeating: UInt8(piece), count: 1000 + piece) }
        try writer.write(contentsOf: pieces)
        expected += pieces.joined()
        try writer.synchronize()
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(expected))
    }
}

@Suite struct DirectIOTests {
    /// How many of the pages of the file at `path` are in the page cache (mincore over a mapping).
    func cachedPages(_ path: String) throws -> Int {
        let descriptor = open(path, O_RDONLY)
        #expect(descriptor >= 0)
        defer { close(descriptor) }
        var info = stat()
        #expect(fstat(descriptor, &info) == 0)
        let length = Int(info.st_size)
        guard let mapping = mmap(nil, length, PROT_READ, MAP_SHARED, descriptor, 0), mapping != MAP_FAILED else {
            Issue.record("cannot map \(path)")
            return -1
        }
        defer { munmap(mapping, length) }
        var residency = [UInt8](repeating: 0, count: (length + 4095) / 4096)
        #expect(mincore(mapping, length, &residency) == 0)
        return residency.filter { $0 & 1 == 1 }.count
    }

    /// Whether the folder is on tmpfs, whose files live in the page cache whatever way they are
    /// written.
    func isMemoryFilesystem(_ folder: URL) throws -> Bool {
        // /proc/self/mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE ...";
        // the folder is on the mount with the longest mount point that contains it.
        let path = folder.resolvingSymlinksInPath().path
        var best: (point: String, type: String)?
        for line in try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8).split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count > 4, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { continue }
            let point = fields[4]
            guard path == point || path.hasPrefix(point == "/" ? "/" : point + "/"), point.count >= (best?.point.count ?? 0) else { continue }
            best = (point, fields[dash + 1])
        }
        return best?.type == "tmpfs"
    }

    /// A file written around the page cache through `AlignedBlockWriter`, from pieces of odd sizes
    /// at odd addresses, holds every byte in order, and none of its pages but the last, partial
    /// one went through the page cache; the same bytes written the ordinary way are cached (so
    /// the check can tell).
    @Test func aFileWrittenAroundThePageCacheHoldsEveryByteAndLeavesNoneCached() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("secmail-direct-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let bytes = try SystemRandom().bytes(count: 3 * AlignedBlockWriter.blockSize + 12_345)
        let sizes = [1, 4_095, 70_001, 600_000, 4_096, 333]

        let direct = folder.appendingPathComponent("direct").path
        let file = try PositionalFile(creatingAtPath: direct, expectedLength: UInt64(bytes.count))
        #expect(file.writeAroundPageCache(), "ext4 and tmpfs, where the tests run, take direct I/O")
        let writer = AlignedBlockWriter(file: file)
        var offset = 0, index = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + sizes[index % sizes.count])
            try writer.write(bytes[offset..<end])
            offset = end
            index += 1
        }
        try writer.flush()
        try file.synchronize()
        let ordinary = folder.appendingPathComponent("ordinary").path
        let control = try PositionalFile(creatingAtPath: ordinary)
        try control.write(bytes)
        try control.synchronize()

        if try !isMemoryFilesystem(folder) {
            #expect(try cachedPages(direct) <= 1)
            #expect(try cachedPages(ordinary) > bytes.count / 4096 / 2)
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: direct)) == Data(bytes))
    }

    /// `readAligned` reads whole pages into the aligned part of any buffer, up to the end of the
    /// file (its last read comes short), for a file read around the page cache and for one read
    /// the ordinary way alike.
    @Test func alignedReadsGiveEveryByteIntoBuffersAtAnyAddress() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("secmail-direct-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let bytes = try SystemRandom().bytes(count: 5 * 65_536 + 777)
        let path = folder.appendingPathComponent("envelope").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        for aroundPageCache in [true, false] {
            let file = try PositionalFile(readingAtPath: path)
            if aroundPageCache { #expect(file.readAroundPageCache()) }
            var read: [UInt8] = [], offset: UInt64 = 0, misalignment = 1
            var buffer = [UInt8](repeating: 0, count: 65_536 + 2 * PositionalFile.directIOAlignment)
            while true {
                let (skipped, count) = try buffer.withUnsafeMutableBytes { raw in
                    try file.readAligned(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: raw[misalignment...]))
                }
                if count == 0 { break }
                buffer.withUnsafeBytes { raw in
                    #expect(UInt(bitPattern: raw.baseAddress! + misalignment + skipped) % UInt(PositionalFile.directIOAlignment) == 0)
                }
                read += buffer[(misalignment + skipped)..<(misalignment + skipped + count)]
                offset += UInt64(count)
                misalignment = (misalignment * 7 + 3) % PositionalFile.directIOAlignment
                if count % PositionalFile.directIOAlignment != 0 { break }  // the end of the file
            }
            #expect(read == bytes, "around the page cache: \(aroundPageCache)")
        }
    }
}
