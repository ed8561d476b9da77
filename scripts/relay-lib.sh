# Shared by the relay benchmarks (sourced, not run).

# start_relay LOG COMMAND...: runs COMMAND (a `secmail relay` invocation, possibly behind a tracer)
# in the background with its output in LOG, and waits for its listening line. Sets relay_pid and
# relay_port; prints the log and exits if the relay does not come up.
start_relay() {
  local log=$1
  shift
  "$@" > "$log" 2>&1 &
  relay_pid=$!
  for _ in $(seq 200); do grep -q "listening on https://" "$log" && break; sleep 0.1; done
  relay_port=$(grep -oE "listening on https://127.0.0.1:[0-9]+" "$log" | grep -oE "[0-9]+$" || true)
  [ -n "$relay_port" ] || { cat "$log" >&2; exit 1; }
}

# load_test_flags SECMAIL: the flags that lift the relay's limits on registrations and on new
# connections per address (the benchmarks register thousands of names, with a few key pairs
# shared among them, and open hundreds of connections a second, and keep hundreds open, from one
# address), where that
# binary has them (an older baseline may not).
load_test_flags() {
  local help
  help=$("$1" relay serve --help 2>/dev/null)
  if grep -q -- --registrations-per-hour-per-address <<<"$help"; then
    echo -n "--registrations-per-hour-per-address 100000000 --registrations-per-hour 100000000 "
  fi
  if grep -q -- --allow-shared-keys <<<"$help"; then
    echo -n "--allow-shared-keys "
  fi
  if grep -q -- --connection-rate-per-address <<<"$help"; then
    echo -n "--connection-rate-per-address 1000000 "
  fi
  if grep -q -- --max-connections-per-address <<<"$help"; then
    echo -n "--max-connections-per-address 100000"
  fi
}
