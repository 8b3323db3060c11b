# bench/lib.sh: what the benchmark scripts share (sourced, not run; they set OGD).
#
#   bench_port                prints a free TCP port on 127.0.0.1
#   bench_config PORT DIR     prints the server section of a one-worker config
#   bench_echo URL BUCKET     prints an echo section for S3
#   bench_s3_proxy NAME PORT  Ceph RGW (started if needed; S3_ENDPOINT, AWS_* exported)
#                             with delayproxy (MODEL=ttfb, LATENCY_MS) in front of it on
#                             127.0.0.1:PORT, given as PROXY; bench_proxy_stop NAME ends it
#   bench_serve CONFIG LOG    starts `ogd serve` in the background (PID) and waits until
#                             /healthz answers on the config's port (PORT)
#   bench_stop                stops it
#   bench_scratch NAME        a scratch directory (DATA) and port (PORT), with the server
#                             stopped and DATA removed when the script exits; DATA holds
#                             a one-worker config.yml
# Every route but /healthz and /login needs a bearer token, so each benchmark adds a user
# with every permission to its scratch database and logs in as it:
#   bench_user CONFIG         adds the user "ogd-bench" (idempotent)
#   bench_token BASE_URL      prints an access token for it
BENCH_USER=ogd-bench
PID=

bench_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_config() {
  cat <<YML
server:
  bind: "127.0.0.1:$1"
  workers: 1
  data_dir: "$2"
  log_level: "warn"
YML
}

# bench_echo URL BUCKET: the echo section for S3 at URL (credentials from AWS_* as
# scripts/start-rgw.sh prints them), with connections enough for a wide fan-out.
bench_echo() {
  cat <<YML
echo:
  url: "$1"
  access_key: "$AWS_ACCESS_KEY_ID"
  secret_key: "$AWS_SECRET_ACCESS_KEY"
  bucket_name: "$2"
  create_bucket: true
  max_connections: 1024
YML
}

bench_s3_proxy() {
  export CEPH_DIR=${CEPH_DIR:-/tmp/ogd-ceph}
  bash scripts/install-deps.sh --services
  eval "$(bash scripts/start-rgw.sh 2>/dev/null)"
  PROXY=127.0.0.1:$2
  LISTEN=$PROXY UPSTREAM=${S3_ENDPOINT#http://} MODEL=ttfb LATENCY_MS=$LATENCY_MS \
    STATE=/tmp/ogd-delayproxy-$1 bash scripts/start-delayproxy.sh >/dev/null
}

bench_proxy_stop() {
  STATE=/tmp/ogd-delayproxy-$1 bash scripts/stop-delayproxy.sh >/dev/null 2>&1 || true
}

bench_serve() {
  "$OGD" serve --config "$1" 2>"$2" &
  PID=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0
    sleep 0.1
  done
  echo "bench: ogd did not start (log: $2)" >&2
  return 1
}

bench_stop() {
  if [ -n "$PID" ]; then
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
  fi
}
BENCH_PASSWORD=ogd-bench-password

bench_scratch() {
  DATA=$(mktemp -d "/tmp/ogd-bench-$1.XXXXXX")
  trap 'bench_stop; rm -rf "$DATA"' EXIT
  PORT=$(bench_port)
  bench_config "$PORT" "$DATA" > "$DATA/config.yml"
}

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
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "api"))
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
