#!/usr/bin/env bash
# bench/export.sh: GET /export of N image objects that sit in Ceph RGW behind delayproxy
# with the facility's first-byte latency (issue: export).
#
# Starts RGW (scripts/start-rgw.sh) and delayproxy in front of it (MODEL=ttfb
# LATENCY_MS=700 by default), stores N records (SQLite metadata, with the object_size
# ingest records) and one PNG per record straight into RGW, serves them from one worker
# whose object store goes through the proxy, and exports them with a client that writes
# the zip to disk while it samples the worker's resident memory. Two runs:
#   1. N records x one ~200 KB image (the issue's figure);
#   2. N records x one ~1 MB image: a ~1 GB export, to show memory stays bounded.
# The baseline is the reference's pool of 10 connections: ceil(objects / 10) x latency
# (and the whole zip held in memory before the first byte). Prints one line per run:
#   export: objects=1000 bytes=<MB>MB latency=0.70s ogd=<s>s first_byte=<s>s
#           rss_growth=<MB>MB pool10_estimate=<s>s
#   BENCH_EXPORT_N=1000 LATENCY_MS=700 BENCH_EXPORT_BIG=1 bench/export.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OGD="$PWD/$BUILD/ogd"
source bench/lib.sh
N=${BENCH_EXPORT_N:-1000}
LATENCY_MS=${LATENCY_MS:-700}
BIG=${BENCH_EXPORT_BIG:-1}
# BENCH_EXPORT_BUFFER / BENCH_EXPORT_CONCURRENCY: export.max_buffer_bytes and
# export.max_concurrency for the server (default: the config defaults).
EXPORT_SECTION=""
if [ -n "${BENCH_EXPORT_BUFFER:-}${BENCH_EXPORT_CONCURRENCY:-}" ]; then
  EXPORT_SECTION="export:"
  [ -n "${BENCH_EXPORT_BUFFER:-}" ] && EXPORT_SECTION+=$'\n'"  max_buffer_bytes: $BENCH_EXPORT_BUFFER"
  [ -n "${BENCH_EXPORT_CONCURRENCY:-}" ] && EXPORT_SECTION+=$'\n'"  max_concurrency: $BENCH_EXPORT_CONCURRENCY"
fi
bench_s3_proxy export 9702
DATA=$(mktemp -d /tmp/ogd-bench-export.XXXXXX)
cleanup() {
  bench_stop
  bench_proxy_stop export
  rm -rf "$DATA"
}
trap cleanup EXIT
PORT=$(bench_port)

run() { # $1: label, $2: image side in pixels (8-bit noise: side^2 bytes per PNG)
  local label=$1 side=$2 bucket="ogd-bench-export-$2"
  rm -rf "$DATA"/*
  config() {
    { bench_config "$PORT" "$DATA"; bench_echo "$1" "$bucket"; echo "$EXPORT_SECTION"; } \
      > "$DATA/config.yml"
  }
  config "$S3_ENDPOINT"
  /usr/bin/python3 - "$DATA" "$N" "$side" "$S3_ENDPOINT" "$AWS_ACCESS_KEY_ID" \
    "$AWS_SECRET_ACCESS_KEY" "$bucket" <<'PY'
import json, os, random, struct, sys, time, zlib
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "api"))
from s3client import S3
data, n, side, url, ak, sk, bucket = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:]
s3 = S3(url, ak, sk, bucket)
try:
    s3._request("PUT")
except Exception:
    pass

def png(seed):
    rnd = random.Random(seed)
    raw = b"".join(b"\x00" + rnd.randbytes(side) for _ in range(side))
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))

images = [png(i) for i in range(8)]
with open(os.path.join(data, "records.jsonl"), "w") as f, \
        open(os.path.join(data, "channels.jsonl"), "w") as m:
    m.write(json.dumps({"_id": "20230605000000", "channels": {
        "CAM": {"name": "Bench camera", "path": "/bench", "type": "image"}}}) + "\n")
    objects = []
    for i in range(n):
        t = 1685923200 + 60 * i
        ts = time.strftime("%Y%m%d%H%M%S", time.gmtime(t))
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        d = f"{ts[0:4]}/{ts[4:6]}/{ts[6:8]}/{ts[8:]}"
        body = images[i % len(images)]
        f.write(json.dumps({"_id": ts, "metadata": {"epac_ops_data_version": "1.0",
                 "timestamp": {"$date": iso}, "shotnum": i},
                 "channels": {"CAM": {"metadata": {"channel_dtype": "image", "bit_depth": 8},
                                      "image_path": f"{d}/CAM.png", "object_size": len(body)}}})
                + "\n")
        objects.append((f"images/{d}/CAM.png", body))
with ThreadPoolExecutor(16) as ex:
    list(ex.map(lambda o: s3.put(*o), objects))
PY
  for coll in records channels; do
    "$OGD" import --config "$DATA/config.yml" --collection $coll "$DATA/$coll.jsonl" >/dev/null 2>&1
  done
  config "http://$PROXY"
  bench_user "$DATA/config.yml"
  bench_serve "$DATA/config.yml" "$DATA/serve.log"
  local token worker
  token=$(bench_token "http://127.0.0.1:$PORT")
  worker=$(pgrep -P "$PID" | head -1)
  sleep 0.5
  /usr/bin/python3 - "$label" "$PORT" "$N" "$LATENCY_MS" "$token" "$worker" "$DATA" <<'PY'
import http.client, math, os, sys, threading, time, urllib.parse, zipfile
label, port, n, latency, token, worker, data = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]) / 1000, sys.argv[5], sys.argv[6], sys.argv[7]

def rss_mb():
    with open(f"/proc/{worker}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

base_rss = rss_mb()
peak = [base_rss]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss_mb())
        time.sleep(0.01)
threading.Thread(target=sample, daemon=True).start()
q = urllib.parse.urlencode([("projection", "channels.CAM"), ("limit", str(n))])
out = os.path.join(data, "export.zip")
t0 = time.monotonic()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
c.request("GET", "/export?" + q, headers={"Authorization": "Bearer " + token})
resp = c.getresponse()
assert resp.status == 200, (resp.status, resp.read()[:300])
first = None
total = 0
with open(out, "wb") as f:
    while True:
        b = resp.read1(1 << 20)
        if not b:
            break
        if first is None:
            first = time.monotonic() - t0
        f.write(b)
        total += len(b)
elapsed = time.monotonic() - t0
done.set()
time.sleep(0.05)
z = zipfile.ZipFile(out)
assert len(z.namelist()) == n, len(z.namelist())
assert z.testzip() is None
pool10 = math.ceil(n / 10) * latency
print(f"{label}: objects={n} bytes={total / 1e6:.0f}MB latency={latency:.2f}s ogd={elapsed:.2f}s "
      f"first_byte={first:.2f}s rss_growth={peak[0] - base_rss:.0f}MB pool10_estimate={pool10:.2f}s")
PY
  bench_stop
  bench_purge_bucket "$S3_ENDPOINT" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$bucket"
}

run export 450
if [ "$BIG" = 1 ]; then
  run export_1gb 1000
fi
