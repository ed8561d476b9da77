#!/usr/bin/env bash
# Envelope seal/open throughput and peak memory (release build), beside OpenSSL's own AES-256-GCM
# and SHA-256 speeds measured in the same run on the same machine.
#
# Target (issue 2): seal and open each reach at least 60% of 1/(1/aes + 1/sha256), the single-core
# limit for "encrypt every byte and hash every ciphertext byte"; peak RSS under 64 MiB at 256 MiB.
# Usage: scripts/bench-envelope.sh [SIZE_MIB...]   (default: 1 256)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("${@:-1 256}")
[ $# -eq 0 ] && sizes=(1 256)

swift build -c release --product secmail-bench >/dev/null
bench=$(swift build -c release --show-bin-path)/secmail-bench

# openssl speed prints "k" = 1000 bytes/s for 64 KiB blocks (our chunk size).
speed() { openssl speed -seconds 3 -bytes 65536 -evp "$1" 2>/dev/null | awk -v alg="$2" '$1 == alg { v = $NF; sub(/k$/, "", v); print v / 1000 }'; }
aes=$(speed aes-256-gcm AES-256-GCM)
sha=$(speed sha256 sha256)
limit=$(awk -v a="$aes" -v h="$sha" 'BEGIN { printf "%.1f", 1 / (1 / a + 1 / h) }')
echo "openssl speed (64 KiB blocks): aes-256-gcm ${aes} MB/s, sha256 ${sha} MB/s -> limit 1/(1/aes+1/sha256) = ${limit} MB/s; target 60% = $(awk -v l="$limit" 'BEGIN { printf "%.1f", 0.6 * l }') MB/s"
echo

status=0
printf "%9s %10s %10s %12s %14s %13s %8s\n" "size" "seal MB/s" "open MB/s" "(verify MB/s)" "open+disk MB/s" "peak RSS MiB" "verdict"
for size in "${sizes[@]}"; do
  iterations=$(( size >= 64 ? 3 : 30 ))
  line=$("$bench" "$size" "$iterations")
  get() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
  seal=$(get seal_mbps); open=$(get open_mbps); verify=$(get verify_mbps); disk=$(get open_to_disk_mbps); rss=$(get peak_rss_mib)
  verdict=$(awk -v s="$seal" -v o="$open" -v l="$limit" -v r="$rss" -v z="$size" \
    'BEGIN { ok = (s >= 0.6 * l && o >= 0.6 * l); if (z >= 256 && r >= 64) ok = 0; print ok ? "PASS" : "FAIL" }')
  [ "$verdict" = PASS ] || status=1
  printf "%6s MiB %10s %10s %12s %14s %13s %8s   (%s%% / %s%% of limit)\n" "$size" "$seal" "$open" "($verify)" "$disk" "$rss" "$verdict" \
    "$(awk -v x="$seal" -v l="$limit" 'BEGIN { printf "%.0f", 100 * x / l }')" "$(awk -v x="$open" -v l="$limit" 'BEGIN { printf "%.0f", 100 * x / l }')"
done
exit $status
