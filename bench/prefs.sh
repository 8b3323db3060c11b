#!/usr/bin/env bash
# bench/prefs.sh: what the user-preference look-up costs (issue: imaging preferences).
#
# One worker on the embedded pair (SQLite + files) with 50 demo records; a local user
# logs in. wrk (2 threads, 16 connections, bearer token) drives, for BENCH_SECONDS each:
#   bar_param   /images/colour_bar?colourmap_name=magma   (no look-up: the query names it)
#   bar_pref    /images/colour_bar with PREFERRED_COLOUR_MAP=magma (one user look-up)
#   page_stored /records?limit=25 with no vector preference (stored vector thumbnails)
#   page_redraw /records?limit=25 with VECTOR_SKIP=2 (every vector object read, re-drawn)
# Prints one line with requests/s of each and the preference/parameter ratio:
#   prefs: bar_param=<rps> bar_pref=<rps> ratio=<x> page_stored=<rps> page_redraw=<rps>
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OGD="$PWD/$BUILD/ogd"
source bench/lib.sh
DURATION=${BENCH_SECONDS:-5}
bench_scratch prefs
"$OGD" demo --config "$DATA/config.yml" --records 50 >/dev/null 2>&1
bench_user "$DATA/config.yml"
bench_serve "$DATA/config.yml" "$DATA/serve.log"
BASE="http://127.0.0.1:$PORT"
TOKEN=$(bench_token "$BASE")
AUTH="Authorization: Bearer $TOKEN"
pref() { # $1 name, $2 JSON value
  curl -sf -o /dev/null -H "$AUTH" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$1\",\"value\":$2}" "$BASE/users/preferences"
}
rps() { # $1 path
  curl -sf -o /dev/null -H "$AUTH" "$BASE$1"   # must succeed
  wrk -t2 -c16 -d1s -H "$AUTH" "$BASE$1" >/dev/null   # warm-up
  wrk -t2 -c16 -d"${DURATION}s" -H "$AUTH" "$BASE$1" | awk '/Requests\/sec/ {printf "%.0f", $2}'
}
BAR_PARAM=$(rps "/images/colour_bar?colourmap_name=magma")
pref PREFERRED_COLOUR_MAP '"magma"'
BAR_PREF=$(rps "/images/colour_bar")
PAGE_STORED=$(rps "/records?limit=25")
pref VECTOR_SKIP 2
PAGE_REDRAW=$(rps "/records?limit=25")
RATIO=$(awk -v a="$BAR_PREF" -v b="$BAR_PARAM" 'BEGIN {printf "%.2f", a / b}')
echo "prefs: bar_param=$BAR_PARAM bar_pref=$BAR_PREF ratio=$RATIO page_stored=$PAGE_STORED page_redraw=$PAGE_REDRAW"
