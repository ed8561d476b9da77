#!/usr/bin/env python3
"""A client of the secmail key agent written from docs/AGENT.md alone, for tests.

usage: agent_peer.py SOCKET REQUEST [--as-uid UID]
REQUEST is one of: status, garbage, sign-rotation FINGERPRINT_HEX, sign-envelope FINGERPRINT_HEX.
Prints one line: the answer's kind ("status NAME PID", "signature N", "failure CODE MESSAGE"),
"no answer" when the agent closed the connection without one, or "cannot connect: ERRNO".
"""
import os
import socket
import struct
import sys

ENVELOPE_CONTEXT = b"secmail envelope v1 signature\x00"
CONTINUITY_CONTEXT = b"secmail key continuity v1\x00"


def request(args):
    kind = args[0]
    if kind == "status":
        return b"\x01"
    if kind == "garbage":
        return b"\x09\xff\xff"
    fingerprint = bytes.fromhex(args[1])
    message = (ENVELOPE_CONTEXT if kind == "sign-envelope" else CONTINUITY_CONTEXT) + b"x" * 64
    return b"\x03" + fingerprint + struct.pack(">I", len(message)) + message


def read_exactly(connection, count):
    data = b""
    while len(data) < count:
        chunk = connection.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main():
    path, args = sys.argv[1], sys.argv[2:]
    if "--as-uid" in args:
        index = args.index("--as-uid")
        uid = int(args[index + 1])
        del args[index:index + 2]
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    body = request(args)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # A relative name from the socket's folder: test folders are deeper than sun_path allows.
    try:
        os.chdir(os.path.dirname(path))
        connection.connect(os.path.basename(path))
    except OSError as error:
        print(f"cannot connect: {error.errno}")
        return
    try:
        connection.sendall(struct.pack(">I", len(body)) + body)
        prefix = read_exactly(connection, 4)
    except (BrokenPipeError, ConnectionResetError):
        prefix = None  # closed (and reset, as the request was left unread) without an answer
    if prefix is None:
        print("no answer")
        return
    answer = read_exactly(connection, struct.unpack(">I", prefix)[0])
    kind = answer[0]
    if kind == 0x81:
        name = answer[2:2 + answer[1]].decode()
        offset = 2 + answer[1]
        count = struct.unpack(">H", answer[offset:offset + 2])[0]
        offset += 2 + 33 * count + 4
        pid = struct.unpack(">I", answer[offset:offset + 4])[0]
        print(f"status {name or '(locked)'} {pid}")
    elif kind == 0x82:
        print(f"signature {struct.unpack('>H', answer[1:3])[0]}")
    elif kind == 0x80:
        length = struct.unpack(">H", answer[2:4])[0]
        print(f"failure {answer[1]} {answer[4:4 + length].decode()}")
    else:
        print(f"kind {kind}")


main()
