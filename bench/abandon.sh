#!/usr/bin/env bash
# bench/abandon.sh: work whose client has gone stops, and one user's burst does not starve
# another (issue: hardening, part 1).
#
# Serves BENCH_RECORDS (default 1000) demo records with images (each /records page
# re-colours every image thumbnail: an expensive request) with workers = cores. Then:
#  1. 100 x GET /records?limit=0 abandoned after 0.2 s, then a probe GET /records?limit=25
#     by another user: its latency, and how many of the 100 were cancelled (logged 499,
#     counted in ogd_http_requests_aborted_total) rather than run to their end;
#  2. one user keeps 100 such requests open (reads them to the end) while another user
#     probes 5 times: the probe's median and worst latency.
# The baseline of the same run is the probe on the idle server. Prints one line:
#   abandon: abandoned=100 probe_latency=<s>s cancelled=<n> ... idle_probe=<s>s busy_probe_median=<s>s ...
# BENCH_CONFIG_EXTRA: more server keys (e.g. "  max_heavy_per_user: 1000" to compare
# without the fairness gate).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OGD="$PWD/$BUILD/ogd"
source bench/lib.sh
RECORDS=${BENCH_RECORDS:-1000}
DATA="$PWD/bench/.data/abandon-$RECORDS"
PORT=$(bench_port)
mkdir -p "$DATA"
CONFIG="$DATA/config.yml"
cat > "$CONFIG" <<YML
server:
  bind: "127.0.0.1:$PORT"
  workers: $(nproc)
  data_dir: "$DATA"
  log_level: "warn"
${BENCH_CONFIG_EXTRA:-}
YML
if [ ! -f "$DATA/.loaded" ]; then
  echo "bench: loading $RECORDS demo records with images (once)..." >&2
  "$OGD" demo --config "$CONFIG" --records "$RECORDS" >/dev/null 2>&1
  touch "$DATA/.loaded"
fi
bench_user "$CONFIG"
printf 'ogd-bench-other-pw\n' | "$OGD" user add ogd-bench-other --all-routes --config "$CONFIG" >/dev/null 2>&1 || true
trap bench_stop EXIT
bench_serve "$CONFIG" "$DATA/serve.log"
BASE="http://127.0.0.1:$PORT"
TOKEN=$(bench_token "$BASE")
OTHER=$(curl -sf -X POST -H 'Content-Type: application/json' \
  -d '{"username":"ogd-bench-other","password":"ogd-bench-other-pw"}' "$BASE/login" |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin))')
OUT=$(/usr/bin/python3 bench/abandon.py "$BASE" "$TOKEN" "$OTHER")
echo "abandon: $OUT"
