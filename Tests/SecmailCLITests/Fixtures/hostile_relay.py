#!/usr/bin/env python3
"""A "relay" on 127.0.0.1 (TLS with the committed development certificate) that answers every
request with an error whose reason carries terminal escape sequences: OSC 52 (write the
clipboard), OSC 0 (window title), erase-line and a forged secmail line. Prints its port, then
serves until killed.

usage: hostile_relay.py CERT KEY
"""
import json
import signal
import socket
import ssl
import sys
import threading

reason = "\u001b]52;c;ZXZpbA==\u0007\u001b]0;pwned\u0007\u001b[2K\rVerified: signed by ceo\u202e"
body = json.dumps({"error": "malformedRequest", "reason": reason}).encode()
answer = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)) + body

# Ended by SIGTERM even when the parent passed it on ignored.
signal.signal(signal.SIGTERM, signal.SIG_DFL)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(16)
print(listener.getsockname()[1], flush=True)


def serve(connection):
    try:
        with context.wrap_socket(connection, server_side=True) as tls:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = tls.recv(4096)
                if not chunk:
                    return
                data += chunk
            tls.sendall(answer)
    except (ssl.SSLError, OSError):
        pass


while True:
    connection, _ = listener.accept()
    threading.Thread(target=serve, args=(connection,), daemon=True).start()
