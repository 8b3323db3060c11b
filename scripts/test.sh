#!/usr/bin/env bash
# Runs every test: the C unit tests (cmocka, through ctest) and the HTTP-level tests
# (pytest, starting real `ogd serve` processes on free ports) on both back-end pairs:
# embedded (SQLite + files) and production (PostgreSQL 15 + Ceph RADOS Gateway). The
# servers are started here (scripts/start-pg.sh, scripts/start-rgw.sh; ~1 s and ~2 s),
# with the OpenLDAP directory of the FedID tests (scripts/start-slapd.sh, ~1 s), and
# stopped at the end; OGD_TEST_KEEP_SERVICES=1 leaves them up for the next run.
# Usage: scripts/test.sh BUILD_DIR     (OGD_SANITIZED=1 when BUILD_DIR is an ASan build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}

if [ "${OGD_SANITIZED:-}" = "1" ]; then
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=86"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
fi

bash scripts/install-deps.sh --services

echo "== starting PostgreSQL, Ceph RGW and slapd"
export CEPH_DIR=${CEPH_DIR:-/tmp/ogd-ceph}
stop_services() {
  if [ "${OGD_TEST_KEEP_SERVICES:-}" != "1" ]; then
    bash scripts/stop-pg.sh >/dev/null 2>&1 || true
    bash scripts/stop-rgw.sh >/dev/null 2>&1 || true
    bash scripts/stop-slapd.sh >/dev/null 2>&1 || true
  fi
}
trap stop_services EXIT
eval "$(bash scripts/start-pg.sh)"
export OGD_TEST_PG_DATA=${PGBASE:-/tmp/ogd-pg}/data
eval "$(bash scripts/start-rgw.sh 2>/dev/null)"
export OGD_TEST_S3_URL=$S3_ENDPOINT
export OGD_TEST_S3_ACCESS_KEY=$AWS_ACCESS_KEY_ID
export OGD_TEST_S3_SECRET_KEY=$AWS_SECRET_ACCESS_KEY
eval "$(bash scripts/start-slapd.sh)"

echo "== unit tests ($BUILD)"
(cd "$BUILD" && ctest --output-on-failure -j 2)

# The two pairs' HTTP suites run at the same time (each server has its own free port,
# database and bucket; the production pair spends most of its time waiting on the
# database, the object store and injected faults), each into its own log, printed when
# both have ended. OGD_TEST_SERIAL=1 runs them one after the other, printing as they go.
export OGD_BIN="$PWD/$BUILD/ogd"
if [ "${OGD_TEST_SERIAL:-}" = "1" ]; then
  for backend in embedded production; do
    echo "== HTTP tests ($BUILD, $backend back ends)"
    OGD_TEST_BACKEND=$backend /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/api
  done
  exit 0
fi
logs=$(mktemp -d)
pids=()
for backend in embedded production; do
  OGD_TEST_BACKEND=$backend /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/api \
    >"$logs/$backend.log" 2>&1 &
  pids+=($!)
done
echo "== HTTP tests ($BUILD, both back-end pairs at once; logs in $logs)"
rc=0
status=()
for i in 0 1; do
  if wait "${pids[$i]}"; then status+=(ok); else status+=(FAILED); rc=1; fi
done
i=0
for backend in embedded production; do
  echo "== HTTP tests ($BUILD, $backend back ends): ${status[$i]}"
  cat "$logs/$backend.log"
  i=$((i + 1))
done
rm -rf "$logs"
exit $rc
