#!/usr/bin/env bash
# The fault suite (`make chaos`; docs/reliability.md, "Fault suite"): tests/chaos/chaos.py
# on each back-end pair, one `ogd serve` per pair under a mixed load while faults are
# injected (worker SIGKILL, HUP, QUIT + start, PostgreSQL stopped, RGW frozen and killed,
# abandoned requests, slow readers). One line per fault; exit 1 if data was lost, a
# worker crashed or the server did not recover.
#
# The production pair gets its OWN PostgreSQL and Ceph RGW, on other ports and
# directories than the shared test instances (which other runs on this machine use and
# which this script never touches), stopped again at the end:
#   CHAOS_PGBASE=/tmp/ogd-chaos-pg  CHAOS_PGPORT=54349
#   CHAOS_CEPH_DIR=/tmp/ogd-chaos-ceph  CHAOS_RGW_PORT=7492
#   CHAOS_MON_PORT_V2=3312  CHAOS_MON_PORT_V1=6792
# CHAOS_PAIRS="embedded production" (default both), CHAOS_FAULTS=kill9,sighup,... (default
# all), CHAOS_OUT (default BUILD/chaos: server logs and the rows as JSON).
# Usage: scripts/chaos.sh [BUILD_DIR]     (OGD_SANITIZED=1 when BUILD_DIR is an ASan build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
PAIRS=${CHAOS_PAIRS:-embedded production}
OUT=${CHAOS_OUT:-$BUILD/chaos}
export PGBASE=${CHAOS_PGBASE:-/tmp/ogd-chaos-pg}
export PGPORT=${CHAOS_PGPORT:-54349}
export CEPH_DIR=${CHAOS_CEPH_DIR:-/tmp/ogd-chaos-ceph}
export RGW_PORT=${CHAOS_RGW_PORT:-7492}
export MON_PORT_V2=${CHAOS_MON_PORT_V2:-3312}
export MON_PORT_V1=${CHAOS_MON_PORT_V1:-6792}
# memstore: the suite stores ~100 MB; the default 4G cap is only a ceiling, but keep it low
export MEMSTORE_BYTES=${CHAOS_MEMSTORE_BYTES:-2G}

if [ "$(realpath -m "$PGBASE")" = /tmp/ogd-pg ] || [ "$PGPORT" = 54329 ] ||
   [ "$(realpath -m "$CEPH_DIR")" = /tmp/ogd-ceph ] || [ "$RGW_PORT" = 7480 ] ||
   [ "$MON_PORT_V2" = 3300 ] || [ "$MON_PORT_V1" = 6789 ]; then
  echo "chaos: refusing to use the shared PostgreSQL/RGW instances (dirs, ports)" >&2
  exit 2
fi

if [ "${OGD_SANITIZED:-}" = "1" ]; then  # an ASan/UBSan build: reports end up in the log
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=86"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
fi

[ -x "$BUILD/ogd" ] || { echo "chaos: no $BUILD/ogd; build first (make build)" >&2; exit 2; }
mkdir -p "$OUT"
t0=$(date +%s)

stop_services() {
  bash scripts/stop-pg.sh >/dev/null 2>&1 || true
  bash scripts/stop-rgw.sh >/dev/null 2>&1 || true
}
if [[ " $PAIRS " == *" production "* ]]; then
  bash scripts/install-deps.sh --services
  trap stop_services EXIT
  echo "== chaos: own PostgreSQL on $PGPORT ($PGBASE), own Ceph RGW on $RGW_PORT ($CEPH_DIR)"
  eval "$(bash scripts/start-pg.sh)"
  eval "$(bash scripts/start-rgw.sh 2>/dev/null)"
  export CHAOS_PG_URL=$OGD_TEST_PG_URL CHAOS_PG_DATA=$PGBASE/data CHAOS_PG_LOG=$PGBASE/server.log
  export CHAOS_S3_URL=$S3_ENDPOINT CHAOS_S3_ACCESS_KEY=$AWS_ACCESS_KEY_ID
  export CHAOS_S3_SECRET_KEY=$AWS_SECRET_ACCESS_KEY CHAOS_CEPH_DIR=$CEPH_DIR
fi

rc=0
for pair in $PAIRS; do
  echo "== chaos: $pair pair"
  /usr/bin/python3 tests/chaos/chaos.py --pair "$pair" --ogd "$BUILD/ogd" --out "$OUT" \
    --faults "${CHAOS_FAULTS:-}" || rc=1
done
echo "== chaos: done in $(( $(date +%s) - t0 ))s, logs and rows in $OUT"
/usr/bin/python3 tests/chaos/chaos.py --table "$OUT" $PAIRS
exit $rc
