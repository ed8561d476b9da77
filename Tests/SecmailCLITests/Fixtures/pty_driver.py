#!/usr/bin/env python3
"""Runs a command on a new pseudo-terminal (its controlling terminal) and plays a dialogue with it.

usage: pty_driver.py [--job-control[=bg|=started-in-background]] STEPS_JSON COMMAND [ARG...]

STEPS_JSON is a list of [text to wait for, text to type]; "\u0003" types Ctrl-C, "\u001a" Ctrl-Z.
The environment is passed on. Prints one JSON object: exit status (negative for a signal),
everything the command wrote to the terminal, and whether the terminal's echo was on when it ended.

With --job-control the command runs under a small shell with job control (`run_as_shell`), so
that Ctrl-Z stops it and it can be continued as `fg` would; with =bg its first stop is continued
in the background first, as `bg` does; with =started-in-background it starts there, as with `&`.
"""
import json
import os
import pty
import select
import signal
import sys
import termios
import time


def run_as_shell(command, mode):
    """Runs `command` as a shell with job control would: in a process group of its own, in the
    terminal's foreground (mode "fg", "bg") or in the background ("started-in-background"). When
    it stops (Ctrl-Z, or a use of the terminal from the background), takes the terminal back,
    writes the signal and whether the echo is on (`[stopped by SIGTSTP echo=on]`), and after a
    moment gives the terminal back and continues the command (`[continued]`), as `fg` does; in
    mode "bg" the first stop is continued in the background instead (`[continued in the
    background]`), as `bg` does. Exits with the command's status."""
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # as shells do, to take the terminal back
    child = os.fork()
    if child == 0:
        os.setpgid(0, 0)
        while mode != "started-in-background" and os.tcgetpgrp(0) != os.getpgrp():
            time.sleep(0.01)
        signal.signal(signal.SIGTTOU, signal.SIG_DFL)
        os.execvp(command[0], command)
    try:
        os.setpgid(child, child)
    except OSError:
        pass  # the child set it first
    if mode != "started-in-background":
        os.tcsetpgrp(0, child)
    to_background = mode == "bg"
    while True:
        _, status = os.waitpid(child, os.WUNTRACED)
        if os.WIFSTOPPED(status):
            os.tcsetpgrp(0, os.getpgrp())
            echo = "on" if termios.tcgetattr(0)[3] & termios.ECHO else "off"
            name = signal.Signals(os.WSTOPSIG(status)).name
            os.write(1, f"\r\n[stopped by {name} echo={echo}]\r\n".encode())
            time.sleep(0.5)
            # Said before the command continues, so that all it writes then comes after.
            if to_background:
                to_background = False
                os.write(1, b"[continued in the background]\r\n")
            else:
                os.write(1, b"[continued]\r\n")
                os.tcsetpgrp(0, child)
            os.killpg(child, signal.SIGCONT)
            continue
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else 128 - code)


job_control = None
if sys.argv[1].startswith("--job-control"):
    job_control = sys.argv[1].partition("=")[2] or "fg"
    del sys.argv[1]
steps = json.loads(sys.argv[1])
pid, master = pty.fork()
if pid == 0:
    if job_control:
        run_as_shell(sys.argv[2:], job_control)
    os.execvp(sys.argv[2], sys.argv[2:])

output = b""
deadline = time.monotonic() + 120


def read_some(timeout):
    global output
    ready, _, _ = select.select([master], [], [], timeout)
    if ready:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        output += chunk
    return True


position = 0
for expected, typed in steps:
    while expected.encode() not in output[position:] and time.monotonic() < deadline:
        if not read_some(0.2):
            break
    position = output.find(expected.encode(), position) + len(expected)
    time.sleep(0.2)  # the prompt has turned echo off by the time it is written; be sure
    os.write(master, typed.encode())

echo_on = None
while time.monotonic() < deadline:
    finished, status = os.waitpid(pid, os.WNOHANG)
    if finished:
        break
    try:
        echo_on = bool(termios.tcgetattr(master)[3] & termios.ECHO)
    except termios.error:
        pass
    read_some(0.1)
else:
    os.kill(pid, 9)
    finished, status = os.waitpid(pid, 0)
try:
    echo_on = bool(termios.tcgetattr(master)[3] & termios.ECHO)
except termios.error:
    pass
while read_some(0.1):
    pass
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"status": code, "output": output.decode("utf-8", "replace"), "echo": echo_on}))
