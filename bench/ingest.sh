#!/usr/bin/env bash
# bench/ingest.sh: the HDF5 ingest figure (issue: HDF5 ingestion).
#
# Starts Ceph RGW (scripts/start-rgw.sh) and delayproxy in front of it with the facility's
# first-byte latency (MODEL=ttfb LATENCY_MS=700 by default), writes one EPAC-shaped HDF5
# file (50 images 2048x2048 16-bit, 200 waveforms, 500 scalars; bench/ingest.py), starts
# `ogd serve` on SQLite + that S3, and times POST /submit/hdf of the file.
#   BENCH_INGEST_IMAGES=50 BENCH_INGEST_WAVEFORMS=200 BENCH_INGEST_SCALARS=500 bench/ingest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
LATENCY_MS=${LATENCY_MS:-700}
export CEPH_DIR=${CEPH_DIR:-/tmp/ogd-ceph}
bash scripts/install-deps.sh --services >/dev/null
eval "$(bash scripts/start-rgw.sh 2>/dev/null)"
LISTEN=127.0.0.1:9703 UPSTREAM=${S3_ENDPOINT#http://} MODEL=ttfb LATENCY_MS=$LATENCY_MS \
  STATE=/tmp/ogd-delayproxy-ingest bash scripts/start-delayproxy.sh >/dev/null
trap 'STATE=/tmp/ogd-delayproxy-ingest bash scripts/stop-delayproxy.sh >/dev/null 2>&1 || true' EXIT
/usr/bin/python3 bench/ingest.py --ogd "$BUILD/ogd" --s3 http://127.0.0.1:9703 \
  --direct "$S3_ENDPOINT" --latency "$(awk -v l="$LATENCY_MS" 'BEGIN{printf "%.2f", l/1000}')" \
  --images "${BENCH_INGEST_IMAGES:-50}" --waveforms "${BENCH_INGEST_WAVEFORMS:-200}" \
  --scalars "${BENCH_INGEST_SCALARS:-500}"
