#!/usr/bin/env bash
# bench/functions.sh: GET /records with functions over a page of 1000 records whose
# waveform channel (1000 points) sits in Ceph RGW behind delayproxy (issue: functions).
#
# Starts RGW (scripts/start-rgw.sh) and delayproxy in front of it with the facility's
# first-byte latency (MODEL=ttfb LATENCY_MS=700 by default), stores N records (SQLite
# metadata) and their waveform objects straight into RGW, then serves them from one
# worker whose object store goes through the proxy and times one request:
#   /records?limit=N&functions={"name":"f","expression":"fwhm(W)"}
#                  &functions={"name":"r","expression":"integrate(W) / max(W)"}
# Every record must come back with both results. The baseline is the reference's pool of
# 10 connections: ceil(objects / 10) x latency. Prints one line:
#   functions: records=1000 latency=0.70s ogd=<s>s pool10_estimate=<s>s
#   BENCH_FUNCTIONS_N=1000 LATENCY_MS=700 bench/functions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OGD="$PWD/$BUILD/ogd"
source bench/lib.sh
N=${BENCH_FUNCTIONS_N:-1000}
LATENCY_MS=${LATENCY_MS:-700}
bench_s3_proxy functions 9701
DATA=$(mktemp -d /tmp/ogd-bench-functions.XXXXXX)
cleanup() {
  bench_stop
  bench_proxy_stop functions
  rm -rf "$DATA"
}
trap cleanup EXIT
PORT=$(bench_port)
BUCKET=ogd-bench-functions
config() { # $1: object store url
  { bench_config "$PORT" "$DATA"; bench_echo "$1" "$BUCKET"; } > "$DATA/config.yml"
}
config "$S3_ENDPOINT"

# N records, each with a 1000-point waveform W (a noisy Gaussian pulse), stored directly.
/usr/bin/python3 - "$DATA" "$N" "$S3_ENDPOINT" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" \
  "$BUCKET" <<'PY'
import json, math, os, random, sys
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "api"))
from s3client import S3
data, n, url, ak, sk, bucket = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
s3 = S3(url, ak, sk, bucket)
try:
    s3._request("PUT")
except Exception:
    pass
rnd = random.Random(1)
with open(os.path.join(data, "records.jsonl"), "w") as f, \
        open(os.path.join(data, "channels.jsonl"), "w") as m:
    m.write(json.dumps({"_id": "20230605000000", "channels": {
        "W": {"name": "Bench waveform", "path": "/bench", "type": "waveform", "x_units": "ns"}}}) + "\n")
    objects = []
    for i in range(n):
        t = 1685923200 + 60 * i
        import time
        ts = time.strftime("%Y%m%d%H%M%S", time.gmtime(t))
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        d = f"{ts[0:4]}/{ts[4:6]}/{ts[6:8]}/{ts[8:]}"
        f.write(json.dumps({"_id": ts, "metadata": {"epac_ops_data_version": "1.0",
                 "timestamp": {"$date": iso}, "shotnum": i},
                 "channels": {"W": {"metadata": {"channel_dtype": "waveform", "x_units": "ns"},
                                    "waveform_path": f"{d}/W.json"}}}) + "\n")
        c = 500 + rnd.uniform(-50, 50)
        y = [math.exp(-((k - c) / 40) ** 2) + rnd.gauss(0, 0.01) for k in range(1000)]
        objects.append((f"waveforms/{d}/W.json", json.dumps({"x": list(range(1000)), "y": y}).encode()))
with ThreadPoolExecutor(16) as ex:
    list(ex.map(lambda o: s3.put(*o), objects))
PY
for coll in records channels; do
  "$OGD" import --config "$DATA/config.yml" --collection $coll "$DATA/$coll.jsonl" >/dev/null 2>&1
done

config "http://$PROXY"
bench_user "$DATA/config.yml"
bench_serve "$DATA/config.yml" "$DATA/serve.log"
TOKEN=$(bench_token "http://127.0.0.1:$PORT")
/usr/bin/python3 - "http://127.0.0.1:$PORT" "$N" "$LATENCY_MS" "$TOKEN" <<'PY'
import json, math, sys, time, urllib.parse, urllib.request
base, n, latency, token = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) / 1000, sys.argv[4]
q = urllib.parse.urlencode([("limit", str(n)), ("order", "_id ASC"),
                            ("functions", json.dumps({"name": "f", "expression": "fwhm(W)"})),
                            ("functions", json.dumps({"name": "r", "expression": "integrate(W) / max(W)"}))])
t0 = time.monotonic()
req = urllib.request.Request(f"{base}/records?{q}", headers={"Authorization": "Bearer " + token})
with urllib.request.urlopen(req, timeout=300) as resp:
    body = resp.read()
elapsed = time.monotonic() - t0
recs = json.loads(body)
assert len(recs) == n, len(recs)
for rec in recs:
    f, r = rec["channels"]["f"]["data"], rec["channels"]["r"]["data"]
    assert 50 < f < 90 and 60 < r < 80, (f, r)  # Gaussian sigma 40/sqrt2: FWHM ~67, area ~71
pool10 = math.ceil(n / 10) * latency
print(f"functions: records={n} latency={latency:.2f}s ogd={elapsed:.2f}s pool10_estimate={pool10:.2f}s")
PY
