#!/usr/bin/env bash
# bench/cache_hits.sh: what the node's write log (objstore/coherence.h) costs on the
# object cache's hit path, against a build without it, in one run.
#
#   bench/cache_hits.sh OGD_NEW BASE
#
# BASE is a binary, or a git revision built once (RelWithDebInfo) in build-base-<rev>.
#
# Both binaries serve the same embedded data (SQLite + files, 10 demo records, one
# worker), one after the other, in ROUNDS alternating rounds (new, base, new, base...);
# wrk (2 threads, 16 connections) asks for one image's stored PNG
# (/images/{id}/{ch}?original_image=true: the cache hit, then a copy) for BENCH_SECONDS
# a round. While the new binary runs, nothing is written, so the log is quiet: this is
# the price every lookup pays. Prints requests/s (median of the rounds), the ratio
# new/base and the worker's CPU time per request:
#   cache_hits: new=<rps> base=<rps> ratio=<x> cpu_us_new=<us> cpu_us_base=<us>
set -euo pipefail
cd "$(dirname "$0")/.."
NEW=$(realpath "${1:?usage: bench/cache_hits.sh OGD_NEW BASE}")
BASE=${2:?usage: bench/cache_hits.sh OGD_NEW BASE}
if [ -f "$BASE" ]; then
  BASE_BIN=$(realpath "$BASE")
else
  rev=$(git rev-parse --short "$BASE")
  dir="$PWD/build-base-$rev"
  if [ ! -x "$dir/build/ogd" ]; then
    [ -d "$dir" ] || git worktree add -f --detach "$dir" "$rev" >/dev/null
    cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$dir/build" -j 2 --target ogd >/dev/null
  fi
  BASE_BIN="$dir/build/ogd"
fi
source bench/lib.sh
DURATION=${BENCH_SECONDS:-5}
ROUNDS=${ROUNDS:-3}
bench_scratch cache
OGD="$NEW"
"$OGD" demo --config "$DATA/config.yml" --records 10 >/dev/null 2>&1
bench_user "$DATA/config.yml"
URL="http://127.0.0.1:$PORT"

# one round: prints "<rps> <cpu us per request>"
round() {
  OGD="$1"
  bench_serve "$DATA/config.yml" "$DATA/serve.log"
  local token path worker t0 t1 out reqs
  token=$(bench_token "$URL")
  path=$(curl -sf -H "Authorization: Bearer $token" "$URL/records?limit=1" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)[0]
ch = next(n for n, c in r["channels"].items() if c["metadata"]["channel_dtype"] == "image")
print("/images/%s/%s?original_image=true" % (r["_id"], ch))')
  curl -sf -o /dev/null -H "Authorization: Bearer $token" "$URL$path"
  wrk -t2 -c16 -d1s -H "Authorization: Bearer $token" "$URL$path" >/dev/null
  worker=$(pgrep -P "$PID" -x ogd-worker | head -1)
  t0=$(awk '{print $14 + $15}' "/proc/$worker/stat")
  out=$(wrk -t2 -c16 -d"${DURATION}s" -H "Authorization: Bearer $token" "$URL$path")
  t1=$(awk '{print $14 + $15}' "/proc/$worker/stat")
  bench_stop
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  awk -v r="$(awk '/Requests\/sec/ {print $2}' <<<"$out")" -v n="$reqs" -v t="$((t1 - t0))" \
    -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f %.1f\n", r, t / hz * 1e6 / n}'
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
: > "$DATA/new" && : > "$DATA/base"
for _ in $(seq "$ROUNDS"); do
  round "$NEW" >> "$DATA/new"
  round "$BASE_BIN" >> "$DATA/base"
done
N=$(cut -d' ' -f1 "$DATA/new" | median)
B=$(cut -d' ' -f1 "$DATA/base" | median)
CN=$(cut -d' ' -f2 "$DATA/new" | median)
CB=$(cut -d' ' -f2 "$DATA/base" | median)
echo "cache_hits: new=$N base=$B ratio=$(awk -v a="$N" -v b="$B" 'BEGIN {printf "%.3f", a / b}') cpu_us_new=$CN cpu_us_base=$CB"
