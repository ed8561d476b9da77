internal import CSystemCalls

/// How a short-lived command's allocator treats freed memory.
public enum ProcessMemory {
    /// Keeps freed memory for reuse: image work passes buffers of many megabytes from stage to
    /// stage (decoded pixels, filtered rows, compressed streams), and glibc by default unmaps
    /// each one when freed, so the next costs a page fault and a zeroed page every 4 KiB. Kept,
    /// `read` of a 4-megapixel photo took 18,000 page faults instead of 22,600 and about 10 ms
    /// less, `send` about 15 ms less (scripts/bench-commands.sh, interleaved). Blocks up to
    /// 32 MiB (glibc's largest threshold) come from the heap, which is trimmed only past 1 GiB
    /// free. For commands that end soon; the relay and the key agent keep glibc's defaults.
    public static func keepFreedMemoryForReuse() {
        _ = secmail_keep_freed_memory(32 << 20, 1 << 30)
    }
}
