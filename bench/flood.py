"""bench/flood.py: the driver of bench/flood.sh (see there). Arguments: HOST PORT.

Two processes, so that the flood's bookkeeping never delays the probe's measurements (one
Python process would share one interpreter lock between them):
  flood.py HOST PORT            the probe: 200 requests on the idle server (the baseline),
                                then starts the flood (itself with --flood), waits until
                                it is up, and makes the same 200 requests again; prints
                                the two lines.
  flood.py --flood HOST PORT    the flood: FLOOD slowloris connections (environment,
                                default 2500) from FLOOD_ADDRS source addresses (default
                                one each, 127.1.x.y: loopback has all of 127/8). Each sends
                                a request line and one header and never finishes; one more
                                header line goes out every 5 s, and a connection the
                                server closes is opened again within 0.5 s, as slowloris
                                does. Prints "up" once every connection has been open
                                once, and its counts when it gets SIGTERM.
"""
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request

PROBES = int(os.environ.get("PROBES", "200"))
PROBE_GAP = float(os.environ.get("PROBE_GAP", "0.05"))  # s between probe starts
PROBE_TIMEOUT = float(os.environ.get("PROBE_TIMEOUT", "15"))
FLOOD = int(os.environ.get("FLOOD", "2500"))
FLOOD_ADDRS = int(os.environ.get("FLOOD_ADDRS", str(FLOOD)))


def flood_address(i):
    n = i % FLOOD_ADDRS
    return "127.1.%d.%d" % (n // 250, n % 250 + 1)


def flood(host, port):
    sel = selectors.DefaultSelector()
    socks = [None] * FLOOD
    ever_open = [False] * FLOOD
    counts = {"connects": 0, "closed_by_server": 0, "answered_503": 0, "answered_408": 0,
              "connect_failed": 0}
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))

    def open_one(i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((flood_address(i), 0))
            s.connect_ex((host, port))
        except OSError:
            s.close()
            counts["connect_failed"] += 1
            return
        socks[i] = s
        sel.register(s, selectors.EVENT_WRITE, i)

    def drop(i):
        sel.unregister(socks[i])
        socks[i].close()
        socks[i] = None

    for i in range(FLOOD):
        open_one(i)
    up = False
    last_reopen = last_trickle = time.monotonic()
    while not stop:
        for key, events in sel.select(timeout=0.1):
            i, s = key.data, key.fileobj
            if events & selectors.EVENT_WRITE:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    counts["connect_failed"] += 1
                    drop(i)
                    continue
                try:
                    s.send(b"GET /version?%d HTTP/1.1\r\nHost: x\r\nUser-Agent: slowloris\r\n" % i)
                except OSError:
                    counts["closed_by_server"] += 1
                    drop(i)
                    continue
                counts["connects"] += 1
                ever_open[i] = True
                sel.modify(s, selectors.EVENT_READ, i)
            else:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if data.startswith(b"HTTP/1.1 503"):
                    counts["answered_503"] += 1
                elif data.startswith(b"HTTP/1.1 408"):
                    counts["answered_408"] += 1
                counts["closed_by_server"] += 1
                drop(i)
        now = time.monotonic()
        if not up and all(ever_open):
            up = True
            print("up", flush=True)
        if now - last_reopen >= 0.5:
            last_reopen = now
            for i in range(FLOOD):
                if socks[i] is None:
                    open_one(i)
        if now - last_trickle >= 5:
            last_trickle = now
            for key in list(sel.get_map().values()):
                if key.events == selectors.EVENT_READ:
                    try:
                        key.fileobj.send(b"X-Slow: %d\r\n" % int(now))
                    except OSError:
                        pass
    counts["open_at_end"] = sum(1 for s in socks if s is not None)
    print(json.dumps(counts), flush=True)


def probe_once(host, port):
    """One GET /version on a new connection: (ok, seconds)."""
    t0 = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT) as s:
            s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        ok = data.startswith(b"HTTP/1.1 200")
    except OSError:
        ok = False
    return ok, time.monotonic() - t0


def probe(host, port):
    results = []
    start = time.monotonic()
    for n in range(PROBES):
        wait = start + n * PROBE_GAP - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        results.append(probe_once(host, port))
    good = sorted(t for ok, t in results if ok)
    pct = 100.0 * len(good) / len(results)
    p50 = "%.4fs" % good[len(good) // 2] if good else "-"
    worst = "%.4fs" % good[-1] if good else "-"
    return "probe_success=%.1f%% probe_p50=%s probe_max=%s" % (pct, p50, worst)


def metric(host, port, name):
    try:
        with urllib.request.urlopen("http://%s:%d/metrics" % (host, port), timeout=30) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return line.split()[1]
    except OSError:
        return "?"
    return "-"


def main():
    if sys.argv[1] == "--flood":
        flood(sys.argv[2], int(sys.argv[3]))
        return
    host, port = sys.argv[1], int(sys.argv[2])
    print("idle: %s" % probe(host, port), flush=True)
    f = subprocess.Popen([sys.executable, __file__, "--flood", host, str(port)],
                         stdout=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    line = f.stdout.readline().strip()
    assert line == "up", line
    up_after = time.monotonic() - t0
    figures = probe(host, port)
    f.send_signal(signal.SIGTERM)
    counts = json.loads(f.stdout.readline())
    f.wait()
    counts["up_after"] = "%.1fs" % up_after
    print("flood: slowloris=%d addrs=%d %s dropped=%s refused=%s flood=%s" % (
        FLOOD, FLOOD_ADDRS, figures,
        metric(host, port, "ogd_http_connections_dropped_total"),
        metric(host, port, "ogd_http_connections_refused_total"),
        json.dumps(counts, separators=(",", ":"))), flush=True)


if __name__ == "__main__":
    main()
