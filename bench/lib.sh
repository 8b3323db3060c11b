# bench/lib.sh: what the benchmark scripts share (sourced, not run).
#
# Every route but /healthz and /login needs a bearer token, so each benchmark adds a user
# with every permission to its scratch database and logs in as it:
#   bench_user CONFIG         adds the user "ogd-bench" (idempotent)
#   bench_token BASE_URL      prints an access token for it
BENCH_USER=ogd-bench
BENCH_PASSWORD=ogd-bench-password

bench_user() {
  printf '%s\n' "$BENCH_PASSWORD" |
    "$OGD" user add "$BENCH_USER" --all-routes --config "$1" >/dev/null 2>&1 || true
}

bench_token() {
  curl -sf -X POST -H 'Content-Type: application/json' \
    -d "{\"username\":\"$BENCH_USER\",\"password\":\"$BENCH_PASSWORD\"}" "$1/login" |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin))'
}

# bench_purge_bucket ENDPOINT ACCESS_KEY SECRET_KEY BUCKET: deletes every object of the
# bucket and the bucket (RGW's memstore keeps everything in RAM until then).
bench_purge_bucket() {
  /usr/bin/python3 - "$@" <<'PY' || true
import os, sys
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "http"))
from s3client import S3
s3 = S3(*sys.argv[1:5])
try:
    keys = s3.keys()
except AssertionError:
    sys.exit(0)  # no such bucket
with ThreadPoolExecutor(16) as ex:
    list(ex.map(s3.delete, keys))
s3.delete_bucket()
PY
}
