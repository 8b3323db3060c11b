#!/usr/bin/env bash
# bench/records.sh: /records throughput and latency against the same query run straight
# through the store, in the same run (issue: foundation benchmark).
#
# Loads 100k scalar-only demo records into a scratch data directory (kept in
# bench/.data between runs), serves them with workers = number of cores, and drives a
# 25-row table query (timestamp range + 2 scalar-channel filters, 10 projected channels)
# with wrk (64 connections). The baseline runs the same query in one thread per worker
# with bench_sqlrate. Prints one line:
#   records: rows=25 records_in_db=100000 ogd_rps=<n> sql_rps=<n> ratio=<x> p99=<ms>ms
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OGD="$PWD/$BUILD/ogd"
source bench/lib.sh
RECORDS=${BENCH_RECORDS:-100000}
DURATION=${BENCH_SECONDS:-10}
WORKERS=$(nproc)
DATA="$PWD/bench/.data/records-$RECORDS"
PORT=$(bench_port)

mkdir -p "$DATA"
CONFIG="$DATA/config.yml"
cat > "$CONFIG" <<YML
server:
  bind: "127.0.0.1:$PORT"
  workers: $WORKERS
  data_dir: "$DATA"
  log_level: "warn"
YML
if [ ! -f "$DATA/.loaded" ]; then
  echo "bench: loading $RECORDS demo records (once)..." >&2
  "$OGD" demo --config "$CONFIG" --records "$RECORDS" --no-images >/dev/null 2>&1
  touch "$DATA/.loaded"
fi

# The table query of the web client: a date range, two scalar filters, 10 channels.
CONDITIONS='{"$and":[{"metadata.timestamp":{"$gte":"2023-06-05T08:00:00","$lte":"2023-06-12T08:00:59"}},{"channels.PM-201-FE-EM.data":{"$gt":0}},{"channels.SER-202-BI-RH-1.data":{"$lt":1000}}]}'
ORDER='metadata.timestamp asc'
mapfile -t CHANNELS < <(/usr/bin/python3 - "$DATA/ogd.sqlite3" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT name FROM record_channels WHERE record_id = (SELECT min(id) FROM records) AND dtype = 'scalar' ORDER BY ord LIMIT 9").fetchall()
for (n,) in rows: print("channels." + n)
PY
)
PROJ=("metadata.timestamp" "${CHANNELS[@]}")
QUERY=$(/usr/bin/python3 - "$CONDITIONS" "$ORDER" "${PROJ[@]}" <<'PY'
import sys, urllib.parse
cond, order, proj = sys.argv[1], sys.argv[2], sys.argv[3:]
params = [("conditions", cond), ("order", order), ("skip", "0"), ("limit", "25")] + [("projection", p) for p in proj]
print("/records?" + urllib.parse.urlencode(params))
PY
)

bench_user "$CONFIG"
trap bench_stop EXIT
bench_serve "$CONFIG" "$DATA/serve.log"
TOKEN=$(bench_token "http://127.0.0.1:$PORT")
AUTH="Authorization: Bearer $TOKEN"
ROWS=$(curl -sf -H "$AUTH" "http://127.0.0.1:$PORT$QUERY" | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')

wrk -t2 -c64 -d2s --latency -H "$AUTH" "http://127.0.0.1:$PORT$QUERY" >/dev/null   # warm-up
WRK=$(wrk -t2 -c64 -d"${DURATION}s" --latency -H "$AUTH" "http://127.0.0.1:$PORT$QUERY")
bench_stop
trap - EXIT

OGD_RPS=$(echo "$WRK" | awk '/Requests\/sec/ {printf "%.0f", $2}')
P99=$(echo "$WRK" | awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; printf "%.2f", v}')
SQL_RPS=$("$BUILD/bench_sqlrate" "$DATA/ogd.sqlite3" "$WORKERS" "$DURATION" "$CONDITIONS" "$ORDER" "${PROJ[@]}")
RATIO=$(awk -v a="$OGD_RPS" -v b="$SQL_RPS" 'BEGIN {printf "%.2f", a / b}')
INDB=$(/usr/bin/python3 -c "import sqlite3; print(sqlite3.connect('$DATA/ogd.sqlite3').execute('select count(*) from records').fetchone()[0])")
echo "records: rows=$ROWS records_in_db=$INDB ogd_rps=$OGD_RPS sql_rps=$SQL_RPS ratio=$RATIO p99=${P99}ms"
