#!/usr/bin/env bash
# The project's tests: every suite (the relay's against SQLite and, where PostgreSQL's server is
# installed, against a throw-away cluster started here and removed afterwards), then each fuzz
# target for a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  cluster=$(mktemp -d /tmp/secmail-test-postgres.XXXXXX)
  trap 'scripts/test-postgres.sh stop "$cluster"' EXIT
  export SECMAIL_TEST_POSTGRES=$(scripts/test-postgres.sh start "$cluster")
else
  echo "PostgreSQL's server is not installed (apt-get install postgresql): the relay suites run on SQLite only"
fi
swift test
scripts/fuzz.sh --seconds 3 --jobs 2
