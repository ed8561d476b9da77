#!/usr/bin/env bash
# Lossless image optimisation benchmark (issue 5), release build: per image and in total, output
# bytes and time of `secmail image optimize` beside `optipng -o2`, `optipng -o5` and Pillow's
# optimize=True, in the same run, with every output's pixels checked against the input's.
# Target: total bytes at or below optipng -o2 in at most its total time.
#
# Usage: scripts/bench-images.sh [DIR] [LEVEL...]   (default ../shared/corpus, level 2)
set -euo pipefail
cd "$(dirname "$0")/.."
folder=${1:-../shared/corpus}
shift || true
command -v optipng >/dev/null || { sudo=; [ "$(id -u)" = 0 ] || sudo=sudo; $sudo apt-get install -y optipng >/dev/null || { $sudo apt-get update >/dev/null && $sudo apt-get install -y optipng >/dev/null; }; }
python3 -c "import PIL" 2>/dev/null || python3 -m pip install --quiet pillow
swift build -c release --product secmail 2>/dev/null >/dev/null
python3 scripts/bench_images.py "$(swift build -c release --show-bin-path)/secmail" "$folder" "$@"
