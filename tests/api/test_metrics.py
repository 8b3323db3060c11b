"""GET /metrics: Prometheus text for the whole server (all workers), monotonic across
worker restarts."""
import os
import signal
import time


from conftest import BACKEND


def metrics(srv):
    r = srv.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out = {}
    for line in r.text.splitlines():
        if line.startswith("#") or not line:
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def wait_for(srv, name, at_least, timeout=60):  # a guard: it returns once the value is there
    deadline = time.time() + timeout
    while True:
        m = metrics(srv)
        if m.get(name, 0) >= at_least or time.time() > deadline:
            return m
        time.sleep(0.1)


def test_requests_by_route_and_histogram(make_server):
    srv = make_server(records=3, images=False)
    for _ in range(5):
        assert srv.get("/records/count").status_code == 200
    assert srv.get("/no/such/route").status_code == 404
    m = metrics(srv)
    key = '{method="GET",route="/records/count"'
    assert m['ogd_http_requests_total%s,status="2xx"}' % key] == 5
    assert m['ogd_http_request_duration_seconds_count%s}' % key] == 5
    assert m['ogd_http_request_duration_seconds_bucket%s,le="+Inf"}' % key] == 5
    buckets = [v for k, v in m.items()
               if k.startswith("ogd_http_request_duration_seconds_bucket" + key)]
    assert buckets == sorted(buckets)  # cumulative
    assert m['ogd_http_requests_total{method="",route="unmatched",status="4xx"}'] == 1
    assert m["ogd_workers"] == 2


def test_object_store_counters(make_server):
    srv = make_server(records=3, images=True)
    assert srv.get("/readyz").status_code == 200
    m = wait_for(srv, "ogd_objstore_gets_total", 1)
    assert m["ogd_objstore_gets_total"] >= 1
    assert srv.request("DELETE", "/records/20230605080000").status_code == 204
    m = wait_for(srv, "ogd_objstore_deletes_total", 4)
    assert m["ogd_objstore_deletes_total"] >= 4  # one per key prefix of the record
    if BACKEND == "production":
        assert m["ogd_s3_connections_max"] == 2 * 128
        assert m["ogd_s3_calls_total"] >= 1
    else:
        assert m["ogd_s3_connections_max"] == 0
        assert m["ogd_s3_calls_total"] == 0


def test_totals_survive_a_worker_restart(make_server):
    srv = make_server(records=2, images=False)
    for _ in range(4):
        srv.get("/records/count")
    before = metrics(srv)['ogd_http_requests_total{method="GET",route="/records/count",status="2xx"}']
    assert before == 4
    victim = srv.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline:
        pids = srv.worker_pids()
        if len(pids) == 2 and victim not in pids:
            break
        time.sleep(0.1)
    m = metrics(srv)
    assert m['ogd_http_requests_total{method="GET",route="/records/count",status="2xx"}'] == 4
    assert m["ogd_workers"] == 2
