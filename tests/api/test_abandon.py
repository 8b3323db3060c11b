"""Work whose client has gone stops, and one user's burst of expensive requests does not
starve the others (issue: hardening, part 1).

A test-only route, /_test/hold (compiled in test builds, answered only with
OGD_ENABLE_TEST_HOOKS), is an expensive request that runs until the test creates a file:
it makes "a request is running" or "the thread pool is busy" a state the test sets,
not a timing it hopes for. Every wait below polls for a state (a file, a log line, a
gauge), never for an amount of time."""
import json
import os
import socket
import subprocess

import pytest

from conftest import BACKEND, wait_for

HOOKS = {"OGD_ENABLE_TEST_HOOKS": "1"}


def raw_get(srv, path, token=None):
    """Sends a GET on a new connection and returns the socket, without reading."""
    sock = socket.create_connection(("127.0.0.1", srv.port))
    sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                  % (path, token or srv.token)).encode())
    return sock


def read_status(sock):
    sock.settimeout(60)
    f = sock.makefile("rb")
    line = f.readline()
    assert line, "connection closed without an answer"
    return int(line.split()[1])


def hold(srv, name, pool=False, token=None):
    return raw_get(srv, "/_test/hold?name=%s%s" % (name, "&pool=1" if pool else ""), token)


def started(srv, name):
    return os.path.exists(os.path.join(srv.data_dir, "hold-%s.started" % name))


def release(srv, name):
    open(os.path.join(srv.data_dir, "hold-%s.release" % name), "w").close()


def log_lines(srv, route):
    return [json.loads(x) for x in srv.read_log().splitlines()
            if '"route":"%s"' % route in x]


def second_user(srv, name="bob"):
    srv.user_cli("add", name, "--all-routes", password="pw-" + name)
    return srv.login(name, "pw-" + name)


def test_waiting_heavy_requests_and_other_users(make_server):
    """One user's heavy requests beyond max_heavy_per_user wait, in order, without
    starting; another user's run meanwhile; a waiting one whose client leaves is dropped
    without ever starting; the next starts when a running one ends."""
    srv = make_server(records=3, images=False, env=HOOKS,
                      config={"server": {"workers": 1, "max_heavy_per_user": 1}})
    bob = second_user(srv)
    a1 = hold(srv, "a1")
    wait_for("a1 to start", lambda: started(srv, "a1"))
    a2 = hold(srv, "a2")
    a3 = hold(srv, "a3")
    wait_for("a2 and a3 to wait", lambda: srv.metric("ogd_heavy_requests_waiting") == 2)
    assert not started(srv, "a2") and not started(srv, "a3")
    # another user is not held up by them
    r = srv.request("GET", "/records/count", headers={"Authorization": "Bearer " + bob})
    assert r.status_code == 200 and r.json() == 3
    b1 = hold(srv, "b1", token=bob)
    wait_for("b1 to start", lambda: started(srv, "b1"))
    # a2's client leaves: dropped from the queue, logged as aborted, never started
    a2.close()
    wait_for("a2 to be dropped", lambda: srv.metric("ogd_heavy_requests_waiting") == 1)
    aborted = [x for x in log_lines(srv, "/_test/hold") if x.get("aborted")]
    assert len(aborted) == 1 and aborted[0]["status"] == 499
    # a1 ends: a3 starts (a2 never does)
    release(srv, "a1")
    assert read_status(a1) == 200
    wait_for("a3 to start", lambda: started(srv, "a3"))
    assert not started(srv, "a2")
    for name, sock in (("a3", a3), ("b1", b1)):
        release(srv, name)
        assert read_status(sock) == 200
        sock.close()
    a1.close()
    assert 'ogd_http_requests_aborted_total{method="GET",route="/_test/hold"} 1' in \
        srv.get("/metrics").text


