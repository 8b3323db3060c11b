#!/usr/bin/python3
"""A decompression bomb (issue 15, "Hostile uploads"): the EPAC-shaped test file of
tests/api/hdfgen.py with its image channel PM-201-FE-CAM-2 replaced by a 24000 x 24000
uint16 frame, chunked 1000 x 1000 and gzip-compressed (every chunk written, all zeros:
about 1 MB of file for 1.15 GB of pixels). Prints

  ingest_bomb: file=<KB>KB ogd_ingest=<s>s max_rss=<MB>MB status=<code> reason=<...>
  ingest_bomb: POST /submit/hdf=<s>s status=<code>

max_rss = the largest resident set of `ogd ingest` and the HDF5 helper it runs (the
helper's: `ogd ingest` itself maps the 1 MB file). The second line is one POST of the same
file to `ogd serve` (embedded store). server.max_upload_bytes is 1 GiB so that a build
without the ingest limits reads the frame instead of refusing it for the output cap.
  /usr/bin/python3 bench/ingest_bomb.py --ogd build/ogd [--side 24000] [--runs 3]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "api"))
import hdfgen  # noqa: E402

CHANNEL = "PM-201-FE-CAM-2"


def write_bomb(path, side):
    hdfgen.make_file(path, channels={CHANNEL: None})
    with h5py.File(path, "a") as f:
        g = f.create_group(CHANNEL)
        g.attrs["channel_dtype"] = "image"
        d = g.create_dataset("data", shape=(side, side), dtype=np.uint16, chunks=(1000, 1000),
                             compression="gzip", compression_opts=9)
        band = np.zeros((1000, side), np.uint16)
        for r in range(0, side, 1000):
            d[r:r + 1000, :] = band[:min(1000, side - r)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ogd", required=True)
    ap.add_argument("--side", type=int, default=24000)
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    ogd = os.path.abspath(a.ogd)
    d = tempfile.mkdtemp(prefix="ogd-bench-bomb-")
    try:
        path = os.path.join(d, "bomb.h5")
        write_bomb(path, a.side)
        size_kb = os.path.getsize(path) / 1024
        with open(os.path.join(d, "channels.jsonl"), "w") as f:
            f.write(json.dumps({"_id": "20240101000000",
                                "channels": hdfgen.manifest()["channels"]}) + "\n")
        for run in range(a.runs):
            data_dir = os.path.join(d, "data-%d" % run)
            os.mkdir(data_dir)
            cfg = os.path.join(d, "config-%d.yml" % run)
            with open(cfg, "w") as f:
                f.write("server:\n  data_dir: %s\n  max_upload_bytes: %d\n"
                        % (json.dumps(data_dir), 1 << 30))
            subprocess.run([ogd, "import", "--config", cfg, "--collection", "channels",
                            os.path.join(d, "channels.jsonl")], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # a fresh child per run: RUSAGE_CHILDREN's maxrss is the largest so far
            probe = ("import resource, subprocess, sys, time\n"
                     "t0 = time.monotonic()\n"
                     "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
                     "dt = time.monotonic() - t0\n"
                     "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
                     "print('%.3f %d' % (dt, ru.ru_maxrss))\n"
                     "print(p.stdout + p.stderr)\n")
            p = subprocess.run([sys.executable, "-c", probe, ogd, "ingest", "--config", cfg,
                                path], capture_output=True, text=True, check=True)
            first, _, out = p.stdout.partition("\n")
            dt, rss_kb = first.split()
            status = re.search(r": (\d{3}) ", out)
            reason = re.search(r"%s: (.*)" % CHANNEL, out)
            print("ingest_bomb: file=%.0fKB ogd_ingest=%.2fs max_rss=%.0fMB status=%s reason=%s"
                  % (size_kb, float(dt), int(rss_kb) / 1024, status.group(1) if status else "?",
                     reason.group(1) if reason else out.strip().splitlines()[-1]), flush=True)
        import conftest
        conftest.OGD = ogd
        srv = conftest.OgdServer(tempfile.mkdtemp(prefix="ogd-bench-bomb-srv-", dir=d),
                                 {"server": {"workers": 1, "log_level": "warn",
                                             "max_upload_bytes": 1 << 30}})
        srv.start()
        try:
            m = {"channels": hdfgen.manifest()["channels"]}
            r = srv.request("POST", "/submit/manifest",
                            files={"file": ("m.json", json.dumps(m).encode())})
            assert r.status_code == 201, r.text
            with open(path, "rb") as f:
                data = f.read()
            for run in range(a.runs):
                if run:
                    srv.request("DELETE", "/records/20200407142816")
                t0 = time.monotonic()
                r = srv.request("POST", "/submit/hdf", files={"file": ("f.h5", data)},
                                timeout=600)
                print("ingest_bomb: POST /submit/hdf=%.2fs status=%d"
                      % (time.monotonic() - t0, r.status_code), flush=True)
        finally:
            srv.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
