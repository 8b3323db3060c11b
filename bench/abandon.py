"""bench/abandon.py: the driver of bench/abandon.sh (see there). Arguments: BASE_URL TOKEN
OTHER_TOKEN. Prints the figures as key=value words on one line. BENCH_PHASES=1: only the
abandonment (for a build that cannot cancel, whose second phase would take many minutes)."""
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request

BASE, TOKEN, OTHER = sys.argv[1], sys.argv[2], sys.argv[3]
HOST, PORT = urllib.parse.urlparse(BASE).hostname, urllib.parse.urlparse(BASE).port
HEAVY = "/records?limit=0"
PROBE = "/records?limit=25"
N = 100
PROBE_TIMEOUT = 120


def get(path, token, timeout=120):
    req = urllib.request.Request(BASE + path, headers={"Authorization": "Bearer " + token})
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=timeout) as r:
        r.read()
        return r.status, time.monotonic() - t0


def metric(name):
    with urllib.request.urlopen(BASE + "/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def send_raw(path, token):
    s = socket.create_connection((HOST, PORT))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
               % (path, token)).encode())
    return s


ABORTED = 'ogd_http_requests_aborted_total{method="GET",route="/records"}'

# idle: the probe alone (the baseline of this run)
get(PROBE, OTHER)
idle = min(get(PROBE, OTHER)[1] for _ in range(5))

# 1. 100 abandoned heavy requests, then the probe
before = metric(ABORTED)
socks = [send_raw(HEAVY, TOKEN) for _ in range(N)]
time.sleep(0.2)
for s in socks:
    s.close()
try:
    status, probe = get(PROBE, OTHER, timeout=PROBE_TIMEOUT)
    assert status == 200
    probe_text = "%.3fs" % probe
except OSError:  # timed out: the abandoned requests are still being served
    probe, probe_text = PROBE_TIMEOUT, ">%ds" % PROBE_TIMEOUT
t0 = time.monotonic()
while metric(ABORTED) - before < N and time.monotonic() - t0 < 60:
    time.sleep(0.05)
settled = time.monotonic() - t0 + probe
cancelled = int(metric(ABORTED) - before)
if os.environ.get("BENCH_PHASES") == "1":
    print("abandoned=%d probe_latency=%s cancelled=%d idle_probe=%.3fs"
          % (N, probe_text, cancelled, idle))
    sys.exit(0)

# 2. another user keeps 100 heavy requests open (read to the end), the probe meanwhile
done = []


def heavy():
    try:
        done.append(get(HEAVY, TOKEN, timeout=600)[0])
    except Exception as e:  # noqa: BLE001  (a 503 is an answer too)
        done.append(getattr(e, "code", str(e)))


threads = [threading.Thread(target=heavy) for _ in range(N)]
for t in threads:
    t.start()
time.sleep(0.5)
busy = [get(PROBE, OTHER)[1] for _ in range(5)]
for t in threads:
    t.join()
statuses = {}
for s in done:
    statuses[s] = statuses.get(s, 0) + 1
print("abandoned=%d probe_latency=%s cancelled=%d all_ended_after=%.2fs "
      "idle_probe=%.3fs busy_probe_median=%.3fs busy_probe_max=%.3fs heavy_statuses=%s"
      % (N, probe_text, cancelled, settled, idle, sorted(busy)[2], max(busy),
         json.dumps(statuses, separators=(",", ":"))))
