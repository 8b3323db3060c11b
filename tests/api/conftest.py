"""Fixtures for the HTTP-level tests: real `ogd serve` processes on free ports.

Each server gets its own temporary data directory, filled by `ogd demo`, and a config
file written from a dict. OGD_TEST_BACKEND picks the back-end pair every server uses:
`embedded` (default: SQLite + object files in the data directory) or `production`
(PostgreSQL at OGD_TEST_PG_URL + S3 at OGD_TEST_S3_URL, a fresh database and bucket per
server); `scripts/test.sh` runs the suite once with each. `fixture_server` (the
hand-written records of tests/api/data) is shared by a whole test session (read-only
tests); `make_server` starts a private one for tests that
change data or kill processes.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest
import re
import requests

from s3client import S3

OGD = os.environ.get("OGD_BIN", os.path.join(os.path.dirname(__file__), "../../build/ogd"))
BACKEND = os.environ.get("OGD_TEST_BACKEND", "embedded")

# Every test server signs tokens with one key pair made once per test session, and has an
# administrator (all ten permissions) whose access token srv.get/srv.request send.
ADMIN_USER = "ogd-test-admin"
ADMIN_PASSWORD = "ogd-test-admin-password"
_KEYS = {}


def test_keys():
    """(private, public) PEM paths of the session's JWT key pair."""
    if not _KEYS:
        d = tempfile.mkdtemp(prefix="ogd-test-keys-")
        priv, pub = os.path.join(d, "jwt_rsa"), os.path.join(d, "jwt_rsa.pub")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", priv], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _KEYS["priv"], _KEYS["pub"] = priv, pub
    return _KEYS["priv"], _KEYS["pub"]


def production_config():
    """database + echo sections of a server on the production pair (fresh names)."""
    tag = uuid.uuid4().hex[:12]
    pg = os.environ["OGD_TEST_PG_URL"].rsplit("/", 1)[0]
    return {"database": {"url": f"{pg}/ogd_http_{tag}"},
            "echo": {"url": os.environ["OGD_TEST_S3_URL"],
                     "access_key": os.environ["OGD_TEST_S3_ACCESS_KEY"],
                     "secret_key": os.environ["OGD_TEST_S3_SECRET_KEY"],
                     "bucket_name": f"ogd-http-{tag}", "create_bucket": True}}


