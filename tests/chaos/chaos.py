"""The fault suite (`make chaos`, scripts/chaos.sh): one `ogd serve` under a steady mixed
load, and one fault after another: a worker killed with SIGKILL, a rolling reload (HUP), a
graceful stop (QUIT) and start, PostgreSQL stopped for 5 s, the RADOS Gateway frozen
(SIGSTOP) and killed during an export and an ingest, abandoned expensive requests, and
slow readers. For each fault it prints one line of figures (requests, non-2xx answers by
status, time to recover, records/objects lost, orphan objects, the workers' peak RSS) and
checks only what must never happen: data lost, a half-written record, an orphan object
of a failed ingest, a worker dying that nobody killed, a server that does not recover.

Usage: chaos.py --pair embedded|production --ogd BUILD/ogd --out DIR [--faults a,b]
The production pair needs the suite's own PostgreSQL and RGW (scripts/chaos.sh starts
them): CHAOS_PG_URL, CHAOS_PG_DATA, CHAOS_PG_LOG, CHAOS_S3_URL, CHAOS_S3_ACCESS_KEY,
CHAOS_S3_SECRET_KEY, CHAOS_CEPH_DIR. It refuses to touch the shared instances
(/tmp/ogd-pg, port 54329; /tmp/ogd-ceph, port 7480).

Exit status: 0 when nothing was lost, no worker crashed and every fault was recovered
from; 1 otherwise (the lines say which). Timings are figures, never checked.
"""
import argparse
import datetime
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import zipfile

import numpy as np
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "api"))
import hdfgen  # noqa: E402
from conftest import dechunk, free_port, read_to_close, to_yaml  # noqa: E402
from s3client import S3  # noqa: E402

PGBIN = "/usr/lib/postgresql/15/bin"
SHARED_PG = ("/tmp/ogd-pg", 54329)
SHARED_CEPH = ("/tmp/ogd-ceph", 7480)

# Server settings of the suite. Small timeouts where they only make faults end sooner:
# an object call gives up after 5 s (echo.request_timeout) and a read's whole wait after
# 8 s (echo.max_read_wait), so a frozen RGW costs seconds, not 35 s; a graceful stop may
# take 10 s; an export holds at most 1 MiB (export.max_buffer_bytes) so that one started
# before a fault still needs the object store when the fault hits it; the key of an upload
# that failed is swept 15 s after (echo.uncertain_write_grace), once it has surely landed.
CONFIG = {
    "server": {"workers": 2, "threads": 2, "timeout": 30, "graceful_timeout": 10,
               "keepalive": 5, "log_level": "info"},
    "export": {"max_buffer_bytes": 1 << 20},
}
S3_CONFIG = {"request_timeout": 5, "max_read_wait": 8, "max_retries": 2,
             "uncertain_write_grace": 15}

ADMIN, ADMIN_PW = "chaos-admin", "chaos-admin-password"
DEMO_RECORDS = 100
LOAD_THREADS = 4
CLIENT_TIMEOUT = 30
RECOVERY_BOUND = 90  # s: "recovered at all", not a timing check
OBJECT_TYPES = {"image": ("images", ".png"), "float_image": ("float_images", ".npz"),
                "waveform": ("waveforms", ".json"), "vector": ("vectors", ".json")}

CHAOS_CHANNELS = {"CHAOS-CAM": "image", "CHAOS-CAM-BIG": "image", "CHAOS-FLOAT": "float_image",
                  "CHAOS-WF": "waveform", "CHAOS-VEC": "vector", "CHAOS-EM": "scalar"}


def now():
    return time.monotonic()


def object_key(rid, name, dtype):
    top, ext = OBJECT_TYPES[dtype]
    return f"{top}/{rid[0:4]}/{rid[4:6]}/{rid[6:8]}/{rid[8:14]}/{name}{ext}"


# ---------------------------------------------------------------------------------------
# the server under test


