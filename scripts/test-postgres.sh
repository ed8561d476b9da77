#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests: Debian's server (package postgresql), trust
# authentication, no TCP (a Unix socket in the cluster's own directory), fsync on.
#   scripts/test-postgres.sh start DIR   creates and starts a cluster in DIR (new or empty);
#                                        prints the socket directory to export as SECMAIL_TEST_POSTGRES
#   scripts/test-postgres.sh stop DIR    stops it and removes DIR
#   scripts/test-postgres.sh halt DIR    stops the server, keeping the cluster (a test of outages)
#   scripts/test-postgres.sh resume DIR  starts a halted cluster again
# As root the server runs as the postgres user (PostgreSQL refuses to run as root).
set -euo pipefail
usage="usage: test-postgres.sh start|stop|halt|resume DIR"
command=${1:?$usage}
dir=${2:?$usage}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "test-postgres.sh: PostgreSQL's server is not installed (apt-get install postgresql)" >&2; exit 1; }

as_server_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The server outlives this script: it must hold none of the caller's descriptors (a test process
# reading a child's output would otherwise wait for the server to end), so everything past
# standard error is closed and pg_ctl's own output goes to a file.
start_server() {
  local fd
  for fd in $(ls /proc/$$/fd); do
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
  as_server_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories='$dir' -c fsync=on -c max_connections=300" start \
    </dev/null >>"$dir/pg_ctl.log" 2>&1
}

case "$command" in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
    as_server_user "$bin/initdb" -D "$dir/data" --auth=trust -U postgres -E UTF8 >"$dir/initdb.log" 2>&1
    start_server
    echo "$dir"
    ;;
  halt) as_server_user "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null ;;
  resume) start_server ;;
  stop)
    if [ -d "$dir/data" ]; then as_server_user "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true; fi
    rm -rf "$dir"
    ;;
  *) echo "$usage" >&2; exit 64 ;;
esac
