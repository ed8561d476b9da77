#define _GNU_SOURCE
#include "CSystemCalls.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

int secmail_peer_uid(int descriptor, uid_t *uid) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(descriptor, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    *uid = credentials.uid;
    return 0;
}

int secmail_accept_cloexec(int descriptor) {
    return accept4(descriptor, NULL, NULL, SOCK_CLOEXEC);
}

int secmail_pipe_cloexec_nonblocking(int ends[2]) {
    return pipe2(ends, O_CLOEXEC | O_NONBLOCK);
}

int secmail_start_writeback(int descriptor, off_t offset, off_t length) {
    return sync_file_range(descriptor, offset, length, SYNC_FILE_RANGE_WRITE);
}

int secmail_reserve_blocks(int descriptor, off_t offset, off_t length) {
    return fallocate(descriptor, FALLOC_FL_KEEP_SIZE, offset, length);
}

int secmail_set_direct_io(int descriptor, int on) {
    int flags = fcntl(descriptor, F_GETFL);
    if (flags < 0) return -1;
    return fcntl(descriptor, F_SETFL, on ? (flags | O_DIRECT) : (flags & ~O_DIRECT));
}

int secmail_rename_no_replace(const char *from, const char *to) {
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL) return -1;
    // link(2) fails with EEXIST when `to` exists, as atomically as the flag would have.
    if (link(from, to) != 0) return -1;
    // `to` is in place: a `from` that stays behind (in a staging folder) is swept with it.
    unlink(from);
    return 0;
}

// The secret being read: its terminal, the settings before and with echo off, the prompt, and
// the signal handling before. Written only while `quiet_active` is 0; the handlers read them only
// while it is 1.
static atomic_int quiet_active;
static int quiet_descriptor = -1;
static struct termios quiet_normal, quiet_silent;
static char quiet_prompt[512];
static size_t quiet_prompt_length;
static struct sigaction earlier_stop, earlier_continue;
// Whether the prompt has been written since the process last came to the foreground: a
// continuation's handler can run late (after `bg` the process may be stopped again, at its read,
// before the handler ran), and then two handlers run at the next `fg`; the prompt is written once.
static atomic_int prompt_shown;

static void quiet_on_stop(int signal_number);

static void install_quiet_stop_handler(void) {
    struct sigaction stop;
    memset(&stop, 0, sizeof stop);
    stop.sa_handler = quiet_on_stop;
    stop.sa_flags = SA_RESTART;
    sigemptyset(&stop.sa_mask);
    sigaction(SIGTSTP, &stop, NULL);
}

// Whether a stop signal would stop this process: the kernel ignores one for a process group
// that no shell could continue (no parent in the same session but another group).
static int stop_would_stop(void) {
    pid_t parent = getppid();
    return getpgid(parent) != getpgrp() && getsid(parent) == getsid(0);
}

static void quiet_on_stop(int signal_number) {
    (void)signal_number;
    int saved_errno = errno;
    if (atomic_load(&quiet_active) && stop_would_stop()) {
        atomic_store(&prompt_shown, 0);
        tcsetattr(quiet_descriptor, TCSAFLUSH, &quiet_normal);
        struct sigaction stop;
        memset(&stop, 0, sizeof stop);
        stop.sa_handler = SIG_DFL;
        sigemptyset(&stop.sa_mask);
        sigaction(SIGTSTP, &stop, NULL);
        // Blocked while this handler runs: it stops the process as the handler returns.
        raise(SIGTSTP);
    }
    errno = saved_errno;
}

int secmail_terminal_is_foreground(int descriptor) {
    return tcgetpgrp(descriptor) == getpgrp();
}

// Unblocks `signal_number` for the calling thread (the Swift runtime's threads block every
// signal); returns the mask to put back.
static sigset_t unblock_for_thread(int signal_number) {
    sigset_t only, previous;
    sigemptyset(&only);
    sigaddset(&only, signal_number);
    pthread_sigmask(SIG_UNBLOCK, &only, &previous);
    return previous;
}

static void quiet_on_continue(int signal_number) {
    (void)signal_number;
    int saved_errno = errno;
    if (atomic_load(&quiet_active)) {
        install_quiet_stop_handler();
        // Continued in the background (`bg`), the terminal is the shell's: left as it is. The
        // reader's next read stops the process again (secmail_terminal_read_byte), and `fg`
        // comes back here in the foreground.
        if (secmail_terminal_is_foreground(quiet_descriptor)) {
            tcsetattr(quiet_descriptor, TCSAFLUSH, &quiet_silent);
            if (!atomic_exchange(&prompt_shown, 1)) {
                ssize_t ignored = write(quiet_descriptor, quiet_prompt, quiet_prompt_length);
                (void)ignored;
            }
        }
    }
    errno = saved_errno;
}

