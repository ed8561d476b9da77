#!/usr/bin/env python3
"""A relay that fails, on 127.0.0.1, for testing how clients report it. Bounded: it exits by
itself after 120 seconds.

Usage: faulty_relay.py reset
           Accepts each connection and resets it at once (RST, SO_LINGER 0).
       faulty_relay.py cut UPSTREAM_PORT BYTES
           Forwards to a real relay on UPSTREAM_PORT, but closes each connection once the relay has
           sent BYTES bytes toward the client: a relay that stops in the middle of an answer.
       faulty_relay.py lose-answer UPSTREAM_PORT BYTES [stop]
           Forwards to a real relay on UPSTREAM_PORT; on the first connection whose client has sent
           more than BYTES bytes, closes both ends as the relay's next answer begins, without
           passing it on: a relay that carried out a request and went away before its answer
           arrived. Later connections are forwarded whole, or, with `stop`, refused (the port is
           closed).
       faulty_relay.py hold-answer UPSTREAM_PORT BYTES MARKER
       faulty_relay.py hold-upload UPSTREAM_PORT BYTES MARKER
           Forward as lose-answer does, but once the client has sent more than BYTES bytes, keep the
           connection open and pass nothing more on: not the relay's answer (hold-answer: the
           relay carried the request out), or not the rest of the client's request (hold-upload:
           the relay is still waiting for it). MARKER, a file, is created at that moment.
       faulty_relay.py tls-cut UPSTREAM_PORT CERT KEY REQUEST [MARKER]
           Terminates TLS with the relay's own certificate and key (so the client's pin holds),
           passes each HTTP request to the relay on UPSTREAM_PORT and its answer back, one at a
           time, until a request whose first line starts with REQUEST (`DELETE /v1/mailbox/`):
           then it closes the connection and refuses new ones, as a relay that stopped would; or,
           given MARKER, creates that file and holds the request, answering nothing.
Prints the port it listens on, then serves."""
import socket
import ssl
import struct
import sys
import threading
import time

mode = sys.argv[1]
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if mode == "hold-upload":
    # A fixed receive buffer (inherited by accepted connections): autotuned, as net.ipv4.tcp_rmem
    # allows up to 32 MiB here, the kernel took in all of a 40 MiB upload the relay never got, and
    # the client rightly saw its whole message leave.
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 << 10)
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


def between(client, upstream_port, upload, download):
    """Connects to the relay and runs upload(client, upstream, done) and download(client, upstream,
    done) on threads of their own until one sets done (or a minute passes), then closes both ends."""
    try:
        upstream = socket.create_connection(("127.0.0.1", upstream_port))
    except OSError:
        client.close()
        return
    done = threading.Event()
    for direction in (upload, download):
        threading.Thread(target=direction, args=(client, upstream, done), daemon=True).start()
    done.wait(60)
    for end in (client, upstream):
        try:
            end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        end.close()


def cut(client, upstream_port, limit):
    between(client, upstream_port,
            lambda client, upstream, done: pump(client, upstream, None, done),
            lambda client, upstream, done: pump(upstream, client, limit, done))


answer_lost = threading.Event()


def withhold(client, upstream_port, limit, hold=None, marker=None):
    uploaded = [0]

    def held(done):
        open(marker, "w").close()
        done.wait(60)

    def upload(client, upstream, done):
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if hold == "upload" and uploaded[0] + len(data) > limit:
                    held(done)
                    break
                uploaded[0] += len(data)
                upstream.sendall(data)
        except OSError:
            pass
        done.set()

    def download(client, upstream, done):
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                if uploaded[0] > limit and hold == "answer":
                    held(done)
                    break
                if uploaded[0] > limit and hold is None and not answer_lost.is_set():
                    answer_lost.set()
                    if sys.argv[4:] == ["stop"]:
                        # Refuse new connections before this one ends.
                        server.shutdown(socket.SHUT_RDWR)
                    break
                client.sendall(data)
        except OSError:
            pass
        done.set()

    between(client, upstream_port, upload, download)


def read_message(stream, buffered):
    """One HTTP/1.1 message (head and body, by Content-Length or chunked) from `stream`, whose
    bytes read ahead are `buffered`; returns (message, bytes read past it), or (None, b"") at the
    end of the stream."""
    data = buffered
    while b"\r\n\r\n" not in data:
        more = stream.recv(65536)
        if not more:
            return None, b""
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += stream.recv(65536)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += stream.recv(65536)
            body += size_line + b"\r\n" + rest[:size + 2]
            rest = rest[size + 2:]
            if size == 0:
                return head + b"\r\n\r\n" + body, rest
    length = int(fields.get(b"content-length", b"0"))
    while len(rest) < length:
        more = stream.recv(65536)
        if not more:
            return None, b""
        rest += more
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


def tls_cut(client, upstream_port, cert, key, request_prefix, marker=None):
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.minimum_version = ssl.TLSVersion.TLSv1_3
    server_side.load_cert_chain(cert, key)
    client_side = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_side.check_hostname = False
    client_side.verify_mode = ssl.CERT_NONE
    try:
        client = server_side.wrap_socket(client, server_side=True)
        upstream = client_side.wrap_socket(socket.create_connection(("127.0.0.1", upstream_port)))
        from_client, from_upstream = b"", b""
        while True:
            request, from_client = read_message(client, from_client)
            if request is None:
                break
            if request.startswith(request_prefix):
                if marker:
                    open(marker, "w").close()
                    time.sleep(60)
                else:
                    server.shutdown(socket.SHUT_RDWR)
                break
            upstream.sendall(request)
            answer, from_upstream = read_message(upstream, from_upstream)
            if answer is None:
                break
            client.sendall(answer)
    except (OSError, ValueError):
        pass
    client.close()


server.settimeout(1)
while time.time() < deadline:
    try:
        client, _ = server.accept()
    except socket.timeout:
        continue
    except OSError:
        # Shut down after a lost answer (`stop`): keep the connections under way until the end.
        time.sleep(max(0, deadline - time.time()))
        break
    if mode == "reset":
        reset(client)
    elif mode == "lose-answer":
        threading.Thread(target=withhold, args=(client, int(sys.argv[2]), int(sys.argv[3])), daemon=True).start()
    elif mode == "tls-cut":
        threading.Thread(target=tls_cut, args=(client, int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5].encode()) + tuple(sys.argv[6:7]),
                         daemon=True).start()
    elif mode in ("hold-answer", "hold-upload"):
        threading.Thread(target=withhold, args=(client, int(sys.argv[2]), int(sys.argv[3]), mode[5:], sys.argv[4]), daemon=True).start()
    else:
        threading.Thread(target=cut, args=(client, int(sys.argv[2]), int(sys.argv[3])), daemon=True).start()
