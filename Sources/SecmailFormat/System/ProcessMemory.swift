internal import CSystemCalls

/// How the process's allocator treats freed memory.
public enum ProcessMemory {
    /// Keeps freed memory for reuse: image work passes buffers of many megabytes from stage to
    /// stage (decoded pixels, filtered rows, compressed streams), and glibc by default unmaps
    /// each one when freed, so the next costs a page fault and a zeroed page every 4 KiB. Kept,
    /// `read` of a 4-megapixel photo took 18,000 page faults instead of 22,600 and about 10 ms
    /// less, `send` about 15 ms less (scripts/bench-commands.sh, interleaved). Blocks up to
    /// 32 MiB (glibc's largest threshold) come from the heap, which is trimmed only past 1 GiB
    /// free. For commands that end soon; the key agent keeps glibc's defaults.
    public static func keepFreedMemoryForReuse() {
        _ = secmail_keep_freed_memory(32 << 20, 1 << 30, 0)
    }

    /// The relay's bounded form of the same: a fetch streams the envelope file in 1 MiB chunks
    /// and TLS records, a deposit gathers received buffers, and with glibc's defaults each such
    /// block came from pages the kernel had to zero again (a 64 MiB fetch took 9,300–16,900
    /// first-touch page faults and 90–130 ms of relay CPU; kept, 1,500–12,100 and 70–90 ms;
    /// scripts/bench-mail.sh, two runs, each before and after). Blocks under 2 MiB (so a 1 MiB
    /// buffer, a little over 1 MiB with malloc's own header) come from the heaps, each heap
    /// keeps up to 64 MiB free, and there are at most 4 heaps: at most 256 MiB kept for reuse
    /// however many threads the relay runs (its peak RSS rose by 18–32 MiB).
    public static func keepStreamingBuffersForReuse() {
        _ = secmail_keep_freed_memory(2 << 20, 64 << 20, 4)
    }

    /// Maps all of the program's zero-initialised data (.bss, where the Swift runtime and the
    /// libraries keep their caches) writable in one call, to be made while no other thread runs.
    /// Otherwise each such page is mapped to the shared zero page when first read and copied when
    /// first written, and while another thread of the process runs on the other core (OpenSSL's
    /// warm-up during parsing) every such copy interrupts that core to flush its TLB: 42 of those
    /// interrupts in a `seal`, 5 after this call. The call maps 168 pages (0.2 ms); `seal` of
    /// 1 MiB with the agent took 0.33 ms less (median of 60 paired runs).
    public static func mapProgramDataBeforeThreadsStart() {
        _ = secmail_populate_program_bss()
    }
}
