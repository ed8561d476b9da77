#!/usr/bin/env bash
# Wall time of `secmail send` (one recipient, 1 KiB of text) and `secmail read`, median of RUNS,
# release build, against a relay of the same binary on 127.0.0.1; and the TLS connections each
# command opened (accept(2) calls of the relay, counted under strace where it is installed).
# With BASELINE_BIN=/path/to/an/older/secmail that binary is measured too, as client and relay,
# its runs interleaved with this tree's (the machine's drift then affects both alike). Every line
# is prefixed by the binary measured.
#
# With ATTACH=FILE every timed message also carries that file (an image travels in its wire form:
# `send` does the image work, `read` the conversion to PNG).
#
# With AGENT=1 both users' keys are in their key agents (`secmail unlock`) for the timed runs, as
# after a day's first command; otherwise every command derives its key from the passphrase (scrypt).
#
# Usage: [BASELINE_BIN=…] [ATTACH=FILE] [AGENT=1] scripts/bench-commands.sh [RUNS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/relay-lib.sh
runs=${1:-20}
swift build -c release --product secmail 2>/dev/null >/dev/null
swift build -c release --product secmail-relay 2>/dev/null >/dev/null
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d)
declare -A secmail relay_pids
labels=()
# Each binary is measured as a fresh copy: on this VM an executable file written an hour ago
# starts 1-1.5 ms slower than a new copy of the same bytes (more page faults: 1,133 against 983
# for --version), which would favour whichever build is newer.
fresh_copy() { cp "$1" "$work/secmail-$2"; echo "$work/secmail-$2"; }
if [ -n "${BASELINE_BIN:-}" ]; then labels+=(baseline); secmail[baseline]=$(fresh_copy "$BASELINE_BIN" baseline); fi
labels+=(current); secmail[current]=$(fresh_copy "${RELAY_BIN:-$bin/secmail}" current)
# `secmail relay` starts the secmail-relay beside it (an older single program serves by itself).
cp "$bin/secmail-relay" "$work/secmail-relay"
traced=false
command -v strace >/dev/null && traced=true

# Stops a relay (strace's child when traced: strace itself would only detach).
stop_relay() {
  local pid=$1 children
  children=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null || true)
  if $traced && [ -n "$children" ]; then kill -INT $children; else kill -INT "$pid"; fi
  wait "$pid" || true
}
cleanup() {
  for home in "$work"/*-alice "$work"/*-bob; do [ -d "$home" ] && SECMAIL_HOME="$home" "${secmail[current]}" lock >/dev/null 2>&1 || true; done
  for label in "${!relay_pids[@]}"; do stop_relay "${relay_pids[$label]}" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$(now)" -v b="$1" 'BEGIN { print a - b }'; }
median_ms() { sort -g "$1" | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.0f", m * 1000 }'; }
# accepts_between TRACE START END: successful accepts the relay logged in that window.
accepts_between() {
  [ -f "$1" ] || { echo "n/a"; return; }
  awk -v s="$2" -v e="$3" '$2 >= s && $2 <= e && $0 ~ /accept/ && $0 ~ /\) = [0-9]/ { n++ } END { print n + 0 }' "$1"
}

export SECMAIL_PASSPHRASE="benchmark passphrase"
text=$(head -c 1024 /dev/zero | tr '\0' 'x')
attach=()
[ -z "${ATTACH:-}" ] || attach=(--attach "$ATTACH")
for label in "${labels[@]}"; do
  tracer=()
  $traced && tracer=(strace -f --seccomp-bpf -qq -ttt -e trace=accept,accept4 -o "$work/$label.accepts")
  start_relay "$work/$label.log" "${tracer[@]}" "${secmail[$label]}" relay --data "$work/$label-relay" --listen 127.0.0.1:0
  relay_pids[$label]=$relay_pid
  for name in alice bob; do
    SECMAIL_HOME="$work/$label-$name" "${secmail[$label]}" register "$name" --relay "https://localhost:$relay_port" \
      --ca "$work/$label-relay/tls/dev-ca.pem" 2>/dev/null
  done
  # One message first, so both contacts are pinned before the timed runs; bob's inbox declares
  # what his client reads (reader features), as a reader's first command does.
  SECMAIL_HOME="$work/$label-alice" "${secmail[$label]}" send bob -m "$text" > /dev/null 2>&1
  SECMAIL_HOME="$work/$label-bob" "${secmail[$label]}" inbox > /dev/null 2>&1
  if [ "${AGENT:-}" = 1 ]; then
    for name in alice bob; do SECMAIL_HOME="$work/$label-$name" "${secmail[$label]}" unlock > /dev/null 2>&1; done
  fi
done

for _ in $(seq "$runs"); do
  for label in "${labels[@]}"; do
    start=$(now)
    SECMAIL_HOME="$work/$label-alice" "${secmail[$label]}" send bob -m "$text" "${attach[@]}" >> "$work/$label.ids" 2>/dev/null
    elapsed "$start" >> "$work/$label.send"
    [ -f "$work/$label.send.window" ] || echo "$start $(now)" > "$work/$label.send.window"
  done
done
for index in $(seq "$runs"); do
  for label in "${labels[@]}"; do
    id=$(sed -n "${index}p" "$work/$label.ids")
    start=$(now)
    SECMAIL_HOME="$work/$label-bob" "${secmail[$label]}" read "$id" --out "$work/$label-out/$index" > /dev/null 2>&1
    elapsed "$start" >> "$work/$label.read"
    [ -f "$work/$label.read.window" ] || echo "$start $(now)" > "$work/$label.read.window"
  done
done
for label in "${labels[@]}"; do
  stop_relay "${relay_pids[$label]}"
  unset "relay_pids[$label]"
  read -r s e < "$work/$label.send.window"; send_connections=$(accepts_between "$work/$label.accepts" "$s" "$e")
  read -r s e < "$work/$label.read.window"; read_connections=$(accepts_between "$work/$label.accepts" "$s" "$e")
  echo "$label commands runs=$runs agent=${AGENT:-0} send_ms_median=$(median_ms "$work/$label.send") read_ms_median=$(median_ms "$work/$label.read") send_connections=$send_connections read_connections=$read_connections"
done
