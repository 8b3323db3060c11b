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
