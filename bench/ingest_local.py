#!/usr/bin/python3
"""`ogd ingest FILE` on the embedded store (SQLite + files in a temporary data_dir): the
same EPAC-shaped file as bench/ingest.sh (bench/ingest.py's write_file), no network, no
object-store latency, so the figure is the local pipeline: the HDF5 helper, checks,
encoding and the file writes. Prints

  ingest_local: images=50 waveforms=200 scalars=500 file=<MB>MB ogd_ingest=<s>s cpu=<s>s

cpu = user + system CPU of `ogd ingest` and its HDF5 helper.
  /usr/bin/python3 bench/ingest_local.py --ogd build-rel/ogd [--images 50 ...] [--runs 3]
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from ingest import write_file  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ogd", required=True)
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--waveforms", type=int, default=200)
    ap.add_argument("--scalars", type=int, default=500)
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="ogd-bench-ingest-local-")
    try:
        path = os.path.join(d, "shot.h5")
        manifest = write_file(path, a.images, a.waveforms, a.scalars)
        with open(os.path.join(d, "channels.jsonl"), "w") as f:
            f.write(json.dumps({"_id": "20240101000000", "channels": manifest}) + "\n")
        for run in range(a.runs):
            data_dir = os.path.join(d, "data-%d" % run)
            os.mkdir(data_dir)
            cfg_path = os.path.join(d, "config-%d.yml" % run)
            with open(cfg_path, "w") as f:
                f.write("server:\n  data_dir: %s\n  max_upload_bytes: %d\n"
                        % (json.dumps(data_dir), 2 << 30))
            subprocess.run([a.ogd, "import", "--config", cfg_path, "--collection", "channels",
                            os.path.join(d, "channels.jsonl")], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.monotonic()
            p = subprocess.run([a.ogd, "ingest", "--config", cfg_path, path],
                               capture_output=True, text=True)
            elapsed = time.monotonic() - t0
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            assert p.returncode == 0, p.stdout + p.stderr
            assert "%d accepted, 0 rejected" % (a.images + a.waveforms + a.scalars) in \
                p.stdout + p.stderr, p.stdout + p.stderr
            cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
            print("ingest_local: images=%d waveforms=%d scalars=%d file=%.0fMB ogd_ingest=%.2fs "
                  "cpu=%.2fs" % (a.images, a.waveforms, a.scalars, os.path.getsize(path) / 1e6,
                                 elapsed, cpu))
            shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
