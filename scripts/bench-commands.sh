#!/usr/bin/env bash
# Wall time of `secmail send` (one recipient, 1 KiB of text) and `secmail read`, median of RUNS,
# release build, against a relay of the same binary on 127.0.0.1; and the TLS connections each
# command opened (accept(2) calls of the relay, counted under strace where it is installed).
# With BASELINE_BIN=/path/to/an/older/secmail the same runs first with that binary, as client and
# relay, so before/after come from one run. Every line is prefixed by the binary measured.
#
# Usage: [BASELINE_BIN=…] scripts/bench-commands.sh [RUNS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
swift build -c release --product secmail 2>/dev/null >/dev/null
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d)
relay_pid=
cleanup() { [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
text=$(head -c 1024 /dev/zero | tr '\0' 'x')
tracer=()
command -v strace >/dev/null && tracer=(strace -f --seccomp-bpf -qq -ttt -e trace=accept,accept4 -o "$work/accepts")

now() { date +%s.%N; }
# median_ms FILE: the median of the seconds in FILE, in milliseconds.
median_ms() { sort -g "$1" | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.0f", m * 1000 }'; }
# accepts_between START END: successful accepts the relay logged in that window.
accepts_between() {
  [ -f "$work/accepts" ] || { echo "n/a"; return; }
  awk -v s="$1" -v e="$2" '$2 >= s && $2 <= e && $0 ~ /accept/ && $0 ~ /\) = [0-9]/ { n++ } END { print n + 0 }' "$work/accepts"
}

# Stops the relay (strace's child when traced: strace itself would only detach).
stop_relay() {
  local children
  children=$(cat "/proc/$relay_pid/task/$relay_pid/children" 2>/dev/null || true)
  if [ ${#tracer[@]} -gt 0 ] && [ -n "$children" ]; then kill -INT $children; else kill -INT "$relay_pid"; fi
  wait "$relay_pid" || true
  relay_pid=
}

# run_commands LABEL SECMAIL_BINARY
run_commands() {
  local label=$1 secmail=$2 data="$work/$1-relay"
  rm -f "$work/accepts"
  "${tracer[@]}" "$secmail" relay --data "$data" --listen 127.0.0.1:0 > "$work/$label.log" 2>&1 &
  relay_pid=$!
  for _ in $(seq 200); do grep -q "listening on https://" "$work/$label.log" && break; sleep 0.1; done
  local port
  port=$(grep -oE "listening on https://127.0.0.1:[0-9]+" "$work/$label.log" | grep -oE "[0-9]+$")
  export SECMAIL_PASSPHRASE="benchmark passphrase"
  for name in alice bob; do
    SECMAIL_HOME="$work/$label-$name" "$secmail" register "$name" --relay "https://localhost:$port" --ca "$data/tls/dev-ca.pem" 2>/dev/null
  done
  # One message first, so both contacts are pinned before the timed runs.
  SECMAIL_HOME="$work/$label-alice" "$secmail" send bob -m "$text" > /dev/null 2>&1
  : > "$work/send.times"; : > "$work/read.times"; : > "$work/ids"; : > "$work/send.accepts"; : > "$work/read.accepts"
  for _ in $(seq "$runs"); do
    local start end
    start=$(now)
    SECMAIL_HOME="$work/$label-alice" "$secmail" send bob -m "$text" >> "$work/ids" 2>/dev/null
    end=$(now)
    awk -v a="$end" -v b="$start" 'BEGIN { print a - b }' >> "$work/send.times"
    echo "$start $end" >> "$work/send.windows"
  done
  head -n "$runs" "$work/ids" > "$work/ids.timed"
  while read -r id; do
    local start end
    start=$(now)
    SECMAIL_HOME="$work/$label-bob" "$secmail" read "$id" --out "$work/$label-out" > /dev/null 2>&1
    end=$(now)
    awk -v a="$end" -v b="$start" 'BEGIN { print a - b }' >> "$work/read.times"
    echo "$start $end" >> "$work/read.windows"
  done < "$work/ids.timed"
  stop_relay
  local send_conns read_conns
  send_conns=$(head -1 "$work/send.windows" | { read -r s e; accepts_between "$s" "$e"; })
  read_conns=$(head -1 "$work/read.windows" | { read -r s e; accepts_between "$s" "$e"; })
  echo "$label commands runs=$runs send_ms_median=$(median_ms "$work/send.times") read_ms_median=$(median_ms "$work/read.times") send_connections=$send_conns read_connections=$read_conns"
  rm -f "$work/send.windows" "$work/read.windows"
}

if [ -n "${BASELINE_BIN:-}" ]; then run_commands baseline "$BASELINE_BIN"; fi
run_commands current "${RELAY_BIN:-$bin/secmail}"
