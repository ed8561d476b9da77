#!/usr/bin/env bash
# Lossless image optimisation benchmark, release build: per image and in total, output bytes and
# time of `secmail image optimize` (levels given, default 1 2 3) beside `oxipng -o2` (and
# `oxipng -o max --zopfli` with BENCH_ZOPFLI=1) and `optipng -o2`, in the same run, with every
# output's pixels checked against the input's. The corpus (scripts/image-corpus.sh) has a tune/
# and a held-out part, reported apart.
# Targets: level 2 total bytes <= oxipng -o2 in at most its time; level 3 <= oxipng max zopfli.
#
# Usage: scripts/bench-images.sh [DIR] [LEVEL...]   (default .build-corpus, levels 1 2 3)
set -euo pipefail
cd "$(dirname "$0")/.."
folder=${1:-.build-corpus}
shift || true
levels=("$@")
[ ${#levels[@]} -gt 0 ] || levels=(1 2 3)
[ "$folder" != .build-corpus ] || [ -d .build-corpus/heldout ] || scripts/image-corpus.sh >/dev/null
command -v optipng >/dev/null || { sudo=; [ "$(id -u)" = 0 ] || sudo=sudo; $sudo apt-get install -y optipng >/dev/null || { $sudo apt-get update >/dev/null && $sudo apt-get install -y optipng >/dev/null; }; }
python3 -c "import PIL" 2>/dev/null || python3 -m pip install --quiet pillow
python3 -c "import oxipng" 2>/dev/null || python3 -m pip install --quiet pyoxipng
swift build -c release --product secmail 2>/dev/null >/dev/null
python3 scripts/bench_images.py "$(swift build -c release --show-bin-path)/secmail" "$folder" "${levels[@]}"
