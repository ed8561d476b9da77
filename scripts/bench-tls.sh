#!/usr/bin/env bash
# TLS bulk throughput and new full handshakes per second over loopback (release build), ours beside
# OpenSSL's own s_server / s_time in the same run on the same machine, with the same certificate
# (ECDSA P-256, certs/relay.pem). Target (issue 3): ours at least 80% of OpenSSL's figures.
#
#   bulk:       s_time -www fetches a 64 MiB body over new connections for SECONDS;
#               our client (secmail-tls-bench download) does the same against each server.
#   handshakes: s_time -new (full handshakes, no resumption); our client likewise.
#
# Usage: scripts/bench-tls.sh [SECONDS]   (default 5; MB = 10^6 bytes)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
root=$(pwd)
cert=$root/certs/relay.pem key=$root/certs/throwaway-relay.key.pem ca=$root/certs/dev-ca.pem

swift build -c release --product secmail-tls-bench >/dev/null
bench=$(swift build -c release --show-bin-path)/secmail-tls-bench
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
head -c $((64 << 20)) /dev/zero | tr '\0' 'Z' > "$work/blob"

now() { date +%s.%N; }
# s_time against PORT: bulk MB/s with -www, else handshakes/s. Wall-clock timed.
stime() {
  local port=$1 mode=$2 start end out
  start=$(now)
  if [ "$mode" = bulk ]; then
    out=$(openssl s_time -connect "127.0.0.1:$port" -CAfile "$ca" -new -time "$seconds" -www /blob 2>&1)
  else
    out=$(openssl s_time -connect "127.0.0.1:$port" -CAfile "$ca" -new -time "$seconds" 2>&1)
  fi
  end=$(now)
  echo "$out" | awk -v s="$start" -v e="$end" -v mode="$mode" '
    /connections in .* real seconds/ { n = $1; per = $7 }
    END { t = e - s; if (mode == "bulk") printf "%.1f", n * per / t / 1e6; else printf "%.1f", n / t }'
}
ours() { "$bench" "$1" "$2" "$ca" "$seconds" | awk -v mode="$1" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if ((mode == "download" && kv[1] == "mbps") || (mode == "handshakes" && kv[1] == "per_second")) print kv[2] } }'; }
wait_port() { for _ in $(seq 50); do grep -qE "$2" "$1" 2>/dev/null && break; sleep 0.1; done; grep -oE "$2" "$1" | grep -oE "[0-9]+$" | head -1; }

# OpenSSL's server, serving the blob from its folder.
(cd "$work" && exec openssl s_server -accept 127.0.0.1:0 -cert "$cert" -key "$key" -WWW > "$work/s_server.log" 2>&1) &
pids+=($!)
openssl_port=$(wait_port "$work/s_server.log" "ACCEPT 127.0.0.1:[0-9]+")
# Our server, answering every request with a 64 MiB body.
"$bench" serve "$cert" "$key" 64 > "$work/ours.log" 2>&1 &
pids+=($!)
our_port=$(wait_port "$work/ours.log" "PORT [0-9]+")

ossl_bulk=$(stime "$openssl_port" bulk); ossl_hs=$(stime "$openssl_port" handshakes)
stime_ours_bulk=$(stime "$our_port" bulk); stime_ours_hs=$(stime "$our_port" handshakes)
ours_bulk=$(ours download "$our_port"); ours_hs=$(ours handshakes "$our_port")
ourclient_ossl_bulk=$(ours download "$openssl_port"); ourclient_ossl_hs=$(ours handshakes "$openssl_port")

pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
verdict() { awk -v a="$1" -v b="$2" 'BEGIN { print (a >= 0.8 * b) ? "PASS" : "FAIL" }'; }
printf "%-44s %12s %14s\n" "client -> server (loopback, ${seconds}s each)" "bulk MB/s" "handshakes/s"
printf "%-44s %12s %14s\n" "openssl s_time -> openssl s_server" "$ossl_bulk" "$ossl_hs"
printf "%-44s %12s %14s\n" "openssl s_time -> secmail server" "$stime_ours_bulk" "$stime_ours_hs"
printf "%-44s %12s %14s\n" "secmail client -> openssl s_server" "$ourclient_ossl_bulk" "$ourclient_ossl_hs"
printf "%-44s %12s %14s\n" "secmail client -> secmail server" "$ours_bulk" "$ours_hs"
echo
echo "secmail pair vs OpenSSL pair: bulk $(pct "$ours_bulk" "$ossl_bulk") $(verdict "$ours_bulk" "$ossl_bulk"), handshakes $(pct "$ours_hs" "$ossl_hs") $(verdict "$ours_hs" "$ossl_hs")"
echo "secmail server vs s_server (same s_time client): bulk $(pct "$stime_ours_bulk" "$ossl_bulk"), handshakes $(pct "$stime_ours_hs" "$ossl_hs")"
[ "$(verdict "$ours_bulk" "$ossl_bulk")" = PASS ] && [ "$(verdict "$ours_hs" "$ossl_hs")" = PASS ]
