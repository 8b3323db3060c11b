#!/usr/bin/env bash
# make bench: every benchmark, each printing its figure beside its baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
bash bench/records.sh "$BUILD"
bash bench/fanout.sh "$BUILD"
bash bench/ingest.sh "$BUILD"
bash bench/falsecolour.sh "$BUILD"
bash bench/functions.sh "$BUILD"
bash bench/prefs.sh "$BUILD"
bash bench/function_images.sh "$BUILD"
bash bench/fedid.sh "$BUILD"
bash bench/export.sh "$BUILD"
bash bench/abandon.sh "$BUILD"
bash bench/flood.sh "$BUILD"
bash bench/cache_hits.sh "$BUILD/ogd" 68675b5
