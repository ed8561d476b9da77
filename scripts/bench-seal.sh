#!/usr/bin/env bash
# `secmail seal` and `open` of 1 MiB and 256 MiB, with the key agent and with the passphrase,
# beside `gpg -se`/`gpg -d` and `age`/`age -d` on the same files in the same run: medians of 11
# runs and peak RSS (scripts/bench_seal.py). Two release builds of secmail are measured: the
# default one (Swift runtime and Foundation as shared libraries) and one linked with
# --static-swift-stdlib (as README recommends for installing), whose process start is shorter.
#
# Usage: scripts/bench-seal.sh [RUNS] [SIZES_MIB]   (default 11 and 1,256)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-11}
sizes=${2:-1,256}
command -v age >/dev/null || apt-get install -y -qq age >/dev/null
command -v gpg >/dev/null || apt-get install -y -qq gnupg >/dev/null
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null
swift build -c release --product secmail >/dev/null 2>&1
swift build -c release --product secmail --static-swift-stdlib --disable-local-rpath --scratch-path .build-static >/dev/null 2>&1
python3 scripts/bench_seal.py --runs "$runs" --sizes "$sizes" \
  "static=.build-static/release/secmail" "shared=.build/release/secmail"
