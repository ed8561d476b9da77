#!/usr/bin/env python3
"""A relay that fails, on 127.0.0.1, for testing how clients report it. Bounded: it exits by
itself after 120 seconds.

Usage: faulty_relay.py reset
           Accepts each connection and resets it at once (RST, SO_LINGER 0).
       faulty_relay.py cut UPSTREAM_PORT BYTES
           Forwards to a real relay on UPSTREAM_PORT, but closes each connection once the relay has
           sent BYTES bytes toward the client: a relay that stops in the middle of an answer.
Prints the port it listens on, then serves."""
import socket
import struct
import sys
import threading
import time

mode = sys.argv[1]
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(64)
print(server.getsockname()[1], flush=True)
deadline = time.time() + 120


def reset(client):
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


def pump(source, target, limit, done):
    sent = 0
    try:
        while limit is None or sent < limit:
            data = source.recv(65536 if limit is None else min(65536, limit - sent))
            if not data:
                break
            target.sendall(data)
            sent += len(data)
    except OSError:
        pass
    done.set()


def cut(client, upstream_port, limit):
    try:
        upstream = socket.create_connection(("127.0.0.1", upstream_port))
    except OSError:
        client.close()
        return
    done = threading.Event()
    threading.Thread(target=pump, args=(client, upstream, None, done), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client, limit, done), daemon=True).start()
    done.wait(60)
    for end in (client, upstream):
        try:
            end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        end.close()


server.settimeout(1)
while time.time() < deadline:
    try:
        client, _ = server.accept()
    except socket.timeout:
        continue
    if mode == "reset":
        reset(client)
    else:
        threading.Thread(target=cut, args=(client, int(sys.argv[2]), int(sys.argv[3])), daemon=True).start()
