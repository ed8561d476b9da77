#!/usr/bin/env bash
# The project's tests: every suite (the relay's against SQLite and, where PostgreSQL's server is
# installed, against a throw-away cluster started here and removed afterwards), then each fuzz
# target for a few seconds.
#
# The suites run under a watchdog: a run that hangs must fail with a trail rather than use up CI's
# time in silence (one CI run once went quiet for over an hour; here they take about 4 minutes).
# Past SECMAIL_TEST_TIME_LIMIT seconds (default 1500) it prints the tests that started and did not
# end, every thread's stack in the test process (where gdb is installed) and the processes it
# waits for, stops it and fails. The output is line-buffered, so that a log cut short ends at the
# last line written, not at the last 4 KiB block.
set -euo pipefail
cd "$(dirname "$0")/.."
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  cluster=$(mktemp -d /tmp/secmail-test-postgres.XXXXXX)
  trap 'scripts/test-postgres.sh stop "$cluster"' EXIT
  export SECMAIL_TEST_POSTGRES=$(scripts/test-postgres.sh start "$cluster")
else
  echo "PostgreSQL's server is not installed (apt-get install postgresql): the relay suites run on SQLite only"
fi

# The build is outside the time limit: a first build takes 10 minutes or more on 2 cores.
swift build --build-tests

log=$(mktemp /tmp/secmail-test-log.XXXXXX)
trap 'rm -f "$log"; [ -z "${cluster:-}" ] || scripts/test-postgres.sh stop "$cluster"' EXIT
limit=${SECMAIL_TEST_TIME_LIMIT:-1500}
# In a session of its own (setsid execs in place here: a background job of a script leads no
# process group), so that whatever the tests started and left behind can be stopped with it: a
# child still holding the output pipe would keep the run from ending. (Foundation's Process puts
# each child in a process group of its own, the test process included, but in the same session.)
stdbuf -oL -eL setsid swift test --skip-build > >(tee "$log") 2>&1 &
suites=$!
stop_leftovers() {
  local tests pid folder
  tests=$(pgrep -s "$suites" -f '\.xctest' || true)
  pkill -KILL -s "$suites" 2>/dev/null || true
  # What a test process killed here leaves behind: its folder, with the small filesystems that
  # its disk-full tests mount.
  for pid in $tests; do
    folder=${TMPDIR:-/tmp}/secmail-tests-$pid
    grep -o " $folder/[^ ]*" /proc/mounts | sort -r | xargs -r -n 1 umount 2>/dev/null || true
    rm -rf "$folder"
  done
}
# Out of the terminal's session, the suites no longer get its Ctrl-C themselves.
trap 'stop_leftovers; exit 130' INT TERM

report_hang() {
  echo
  echo "test.sh: the suites are still running after $limit s (SECMAIL_TEST_TIME_LIMIT). Tests started and not ended:"
  comm -23 <(sed -nE 's/^◇ Test ([^ ]+) started\.$/\1/p' "$log" | sort -u) \
           <(sed -nE 's/^[^◇] Test ([^ ]+) .*/\1/p' "$log" | sort -u) | sed 's/^/  /'
  local process
  for process in $(pgrep -s "$suites" -f '\.xctest' || true); do
    echo "Threads of the test process $process:"
    if command -v gdb >/dev/null; then
      timeout 120 gdb -p "$process" -batch -ex "thread apply all bt 30" 2>&1 | grep -E '^(Thread|#)' | head -n 4000 || true
    else
      echo "  (gdb is not installed)"
    fi
  done
  echo "Processes:"
  ps --ppid 2 -p 2 --deselect -o pid,ppid,etimes,stat,args --forest | cut -c1-220 | head -n 200 || true
}

waited=0
while kill -0 "$suites" 2>/dev/null; do
  if [ "$waited" -ge "$limit" ]; then
    report_hang
    # The test process and what it started, which its exit hooks would have stopped.
    stop_leftovers
    wait "$suites" || true
    exit 1
  fi
  sleep 5
  waited=$((waited + 5))
done
status=0
wait "$suites" || status=$?
stop_leftovers
[ "$status" -eq 0 ] || exit "$status"
scripts/fuzz.sh --seconds 3 --jobs 2
