#!/usr/bin/env bash
# bench/fanout.sh: the object-store fan-out figure (issue: production back ends).
#
# Starts Ceph RGW (scripts/start-rgw.sh) and delayproxy in front of it with the facility's
# first-byte latency (MODEL=ttfb LATENCY_MS=700 by default), stores N objects of S bytes,
# then fetches them all through ogd's S3 object store and, in the same run, through one
# connection in sequence (a sample, extrapolated) and through a pool of 10 connections.
#   BENCH_FANOUT_N=1000 BENCH_FANOUT_SIZE=204800 BENCH_FANOUT_CONNECTIONS=256 bench/fanout.sh
# Extra arguments go to bench_fanout (e.g. --n 200 --size 65536).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
shift || true
LATENCY_MS=${LATENCY_MS:-700}
export CEPH_DIR=${CEPH_DIR:-/tmp/ogd-ceph}
bash scripts/install-deps.sh --services
eval "$(bash scripts/start-rgw.sh 2>/dev/null)"
LISTEN=127.0.0.1:9700 UPSTREAM=${S3_ENDPOINT#http://} MODEL=ttfb LATENCY_MS=$LATENCY_MS \
  STATE=/tmp/ogd-delayproxy bash scripts/start-delayproxy.sh >/dev/null
trap 'STATE=/tmp/ogd-delayproxy bash scripts/stop-delayproxy.sh >/dev/null 2>&1 || true' EXIT
"$BUILD/bench_fanout" --url http://127.0.0.1:9700 --direct "$S3_ENDPOINT" \
  --n "${BENCH_FANOUT_N:-1000}" --size "${BENCH_FANOUT_SIZE:-204800}" \
  --connections "${BENCH_FANOUT_CONNECTIONS:-256}" \
  --latency "$(awk -v l="$LATENCY_MS" 'BEGIN{printf "%.2f", l/1000}')" "$@"
