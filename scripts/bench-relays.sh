#!/usr/bin/env bash
# Scale-out benchmark (issue 15), release build, everything on 127.0.0.1 of this machine, in one
# run: (1) one relay on SQLite, (2) one relay on PostgreSQL, (3) two relays on one PostgreSQL
# database behind HAProxy in TCP mode. For each: REGISTRATIONS registrations (8 clients), then
# verified lookups with CLIENTS clients for SECONDS per connection mode, then 1 KiB deposits with
# CLIENTS senders for SECONDS (secmail-directory-bench load and mail: rates, p50/p99, the relay's
# RSS); after each configuration the CPU seconds each process used (relays, PostgreSQL, HAProxy),
# which divided by the requests made gives the per-request cost that scaling projects from.
# Needs Debian's postgresql and haproxy.
#
# Usage: scripts/bench-relays.sh [REGISTRATIONS] [CLIENTS] [SECONDS]   (defaults 2000 32 6)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/relay-lib.sh
registrations=${1:-2000} clients=${2:-32} seconds=${3:-6}
command -v haproxy >/dev/null || { echo "bench-relays.sh: apt-get install haproxy" >&2; exit 1; }

swift build -c release --product secmail 2>/dev/null >/dev/null
swift build -c release --product secmail-directory-bench 2>/dev/null >/dev/null
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d)
cluster=$(mktemp -d /tmp/secmail-bench-postgres.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/test-postgres.sh stop "$cluster"
  rm -rf "$work"
}
trap cleanup EXIT
scripts/test-postgres.sh start "$cluster" >/dev/null
certs=(--cert certs/relay.pem --key certs/throwaway-relay.key.pem)
ca=certs/dev-ca.pem
flags="--rate-per-address 1000000 --rate-per-identity 1000000 $(load_test_flags "$bin/secmail")"

# cpu_seconds PID...: user+system CPU seconds of the processes and their children so far.
cpu_seconds() {
  local total=0 pid ticks
  for pid in "$@"; do
    ticks=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + ticks))
  done
  awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }'
}

postgres_pids() { pgrep -f "postgres.*$cluster" | tr '\n' ' '; }

# measure LABEL PORT RELAY_PID...: the load against PORT; CPU of the relays and PostgreSQL.
measure() {
  local label=$1 port=$2
  shift 2
  local before_pg
  before_pg=$(cpu_seconds $(postgres_pids))
  "$bin/secmail-directory-bench" load "https://localhost:$port" "$ca" "$registrations" "$clients" "$seconds" | sed -u "s/^/$label /"
  "$bin/secmail-directory-bench" mail "https://localhost:$port" "$ca" "$clients" "$seconds" 16 "$1" | grep -v "^syncs\|strace" | sed -u "s/^/$label /"
  local rss=""
  for pid in "$@"; do rss+=" $(awk '/VmHWM/ {print $2}' "/proc/$pid/status")kB"; done
  echo "$label cpu relays=$(cpu_seconds "$@")s postgres=$(awk -v a="$(cpu_seconds $(postgres_pids))" -v b="$before_pg" 'BEGIN { printf "%.1f", a - b }')s relay_peak_rss=$rss"
}

# 1. SQLite, one relay.
start_relay "$work/sqlite.log" "$bin/secmail" relay --data "$work/sqlite" --listen 127.0.0.1:0 "${certs[@]}" $flags
pids+=("$relay_pid")
measure sqlite "$relay_port" "$relay_pid"
kill -INT "$relay_pid"; wait "$relay_pid" || true

# 2. PostgreSQL, one relay.
psql -X -q -h "$cluster" -U postgres -d postgres -c "CREATE DATABASE single" -c "CREATE DATABASE shared"
start_relay "$work/pg.log" "$bin/secmail" relay --data "$work/pg" --listen 127.0.0.1:0 "${certs[@]}" $flags \
  --database "postgres://postgres@/single?host=$cluster"
pids+=("$relay_pid")
measure postgres "$relay_port" "$relay_pid"
kill -INT "$relay_pid"; wait "$relay_pid" || true

# 3. Two relays on one PostgreSQL database behind HAProxy (TCP mode, docs/DEPLOY.md).
start_relay "$work/a.log" "$bin/secmail" relay --data "$work/a" --listen 127.0.0.1:0 "${certs[@]}" $flags \
  --database "postgres://postgres@/shared?host=$cluster"
pids+=("$relay_pid"); relay_a=$relay_pid port_a=$relay_port
mkdir -m 700 "$work/b" && cp "$work/a/log-key.ed25519" "$work/a/origin" "$work/b/"
start_relay "$work/b.log" "$bin/secmail" relay --data "$work/b" --listen 127.0.0.1:0 "${certs[@]}" $flags \
  --database "postgres://postgres@/shared?host=$cluster"
pids+=("$relay_pid"); relay_b=$relay_pid port_b=$relay_port
front=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/haproxy.cfg" <<CONFIG
global
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
frontend secmail
    bind 127.0.0.1:$front
    default_backend relays
backend relays
    balance leastconn
    option httpchk GET /v1/health
    http-check expect string ok
    server relay1 127.0.0.1:$port_a check check-ssl verify none inter 2s
    server relay2 127.0.0.1:$port_b check check-ssl verify none inter 2s
CONFIG
haproxy -f "$work/haproxy.cfg" -db > "$work/haproxy.log" 2>&1 &
haproxy_pid=$!; pids+=("$haproxy_pid")
sleep 1
measure two-relays-haproxy "$front" "$relay_a" "$relay_b"
echo "two-relays-haproxy cpu haproxy=$(cpu_seconds "$haproxy_pid")s"