class Server:
    def __init__(self, ogd, pair, workdir, env):
        self.ogd, self.pair, self.env = ogd, pair, env
        self.data_dir = os.path.join(workdir, "data")
        os.makedirs(self.data_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = {k: dict(v) for k, v in CONFIG.items()}
        cfg["server"].update(bind=f"127.0.0.1:{self.port}", data_dir=self.data_dir)
        tag = uuid.uuid4().hex[:10]
        self.s3 = None
        self.pg_url = None
        if pair == "production":
            base = env["CHAOS_PG_URL"].rsplit("/", 1)[0]
            self.pg_url = f"{base}/ogd_chaos_{tag}"
            bucket = f"ogd-chaos-{tag}"
            cfg["database"] = {"url": self.pg_url}
            cfg["echo"] = dict(S3_CONFIG, url=env["CHAOS_S3_URL"],
                               access_key=env["CHAOS_S3_ACCESS_KEY"],
                               secret_key=env["CHAOS_S3_SECRET_KEY"], bucket_name=bucket,
                               create_bucket=True)
            self.s3 = S3(env["CHAOS_S3_URL"], env["CHAOS_S3_ACCESS_KEY"],
                         env["CHAOS_S3_SECRET_KEY"], bucket)
        self.config_path = os.path.join(self.data_dir, "config.yml")
        with open(self.config_path, "w") as f:
            f.write(to_yaml(cfg))
        self.log_path = os.path.join(workdir, "ogd.log")
        self.proc = None
        self.token = None

    def cli(self, *args, stdin=""):
        return subprocess.run([self.ogd, *args, "--config", self.config_path], input=stdin,
                              capture_output=True, text=True, env=self.env, timeout=600)

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.ogd, "serve", "--config", self.config_path],
                                     stdout=log, stderr=log, env=self.env)
        log.close()
        deadline = now() + 60
        while now() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ogd exited at start:\n" + self.log_tail())
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("ogd did not start:\n" + self.log_tail())

    def login(self):
        r = requests.post(self.url + "/login", json={"username": ADMIN, "password": ADMIN_PW},
                          timeout=30)
        r.raise_for_status()
        self.token = r.json()

    def headers(self):
        return {"Authorization": "Bearer " + self.token}

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, offset):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def log_tail(self, n=4000):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-n:]

    def workers(self, comm="ogd-worker"):
        """Pids of the master's live worker processes (from /proc, no subprocess); with
        comm="ogd-jobs", of its jobs process."""
        if not self.proc or self.proc.poll() is not None:
            return []
        mp = self.proc.pid
        try:
            with open(f"/proc/{mp}/task/{mp}/children") as f:
                kids = [int(p) for p in f.read().split()]
        except OSError:
            return []
        out = []
        for p in kids:
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() == comm:
                        out.append(p)
            except OSError:
                pass
        return sorted(out)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "timeout"
        return self.proc.returncode if self.proc else None

    # -- what is stored, read behind ogd's back ---------------------------------------

    def sql(self, query):
        """Rows of a query in the server's database (either pair), as tuples of text."""
        if self.pg_url:
            out = subprocess.run(["psql", "-qAt", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                                  self.pg_url, "-c", query], check=True,
                                 capture_output=True, text=True, timeout=60).stdout
            return [tuple(line.split("\t")) for line in out.splitlines() if line]
        import sqlite3
        db = sqlite3.connect(os.path.join(self.data_dir, "ogd.sqlite3"), timeout=30)
        try:
            return [tuple(str(v) for v in r) for r in db.execute(query)]
        finally:
            db.close()

    def uncertain_notes(self):
        """How many keys of failed uploads wait for the jobs process's sweep."""
        return int(self.sql("SELECT count(*) FROM uncertain_objects")[0][0])

    def inventory(self):
        """(record ids, {record id: {channel: dtype}} of object channels, object keys)."""
        ids = {r[0] for r in self.sql("SELECT id FROM records")}
        rows = self.sql("SELECT record_id, name, dtype FROM record_channels WHERE dtype IN "
                        "('image','float_image','waveform','vector')")
        if self.pg_url:
            keys = set(self.s3.keys())
        else:
            root = os.path.join(self.data_dir, "objects")
            keys = set()
            for d, _, files in os.walk(root):
                for name in files:
                    if not name.startswith("."):  # temp files of atomic writes
                        keys.add(os.path.relpath(os.path.join(d, name), root))
        chans = {}
        for rid, name, dtype in rows:
            chans.setdefault(rid, {})[name] = dtype
        return ids, chans, keys


# ---------------------------------------------------------------------------------------
# the back ends' own processes (the suite's instances only)


class Postgres:
    def __init__(self, env):
        self.data = os.path.realpath(env["CHAOS_PG_DATA"])
        self.log = env["CHAOS_PG_LOG"]
        port = int(env["CHAOS_PG_URL"].rsplit(":", 1)[1].split("/")[0])
        if self.data == os.path.realpath(SHARED_PG[0] + "/data") or port == SHARED_PG[1]:
            sys.exit("chaos: refusing to stop the shared PostgreSQL (%s, %d)" % SHARED_PG)

    def ctl(self, *args):
        cmd = [PGBIN + "/pg_ctl", "-D", self.data, *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=120)

    def stop(self):
        self.ctl("-m", "fast", "-w", "stop")

    def start(self):
        self.ctl("-l", self.log, "-w", "start")


