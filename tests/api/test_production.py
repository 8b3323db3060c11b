"""Failures of the production back ends seen through the HTTP API: the S3 server answering
5xx, stalling or refusing the credentials (through tests/tools/faultproxy.py), and
PostgreSQL restarting under a stream of requests. Run on the production pair only."""
import os
import subprocess
import threading
import time

import pytest
import requests

from conftest import BACKEND, wait_for

pytestmark = pytest.mark.skipif(BACKEND != "production",
                                reason="needs the production back ends (OGD_TEST_BACKEND)")

FAULTPROXY = os.path.join(os.path.dirname(__file__), "..", "tools", "faultproxy.py")


@pytest.fixture
def faultproxy():
    up = os.environ["OGD_TEST_S3_URL"].split("://", 1)[1]
    p = subprocess.Popen(["/usr/bin/python3", FAULTPROXY, "--upstream", up],
                         stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline().split()[1])
    url = f"http://127.0.0.1:{port}"

    def arm(**q):
        requests.post(url + "/__fault__", params=q, timeout=5).raise_for_status()

    arm.url = url
    yield arm
    p.terminate()
    p.wait()


def test_s3_unavailable_readyz_and_recovery(make_server, faultproxy):
    srv = make_server(config={"echo": {"url": faultproxy.url, "max_retries": 2}}, records=3)
    assert srv.get("/readyz").status_code == 200
    faultproxy(mode="status", code=503, count=-1)
    r = srv.get("/readyz")
    assert r.status_code == 503
    # a short outage is ridden out by the retries
    faultproxy(mode="status", code=503, count=2)
    assert srv.get("/readyz").status_code == 200
    faultproxy(mode="pass")
    assert srv.get("/readyz").status_code == 200
    assert srv.get("/records/count").json() == 3


def test_s3_error_on_delete_names_the_code(make_server, faultproxy):
    srv = make_server(config={"echo": {"url": faultproxy.url, "max_retries": 1}}, records=3)
    rid = "20230605080000"
    assert srv.object_keys("images/2023/06/05/080000/")
    # a store that answers 500 on every try cannot be reached: 503 (the reference: 500),
    # in the reference's words with the store's code
    faultproxy(mode="status", code=500, count=-1)
    r = srv.request("DELETE", "/records/" + rid, timeout=30)
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"
    detail = r.json()["detail"]
    assert detail.startswith("ServiceUnavailable when deleting directory '")
    # a refusal that is not an outage keeps the reference's 500 and names its code
    faultproxy(mode="status", code=403, count=-1)
    r = srv.request("DELETE", "/records/" + rid, timeout=30)
    assert r.status_code == 500
    assert r.json()["detail"].startswith("AccessDenied when deleting directory '")
    faultproxy(mode="pass")
    # the worker is fine and the objects are still there to retry the delete
    assert srv.object_keys("images/2023/06/05/080000/")
    assert srv.request("DELETE", "/records/" + rid, timeout=30).status_code == 204
    assert srv.object_keys("images/2023/06/05/080000/") == []


def test_s3_stall_hits_the_deadline(make_server, faultproxy):
    srv = make_server(config={"echo": {"url": faultproxy.url, "request_timeout": 2,
                                       "max_retries": 0}}, records=0)
    faultproxy(mode="stall", count=-1)
    t0 = time.time()
    assert srv.get("/readyz").status_code == 503
    assert time.time() - t0 < 10
    faultproxy(mode="pass")
    assert srv.get("/readyz").status_code == 200


def test_wrong_secret_fails_start_up_clearly(make_server):
    with pytest.raises(RuntimeError) as e:
        make_server(config={"echo": {"secret_key": "definitely-wrong-secret"}}, records=0)
    log = str(e.value)
    assert "access to bucket" in log and "check echo.access_key and echo.secret_key" in log
    assert "definitely-wrong-secret" not in log


def test_missing_bucket_fails_start_up(make_server):
    with pytest.raises(RuntimeError) as e:
        make_server(config={"echo": {"bucket_name": "ogd-no-such-bucket", "create_bucket": False}},
                    records=0)
    assert "Bucket for object storage cannot be found" in str(e.value)


