#!/usr/bin/env python3
"""A client that misbehaves on purpose, for the relay's connection deadlines (issue 12).

    slow_client.py MODE PORT CA_FILE [SOURCE_ADDRESS] [COUNT]

Modes (each prints one JSON object and exits 0):
  bare-fin         one request, then a TCP FIN without TLS close_notify: seconds until the relay closes
  trickle-head     a request head sent one byte a second: seconds until the relay closes
  trickle-body     a request head, then its 1,000-byte body one byte a second: seconds until closed
  unread-pipeline  COUNT pipelined requests for large answers, none read for WAIT seconds (or, given
                   [MARKER], until MARKER exists, at most WAIT seconds): bytes received before EOF
  hold             COUNT connections from SOURCE_ADDRESS, idle: how many the relay closed at once;
                   then, given HOLD_SECONDS [MARKER], creates MARKER and keeps them open that long

    slow_client.py post-head PORT CA_FILE PATH TOKEN LENGTH SEND HOLD
  a POST whose head declares LENGTH bytes ("none": chunked, no length), then SEND body bytes;
  the answer's status if one comes within 5 s (else null), then the connection is held HOLD s
"""
import json
import os
import socket
import ssl
import sys
import time


def connect(port, ca, source=None, receive_buffer=None):
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    if source:
        raw.bind((source, 0))
    raw.connect(("127.0.0.1", port))
    context = ssl.create_default_context(cafile=ca)
    return context.wrap_socket(raw, server_hostname="localhost")


def closed_by_peer(connection, timeout):
    """True if the peer closes (EOF or reset) within `timeout` seconds; reads and drops data."""
    connection.settimeout(timeout)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            connection.settimeout(max(0.01, deadline - time.time()))
            if not connection.recv(65536):
                return True
    except socket.timeout:
        return False
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    return False


def seconds_until_closed(connection, start, send_more=None, limit=120):
    """Seconds from `start` until the relay closes, calling `send_more` every second."""
    while time.time() - start < limit:
        if send_more:
            try:
                send_more()
            except (ssl.SSLError, ConnectionError, OSError):
                return time.time() - start
        if closed_by_peer(connection, 1.0):
            return time.time() - start
    return None


def main():
    mode, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "post-head":
        path, token, length, send, hold = sys.argv[4], sys.argv[5], sys.argv[6], int(sys.argv[7]), float(sys.argv[8])
        connection = connect(port, ca)
        framing = b"Transfer-Encoding: chunked\r\n" if length == "none" else b"Content-Length: %d\r\n" % int(length)
        connection.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + token.encode()
                           + b"\r\nContent-Type: application/octet-stream\r\n" + framing + b"\r\n")
        if send:
            connection.sendall(b"\0" * send if length != "none" else b"%x\r\n" % send + b"\0" * send + b"\r\n")
        connection.settimeout(5)
        status = None
        try:
            answer = connection.recv(65536)
            if answer.startswith(b"HTTP/1.1 "):
                status = int(answer[9:12])
        except (socket.timeout, ssl.SSLError, ConnectionError, OSError):
            pass
        print(json.dumps({"status": status}))
        sys.stdout.flush()
        time.sleep(hold)
        return
    source = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    count = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    request = b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n"
    if mode == "bare-fin":
        connection = connect(port, ca)
        connection.sendall(request)
        time.sleep(0.3)
        connection.recv(65536)
        start = time.time()
        # Shut the TCP socket's sending side without a TLS alert: a bare FIN.
        socket.socket.shutdown(connection, socket.SHUT_WR)
        print(json.dumps({"seconds": seconds_until_closed(connection, start, limit=90)}))
    elif mode == "trickle-head":
        connection = connect(port, ca)
        pending = list(request)
        start = time.time()
        def send_more():
            if pending:
                connection.sendall(bytes([pending.pop(0)]))
        print(json.dumps({"seconds": seconds_until_closed(connection, start, send_more)}))
    elif mode == "trickle-body":
        connection = connect(port, ca)
        connection.sendall(b"POST /v1/directory/register HTTP/1.1\r\nHost: localhost\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
        start = time.time()
        print(json.dumps({"seconds": seconds_until_closed(connection, start, lambda: connection.sendall(b" "))}))
    elif mode == "unread-pipeline":
        connection = connect(port, ca, receive_buffer=4096)
        one = b"GET /v1/log/entries?start=0&end=1000 HTTP/1.1\r\nHost: localhost\r\n\r\n"
        connection.settimeout(5)
        try:
            for _ in range(count):
                connection.sendall(one)
        except (socket.timeout, ssl.SSLError, ConnectionError, OSError):
            pass
        wait = float(sys.argv[6]) if len(sys.argv) > 6 else 10
        if len(sys.argv) > 7:
            deadline = time.time() + wait
            while not os.path.exists(sys.argv[7]) and time.time() < deadline:
                time.sleep(0.1)
        else:
            time.sleep(wait)
        received = 0
        eof = False
        connection.settimeout(5)
        try:
            while True:
                data = connection.recv(65536)
                if not data:
                    eof = True
                    break
                received += len(data)
        except socket.timeout:
            pass
        except (ssl.SSLError, ConnectionError, OSError):
            eof = True
        print(json.dumps({"bytes": received, "eof": eof}))
    elif mode == "hold":
        connections, refused = [], 0
        for _ in range(count):
            try:
                connection = connect(port, ca, source=source)
                connections.append(connection)
            except (ssl.SSLError, ConnectionError, OSError):
                refused += 1
        refused += sum(1 for connection in connections if closed_by_peer(connection, 1.0))
        print(json.dumps({"refused": refused, "open": count - refused}))
        sys.stdout.flush()
        if len(sys.argv) > 7:
            open(sys.argv[7], "w").close()
        if len(sys.argv) > 6:
            time.sleep(float(sys.argv[6]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