def test_queued_work_of_a_departed_client_never_runs(make_server):
    """The only pool thread is held; a records query waits for it; its client leaves:
    the queued work is dropped (the pool's backlog empties while the thread is still
    held) and the request is logged as aborted."""
    srv = make_server(records=3, images=False, env=HOOKS,
                      config={"server": {"workers": 1, "threads": 1,
                                         "max_heavy_per_user": 10}})
    p1 = hold(srv, "p1", pool=True)
    wait_for("p1 to start", lambda: started(srv, "p1"))
    q = raw_get(srv, "/records?limit=0")
    wait_for("the query to wait for the pool", lambda: srv.metric("ogd_pool_waiting") >= 1)
    q.close()
    wait_for("the query's request to end", lambda: log_lines(srv, "/records"))
    line = log_lines(srv, "/records")[0]
    assert line["status"] == 499 and line["aborted"] is True
    wait_for("the backlog to empty", lambda: srv.metric("ogd_pool_waiting") == 0)
    assert not os.path.exists(os.path.join(srv.data_dir, "hold-p1.release"))
    release(srv, "p1")
    assert read_status(p1) == 200
    p1.close()
    assert srv.get("/records/count").json() == 3


def test_pool_backlog_over_its_bound_is_503(make_server):
    """While more pool items wait than server.max_pool_waiting, a new heavy request is
    answered 503 with Retry-After at once; light requests are still served; once the
    backlog drains, the waiting requests are answered and heavy ones are admitted again."""
    srv = make_server(records=3, images=False, env=HOOKS,
                      config={"server": {"workers": 1, "threads": 1, "max_pool_waiting": 1,
                                         "max_heavy_per_user": 10}})
    p1 = hold(srv, "p1", pool=True)
    wait_for("p1 to start", lambda: started(srv, "p1"))
    # record pages are read on the pool on both pairs (SQLite: the query; PostgreSQL: the
    # conversion of its result)
    queued = [raw_get(srv, "/records?limit=1"), raw_get(srv, "/records?limit=1")]
    wait_for("two items to wait", lambda: srv.metric("ogd_pool_waiting") >= 2)
    r = srv.get("/records")
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"
    assert r.json() == {"detail": "Server busy, try again later"}
    assert srv.get("/healthz").status_code == 200
    # counted (published on the worker's next heartbeat)
    wait_for("the shed count", lambda: srv.metric("ogd_http_requests_shed_total") == 1)
    release(srv, "p1")
    assert read_status(p1) == 200
    for sock in queued:
        assert read_status(sock) == 200
        sock.close()
    p1.close()
    assert srv.get("/records").status_code == 200


@pytest.mark.skipif(BACKEND != "production", reason="needs PostgreSQL")
def test_departed_client_cancels_its_postgresql_query(make_server):
    """A records query waits in PostgreSQL behind a lock another session holds; its client
    leaves: ogd sends a cancel request, the server stops the query (no session waits for
    the lock any more, while the lock is still held), and the request is logged aborted."""
    srv = make_server(records=3, images=False)
    url = srv.config_value("database", "url")
    locker = subprocess.Popen(["psql", "-q", "-v", "ON_ERROR_STOP=1", url],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, text=True)
    locker.stdin.write("BEGIN; LOCK TABLE records IN ACCESS EXCLUSIVE MODE;\n"
                       "SELECT 'locked';\n")
    locker.stdin.flush()

    def count(sql):
        out = subprocess.run(["psql", "-qAt", url, "-c", sql], capture_output=True, text=True,
                             check=True).stdout
        return int(out.strip())

    def waiting_sessions():
        return count("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                     "AND datname = current_database()")

    try:
        wait_for("the lock", lambda: count(
            "SELECT count(*) FROM pg_locks WHERE relation = 'records'::regclass AND "
            "mode = 'AccessExclusiveLock' AND granted") == 1)
        q = raw_get(srv, "/records?limit=0")
        wait_for("the query to wait for the lock", lambda: waiting_sessions() == 1)
        q.close()
        wait_for("the query to be cancelled", lambda: waiting_sessions() == 0)
        wait_for("the request to end", lambda: log_lines(srv, "/records"))
        line = log_lines(srv, "/records")[0]
        assert line["status"] == 499 and line["aborted"] is True
        assert locker.poll() is None  # the lock is still held: the query was cancelled
    finally:
        locker.stdin.write("COMMIT;\n\\q\n")
        locker.stdin.flush()
        locker.wait(timeout=30)
    assert srv.get("/records/count").json() == 3