class Rgw:
    def __init__(self, env):
        self.dir = os.path.realpath(env["CHAOS_CEPH_DIR"])
        self.url = env["CHAOS_S3_URL"]
        if self.dir == os.path.realpath(SHARED_CEPH[0]) or \
                self.url.rstrip("/").endswith(":%d" % SHARED_CEPH[1]):
            sys.exit("chaos: refusing to touch the shared Ceph RGW (%s, %d)" % SHARED_CEPH)
        self.argv = None

    def pid(self):
        """radosgw's pid from its pid file, if it is our instance's."""
        with open(os.path.join(self.dir, "run", "client.rgw.gw.pid")) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
        if not any(a == os.path.join(self.dir, "ceph.conf") for a in argv):
            raise RuntimeError("pid %d is not this suite's radosgw: %r" % (pid, argv))
        self.argv = argv
        return pid

    def answering(self):
        try:
            requests.get(self.url, timeout=1)
            return True
        except requests.RequestException:
            return False

    def restart(self):
        """Starts radosgw again as scripts/start-rgw.sh does (it daemonizes)."""
        env = dict(os.environ, CEPH_CONF=os.path.join(self.dir, "ceph.conf"))
        subprocess.run(self.argv, check=True, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        deadline = now() + 60
        while now() < deadline:
            if self.answering():
                return
            time.sleep(0.1)
        raise RuntimeError("radosgw did not come back")


# ---------------------------------------------------------------------------------------
# HDF5 uploads


class Uploads:
    """Unique HDF5 files (one new record each): timestamps one second apart from 2019."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "h5")
        os.makedirs(self.dir)
        self.n = 0
        self.lock = threading.Lock()
        self.base = datetime.datetime(2019, 1, 1, tzinfo=datetime.timezone.utc)

    def make(self, big=False):
        with self.lock:
            self.n += 1
            n = self.n
        ts = self.base + datetime.timedelta(seconds=n)
        rid = ts.strftime("%Y%m%d%H%M%S")
        rng = np.random.default_rng(n)
        chans = {name: None for name in hdfgen.default_channels()}
        chans.update({
            "CHAOS-CAM": {"dtype": "image", "data": rng.integers(0, 4096, (48, 64),
                                                                 dtype=np.uint16),
                          "attrs": {"bit_depth": 12}},
            "CHAOS-FLOAT": {"dtype": "float_image", "data": rng.standard_normal((32, 32))},
            "CHAOS-WF": {"dtype": "waveform", "x": np.arange(200.0),
                         "y": np.sin(np.arange(200.0) / 7 + n), "attrs": {"x_units": "ns"}},
            "CHAOS-VEC": {"dtype": "vector", "data": rng.standard_normal(5),
                          "attrs": {"labels": ["a", "b", "c", "d", "e"]}},
            "CHAOS-EM": {"dtype": "scalar", "data": float(n), "attrs": {"units": "mJ"}},
        })
        if big:  # ~6 MB of noise: its PUTs take a while
            chans["CHAOS-CAM-BIG"] = {"dtype": "image", "data": rng.integers(
                0, 4096, (1536, 2048), dtype=np.uint16), "attrs": {"bit_depth": 12}}
        path = os.path.join(self.dir, f"{rid}.h5")
        hdfgen.make_file(path, attrs={"timestamp": ts.isoformat(), "shotnum": np.uint64(
            10**9 + n)}, channels=chans)
        with open(path, "rb") as f:
            data = f.read()
        os.remove(path)
        return rid, data

    @staticmethod
    def manifest_channels():
        return {name: {"name": "chaos " + name, "path": "/chaos", "type": t}
                for name, t in CHAOS_CHANNELS.items()}


# ---------------------------------------------------------------------------------------
# the load


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = []      # (t0, t1, op, outcome)
        self.ingests = []  # (rid, outcome, body)

    def add(self, t0, op, outcome, ingest=None):
        with self.lock:
            self.ops.append((t0, now(), op, outcome))
            if ingest:
                self.ingests.append(ingest)


def outcome_of(exc):
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "cut"
    if isinstance(exc, (requests.exceptions.ReadTimeout, socket.timeout)):
        return "timeout"
    if isinstance(exc, (requests.exceptions.ConnectionError, ConnectionError)):
        # refused: nobody listens (a stop); reset: a connection that got in was dropped
        return "refused" if "refused" in str(exc).lower() else "reset"
    return "error:" + type(exc).__name__


class Load:
    """LOAD_THREADS clients, each on its own keep-alive session, looping over a weighted
    mix of what the web client and the data systems do."""

    MIX = [("records", 25), ("count", 15), ("image", 18), ("waveform", 14), ("export", 8),
           ("ingest", 10)]

    def __init__(self, ctx, seed):
        self.ctx, self.seed = ctx, seed
        self.stop_ev = threading.Event()
        self.results = Results()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(LOAD_THREADS)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=CLIENT_TIMEOUT * 2 + 10)

    def run(self, i):
        rng = random.Random(self.seed * 1000 + i)
        ops = [op for op, w in self.MIX for _ in range(w)]
        sess = requests.Session()
        while not self.stop_ev.is_set():
            op = rng.choice(ops)
            t0 = now()
            ingest = None
            try:
                sess.headers["Authorization"] = "Bearer " + self.ctx.srv.token
                if op == "ingest":
                    rid, data = self.ctx.uploads.make()
                    try:
                        r = sess.post(self.ctx.srv.url + "/submit/hdf",
                                      files={"file": ("f.h5", data)}, timeout=CLIENT_TIMEOUT)
                    except Exception as e:  # noqa: BLE001
                        ingest = (rid, outcome_of(e), None)
                        raise
                    ingest = (rid, r.status_code, r.text)
                    outcome = r.status_code
                else:
                    outcome = getattr(self, "op_" + op)(sess, rng)
            except Exception as e:  # noqa: BLE001
                outcome = outcome_of(e)
            self.results.add(t0, op, outcome, ingest)
            ok = isinstance(outcome, int) and outcome < 400
            self.stop_ev.wait(0.02 if ok else 0.1)

    def get(self, sess, path, params=None, timeout=CLIENT_TIMEOUT):
        r = sess.get(self.ctx.srv.url + path, params=params, timeout=timeout)
        return r.status_code

    def op_records(self, sess, rng):
        c = self.ctx
        params = {"conditions": json.dumps({"metadata.shotnum": {"$gt": 0}}),
                  "skip": rng.randrange(0, DEMO_RECORDS - 25), "limit": 25,
                  "order": "metadata.shotnum desc",
                  "projection": ["metadata.timestamp", "metadata.shotnum"] +
                  ["channels.%s" % n for n in rng.sample(c.table_channels, 4)]}
        return self.get(sess, "/records", params)

    def op_count(self, sess, rng):
        cond = {"metadata.shotnum": {"$gt": rng.randrange(0, 10**12)}}
        return self.get(sess, "/records/count", {"conditions": json.dumps(cond)})

    def op_image(self, sess, rng):
        rid, ch = rng.choice(self.ctx.images)
        params = {"colourmap_name": rng.choice(["viridis", "jet", "inferno", "bone"])}
        return self.get(sess, f"/images/{rid}/{ch}", params)

    def op_waveform(self, sess, rng):
        rid, ch = rng.choice(self.ctx.waveforms)
        return self.get(sess, f"/waveforms/{rid}/{ch}")

    def op_export(self, sess, rng):
        c = self.ctx
        ids = rng.sample(c.demo_ids, 8)
        params = {"conditions": json.dumps({"_id": {"$in": ids}}),
                  "projection": ["channels.%s" % n for n in c.export_channels]}
        r = sess.get(c.srv.url + "/export", params=params, timeout=CLIENT_TIMEOUT)
        if r.status_code == 200 and r.headers.get("content-type") == "application/zip":
            try:
                if zipfile.ZipFile(io.BytesIO(r.content)).testzip() is not None:
                    return "badzip"
            except zipfile.BadZipFile:
                return "badzip"
        return r.status_code


# ---------------------------------------------------------------------------------------
# raw-socket clients: abandoned requests, slow readers, a paused export


def raw_get(ctx, path, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(60)
    s.connect(("127.0.0.1", ctx.srv.port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close"
               "\r\n\r\n" % (path, ctx.srv.token)).encode())
    return s


def export_path(ctx, ids=None, channels=None):
    cond = {"_id": {"$in": ids}} if ids else {}
    q = [("conditions", json.dumps(cond))] + [
        ("projection", "channels." + n) for n in (channels or ctx.export_channels)]
    return "/export?" + "&".join("%s=%s" % (k, urllib.parse.quote(v, safe="")) for k, v in q)


class PausedExport(threading.Thread):
    """An export of every demo record: reads the head and the first bytes, waits for
    `go`, then reads to the end. Its result: 'ok' (a complete, valid zip), 'cut' (the
    stream ended without its last chunk), 'badzip' (ended but unreadable: a defect),
    or the status of an early answer."""

    def __init__(self, ctx):
        super().__init__(daemon=True)
        self.ctx = ctx
        self.started_ev, self.go = threading.Event(), threading.Event()
        self.result = None

    def run(self):
        try:
            s = raw_get(self.ctx, export_path(self.ctx))
            data = b""
            while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < 1024:
                b = s.recv(65536)
                if not b:
                    break
                data += b
            self.started_ev.set()
            self.go.wait(120)
            s.settimeout(120)
            data += read_to_close(s)
            s.close()
            head, _, body = data.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                self.result = str(status)
                return
            payload, ended = dechunk(body)
            if not ended:
                self.result = "cut"
                return
            try:
                ok = zipfile.ZipFile(io.BytesIO(payload)).testzip() is None
            except zipfile.BadZipFile:
                ok = False
            self.result = "ok" if ok else "badzip"
        except Exception as e:  # noqa: BLE001
            self.result = outcome_of(e)
        finally:
            self.started_ev.set()


class BigIngest(threading.Thread):
    """One upload with a 2048x1536 16-bit frame, posted when started."""

    def __init__(self, ctx):
        super().__init__(daemon=True)
        self.ctx = ctx
        self.rid, self.data = ctx.uploads.make(big=True)
        self.result = None
        self.sent = threading.Event()

    def run(self):
        try:
            self.sent.set()
            r = requests.post(self.ctx.srv.url + "/submit/hdf", headers=self.ctx.srv.headers(),
                              files={"file": ("big.h5", self.data)}, timeout=120)
            self.result = (self.rid, r.status_code, r.text)
        except Exception as e:  # noqa: BLE001
            self.result = (self.rid, outcome_of(e), None)


# ---------------------------------------------------------------------------------------
# one fault


class RssSampler(threading.Thread):
    def __init__(self, srv):
        super().__init__(daemon=True)
        self.srv = srv
        self.stop_ev = threading.Event()
        self.peak_kb = 0

    def run(self):
        while not self.stop_ev.is_set():
            for pid in self.srv.workers():
                try:
                    with open(f"/proc/{pid}/status") as f:
                        for line in f:
                            if line.startswith("VmRSS:"):
                                self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                except OSError:
                    pass
            self.stop_ev.wait(0.1)


class Ctx:
    pass


def probe_ok(ctx):
    h = dict(ctx.srv.headers(), Connection="close")
    try:
        r1 = requests.get(ctx.srv.url + "/readyz", headers=h, timeout=10)
        r2 = requests.get(ctx.srv.url + "/records?limit=5", headers=h, timeout=10)
        return r1.status_code == 200 and r2.status_code == 200
    except requests.RequestException:
        return False


def wait_recovered(ctx, t_end, want_workers=True):
    """Seconds from t_end until a probe succeeds (and the worker count is back)."""
    deadline = t_end + RECOVERY_BOUND
    while now() < deadline:
        if (not want_workers or len(ctx.srv.workers()) == CONFIG["server"]["workers"]) \
                and probe_ok(ctx):
            return now() - t_end
        time.sleep(0.05)
    return None


def metric_sum(ctx, name):
    try:
        text = requests.get(ctx.srv.url + "/metrics", timeout=10).text
    except requests.RequestException:
        return 0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def settle(ctx, bound=30):
    """The inventory once it has stopped changing (requests the clients gave up on may
    still be finishing on the server)."""
    prev = None
    deadline = now() + bound
    while True:
        inv = ctx.srv.inventory()
        if inv == prev or now() > deadline:
            return inv
        prev = inv
        time.sleep(1.0)


CRASH_PATTERNS = [
    (re.compile(r"worker (\d+) killed by signal (\d+)"), "killed"),
    (re.compile(r"worker (\d+) exited with status (\d+)"), "exited"),
    (re.compile(r"loop blocked for"), "hang"),
    (re.compile(r"jobs process (\d+) ended"), "jobs"),
]
SANITIZER = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
             "double free", "corrupted", "Segmentation fault", "stack smashing")


def scan_log(text, expected_kills):
    """Unexpected deaths and sanitizer reports in a piece of the server's log; also the
    error-level messages (for the notes)."""
    problems, errors = [], {}
    for line in text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            if any(s in line for s in SANITIZER):
                problems.append("sanitizer/abort: " + line[:200])
            continue
        msg = doc.get("msg", "")
        for rx, kind in CRASH_PATTERNS:
            m = rx.search(msg)
            if not m:
                continue
            if kind == "killed" and int(m.group(1)) in expected_kills and m.group(2) == "9":
                continue
            problems.append(msg)
        if doc.get("level") == "error":
            key = re.sub(r"\d+", "N", msg)[:80]
            errors[key] = errors.get(key, 0) + 1
    return problems, errors


def sweep_uncertain(ctx, bound=RECOVERY_BOUND):
    """Uploads that failed for ogd may land in the store later (a frozen RGW keeps the
    request): ogd notes their keys and its jobs process deletes them once
    echo.uncertain_write_grace has passed and no record refers to them. Asks the jobs
    process for sweeps (SIGUSR2) until no note is left; how many there were."""
    noted = ctx.srv.uncertain_notes()
    deadline = now() + bound
    while ctx.srv.uncertain_notes() and now() < deadline:
        for pid in ctx.srv.workers("ogd-jobs"):
            os.kill(pid, signal.SIGUSR2)
        time.sleep(1.0)
    return noted


def check_data(before, after, ingests, tolerate_orphans_of=()):
    """(lost, orphans, details): records and objects that existed before and are gone,
    records of 201 answers missing or missing objects, records with channels whose
    objects are missing, objects no record points at (new since `before`)."""
    b_ids, b_ch, b_keys = before
    a_ids, a_ch, a_keys = after
    details = []
    lost_records = sorted(b_ids - a_ids)
    lost_keys = sorted(b_keys - a_keys)
    if lost_records:
        details.append("records gone: %s" % lost_records[:5])
    if lost_keys:
        details.append("objects gone: %s" % lost_keys[:5])
    lost = len(lost_records) + len(lost_keys)
    # every object channel of every record has its object
    expected = set()
    for rid in a_ids:
        for name, dtype in a_ch.get(rid, {}).items():
            k = object_key(rid, name, dtype)
            expected.add(k)
            if k not in a_keys and k not in lost_keys:
                lost += 1
                details.append("record %s channel %s without its object %s" % (rid, name, k))
    for rid, outcome, body in ingests:
        if outcome == 201:
            if rid not in a_ids:
                lost += 1
                details.append("ingest %s answered 201, record missing" % rid)
                continue
            accepted = json.loads(body)["response"]["accepted_channels"]
            for name in accepted:
                if CHAOS_CHANNELS.get(name, "scalar") != "scalar" and \
                        name not in a_ch.get(rid, {}):
                    lost += 1
                    details.append("ingest %s: accepted channel %s not stored" % (rid, name))
        elif isinstance(outcome, int) and rid in a_ids:
            details.append("ingest %s answered %s but its record exists" % (rid, outcome))
    new_keys = a_keys - b_keys
    orphan_keys = sorted(k for k in new_keys if k not in expected)
    tolerated = [k for k in orphan_keys if any(("/%s/%s/%s/%s/" % (r[0:4], r[4:6], r[6:8],
                                                                     r[8:14])) in k
                                               for r in tolerate_orphans_of)]
    if orphan_keys:
        outcome = {rid: (o, b) for rid, o, b in ingests}
        by = {}
        for k in orphan_keys:
            rid = "".join(k.split("/")[1:5])
            o, b = outcome.get(rid, ("not an ingest of this fault", None))
            if o == 201 and b and "Upload to Echo failed" in b:
                o = "201 with the channel rejected"
            by[str(o)] = by.get(str(o), 0) + 1
        details.append("orphan objects by the ingest's answer: %s, e.g. %s"
                       % (by, orphan_keys[:2]))
    return lost, orphan_keys, tolerated, details


def statuses(ops):
    out = {}
    for _, _, _, outcome in ops:
        if isinstance(outcome, int) and outcome < 400:
            continue
        out[str(outcome)] = out.get(str(outcome), 0) + 1
    return out


def statuses_by_op(ops):
    out = {}
    for _, _, op, outcome in ops:
        if not (isinstance(outcome, int) and outcome < 400):
            key = "%s:%s" % (op, outcome)
            out[key] = out.get(key, 0) + 1
    return out


def suspects(ops):
    """Answers that are wrong whatever the fault: a missing record or object (every load
    request names demo records that are never deleted), a 500, a 200 with a broken zip,
    an ingest refused as a bad file."""
    bad = {}
    for _, _, op, outcome in ops:
        if outcome in (404, 500, 502, "badzip") or (op == "ingest" and outcome == 400):
            key = "%s:%s" % (op, outcome)
            bad[key] = bad.get(key, 0) + 1
    return bad


def run_fault(ctx, name, fault, workers_change=False, warm=2.0, after=2.0):
    srv = ctx.srv
    before = settle(ctx, bound=10)
    workers_before = srv.workers()
    log_off = srv.log_size()
    sampler = RssSampler(srv)
    sampler.start()
    load = Load(ctx, seed=sum(map(ord, name))).start()
    time.sleep(warm)
    t_fault = now()
    info = fault(ctx) or {}
    t_end = info.get("t_end", now())
    recover = wait_recovered(ctx, t_end)
    time.sleep(after)
    load.stop()
    for th in info.get("threads", []):
        th.join(timeout=150)
    sampler.stop_ev.set()
    sampler.join()
    ops = [o for o in load.results.ops]
    ingests = list(load.results.ingests)
    for th in info.get("threads", []):
        if isinstance(th, BigIngest) and th.result:
            ingests.append(th.result)
    kills = set(info.get("killed", ()))
    tolerate = [rid for rid, outcome, _ in ingests if outcome in ("reset", "cut")] \
        if info.get("sigkill") else []
    problems, errors = scan_log(srv.log_since(log_off), kills)
    swept = 0
    try:
        swept = sweep_uncertain(ctx)
        after_inv = settle(ctx)
        lost, orphans, tolerated, details = check_data(before, after_inv, ingests, tolerate)
    except Exception as e:  # noqa: BLE001  (a back end still away: nothing can be counted)
        lost, orphans, tolerated, details = 0, [], [], []
        problems.append("could not read what is stored: %r" % e)
    workers_after = srv.workers()
    if not workers_change and workers_after != workers_before and srv.proc.poll() is None:
        problems.append("workers changed without a fault that replaces them: %s -> %s"
                        % (workers_before, workers_after))
    if srv.proc.poll() is not None:
        problems.append("the master exited (%s)" % srv.proc.returncode)
    notes = (info["post"]() if "post" in info else []) + list(info.get("notes", []))
    if swept:
        notes.append("%d keys of failed uploads noted; the jobs process swept them" % swept)
    if "t_down" in info:  # connection errors while draining vs while nothing listened
        for kind in ("refused", "reset"):
            down = sum(1 for o in ops if o[3] == kind and o[1] >= info["t_down"])
            total = sum(1 for o in ops if o[3] == kind)
            notes.append("%s: %d while draining, %d while down" % (kind, total - down, down))
    lat = sorted(o[1] - o[0] for o in ops if isinstance(o[3], int) and o[3] < 400)
    if lat:
        notes.append("%.0fs under load, ok latency p50 %.0f ms, p99 %.0f ms, max %.0f ms" % (
            ops[-1][1] - ops[0][0], lat[len(lat) // 2] * 1000,
            lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, lat[-1] * 1000))
    partial = sum(1 for _, o, b in ingests if o == 201 and b and "Upload to Echo failed" in b)
    n_ing = sum(1 for _, o, _ in ingests)
    ok_ing = sum(1 for _, o, _ in ingests if o in (200, 201))
    notes.append("ingests %d/%d ok" % (ok_ing, n_ing) + (
        ", %d with channels rejected (Upload to Echo failed)" % partial if partial else ""))
    if errors:
        notes.append("log errors: " + "; ".join("%s x%d" % (k, v) for k, v in
                                                 sorted(errors.items())[:4]))
    sus = suspects(ops)
    hard_orphans = [k for k in orphans if k not in tolerated]
    row = {
        "fault": name, "pair": ctx.pair, "requests": len(ops), "non2xx": statuses(ops),
        "recover_s": None if recover is None else round(recover, 2),
        "lost": lost, "orphans": len(orphans), "tolerated_orphans": len(tolerated),
        "peak_rss_mb": round(sampler.peak_kb / 1024, 1), "suspect": sus,
        "non2xx_by_op": statuses_by_op(ops),
        "problems": problems, "details": details, "notes": notes,
        "fault_s": round(t_end - t_fault, 2),
    }
    problems += ctx.extra_problems
    ctx.log_mark = srv.log_size()
    row["failed"] = bool(lost or hard_orphans or problems or recover is None)
    ctx.rows.append(row)
    print_row(row)
    return row


def print_row(row):
    non = ",".join("%s:%d" % kv for kv in sorted(row["non2xx"].items())) or "-"
    rec = "%.2fs" % row["recover_s"] if row["recover_s"] is not None else "NEVER"
    line = ("chaos: %-13s pair=%-10s requests=%-5d non2xx=%s recover=%s lost=%d orphans=%d "
            "peak_rss=%.0fMB" % (row["fault"], row["pair"], row["requests"], non, rec,
                                 row["lost"], row["orphans"], row["peak_rss_mb"]))
    if row["suspect"]:
        line += " SUSPECT=" + ",".join("%s:%d" % kv for kv in sorted(row["suspect"].items()))
    line += " | " + "; ".join(row["notes"])
    if row["failed"]:
        line += " | FAILED: " + "; ".join(row["problems"] + row["details"])
    elif row["details"]:
        line += " | " + "; ".join(row["details"])
    print(line, flush=True)


# ---------------------------------------------------------------------------------------
# the faults


def f_baseline(ctx):
    time.sleep(4)


def f_kill9(ctx):
    victim = ctx.srv.workers()[0]
    os.kill(victim, signal.SIGKILL)
    t = now()
    while victim in ctx.srv.workers() or len(ctx.srv.workers()) < 2:
        if now() - t > 30:
            break
        time.sleep(0.01)
    return {"t_end": t, "killed": [victim], "sigkill": True,
            "notes": ["worker replaced in %.2fs" % (now() - t)]}


def f_hup(ctx):
    old = set(ctx.srv.workers())
    ctx.srv.proc.send_signal(signal.SIGHUP)
    t = now()
    while set(ctx.srv.workers()) & old and now() - t < 60:
        time.sleep(0.01)
    return {"t_end": t, "notes": ["old workers gone after %.2fs" % (now() - t)]}


def f_quit(ctx):
    t0 = now()
    rc = ctx.srv.stop(signal.SIGQUIT)
    stopped = now()
    notes = ["graceful stop took %.2fs (exit %s)" % (stopped - t0, rc)]
    ctx.srv.start()
    notes.append("restart to /healthz %.2fs" % (now() - stopped))
    info = {"t_end": stopped, "t_down": stopped, "notes": notes}
    if rc != 0:
        info["notes"].append("EXIT STATUS %s" % rc)
        ctx.extra_problems.append("graceful stop exited %s" % rc)
    return info


def f_pg_stop(ctx):
    ctx.pg.stop()
    t = now()
    time.sleep(5)
    ctx.pg.start()
    return {"t_end": now(), "notes": ["PostgreSQL down %.1fs" % (now() - t)]}


def start_export_and_ingest(ctx):
    exp = PausedExport(ctx)
    exp.start()
    exp.started_ev.wait(60)
    big = BigIngest(ctx)
    big.start()
    big.sent.wait(10)
    time.sleep(0.3)  # the upload is on its way: helper, encoders, PUTs
    return exp, big


def fault_notes(exp, big):
    big.join(timeout=150)
    exp.join(timeout=150)
    ing = big.result[1] if big.result else "?"
    extra = ""
    if big.result and big.result[1] == 201 and "Upload to Echo failed" in (big.result[2] or ""):
        extra = " (channels rejected: Upload to Echo failed)"
    return ["paused export: %s" % exp.result, "big ingest: %s%s" % (ing, extra)]


def f_rgw_freeze(ctx):
    exp, big = start_export_and_ingest(ctx)
    pid = ctx.rgw.pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        exp.go.set()
        time.sleep(10)
    finally:
        os.kill(pid, signal.SIGCONT)
    t = now()
    return {"t_end": t, "threads": [exp, big], "notes": ["RGW frozen 10s"],
            "post": lambda: fault_notes(exp, big)}


def f_rgw_kill(ctx):
    exp, big = start_export_and_ingest(ctx)
    pid = ctx.rgw.pid()
    os.kill(pid, signal.SIGKILL)
    t0 = now()
    exp.go.set()
    time.sleep(3)
    ctx.rgw.restart()
    t = now()
    return {"t_end": t, "threads": [exp, big],
            "notes": ["RGW down %.1fs" % (t - t0)], "post": lambda: fault_notes(exp, big)}


def f_abandon(ctx):
    aborted0 = metric_sum(ctx, "ogd_http_requests_aborted_total")
    socks = []
    heavy = ["/records?limit=0"] * 50 + [export_path(ctx)] * 15 + [
        "/images/%s/%s?original_image=true" % ic for ic in ctx.images[:15]] + [
        "/records/count?conditions=%7B%7D"] * 20
    for path in heavy:
        socks.append(raw_get(ctx, path))
    time.sleep(0.3)
    for s in socks:
        s.close()
    t = now()
    time.sleep(1.0)
    return {"t_end": t, "notes": ["%d abandoned, %d logged aborted (499)" % (
        len(heavy), metric_sum(ctx, "ogd_http_requests_aborted_total") - aborted0)]}


def f_slow(ctx):
    paths = [export_path(ctx)] * 3 + ["/records?limit=0"] * 3
    got = [0] * len(paths)

    def reader(i, path):
        s = raw_get(ctx, path, rcvbuf=4096)
        end = now() + 12
        try:
            while now() < end:
                b = s.recv(1024)
                if not b:
                    break
                got[i] += len(b)
                time.sleep(0.25)  # 4 KB/s
        finally:
            s.close()

    ths = [threading.Thread(target=reader, args=(i, p)) for i, p in enumerate(paths)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return {"t_end": now(), "notes": ["6 readers at 4 KB/s for 12s read %d KB" % (
        sum(got) // 1024)]}


FAULTS = [
    ("baseline", f_baseline, False, "both"),
    ("kill9", f_kill9, True, "both"),
    ("sighup", f_hup, True, "both"),
    ("sigquit", f_quit, True, "both"),
    ("pg_stop_5s", f_pg_stop, False, "production"),
    ("rgw_freeze", f_rgw_freeze, False, "production"),
    ("rgw_kill", f_rgw_kill, False, "production"),
    ("abandoned", f_abandon, False, "both"),
    ("slow_readers", f_slow, False, "both"),
]


# ---------------------------------------------------------------------------------------


def setup(ctx, workdir):
    srv = ctx.srv
    t_setup = now()
    r = srv.cli("demo", "--records", str(DEMO_RECORDS))
    if r.returncode != 0:
        sys.exit("chaos: ogd demo failed:\n" + r.stderr[-3000:])
    r = srv.cli("user", "add", ADMIN, "--all-routes", stdin=ADMIN_PW + "\n")
    if r.returncode != 0:
        sys.exit("chaos: ogd user add failed:\n" + r.stderr[-3000:])
    srv.start()
    srv.login()
    h = srv.headers()
    manifest = requests.get(srv.url + "/channels", headers=h, timeout=30).json()
    chans = dict(manifest["channels"])
    chans.update(Uploads.manifest_channels())
    r = requests.post(srv.url + "/submit/manifest", headers=h, timeout=30,
                      files={"file": ("m.json", json.dumps({"channels": chans}).encode())})
    if r.status_code != 201:
        sys.exit("chaos: manifest refused: %s %s" % (r.status_code, r.text))
    ids, ch, _ = srv.inventory()
    ctx.demo_ids = sorted(ids)
    ctx.images = sorted((rid, n) for rid in ids for n, t in ch.get(rid, {}).items()
                        if t == "image")
    ctx.waveforms = sorted((rid, n) for rid in ids for n, t in ch.get(rid, {}).items()
                           if t == "waveform")
    kinds = {}
    for rid in ids:
        for n, dtype in ch.get(rid, {}).items():
            kinds.setdefault(dtype, set()).add(n)
    ctx.export_channels = sorted(kinds.get("image", set()))[:2] + \
        sorted(kinds.get("waveform", set()))[:1] + sorted(kinds.get("vector", set()))[:1]
    scalars = [n for n, c in chans.items() if c.get("type", "scalar") == "scalar"
               and not n.startswith("CHAOS-")]
    ctx.table_channels = scalars[:12] + sorted(kinds.get("image", set()))[:2]
    print("chaos: %s pair ready in %.1fs: %d demo records, %d objects, url %s"
          % (ctx.pair, now() - t_setup, len(ids), len(srv.inventory()[2]), srv.url), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pair", choices=["embedded", "production"], required=True)
    ap.add_argument("--ogd", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--faults", default="")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    a = ap.parse_args()
    env = dict(os.environ)
    os.makedirs(a.out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="ogd-chaos-%s-" % a.pair)
    ctx = Ctx()
    ctx.pair, ctx.rows, ctx.extra_problems, ctx.log_mark = a.pair, [], [], 0
    ctx.uploads = Uploads(workdir)
    if a.pair == "production":
        ctx.pg, ctx.rgw = Postgres(env), Rgw(env)
    ctx.srv = Server(os.path.abspath(a.ogd), a.pair, workdir, env)
    want = set(filter(None, a.faults.split(",")))
    failed = False
    try:
        setup(ctx, workdir)
        for name, fn, changes, pairs in FAULTS:
            if want and name not in want:
                continue
            if pairs != "both" and pairs != a.pair:
                continue
            ctx.extra_problems = []
            row = run_fault(ctx, name, fn, workers_change=changes)
            failed |= row["failed"]
    finally:
        rc = ctx.srv.stop(signal.SIGTERM)
        shutil.copy(ctx.srv.log_path, os.path.join(a.out, "ogd-%s.log" % a.pair))
        # what the processes wrote while stopping (sanitizer builds report leaks at exit)
        late, _ = scan_log(ctx.srv.log_since(ctx.log_mark), set())
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if rc != 0:
        print("chaos: %s: final stop exited %s" % (a.pair, rc))
        failed = True
    if late:
        print("chaos: %s: at the final stop: %s" % (a.pair, "; ".join(late[:5])))
        failed = True
    with open(os.path.join(a.out, "rows-%s.json" % a.pair), "w") as f:
        json.dump(ctx.rows, f, indent=1)
    print("chaos: %s pair %s" % (a.pair, "FAILED" if failed else "ok"), flush=True)
    return 1 if failed else 0


def table(out, pairs):
    """The rows of the pairs' runs as one markdown table (docs/reliability.md)."""
    print("| fault | pair | requests | non-2xx | recover | lost | orphans | peak RSS |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for pair in pairs:
        try:
            with open(os.path.join(out, "rows-%s.json" % pair)) as f:
                rows = json.load(f)
        except OSError:
            continue
        for r in rows:
            non = ", ".join("%s: %d" % kv for kv in sorted(r["non2xx"].items())) or "none"
            rec = "%.2f s" % r["recover_s"] if r["recover_s"] is not None else "never"
            orph = str(r["orphans"])
            if r["tolerated_orphans"]:
                orph += " (SIGKILL)"
            print("| %s | %s | %d | %s | %s | %d | %s | %.0f MB |" % (
                r["fault"], pair, r["requests"], non, rec, r["lost"], orph, r["peak_rss_mb"]))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--table":
        table(sys.argv[2], sys.argv[3:])
        sys.exit(0)
    sys.exit(main())
