#!/usr/bin/env bash
# Key directory benchmark (issues 4 and 11), release build, everything on 127.0.0.1:
#   1. a relay database is filled with LEAVES real log leaves (real bundles; one synthetic name per
#      leaf in the name map, updated in the leaf's transaction as a registration does); the map
#      update cost per leaf, map proof sizes, generation and verification times (half for
#      registered names, half for absent ones), inclusion/consistency proof times and the
#      database's size per leaf are measured;
#   2. `secmail relay` serves that database; REGISTRATIONS new identities register over HTTPS;
#   3. CLIENTS concurrent clients look up random names for SECONDS, verifying every answer as
#      `secmail lookup` does (self-signature, log entry, inclusion proof, signed checkpoint and,
#      from issue 11, the name map proof), once with a new TLS 1.3 connection per lookup and once
#      with a kept-alive connection each; the relay's peak memory (VmHWM) is read at the end.
# Client and relay share this machine's cores; the relay's rate limits are raised for the run.
#
# With BASELINE_DIR=/path/to/an/older/checkout (built: `swift build -c release --product secmail`
# and `--product secmail-directory-bench` there), the same steps run first with that tree's own
# binaries on a database built by its own build-log: before/after figures from one run.
#
# Usage: [BASELINE_DIR=…] scripts/bench-directory.sh [LEAVES] [REGISTRATIONS] [CLIENTS] [SECONDS]
#        (defaults 100000 1000 32 10)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/relay-lib.sh
leaves=${1:-100000} registrations=${2:-1000} clients=${3:-32} seconds=${4:-10}

swift build -c release --product secmail 2>/dev/null >/dev/null
swift build -c release --product secmail-relay 2>/dev/null >/dev/null
swift build -c release --product secmail-directory-bench 2>/dev/null >/dev/null
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d)
relay_pid=
cleanup() { [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# bench_tree LABEL BIN_DIR: steps 1 to 3 with the secmail and secmail-directory-bench of BIN_DIR.
bench_tree() {
  local label=$1 tree_bin=$2 data="$work/$1"
  mkdir -m 700 "$data"
  "$tree_bin/secmail-directory-bench" build-log "$data/relay.sqlite" "$leaves" | sed -u "s/^/$label /"
  # The last connection to close checkpoints the WAL into relay.sqlite.
  local bytes
  bytes=$(du -cb "$data"/relay.sqlite* | tail -1 | cut -f1)
  echo "$label log_storage leaves=$leaves database_bytes=$bytes bytes_per_leaf=$((bytes / leaves))"
  start_relay "$work/$label.log" "$tree_bin/secmail" relay --data "$data" --listen 127.0.0.1:0 --rate-per-address 1000000 --rate-per-identity 1000000 $(load_test_flags "$tree_bin/secmail")
  "$tree_bin/secmail-directory-bench" load "https://localhost:$relay_port" "$data/tls/dev-ca.pem" "$registrations" "$clients" "$seconds" \
    | sed -u "s/^/$label /"
  echo "$label relay_peak_rss_mib=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$relay_pid/status")"
  kill -INT "$relay_pid"; wait "$relay_pid" || true; relay_pid=
  bytes=$(du -cb "$data"/relay.sqlite* | tail -1 | cut -f1)
  echo "$label database_after_load bytes=$bytes leaves=$((leaves + registrations))"
  rm -rf "$data"
}

if [ -n "${BASELINE_DIR:-}" ]; then bench_tree baseline "$BASELINE_DIR/.build/release"; fi
bench_tree current "$bin"