def wait_for(what, cond, timeout=60):
    """Polls cond() until it is true: a wait for a state, not a timing assumption (the
    timeout is a guard only ever reached when the server fails to act)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_to_close(sock):
    """Everything sock receives until the peer closes (the socket's timeout applies)."""
    data = b""
    while True:
        b = sock.recv(65536)
        if not b:
            return data
        data += b


def dechunk(body):
    """A chunked body as received: (its data, whether it ended with the last chunk). A
    body cut anywhere, even inside a chunk-size line, gives what came before the cut."""
    payload, rest = b"", body
    while rest:
        line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        try:
            n = int(line.split(b";")[0], 16)
        except ValueError:
            break
        if n == 0:
            return payload, rest.startswith(b"\r\n")
        payload += rest[:n]
        if len(rest) < n + 2:
            break
        rest = rest[n + 2:]
    return payload, False


def to_yaml(cfg):
    """Writes the small nested dict we use as YAML (JSON scalars are valid YAML)."""
    lines = []
    for section, values in cfg.items():
        lines.append(f"{section}:")
        for key, value in values.items():
            lines.append(f"  {key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


class OgdServer:
    def __init__(self, data_dir, config, env=None):
        self.data_dir = data_dir
        self.port = free_port()
        cfg = {"server": {"bind": f"127.0.0.1:{self.port}", "workers": 2,
                          "data_dir": data_dir, "timeout": 30, "graceful_timeout": 10}}
        if BACKEND == "production":
            cfg.update(production_config())
        priv, pub = test_keys()
        cfg["auth"] = {"private_key_path": priv, "public_key_path": pub}
        for section, values in (config or {}).items():
            cfg.setdefault(section, {}).update(values)
        self.config_path = os.path.join(data_dir, "config.yml")
        with open(self.config_path, "w") as f:
            f.write(to_yaml(cfg))
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(data_dir, "ogd.log")
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.token = None

    def config_value(self, section, key):
        with open(self.config_path) as f:
            text = f.read()
        m = re.search(r"^%s:\n((?:  .*\n)*)" % section, text, re.M)
        kv = re.search(r"^  %s: (.*)$" % key, m.group(1), re.M) if m else None
        return json.loads(kv.group(1)) if kv else None

    def s3(self):
        """The S3 bucket of a production-pair server, or None on the embedded pair."""
        url = self.config_value("echo", "url")
        if not url or not url.startswith("http"):
            return None
        return S3(url, self.config_value("echo", "access_key"),
                  self.config_value("echo", "secret_key"), self.config_value("echo", "bucket_name"))

    def object_keys(self, prefix=""):
        """Every object key under prefix, on either back end."""
        s3 = self.s3()
        if s3:
            return s3.keys(prefix)
        root = os.path.join(self.data_dir, "objects")
        out = []
        for d, _, files in os.walk(root):
            for name in files:
                key = os.path.relpath(os.path.join(d, name), root)
                if key.startswith(prefix):
                    out.append(key)
        return sorted(out)

    def stored_channel(self, record_id, name):
        """A channel's body as the database holds it (ogd's private fields included), or
        None, read behind ogd's back on either pair."""
        url = self.config_value("database", "url")
        sql = "SELECT body FROM record_channels WHERE record_id = '%s' AND name = '%s'" % (
            record_id.replace("'", "''"), name.replace("'", "''"))
        if url:
            out = subprocess.run(["psql", "-qAt", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                                 check=True, capture_output=True, text=True).stdout.strip()
            return json.loads(out) if out else None
        import sqlite3
        db = sqlite3.connect(os.path.join(self.data_dir, "ogd.sqlite3"))
        try:
            row = db.execute(sql).fetchone()
        finally:
            db.close()
        return json.loads(row[0]) if row else None

    def put_object(self, key, body):
        """Stores an object behind ogd's back, on either back end."""
        s3 = self.s3()
        if s3:
            return s3.put(key, body)
        path = os.path.join(self.data_dir, "objects", key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(body)

    def delete_object(self, key):
        """Removes an object behind ogd's back, on either back end."""
        s3 = self.s3()
        if s3:
            return s3.delete(key)
        os.remove(os.path.join(self.data_dir, "objects", key))

    def demo(self, records=30, images=True):
        args = [OGD, "demo", "--config", self.config_path, "--records", str(records)]
        if not images:
            args.append("--no-images")
        subprocess.run(args, check=True, env=self.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=300)

    def import_fixtures(self):
        data = os.path.join(os.path.dirname(__file__), "data")
        for coll in ("records", "channels"):
            subprocess.run([OGD, "import", "--config", self.config_path, "--collection", coll,
                            os.path.join(data, coll + ".jsonl")], check=True, env=self.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def user_cli(self, *args, password=None, check=True):
        """Runs `ogd user ARGS --config ...` (password on stdin); returns the result."""
        return subprocess.run([OGD, "user", *args, "--config", self.config_path],
                              input=(password + "\n") if password is not None else "",
                              capture_output=True, text=True, env=self.env, timeout=60,
                              check=check)

    def login(self, username, password):
        """The access token of a user (POST /login)."""
        r = requests.post(self.url + "/login", json={"username": username, "password": password},
                          timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def start(self):
        # The administrator exists before the server starts (a config the test expects to
        # be refused makes this fail too; start then reports the server's own error).
        made = self.user_cli("add", ADMIN_USER, "--all-routes", password=ADMIN_PASSWORD,
                             check=False)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([OGD, "serve", "--config", self.config_path],
                                     stdout=self.log, stderr=self.log, env=self.env)
        # Ready when /healthz answers. The listening socket is open before the workers
        # are: on a loaded machine (an ASan build beside another suite) a probe may wait in
        # the backlog for seconds, so a probe that times out is simply made again; the
        # deadline is a guard for a server that never comes up, not a timing.
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ogd exited early:\n" + self.read_log())
            try:
                if requests.get(self.url + "/healthz", timeout=10).status_code == 200:
                    if made.returncode == 0:
                        self.token = self.login(ADMIN_USER, ADMIN_PASSWORD)
                    return self
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.05)
        raise RuntimeError("ogd did not start:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def worker_pids(self):
        return self.child_pids("ogd-worker")

    def jobs_pids(self):
        return self.child_pids("ogd-jobs")

    def child_pids(self, name):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid), "-x", name],
                             capture_output=True, text=True).stdout
        return sorted(int(p) for p in out.split())

    def request(self, method, path, auth=True, **kw):
        """An HTTP request to this server. It carries the administrator's bearer token
        unless auth=False or the caller's headers have their own Authorization."""
        kw.setdefault("timeout", 120)  # a guard against a hung server, not a timing
        headers = dict(kw.pop("headers", None) or {})
        if auth and self.token and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = "Bearer " + self.token
        return requests.request(method, self.url + path, headers=headers, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def metric(self, name):
        """The value of a /metrics series, summed over its labels (0 when absent)."""
        total = 0.0
        for line in self.request("GET", "/metrics", auth=False).text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def sanitizer_reports(self):
        """Sanitizer reports any process of this server wrote (ASan/UBSan/LSan builds)."""
        log = self.read_log()
        return [m for m in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")
                if m in log]

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else None


@pytest.fixture
def make_server():
    servers = []
    dirs = []

    def make(config=None, records=30, images=True, env=None):
        d = tempfile.mkdtemp(prefix="ogd-test-")
        dirs.append(d)
        s = OgdServer(d, config, env)
        if records:
            s.demo(records, images)
        try:
            s.start()
        except RuntimeError:
            s.stop()  # it exited on its own (a start-up error the test expects)
            raise
        servers.append(s)
        return s

    yield make
    for s in servers:
        rc = s.stop()
        # A sanitizer report makes the process exit non-zero: fail the test on it.
        assert rc == 0, "ogd exited with %r:\n%s" % (rc, s.read_log()[-5000:])
        assert not s.sanitizer_reports(), s.read_log()[-20000:]
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def serve(s):
    """For module- and session-scoped fixtures (`yield from serve(s)`): starts s, gives it
    to the tests, then stops it, removes its data directory and fails on a non-zero exit
    or a sanitizer report, as make_server does for its servers."""
    s.start()
    yield s
    rc = s.stop()
    reports = s.sanitizer_reports()
    log = s.read_log()
    shutil.rmtree(s.data_dir, ignore_errors=True)
    assert rc == 0, "ogd exited with %r:\n%s" % (rc, log[-5000:])
    assert not reports, log[-20000:]


@pytest.fixture(scope="session")
def fixture_server():
    """A server holding only the hand-written records of tests/api/data (examples of
    docs/api.md)."""
    s = OgdServer(tempfile.mkdtemp(prefix="ogd-test-"), None)
    s.import_fixtures()
    yield from serve(s)
