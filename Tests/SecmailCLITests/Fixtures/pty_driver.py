#!/usr/bin/env python3
"""Runs a command on a new pseudo-terminal (its controlling terminal) and plays a dialogue with it.

usage: pty_driver.py STEPS_JSON COMMAND [ARG...]

STEPS_JSON is a list of [text to wait for, text to type]; "\u0003" types Ctrl-C. The environment
is passed on. Prints one JSON object: exit status (negative for a signal), everything the command
wrote to the terminal, and whether the terminal's echo was on when it ended.
"""
import json
import os
import pty
import select
import sys
import termios
import time

steps = json.loads(sys.argv[1])
pid, master = pty.fork()
if pid == 0:
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
