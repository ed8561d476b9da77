#!/usr/bin/env bash
# Abuse benchmark (issue 12), release build, on 127.0.0.1: 16 honest clients alternate verified-
# shape lookups and 1 KiB deposits, each over a new TLS connection, for SECONDS: once on a quiet
# relay, then while one attacker process (scripts/abuse_attacker.py) holds 600 slow connections
# (head and body tricklers from 20 addresses), floods junk deposits at an honest mailbox and tries
# 1,000 registrations of one key pair under new names from 20 more addresses. Reports the honest
# clients' success rate and p50/p99/max latency for both runs, what the attacker got, and the
# relay's peak RSS (VmHWM) in each run.
#
# The users are registered on a relay started for that (registration limits lifted, shared keys
# allowed); the relay measured is then started on the same data with every limit at its default.
#
# MIX=held-out runs the attack variant the defences were not tuned on (see abuse_attacker.py).
#
# Usage: [MIX=held-out] scripts/bench-abuse.sh [SECONDS] [CLIENTS] [SLOW_CONNECTIONS]   (defaults 30 16 600)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/relay-lib.sh
seconds=${1:-30} clients=${2:-16} slow=${3:-600}

swift build -c release --product secmail 2>/dev/null >/dev/null
swift build -c release --product secmail-relay 2>/dev/null >/dev/null
swift build -c release --product secmail-directory-bench 2>/dev/null >/dev/null
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d)
relay_pid= bench_pid=
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null
  [ -n "$bench_pid" ] && kill "$bench_pid" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
data="$work/relay"
ca="$data/tls/dev-ca.pem"

peak_rss() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# The setup relay: any port; the measured relay reuses it.
start_relay "$work/setup.log" "$bin/secmail" relay --data "$data" --listen 127.0.0.1:0 $(load_test_flags "$bin/secmail")
port=$relay_port
mkfifo "$work/go"
"$bin/secmail-directory-bench" abuse "https://localhost:$port" "$ca" "$work/attacker" "$clients" "$seconds" < "$work/go" > "$work/bench.out" 2>&1 &
bench_pid=$!
exec 3>"$work/go"
wait_for() { for _ in $(seq 600); do grep -q "$1" "$work/bench.out" && return; kill -0 "$bench_pid" 2>/dev/null || break; sleep 0.5; done; cat "$work/bench.out" >&2; exit 1; }

wait_for "ready unloaded"
kill -INT "$relay_pid"; wait "$relay_pid" || true
start_relay "$work/quiet.log" "$bin/secmail" relay --data "$data" --listen "127.0.0.1:$port" --log-level warning
echo go >&3
wait_for "ready under_attack"
echo "relay phase=unloaded peak_rss_mib=$(peak_rss "$relay_pid")"
kill -INT "$relay_pid"; wait "$relay_pid" || true
start_relay "$work/attacked.log" "$bin/secmail" relay --data "$data" --listen "127.0.0.1:$port" --log-level warning

python3 scripts/abuse_attacker.py "$port" "$ca" "$work/attacker" "$((seconds + 10))" "$slow" "${MIX:-tuned}" > "$work/attacker.out" 2>&1 &
attacker_pid=$!
sleep 8   # the slow connections are open and the floods under way before the honest clients start
echo "relay phase=attack_started open_connections=$(ls /proc/$relay_pid/fd | wc -l) (file descriptors)"
echo go >&3
wait "$bench_pid"; bench_pid=
wait "$attacker_pid" || true
echo "relay phase=under_attack peak_rss_mib=$(peak_rss "$relay_pid")"
grep -E "^(abuse_setup|honest)" "$work/bench.out"
cat "$work/attacker.out"
