#!/usr/bin/python3
"""Driver of bench/ingest.sh: writes the HDF5 file, starts ogd on SQLite + S3 (through the
latency proxy), stores the manifest, times one POST /submit/hdf, checks the result and
prints

  ingest: images=50 waveforms=200 scalars=500 latency=0.70s ogd=<s>s requests=<n> serial_estimate=<s>s

ogd_cpu = CPU seconds the server (worker, pool threads, HDF5 helper) used during the
request: the figure the machine's load does not change much.
requests = S3 requests ogd made for the upload (one PutObject per object: the objects in
the bucket afterwards; the record is new, so no HEADs). serial_estimate = what the
reference's way costs: a multipart upload (3 requests) per object, one object after
another, times the latency.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import requests
import urllib3

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "api"))
from s3client import S3  # noqa: E402


def write_file(path, n_images, n_waveforms, n_scalars):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:2048, 0:2048]
    base = (2000 * np.exp(-((xx - 1024) ** 2 + (yy - 1024) ** 2) / (2 * 300.0 ** 2)))
    manifest = {}
    with h5py.File(path, "w") as f:
        f.attrs["epac_ops_data_version"] = "1.0"
        f.attrs["timestamp"] = "2024-01-02T03:04:05+00:00"
        f.attrs["shotnum"] = np.uint64(424242)
        f.attrs["active_area"] = "ea1"
        for i in range(n_images):
            name = "CAM-%03d" % i
            img = (base + rng.normal(0, 20, base.shape)).clip(0, 4095).astype(np.uint16)
            g = f.create_group(name)
            g.attrs["channel_dtype"] = "image"
            g.attrs["bit_depth"] = 12
            g.create_dataset("data", data=img)
            manifest[name] = {"name": name, "path": "/bench", "type": "image"}
        for i in range(n_waveforms):
            name = "PD-%03d" % i
            g = f.create_group(name)
            g.attrs["channel_dtype"] = "waveform"
            x = np.linspace(0, 1e-6, 1000)
            g.create_dataset("x", data=x)
            g.create_dataset("y", data=np.sin(x * 1e7 + i) + rng.normal(0, 0.05, 1000))
            manifest[name] = {"name": name, "path": "/bench", "type": "waveform"}
        for i in range(n_scalars):
            name = "SC-%03d" % i
            g = f.create_group(name)
            g.attrs["channel_dtype"] = "scalar"
            g.create_dataset("data", data=float(rng.normal()))
            manifest[name] = {"name": name, "path": "/bench", "type": "scalar"}
    return manifest


def cpu_seconds(pids):
    """user + system CPU of the processes and their waited-for children (the HDF5 helper)."""
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ogd", required=True)
    ap.add_argument("--s3", required=True)
    ap.add_argument("--direct", required=True)
    ap.add_argument("--latency", type=float, default=0.7)
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--waveforms", type=int, default=200)
    ap.add_argument("--scalars", type=int, default=500)
    a = ap.parse_args()
    ak, sk = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    d = tempfile.mkdtemp(prefix="ogd-bench-ingest-")
    bucket = "ogd-bench-ingest-%d" % os.getpid()
    proc = None
    try:
        path = os.path.join(d, "shot.h5")
        manifest = write_file(path, a.images, a.waveforms, a.scalars)
        with open(os.path.join(d, "channels.jsonl"), "w") as f:
            f.write(json.dumps({"_id": "20240101000000", "channels": manifest}) + "\n")
        port = 18000 + os.getpid() % 10000
        # /submit/hdf needs a token with the ingest permission: a key pair and a user
        priv, pub = os.path.join(d, "jwt_rsa"), os.path.join(d, "jwt_rsa.pub")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", priv], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cfg = {"server": {"bind": "127.0.0.1:%d" % port, "workers": 1, "threads": int(os.environ.get("BENCH_THREADS", "2")), "data_dir": d,
                          "max_upload_bytes": 2 << 30, "timeout": 120},
               "echo": {"url": a.s3, "access_key": ak, "secret_key": sk, "bucket_name": bucket,
                        "create_bucket": True, "max_connections": 1024},
               "auth": {"private_key_path": priv, "public_key_path": pub}}
        cfg_path = os.path.join(d, "config.yml")
        with open(cfg_path, "w") as f:
            for sec, vals in cfg.items():
                f.write(sec + ":\n" + "".join("  %s: %s\n" % (k, json.dumps(v))
                                              for k, v in vals.items()))
        subprocess.run([a.ogd, "import", "--config", cfg_path, "--collection", "channels",
                        os.path.join(d, "channels.jsonl")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([a.ogd, "user", "add", "bench-admin", "--all-routes", "--config", cfg_path],
                       input=b"bench-admin-password\n", check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        log = open(os.path.join(d, "ogd.log"), "wb")
        proc = subprocess.Popen([a.ogd, "serve", "--config", cfg_path], stdout=log, stderr=log)
        url = "http://127.0.0.1:%d" % port
        for _ in range(600):
            if proc.poll() is not None:
                log.close()
                with open(os.path.join(d, "ogd.log"), errors="replace") as f:
                    raise RuntimeError("ogd exited before serving:\n" + f.read()[-2000:])
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        r = requests.post(url + "/login", json={"username": "bench-admin",
                                                "password": "bench-admin-password"}, timeout=30)
        assert r.status_code == 200, r.text
        headers = {"Authorization": "Bearer " + r.json()}
        with open(path, "rb") as f:
            data = f.read()
        workers = [int(x) for x in subprocess.run(["pgrep", "-P", str(proc.pid)],
                                                  capture_output=True, text=True).stdout.split()]
        cpu0 = cpu_seconds([proc.pid] + workers)
        # the rest of the machine's work for the request: the S3 side and this client
        s3_pids = [int(x) for x in subprocess.run(["pgrep", "-x", "radosgw|ceph-osd|delayproxy"],
                                                  capture_output=True, text=True).stdout.split()]
        s3_cpu0 = cpu_seconds(s3_pids)
        me0 = sum(os.times()[:2])
        # the multipart body is built before the clock starts: the figure is ogd's time
        body, ctype = urllib3.encode_multipart_formdata({"file": ("shot.h5", data)})
        headers["Content-Type"] = ctype
        t0 = time.monotonic()
        r = requests.post(url + "/submit/hdf", data=body, headers=headers, timeout=600)
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds([proc.pid] + workers) - cpu0
        s3_cpu = cpu_seconds(s3_pids) - s3_cpu0
        client_cpu = sum(os.times()[:2]) - me0
        assert r.status_code == 201, r.text
        resp = r.json()["response"]
        assert resp["rejected_channels"] == {}, resp["rejected_channels"]
        assert len(resp["accepted_channels"]) == a.images + a.waveforms + a.scalars
        n_objects = len(S3(a.direct, ak, sk, bucket).keys(""))
        assert n_objects == a.images + a.waveforms
        print("ingest: images=%d waveforms=%d scalars=%d latency=%.2fs ogd=%.2fs requests=%d "
              "serial_estimate=%.1fs" % (a.images, a.waveforms, a.scalars, a.latency, elapsed,
                                         n_objects, 3 * n_objects * a.latency))
        print("ingest: file=%.0fMB ogd_cpu=%.2fs s3_cpu=%.2fs client_cpu=%.2fs (CPU during the "
              "request: server and helper; RGW, OSD and delay proxy; this client)"
              % (len(data) / 1e6, cpu, s3_cpu, client_cpu))
    finally:
        if proc:
            proc.terminate()
            proc.wait()
        # the shared RGW keeps objects in RAM (memstore): leave nothing behind
        try:
            s3 = S3(a.direct, ak, sk, bucket)
            for key in s3.keys(""):
                s3.delete(key)
            s3.delete_bucket()
        except Exception as e:  # noqa: BLE001 - a failed cleanup must not hide the result
            print("ingest: could not delete bucket %s: %s" % (bucket, e), file=sys.stderr)
        if os.environ.get("BENCH_INGEST_LOG"):  # keep the server's log (stage times at debug)
            shutil.copy(os.path.join(d, "ogd.log"), os.environ["BENCH_INGEST_LOG"])
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
