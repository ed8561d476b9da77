#!/usr/bin/env bash
# Envelope seal/open throughput and peak memory (release build), beside OpenSSL's own AES-256-GCM,
# SHA-256 and RSA-3072 speeds measured in the same run on the same machine.
#
# Target (issue 2): seal and open each reach at least 60% of 1/(1/aes + 1/sha256), the single-core
# limit for "encrypt every byte and hash every ciphertext byte"; peak RSS under 64 MiB at 256 MiB.
# Every message also costs one RSA-3072 private-key operation (the PSS signature when sealing, the
# OAEP unwrap when opening), which that formula leaves out; the "RSA-bound ceiling" column adds it.
#
# Usage: scripts/bench-envelope.sh [SIZE_MIB...]   (default: 1 256)
# Files go to $TMPDIR (default /tmp, on disk here); TMPDIR=/dev/shm measures without the disk.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ $# -eq 0 ] && sizes=(1 256)

swift build -c release --product secmail-bench >/dev/null
bench=$(swift build -c release --show-bin-path)/secmail-bench

# openssl speed prints "k" = 1000 bytes/s; 64 KiB blocks match our chunk size. MB = 10^6 bytes.
speed() { openssl speed -seconds 3 -bytes 65536 -evp "$1" 2>/dev/null | awk -v alg="$2" '$1 == alg { v = $NF; sub(/k$/, "", v); print v / 1000 }'; }
aes=$(speed aes-256-gcm AES-256-GCM)
sha=$(speed sha256 sha256)
rsa_signs=$(openssl speed -seconds 3 rsa3072 2>/dev/null | awk '$1 == "rsa" && $2 == "3072" { print $6 }')
limit=$(awk -v a="$aes" -v h="$sha" 'BEGIN { printf "%.1f", 1 / (1 / a + 1 / h) }')
echo "openssl speed: aes-256-gcm ${aes} MB/s, sha256 ${sha} MB/s (64 KiB blocks); rsa3072 ${rsa_signs} private ops/s"
echo "limit 1/(1/aes+1/sha256) = ${limit} MB/s; target 60% = $(awk -v l="$limit" 'BEGIN { printf "%.1f", 0.6 * l }') MB/s; files in ${TMPDIR:-/tmp}"
echo

status=0
printf "%9s %9s %9s %10s %10s %9s %14s %8s\n" "size" "seal" "open" "(verify)" "open+disk" "peak RSS" "RSA ceiling" "verdict"
for size in "${sizes[@]}"; do
  iterations=$(( size >= 64 ? 3 : 30 ))
  line=$("$bench" "$size" "$iterations")
  get() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
  seal=$(get seal_mbps); open=$(get open_mbps); verify=$(get verify_mbps); disk=$(get open_to_disk_mbps); rss=$(get peak_rss_mib)
  ceiling=$(awk -v z="$size" -v l="$limit" -v r="$rsa_signs" 'BEGIN { b = z * 1048576 / 1e6; printf "%.1f", b / (b / l + 1 / r) }')
  verdict=$(awk -v s="$seal" -v o="$open" -v l="$limit" -v r="$rss" -v z="$size" \
    'BEGIN { ok = (s >= 0.6 * l && o >= 0.6 * l); if (z >= 256 && r >= 64) ok = 0; print ok ? "PASS" : "FAIL" }')
  [ "$verdict" = PASS ] || status=1
  pct() { awk -v x="$1" -v l="$2" 'BEGIN { printf "%.0f", 100 * x / l }'; }
  printf "%5s MiB %9s %9s %10s %10s %5s MiB %14s %8s   seal %s%% / open %s%% of limit; %s%% / %s%% of RSA ceiling\n" \
    "$size" "$seal" "$open" "($verify)" "$disk" "$rss" "$ceiling" "$verdict" \
    "$(pct "$seal" "$limit")" "$(pct "$open" "$limit")" "$(pct "$seal" "$ceiling")" "$(pct "$open" "$ceiling")"
done
echo
echo "MB/s throughout. open = verify (hash + RSA-PSS check + OAEP unwrap) + decrypt to memory; open+disk = the"
echo "whole 'secmail open' path (staging files, fsync, rename). Exit status 1 if any size misses the literal target."
exit $status
