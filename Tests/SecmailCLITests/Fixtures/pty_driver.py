#!/usr/bin/env python3
"""Runs a command on a new pseudo-terminal (its controlling terminal) and plays a dialogue with it.

usage: pty_driver.py [--job-control] STEPS_JSON COMMAND [ARG...]

STEPS_JSON is a list of [text to wait for, text to type]; "\u0003" types Ctrl-C, "\u001a" Ctrl-Z.
The environment is passed on. Prints one JSON object: exit status (negative for a signal),
everything the command wrote to the terminal, and whether the terminal's echo was on when it ended.

With --job-control the command runs under a small shell with job control (`run_as_shell`), so
that Ctrl-Z stops it and it can be continued as `fg` would.
"""
import json
import os
import pty
import select
import signal
import sys
import termios
import time


def run_as_shell(command):
    """Runs `command` as a shell with job control would: in a process group of its own, in the
    terminal's foreground. When it stops (Ctrl-Z), takes the terminal back, writes whether its
    echo is on (`[stopped echo=on]`), and after a moment gives the terminal back and continues
    the command (`[continued]`), as `fg` does. Exits with the command's status."""
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # as shells do, to take the terminal back
    child = os.fork()
    if child == 0:
        os.setpgid(0, 0)
        while os.tcgetpgrp(0) != os.getpgrp():
            time.sleep(0.01)
        signal.signal(signal.SIGTTOU, signal.SIG_DFL)
        os.execvp(command[0], command)
    try:
        os.setpgid(child, child)
    except OSError:
        pass  # the child set it first
    os.tcsetpgrp(0, child)
    while True:
        _, status = os.waitpid(child, os.WUNTRACED)
        if os.WIFSTOPPED(status):
            os.tcsetpgrp(0, os.getpgrp())
            echo = "on" if termios.tcgetattr(0)[3] & termios.ECHO else "off"
            os.write(1, f"\r\n[stopped echo={echo}]\r\n".encode())
            time.sleep(0.5)
            # Said before the command continues, so that all it writes then comes after.
            os.write(1, b"[continued]\r\n")
            os.tcsetpgrp(0, child)
            os.killpg(child, signal.SIGCONT)
            continue
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else 128 - code)


job_control = sys.argv[1] == "--job-control"
if job_control:
    del sys.argv[1]
steps = json.loads(sys.argv[1])
pid, master = pty.fork()
if pid == 0:
    if job_control:
        run_as_shell(sys.argv[2:])
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
