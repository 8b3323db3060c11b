#!/usr/bin/python3
"""Files with many channels the manifest does not know (issue 15, "Hostile uploads"): for
each count, an HDF5 file of that many root groups (channel_dtype "scalar", one float
`data` each), POSTed once to /submit/hdf of `ogd serve` on the embedded store (SQLite +
files, 1 worker). Every channel is rejected per channel (`Channel name is not
recognised`), so the figure is the helper, the checks and the answer. Prints, per count,

  ingest_channels: channels=<n> file=<MB>MB status=<code> answer=<bytes>B time=<s>s cpu=<s>s

cpu = CPU seconds the worker (loop, pool threads, and the HDF5 helper it waited for) used
during the request: on a shared machine a steadier figure than the wall time.

With --known the manifest names every channel (scalar), so all of them are accepted and
stored in the record: the checks of record channels and the record write.
With --max-channels the server's ingest.max_channels is set (default: the built-in one;
counts above it are refused whole with 400).
  /usr/bin/python3 bench/ingest_channels.py --ogd build/ogd [--counts 2500,10000,20000]
"""
import argparse
import json
import os
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "api"))


def cpu_seconds(pid):
    """utime + stime + cutime + cstime of pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def write_file(path, n, second):
    with h5py.File(path, "w") as f:
        f.attrs["epac_ops_data_version"] = "1.0"
        f.attrs["timestamp"] = "2024-01-02T03:04:%02d+00:00" % second
        f.attrs["shotnum"] = np.uint64(1000 + second)
        f.attrs["active_area"] = "ea1"
        for i in range(n):
            g = f.create_group("CHANNEL-%06d" % i)
            g.attrs["channel_dtype"] = "scalar"
            g.create_dataset("data", data=float(i))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ogd", required=True)
    ap.add_argument("--counts", default="2500,10000,20000")
    ap.add_argument("--max-channels", type=int)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--known", action="store_true")
    a = ap.parse_args()
    import conftest
    conftest.OGD = os.path.abspath(a.ogd)
    cfg = {"server": {"workers": 1, "log_level": "warn", "max_upload_bytes": 1 << 30}}
    if a.max_channels:
        cfg["ingest"] = {"max_channels": a.max_channels}
    d = tempfile.mkdtemp(prefix="ogd-bench-channels-")
    srv = conftest.OgdServer(d, cfg)
    srv.start()
    try:
        counts = [int(x) for x in a.counts.split(",")]
        names = ["CHANNEL-%06d" % i for i in range(max(counts))] if a.known else ["KNOWN"]
        m = {"channels": {n: {"name": n, "path": "/bench", "type": "scalar"} for n in names}}
        r = srv.request("POST", "/submit/manifest",
                        files={"file": ("m.json", json.dumps(m).encode())})
        assert r.status_code == 201, r.text
        second = 0
        for n in counts:
            for _ in range(a.runs):
                path = os.path.join(d, "channels-%d.h5" % n)
                write_file(path, n, second)
                second += 1
                with open(path, "rb") as f:
                    data = f.read()
                worker = srv.worker_pids()[0]
                c0 = cpu_seconds(worker)
                t0 = time.monotonic()
                r = srv.request("POST", "/submit/hdf", files={"file": ("f.h5", data)},
                                timeout=600)
                dt = time.monotonic() - t0
                cpu = cpu_seconds(worker) - c0
                os.remove(path)
                print("ingest_channels: channels=%d%s file=%.1fMB status=%d answer=%dB time=%.2fs "
                      "cpu=%.2fs" % (n, " (known)" if a.known else "", len(data) / 1e6,
                                     r.status_code, len(r.content), dt, cpu), flush=True)
                if r.status_code not in (200, 201):
                    print("  " + r.text[:200])
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
