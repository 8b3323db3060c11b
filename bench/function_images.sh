#!/usr/bin/env bash
# bench/function_images.sh: image-valued functions (issue: functions on images). One
# embedded worker (SQLite + files) over the demo's 200 shots (320 x 240, 12-bit frames):
#   records  GET /records?limit=200 with f = IMG - 4 (a false-colour thumbnail per record)
#            beside the same page with a scalar function mean(IMG) (same fetch and decode)
#   image    GET /images/{id}/f with f = IMG - 4 (full RGBA PNG) beside the stored
#            channel's rendering GET /images/{id}/IMG
# Prints one line per figure (median of RUNS requests):
#   function_images: records=200 image_fn=<s>s scalar_fn=<s>s
#   function_images: full image_fn=<ms>ms stored=<ms>ms
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OGD="$PWD/$BUILD/ogd"
source bench/lib.sh
RUNS=${BENCH_FUNCTION_IMAGES_RUNS:-5}
bench_scratch fnimg
"$OGD" demo --config "$DATA/config.yml" --records 200 >/dev/null
bench_user "$DATA/config.yml"
bench_serve "$DATA/config.yml" "$DATA/ogd.log"
TOKEN=$(bench_token "http://127.0.0.1:$PORT")
/usr/bin/python3 - "$PORT" "$RUNS" "$TOKEN" <<'PY'
import json, statistics, sys, time
import requests
port, runs, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
base = f"http://127.0.0.1:{port}"
session = requests.Session()
session.headers["Authorization"] = "Bearer " + token
IMG = "PM-201-FE-CAM-1"
def timed(path, params, check):
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        r = session.get(base + path, params=params)
        out.append(time.perf_counter() - t)
        assert r.status_code == 200, r.text[:200]
        check(r)
    return statistics.median(out)
def fns(expr):
    return [("functions", json.dumps({"name": "f", "expression": expr})), ("limit", "200")]
def all_have(kind):
    def check(r):
        recs = r.json()
        assert len(recs) == 200 and all(kind in rec["channels"]["f"] for rec in recs)
    return check
img = timed("/records", fns(f"{IMG} - 4"), all_have("thumbnail"))
sca = timed("/records", fns(f"mean({IMG})"), all_have("data"))
print(f"function_images: records=200 image_fn={img:.3f}s scalar_fn={sca:.3f}s")
rid = session.get(base + "/records", params={"limit": 1}).json()[0]["_id"]
png = lambda r: r.content[:8] == b"\x89PNG\r\n\x1a\n" or sys.exit("not a PNG")
full = timed(f"/images/{rid}/f", [("functions", json.dumps({"name": "f", "expression": f"{IMG} - 4"}))], png)
stored = timed(f"/images/{rid}/{IMG}", [], png)
print(f"function_images: full image_fn={full * 1000:.1f}ms stored={stored * 1000:.1f}ms")
PY
