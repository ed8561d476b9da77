#!/usr/bin/env bash
# Fuzzes every parser that takes bytes from the network or a file (Sources/secmail-fuzz) with
# libFuzzer, AddressSanitizer and (for the C image code) UndefinedBehaviorSanitizer.
#
#   scripts/fuzz.sh [--seconds N] [--jobs J] [TARGET...]
#
# Each target runs N seconds (default 60) on a corpus kept in .build-fuzz/corpus/TARGET, seeded
# from the tests' fixtures and the published vectors (scripts/fuzz_seeds.py). J targets run at
# once (default 1). A finding is kept as .build-fuzz/findings/TARGET-crash-* (or leak-, timeout-,
# oom-) and makes the script exit 1; replay one with a plain build:
#   swift build --product secmail-fuzz && .build/debug/secmail-fuzz TARGET FILE
# The last lines give, per target: executions, edges covered, features, corpus size.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
jobs=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all_targets=(envelope content bundle note directory json png jpeg agent inflate jxl)
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

scratch=.build-fuzz
echo "fuzz.sh: building the harnesses (release, libFuzzer + ASan; UBSan for C)"
# SwiftPM's --sanitize fuzzer links libFuzzer's main instead of the target's; the swiftc flag
# names both sanitizers in one argument because the Swift driver keeps only the last -sanitize=.
swift build -c release --scratch-path "$scratch" --product secmail-fuzz --sanitize fuzzer \
  -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address,undefined -Xswiftc -DSECMAIL_LIBFUZZER 2>&1 |
  grep -v -e "unhandled; explicitly declare them" -e "Cannot export local symbol" || true
binary="$scratch/release/secmail-fuzz"
[ -x "$binary" ] || { echo "fuzz.sh: the build failed" >&2; exit 1; }

seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
python3 scripts/fuzz_seeds.py "$seeds"
mkdir -p "$scratch/findings" "$scratch/logs"

run_target() {
  local target="$1" corpus="$scratch/corpus/$1"
  mkdir -p "$corpus"
  cp -n "$seeds/$target"/* "$corpus/" 2>/dev/null || true
  # UBSan findings in C are fatal, like ASan's; a leak is a finding too.
  SECMAIL_FUZZ_TARGET="$target" SECMAIL_FUZZ_FIXTURES="$PWD/Tests/SecmailFormatTests/Fixtures" \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=262144 -print_final_stats=1 \
    -artifact_prefix="$scratch/findings/$target-" "$corpus" >"$scratch/logs/$target.log" 2>&1
}

status=0
pids=()
names=()
for target in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $target "* ]] || { echo "fuzz.sh: no target $target (${all_targets[*]})" >&2; exit 2; }
  run_target "$target" &
  pids+=($!)
  names+=("$target")
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || { echo "fuzz.sh: ${names[0]}: FINDING, see $scratch/logs/${names[0]}.log" >&2; status=1; }
    pids=("${pids[@]:1}")
    names=("${names[@]:1}")
  fi
done
for index in "${!pids[@]}"; do
  wait "${pids[$index]}" || { echo "fuzz.sh: ${names[$index]}: FINDING, see $scratch/logs/${names[$index]}.log" >&2; status=1; }
done

printf "%-10s %12s %8s %8s %8s %10s\n" target executions exec/s edges features corpus
for target in "${targets[@]}"; do
  log="$scratch/logs/$target.log"
  runs=$(grep -o "stat::number_of_executed_units: *[0-9]*" "$log" | grep -o "[0-9]*$" || echo "?")
  rate=$(grep -o "stat::average_exec_per_sec: *[0-9]*" "$log" | grep -o "[0-9]*$" || echo "?")
  last=$(grep -E "^#[0-9]+" "$log" | tail -1 || true)
  edges=$(grep -o "cov: [0-9]*" <<<"$last" | grep -o "[0-9]*" || echo "?")
  features=$(grep -o "ft: [0-9]*" <<<"$last" | grep -o "[0-9]*" || echo "?")
  printf "%-10s %12s %8s %8s %8s %10s\n" "$target" "$runs" "$rate" "$edges" "$features" "$(ls "$scratch/corpus/$target" | wc -l)"
done
[ $status -eq 0 ] && echo "fuzz.sh: no findings in ${#targets[@]} target(s), ${seconds} s each"
exit $status
