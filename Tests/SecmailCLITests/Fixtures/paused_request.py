#!/usr/bin/env python3
"""One HTTPS request to a relay on 127.0.0.1, sent only after the TLS handshake is over and the
connection has been quiet for a while, so that a system-call trace of the relay can tell the
request's own work (and its answer) from the handshake's (session tickets included).

Usage: paused_request.py PORT CA_FILE METHOD PATH [BODY_FILE|-] [HEADER: VALUE]...
Prints the wall-clock time (seconds since the epoch) just before the request left, then the
HTTP status, then the answer's body."""
import http.client
import socket
import ssl
import sys
import time

port, ca_file, method, path = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
body_file = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] != "-" else None
headers = dict(header.split(": ", 1) for header in sys.argv[6:])

context = ssl.create_default_context(cafile=ca_file)
context.minimum_version = ssl.TLSVersion.TLSv1_3
raw = socket.create_connection(("127.0.0.1", int(port)), timeout=60)
connection = http.client.HTTPSConnection("localhost", int(port), context=context, timeout=60)
connection.sock = context.wrap_socket(raw, server_hostname="localhost")
time.sleep(0.5)

body = open(body_file, "rb").read() if body_file else None
sent_at = time.time()
connection.request(method, path, body=body, headers=headers)
response = connection.getresponse()
answer = response.read()
print(f"{sent_at:.6f}")
print(response.status)
print(answer.decode("utf-8", "replace"))