def test_postgresql_restart_during_requests(make_server):
    data = os.environ.get("OGD_TEST_PG_DATA")
    if not data:
        pytest.skip("OGD_TEST_PG_DATA not set")
    srv = make_server(records=5, images=False)
    workers = srv.worker_pids()
    statuses = []
    stop = threading.Event()

    def stream():
        s = requests.Session()
        s.headers["Authorization"] = "Bearer " + srv.token
        while not stop.is_set():
            try:
                statuses.append(s.get(srv.url + "/records/count", timeout=10).status_code)
            except requests.RequestException as e:  # the service must keep answering
                statuses.append(repr(e))
            time.sleep(0.01)

    t = threading.Thread(target=stream)
    t.start()
    time.sleep(0.5)
    subprocess.run(["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl",
                    "-D", data, "-m", "fast", "-w", "restart"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 15
    recovered = False
    while time.time() < deadline:
        time.sleep(0.2)
        if statuses and statuses[-1] == 200:
            recovered = True
            break
    time.sleep(0.3)
    stop.set()
    t.join()
    assert recovered, statuses[-20:]
    # only clean answers: 200, or 503 while the database was away; never a 500 or a drop
    assert set(statuses) <= {200, 503}, [s for s in statuses if s not in (200, 503)][:5]
    assert srv.worker_pids() == workers  # nobody crashed
    assert srv.get("/records/count").json() == 5
    # the lost connections reconnect on their own (after a 100 ms backoff): the request
    # above may have been served by a pool connection opened afresh before they did, so
    # their "connected again" is waited for, not expected at once
    wait_for("the lost connections to reconnect",
             lambda: "database: connected again" in srv.read_log())
    log = srv.read_log()
    assert "database: connection" in log, log[-6000:]


@pytest.fixture
def two_nodes():
    """Two nodes (own data directories and ports) on one database and one bucket: the
    second is started by the test (start_second), after anything it wants of the first."""
    import shutil
    import tempfile
    from conftest import OgdServer
    dirs = [tempfile.mkdtemp(prefix="ogd-test-"), tempfile.mkdtemp(prefix="ogd-test-")]
    nodes = [OgdServer(dirs[0], None)]

    def start_second():
        first = nodes[0]
        shared = {"database": {"url": first.config_value("database", "url")},
                  "echo": {"bucket_name": first.config_value("echo", "bucket_name")}}
        nodes.append(OgdServer(dirs[1], shared))
        nodes[1].start()
        return nodes[1]

    nodes[0].start()
    try:
        yield nodes[0], start_second
    finally:
        for n in nodes:
            n.stop()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def test_one_node_runs_the_cluster_jobs_and_another_takes_over(two_nodes):
    # One jobs process holds the cluster's lease, the other stands by; when the holder's
    # whole node is killed (-9: no clean-up), the other takes the lease. Waits are for log
    # lines, not for a time.
    import signal
    b, start_second = two_nodes
    wait_for("b's jobs to hold the lease",
             lambda: "this node runs the cluster's jobs" in b.read_log())
    a = start_second()
    wait_for("a's jobs to stand by",
             lambda: "another node runs the cluster's jobs; standing by" in a.read_log())
    assert "this node runs the cluster's jobs" not in a.read_log()
    # b's node dies at once, workers and jobs process included
    for pid in [b.proc.pid] + b.worker_pids() + b.jobs_pids():
        os.kill(pid, signal.SIGKILL)
    b.stop()
    wait_for("a to take the lease", lambda: "this node runs the cluster's jobs" in a.read_log())
    assert a.get("/readyz", auth=False).status_code == 200  # and it serves as before
    assert a.stop() == 0, a.read_log()[-5000:]
    assert not a.sanitizer_reports(), a.read_log()[-20000:]


def test_a_refresh_token_rotated_on_one_node_is_refused_on_another(two_nodes):
    # Rotation is recorded in the user's document, so it holds across nodes: the token
    # already used on a is a replay on b, and the replay revokes the session everywhere.
    first, start_second = two_nodes
    first.user_cli("add", "rotor", password="pw-rotor")
    second = start_second()

    def refresh(srv, access, cookie):
        return requests.post(srv.url + "/refresh", json={"token": access},
                             headers={"Cookie": "refresh_token=" + cookie}, timeout=30)

    r = requests.post(first.url + "/login", json={"username": "rotor", "password": "pw-rotor"},
                      timeout=30)
    assert r.status_code == 200
    access, old = r.json(), r.cookies["refresh_token"]
    n = refresh(first, access, old)
    assert n.status_code == 200
    new = n.cookies["refresh_token"]
    replay = refresh(second, access, old)
    assert (replay.status_code, replay.json()) == (403, {"detail": "Token is blacklisted"})
    after = refresh(first, n.json(), new)
    assert (after.status_code, after.json()) == (403, {"detail": "Token is blacklisted"})
