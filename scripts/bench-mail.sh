#!/usr/bin/env bash
# Mail benchmark (issue 6), release build, on 127.0.0.1: SENDERS concurrent senders deposit
# pre-sealed 1 KiB messages for SECONDS (messages/s, p50/p99 latency); then one envelope with a
# BIG_MIB attachment is deposited and fetched three times (MB/s, against the TLS bulk figure of
# scripts/bench-tls.sh as the limit); the relay's peak RSS after each phase. Every request is a
# new TLS 1.3 connection, as the CLI makes it; the relay's rate limits are raised for the run.
#
# Usage: scripts/bench-mail.sh [SENDERS] [SECONDS] [BIG_MIB]   (defaults 32 10 64)
set -euo pipefail
cd "$(dirname "$0")/.."
senders=${1:-32} seconds=${2:-10} big=${3:-64}

swift build -c release --product secmail 2>/dev/null >/dev/null
swift build -c release --product secmail-directory-bench 2>/dev/null >/dev/null
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d)
relay_pid=
cleanup() { [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin/secmail" relay --data "$work/relay" --listen 127.0.0.1:0 --rate-per-address 1000000 --rate-per-identity 1000000 \
  > "$work/relay.log" 2>&1 &
relay_pid=$!
for _ in $(seq 100); do grep -q "listening on https://" "$work/relay.log" && break; sleep 0.1; done
port=$(grep -oE "listening on https://127.0.0.1:[0-9]+" "$work/relay.log" | grep -oE "[0-9]+$")
[ -n "$port" ] || { cat "$work/relay.log"; exit 1; }

"$bin/secmail-directory-bench" mail "https://localhost:$port" "$work/relay/tls/dev-ca.pem" "$senders" "$seconds" "$big" "$relay_pid"
