#!/usr/bin/env bash
# Scale-out benchmark (issue 15), release build, everything on 127.0.0.1 of this machine, in one
# run: (1) one relay on SQLite, (2) one relay on PostgreSQL, (3) two relays on one PostgreSQL
# database behind HAProxy in TCP mode. For each: REGISTRATIONS registrations (8 clients), then
# verified lookups with CLIENTS clients for SECONDS per connection mode, then 1 KiB deposits with
# CLIENTS senders for SECONDS (secmail-directory-bench load and mail: rates, p50/p99, the relay's
# RSS); for each phase the CPU milliseconds per request that the relays, PostgreSQL and HAProxy
# spent (sampled from /proc every 0.2 s), the per-request cost that scaling projects from.
# Needs Debian's postgresql and haproxy.
#
# Usage: scripts/bench-relays.sh [REGISTRATIONS] [CLIENTS] [SECONDS]   (defaults 2000 32 6)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/relay-lib.sh
registrations=${1:-2000} clients=${2:-32} seconds=${3:-6}
command -v haproxy >/dev/null || { echo "bench-relays.sh: apt-get install haproxy" >&2; exit 1; }

swift build -c release --product secmail 2>/dev/null >/dev/null
swift build -c release --product secmail-relay 2>/dev/null >/dev/null
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

# The postmaster of the benchmark's cluster and its children (backends, writers) right now.
postgres_pids() {
  local postmaster
  postmaster=$(head -1 "$cluster/data/postmaster.pid")
  echo "$postmaster $(pgrep -P "$postmaster" | tr '\n' ' ')"
}

# add_ticks PID...: adds each process's user+system ticks, with its ended children's, to
# `ticks`. Bash builtins only: a sampler that forked awk for every reading cost the relay several
# percent of these two cores.
add_ticks() {
  local pid stat
  for pid in "$@"; do
    { read -r stat < "/proc/$pid/stat"; } 2>/dev/null || continue  # a backend that just ended
    stat=${stat##*) }
    set -- $stat
    ticks=$((ticks + ${12} + ${13} + ${14} + ${15}))
  done
}

# sample_cpu RELAY_PIDS EXTRA_PIDS: every 0.2 s, "time relays postgres extra" in hundredths of CPU seconds
# (PostgreSQL's processes listed again every 2 s: its backends live as long as a relay's connections).
sample_cpu() {
  local hz pause n=0 pg="" relays extra postgres
  hz=$(getconf CLK_TCK)
  exec {pause}<> <(:)
  while :; do
    if [ $((n++ % 10)) = 0 ]; then pg=$(postgres_pids); fi
    ticks=0; add_ticks $1; relays=$ticks
    ticks=0; add_ticks $pg; postgres=$ticks
    ticks=0; add_ticks $2; extra=$ticks
    echo "$EPOCHREALTIME $((relays * 100 / hz)) $((postgres * 100 / hz)) $((extra * 100 / hz))"
    read -r -t 0.2 -u "$pause" || true
  done
}

# stamp: each line of standard input with the time it came.
stamp() { while IFS= read -r line; do echo "$EPOCHREALTIME $line"; done; }

# measure LABEL PORT "RELAY_PIDS" ["EXTRA_PIDS"]: the load against PORT, then for each measured
# phase (a line with count=) the CPU milliseconds per request of the relays, PostgreSQL and the
# extra processes (HAProxy) while it ran: a phase starts when the line before it was printed.
measure() {
  local label=$1 port=$2 relays=$3 extra=${4:-}
  sample_cpu "$relays" "$extra" > "$work/$label.cpu" &
  local sampler=$!
  echo "$EPOCHREALTIME start" > "$work/$label.lines"
  "$bin/secmail-directory-bench" load "https://localhost:$port" "$ca" "$registrations" "$clients" "$seconds" | stamp >> "$work/$label.lines"
  "$bin/secmail-directory-bench" mail "https://localhost:$port" "$ca" "$clients" "$seconds" 16 "${relays%% *}" \
    | grep --line-buffered -v "^syncs\|strace" | stamp >> "$work/$label.lines"
  sleep 0.3
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  cut -d' ' -f2- "$work/$label.lines" | tail -n +2 | sed "s/^/$label /"
  local rss="" pid
  for pid in $relays; do rss+=" $(awk '/VmHWM/ {print $2}' "/proc/$pid/status")kB"; done
  echo "$label relay_peak_rss=$rss"
  python3 - "$label" "$work/$label.lines" "$work/$label.cpu" <<'PER_REQUEST'
import bisect, re, sys
label, lines_file, cpu_file = sys.argv[1:]
rows = [l.split() for l in open(cpu_file)]
samples = [(float(r[0]), int(r[1]) / 100, int(r[2]) / 100, int(r[3]) / 100) for r in rows if len(r) == 4]
times = [s[0] for s in samples]
def cpu_at(t):  # the last sample at or before t
    return samples[max(0, bisect.bisect_right(times, t) - 1)]
previous = None
for line in open(lines_file):
    stamp, _, text = line.strip().partition(" ")
    t = float(stamp)
    count = re.search(r"\bcount=(\d+)", text)
    if previous is not None and count and int(count.group(1)) > 0:
        n = int(count.group(1))
        before, after = cpu_at(previous), cpu_at(t)
        name = " ".join(w for w in text.split()[:2] if "=" not in w or w.startswith("mode="))
        parts = [f"relays={(after[1] - before[1]) * 1000 / n:.2f}", f"postgres={(after[2] - before[2]) * 1000 / n:.2f}"]
        if after[3] > 0:
            parts.append(f"haproxy={(after[3] - before[3]) * 1000 / n:.2f}")
        print(f"{label} cpu_ms_per_request {name} " + " ".join(parts))
    previous = t
total = samples[-1]
print(f"{label} cpu_seconds relays={total[1] - samples[0][1]:.1f} postgres={total[2] - samples[0][2]:.1f}"
      + (f" haproxy={total[3] - samples[0][3]:.1f}" if total[3] > 0 else ""))
PER_REQUEST
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
measure two-relays-haproxy "$front" "$relay_a $relay_b" "$haproxy_pid"
