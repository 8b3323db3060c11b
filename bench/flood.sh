#!/usr/bin/env bash
# bench/flood.sh: a slowloris flood against two workers while a probe client makes
# requests (issue 15, part 5).
#
# The server: default settings but workers = 2 (worker_connections 1000 each, so 2 000
# connection slots; header_timeout 10 s), no records. The flood (bench/flood.py): 2 500
# connections that each send a request line and one header and never finish, each from
# its own loopback address (a crowd of clients, so that the per-client cap does not
# apply: the worker-wide slots are what is tested); a connection the server closes is
# opened again within 0.5 s. The probe: 200 x GET /version, each on a new connection,
# one every 50 ms (10 s: one header timeout), each given 15 s. The baseline of the same
# run is the probe on the idle server. Prints two lines:
#   idle: probe_success=<pct>% probe_p50=<s> probe_max=<s>
#   flood: slowloris=2500 addrs=2500 probe_success=<pct>% probe_p50=<s> probe_max=<s> dropped=<n> refused=<n> flood={...}
# (latencies over the successful probes; dropped/refused: the server's counters, "-" on a
# build without them). Environment: FLOOD (2500), FLOOD_ADDRS (= FLOOD; 1 = one client
# address, which the per-client cap then handles), PROBES, PROBE_GAP, PROBE_TIMEOUT.
# BUILD may be a path outside the repository (an older build, for a before figure).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
case "$BUILD" in
/*) OGD="$BUILD/ogd" ;;
*) OGD="$PWD/$BUILD/ogd" ;;
esac
source bench/lib.sh
# 2 500 sockets here, up to 2 000 + closing ones in the workers: raise the fd limit.
want=16384
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then ulimit -n "$want"; fi
DATA=$(mktemp -d /tmp/ogd-bench-flood.XXXXXX)
PORT=$(bench_port)
CONFIG="$DATA/config.yml"
cat > "$CONFIG" <<YML
server:
  bind: "127.0.0.1:$PORT"
  workers: 2
  data_dir: "$DATA"
  log_level: "warn"
YML
trap 'bench_stop; rm -rf "$DATA"' EXIT
bench_serve "$CONFIG" "$DATA/serve.log"
/usr/bin/python3 bench/flood.py 127.0.0.1 "$PORT"
