#!/usr/bin/env bash
# Key directory benchmark (issue 4), release build, everything on 127.0.0.1:
#   1. a relay database is filled with LEAVES real log leaves; proof generation time at that size
#      and the database size are measured;
#   2. `secmail relay` serves that database; REGISTRATIONS new identities register over HTTPS;
#   3. CLIENTS concurrent clients look up random names for SECONDS, verifying every answer
#      (self-signature, log entry, inclusion proof, signed checkpoint) as `secmail lookup` does,
#      once with a new TLS 1.3 connection per lookup and once with a kept-alive connection each.
# Client and relay share this machine's cores; the relay's rate limits are raised for the run.
#
# With BASELINE_BIN=/path/to/an/older/secmail, steps 2 and 3 run first against a relay of that
# binary on a copy of the same database (before/after figures from one run); it must know every
# migration of this tree (a relay refuses a database written by a newer schema). RELAY_BIN=…
# measures that binary's relay as "current" instead of this tree's.
#
# Usage: [BASELINE_BIN=…] scripts/bench-directory.sh [LEAVES] [REGISTRATIONS] [CLIENTS] [SECONDS]
#        (defaults 100000 1000 32 10)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/relay-lib.sh
leaves=${1:-100000} registrations=${2:-1000} clients=${3:-32} seconds=${4:-10}

swift build -c release --product secmail 2>/dev/null >/dev/null
swift build -c release --product secmail-directory-bench 2>/dev/null >/dev/null
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d)
relay_pid=
cleanup() { [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -m 700 "$work/relay"

"$bin/secmail-directory-bench" build-log "$work/relay/relay.sqlite" "$leaves"
# The last connection to close checkpoints the WAL into relay.sqlite.
bytes=$(du -cb "$work"/relay/relay.sqlite* | tail -1 | cut -f1)
echo "log_storage leaves=$leaves database_bytes=$bytes bytes_per_leaf=$((bytes / leaves))"

# load_relay LABEL SECMAIL_BINARY: serve a copy of the filled database with that binary, then
# register and look up against it.
load_relay() {
  local label=$1 relay_bin=$2 data="$work/$1"
  cp -a "$work/relay" "$data"
  start_relay "$work/$label.log" "$relay_bin" relay --data "$data" --listen 127.0.0.1:0 --rate-per-address 1000000 --rate-per-identity 1000000
  "$bin/secmail-directory-bench" load "https://localhost:$relay_port" "$data/tls/dev-ca.pem" "$registrations" "$clients" "$seconds" \
    | sed -u "s/^/$label /"
  kill -INT "$relay_pid"; wait "$relay_pid" || true; relay_pid=
  bytes=$(du -cb "$data"/relay.sqlite* | tail -1 | cut -f1)
  echo "$label database_after_load bytes=$bytes leaves=$((leaves + registrations))"
  rm -rf "$data"
}

if [ -n "${BASELINE_BIN:-}" ]; then load_relay baseline "$BASELINE_BIN"; fi
load_relay current "${RELAY_BIN:-$bin/secmail}"