// Sends `signal_number` (SIGTTIN or SIGTTOU) to the calling thread with it unblocked, so that its
// default action stops the process at once, as the kernel's own job control would.
static void stop_as(int signal_number) {
    sigset_t previous = unblock_for_thread(signal_number);
    raise(signal_number);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
}

int secmail_terminal_wait_for_foreground(int descriptor) {
    while (!secmail_terminal_is_foreground(descriptor)) {
        struct sigaction output;
        sigaction(SIGTTOU, NULL, &output);
        // Nobody could bring the process to the foreground: a process group no shell could
        // continue, or SIGTTOU ignored (the kernel then lets background writes through too).
        if (!stop_would_stop() || output.sa_handler == SIG_IGN) {
            errno = EIO;
            return -1;
        }
        stop_as(SIGTTOU);
    }
    return 0;
}

ssize_t secmail_terminal_read_byte(int descriptor, unsigned char *byte) {
    // A read of the terminal from the background by a thread that blocks SIGTTIN fails with
    // EIO; unblocked, the kernel stops the process instead ("Stopped (tty input)"), and the read
    // goes on after `fg`.
    sigset_t previous = unblock_for_thread(SIGTTIN);
    ssize_t count = read(descriptor, byte, 1);
    int saved_errno = errno;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    errno = saved_errno;
    return count;
}

int secmail_terminal_quiet_begin(int descriptor, const char *prompt) {
    if (atomic_load(&quiet_active)) { errno = EBUSY; return -1; }
    if (tcgetattr(descriptor, &quiet_normal) != 0) return -1;
    quiet_silent = quiet_normal;
    quiet_silent.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
    quiet_descriptor = descriptor;
    quiet_prompt_length = strnlen(prompt, sizeof quiet_prompt);
    memcpy(quiet_prompt, prompt, quiet_prompt_length);
    sigaction(SIGTSTP, NULL, &earlier_stop);
    struct sigaction resume;
    memset(&resume, 0, sizeof resume);
    resume.sa_handler = quiet_on_continue;
    resume.sa_flags = SA_RESTART;
    sigemptyset(&resume.sa_mask);
    sigaction(SIGCONT, &resume, &earlier_continue);
    atomic_store(&prompt_shown, 1);
    atomic_store(&quiet_active, 1);
    install_quiet_stop_handler();
    // TCSAFLUSH also drops anything typed before the prompt appeared.
    if (tcsetattr(descriptor, TCSAFLUSH, &quiet_silent) != 0) {
        int failure = errno;
        atomic_store(&quiet_active, 0);
        sigaction(SIGTSTP, &earlier_stop, NULL);
        sigaction(SIGCONT, &earlier_continue, NULL);
        errno = failure;
        return -1;
    }
    ssize_t ignored = write(descriptor, quiet_prompt, quiet_prompt_length);
    (void)ignored;
    return 0;
}

void secmail_terminal_quiet_end(void) {
    if (!atomic_exchange(&quiet_active, 0)) return;
    sigaction(SIGTSTP, &earlier_stop, NULL);
    sigaction(SIGCONT, &earlier_continue, NULL);
    tcsetattr(quiet_descriptor, TCSAFLUSH, &quiet_normal);
    ssize_t ignored = write(quiet_descriptor, "\n", 1);
    (void)ignored;
}

int secmail_keep_freed_memory(size_t mmap_threshold, size_t trim_threshold, int arena_max) {
    // mallopt answers 1 on success and 0 on failure, without errno.
    if (arena_max > 0 && mallopt(M_ARENA_MAX, arena_max) != 1) return -1;
    return mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, (int)trim_threshold) == 1 ? 0 : -1;
}

int secmail_open_directory_path(const char *path) {
    return open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

int secmail_forbid_core_dumps(void) {
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0) return -1;
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int secmail_spawn_close_inherited(void *file_actions) {
    return posix_spawn_file_actions_addclosefrom_np((posix_spawn_file_actions_t *)file_actions, 3);
}

// The linker's marks around the program's zero-initialised data.
extern char __bss_start[], _end[];

int secmail_populate_program_bss(void) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = (uintptr_t)__bss_start & ~(page - 1);
    uintptr_t end = ((uintptr_t)_end + page - 1) & ~(page - 1);
    return madvise((void *)start, end - start, MADV_POPULATE_WRITE);
}
