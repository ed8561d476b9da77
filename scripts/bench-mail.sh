#!/usr/bin/env bash
# Mail benchmark, release build, on 127.0.0.1: SENDERS concurrent senders deposit pre-sealed 1 KiB
# messages for SECONDS, first with a new TLS 1.3 connection per message, then over kept-alive
# connections (messages/s, p50/p99 latency, the relay's CPU time and the KiB it wrote to storage
# per message, the CPU time varying less with how busy the machine is than the rate; the pool of
# sealed messages is resized and the run repeated if the relay empties it early, so any rate is
# measured over the whole time); then 400 more deposits with strace attached to the relay,
# reporting the syncs per deposit it observed (skipped where strace is missing); then one
# envelope with a BIG_MIB attachment is deposited, fetched and deleted three times, or BIG_ROUNDS
# times (MB/s), each time right after scripts/bench-tls.sh's bulk measurement (our TLS client
# downloading 64 MiB bodies from `secmail-tls-bench serve`, 2 s), and reported as a fraction of it
# (each round's and the median), with what each round cost the relay and the client (CPU ms; minor
# page faults: pages touched for the first time; context switches: threads waiting on one
# another) and how busy the machine's cores were (busy over total ticks, also during each bulk
# measurement: a round that keeps them busier can only get faster by costing less CPU), and the
# fraction each round would reach with every core busy on the CPU time relay and client took
# (its ceiling: no scheduling gets a round above it, only spending less CPU does); the
# relay's peak RSS after each phase. The relay's rate limits are raised for the run.
#
# COLD_FETCH=1 drops the page cache before each fetch (root only), as for an envelope deposited
# long before, the usual case, instead of fetching it right after its deposit.
#
# With BASELINE_BIN=/path/to/an/older/secmail the same measurements run first against a relay of
# that binary (before/after figures from one run); every line is prefixed by the relay measured.
# RELAY_BIN=/path/to/secmail measures that binary's relay as "current" instead of this tree's.
# CLIENT_BIN=/path/to/secmail-directory-bench drives the relay with that build's load client (its
# upload and download code is the client library's), to compare client-side changes in runs
# interleaved with the tree's own.
#
# Usage: [BASELINE_BIN=…] [BIG_ROUNDS=N] scripts/bench-mail.sh [SENDERS] [SECONDS] [BIG_MIB]   (defaults 32 10 64)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/relay-lib.sh
senders=${1:-32} seconds=${2:-10} big=${3:-64}

swift build -c release --product secmail 2>/dev/null >/dev/null
swift build -c release --product secmail-relay 2>/dev/null >/dev/null
swift build -c release --product secmail-directory-bench 2>/dev/null >/dev/null
swift build -c release --product secmail-tls-bench 2>/dev/null >/dev/null
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d)
relay_pid= tls_pid=
cleanup() {
  for pid in $relay_pid $tls_pid; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The TLS bulk reference (scripts/bench-tls.sh's server, answering with 64 MiB bodies).
"$bin/secmail-tls-bench" serve certs/relay.pem certs/throwaway-relay.key.pem 64 > "$work/tls.log" 2>&1 &
tls_pid=$!
for _ in $(seq 50); do grep -q "^PORT " "$work/tls.log" && break; sleep 0.1; done
tls_port=$(grep -oE "^PORT [0-9]+" "$work/tls.log" | grep -oE "[0-9]+$")

# run_mail LABEL SECMAIL_BINARY
run_mail() {
  local label=$1 relay_bin=$2 data="$work/$1"
  start_relay "$work/$label.log" "$relay_bin" relay --data "$data" --listen 127.0.0.1:0 --rate-per-address 1000000 --rate-per-identity 1000000 $(load_test_flags "$relay_bin")
  "${CLIENT_BIN:-$bin/secmail-directory-bench}" mail "https://localhost:$relay_port" "$data/tls/dev-ca.pem" "$senders" "$seconds" "$big" "$relay_pid" \
    "$bin/secmail-tls-bench" "$tls_port" certs/dev-ca.pem | sed -u "s/^/$label /"
  kill -INT "$relay_pid"; wait "$relay_pid" || true; relay_pid=
  rm -rf "$data"
}

if [ -n "${BASELINE_BIN:-}" ]; then run_mail baseline "$BASELINE_BIN"; fi
run_mail current "${RELAY_BIN:-$bin/secmail}"
