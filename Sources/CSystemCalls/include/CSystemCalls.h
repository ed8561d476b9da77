// Linux calls that Swift's Glibc module leaves out (they need _GNU_SOURCE or headers it does not
// import), for the key agent's socket, process hardening, early writeback, preallocation and direct
// I/O of large files, moves that never replace a file, reading a secret at the terminal, and the
// allocator's handling of freed memory.
// Each returns 0 on success and -1 with errno set on failure, like the calls it wraps.
#ifndef SECMAIL_CSYSTEMCALLS_H
#define SECMAIL_CSYSTEMCALLS_H

#include <sys/types.h>

/// The user id of the process at the other end of a connected Unix socket (SO_PEERCRED).
int secmail_peer_uid(int descriptor, uid_t *uid);

/// accept4 with SOCK_CLOEXEC.
int secmail_accept_cloexec(int descriptor);

/// pipe2 with O_CLOEXEC | O_NONBLOCK.
int secmail_pipe_cloexec_nonblocking(int ends[2]);

/// open(path, O_PATH | O_DIRECTORY | O_CLOEXEC): a handle on a directory for /proc/self/fd paths.
int secmail_open_directory_path(const char *path);

/// No core dumps (RLIMIT_CORE 0) and not dumpable (PR_SET_DUMPABLE 0: no ptrace or
/// /proc/PID/mem by other processes of the same user).
int secmail_forbid_core_dumps(void);

/// Makes a spawned child close every descriptor from 3 up (posix_spawn_file_actions_addclosefrom_np,
/// glibc 2.34+), so that a detached child keeps no pipe of its parent's parent open.
int secmail_spawn_close_inherited(void *file_actions);

/// sync_file_range(SYNC_FILE_RANGE_WRITE): starts writing a file's dirty pages in [offset,
/// offset + length) to disk without waiting, so that a later fsync waits only for what came after.
int secmail_start_writeback(int descriptor, off_t offset, off_t length);

/// fallocate(FALLOC_FL_KEEP_SIZE) of [offset, offset + length): allocates the disk blocks of a
/// part of a file about to be written, leaving its size alone. EOPNOTSUPP where the filesystem
/// cannot.
int secmail_reserve_blocks(int descriptor, off_t offset, off_t length);

/// Turns O_DIRECT on (`on` nonzero) or off for an open file: its writes then go from the caller's
/// memory to the device, around the page cache, and must be aligned to the device's block size
/// in address, offset and length. EINVAL where the filesystem has no direct I/O.
int secmail_set_direct_io(int descriptor, int on);

/// Moves `from` to `to` only if `to` does not exist, in one step: renameat2 with
/// RENAME_NOREPLACE, or on a filesystem without it (EINVAL) link(2) and then unlink(2) of `from`
/// (whose failure is not reported: `to` is in place by then).
/// A `to` that exists, even one created an instant before, fails with EEXIST and is left alone.
int secmail_rename_no_replace(const char *from, const char *to);

/// Turns the echo of the terminal `descriptor` off (dropping what was typed before) and writes
/// `prompt`, for a secret to be read; until `secmail_terminal_quiet_end`, Ctrl-Z (SIGTSTP) gives
/// the terminal its settings back before the process stops, and when the process is continued in
/// the foreground (SIGCONT, `fg`) the echo goes off again and the prompt is written again, so that
/// nothing typed after a resume shows (continued in the background, `bg`, it leaves the terminal
/// alone). (A process group with no shell to continue it, where the kernel would not
/// stop the process either, ignores Ctrl-Z and keeps the echo off.) One secret at a time.
int secmail_terminal_quiet_begin(int descriptor, const char *prompt);

/// 1 when this process is the foreground job of the terminal `descriptor` (not sent to the
/// background by `&` or `bg`), else 0.
int secmail_terminal_is_foreground(int descriptor);

/// Returns 0 once this process is the foreground job of the terminal `descriptor`: in the
/// background (started with `&`, or sent there by `bg`) it stops as a program writing to its
/// terminal from the background is stopped (SIGTTOU) until a shell's `fg` continues it. -1 with
/// EIO where no shell could (a process group without one, or SIGTTOU ignored).
int secmail_terminal_wait_for_foreground(int descriptor);

/// read(2) of one byte from the terminal `descriptor`, such that a read from the background stops
/// the process until `fg` (SIGTTIN, as for any program) instead of failing with EIO.
ssize_t secmail_terminal_read_byte(int descriptor, unsigned char *byte);

/// Puts back the terminal's settings and the signals' earlier handling, and ends the line; does
/// nothing when no secret is being read. Safe to call from another thread than the reader's (an
/// interruption's handler) and more than once.
void secmail_terminal_quiet_end(void);

/// mallopt(M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_ARENA_MAX): blocks up to `mmap_threshold` bytes
/// come from the heap instead of mappings of their own, and each heap gives memory back to the
/// kernel only past `trim_threshold` bytes free at its top; so freed memory is reused without the
/// kernel zeroing fresh pages again. `arena_max` above 0 caps the number of heaps (glibc adds
/// one when threads contend for those there are, up to 8 per core), which bounds what is kept; 0
/// leaves glibc's default. Returns 0,
/// or -1 where glibc refused a setting (mallopt itself sets no errno).
int secmail_keep_freed_memory(size_t mmap_threshold, size_t trim_threshold, int arena_max);

/// madvise(MADV_POPULATE_WRITE) over the program's zero-initialised data (.bss), from the page
/// holding `__bss_start` to `_end`: every page mapped writable at once. -1 with EINVAL on kernels
/// before 5.14, which do not know the advice (nothing is changed then).
int secmail_populate_program_bss(void);

#endif
