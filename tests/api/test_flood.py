"""Connection floods (issue 15, part 5): a worker full of connections that never finish
their request header (slowloris) or sit idle takes new clients all the same, by dropping
the oldest such connection; one client address may hold at most
server.max_connections_per_client connections of a worker; behind a trusted proxy
(server.forwarded_allow_ips) the client is the one X-Forwarded-For names, for the caps and
for the login rate limit alike.

Loopback has the whole of 127/8, so a test picks its clients' addresses with the source
address of its sockets: 127.0.0.1 is a trusted proxy by default, 127.0.0.2 and 127.0.0.3
are ordinary clients. No test waits for an amount of time: each reads until the server has
answered or closed a connection (a state), with a timeout only as a guard."""
import json
import os
import socket

import requests

import conftest

LOOPBACK = "127.0.0.1"
CLIENT_A, CLIENT_B = "127.0.0.2", "127.0.0.3"
GUARD = 30  # seconds: only ever reached when the server fails to act


def wait_for(what, cond, timeout=GUARD):
    conftest.wait_for(what, cond, timeout)


def connect(srv, source=LOOPBACK):
    return socket.create_connection(("127.0.0.1", srv.port), timeout=GUARD,
                                    source_address=(source, 0))


def request_bytes(path="/version", headers=None, method="GET", body=b""):
    head = "%s %s HTTP/1.1\r\nHost: x\r\n" % (method, path)
    for k, v in (headers or {}).items():
        head += "%s: %s\r\n" % (k, v)
    if body:
        head += "Content-Length: %d\r\n" % len(body)
    return head.encode() + b"\r\n" + body


def read_response(sock):
    """(status, body) of one response on a keep-alive connection, or (None, data) when the
    server closed it (or reset it) instead: data is what came before the end."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None, data
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return None, data
            rest += chunk
        return status, rest
    except (ConnectionResetError, BrokenPipeError):
        return None, data


def get(sock, path="/version", headers=None):
    """A request on an open connection: its status, None if the server had closed it."""
    try:
        sock.sendall(request_bytes(path, headers))
    except (ConnectionResetError, BrokenPipeError):
        return None
    return read_response(sock)[0]


def idle_connection(srv, source=LOOPBACK, headers=None):
    """A connection that has been served one request and stays open (keep-alive)."""
    s = connect(srv, source)
    assert get(s, headers=headers) == 200
    return s


def closed_by_server(sock):
    """Waits until the server ends the connection. Returns what it answered first: None
    (nothing) or 503 (a connection dropped in the middle of its request header)."""
    status, data = read_response(sock)
    assert status in (None, 503), "expected the server to close the connection, got %r" % (
        status,)
    if status == 503:
        assert read_response(sock) == (None, b"")
    else:
        assert data == b""
    return status


def assert_dropped_busy(sock):
    """An unfinished request dropped for room is answered 503, then the connection ends."""
    status, body = read_response(sock)
    assert status == 503
    assert json.loads(body) == {"detail": "Server busy, try again later"}
    assert read_response(sock) == (None, b"")


def test_slowloris_flood_does_not_lock_new_clients_out(make_server):
    """150 connections that send part of a header and stall, against one worker of 50
    connections: every new client is still served, and the flood's connections are the
    ones closed, oldest first (before: the 51st connection on was answered 503 until
    the header timeout freed a slot)."""
    srv = make_server(config={"server": {"workers": 1, "worker_connections": 50,
                                         "header_timeout": 600, "keepalive": 600}},
                      records=0)
    flood = []
    for i in range(150):
        s = connect(srv)
        s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nX-Slow-%d: " % i)
        flood.append(s)
    # The 100 oldest have been dropped to make room (answered 503, then closed) ...
    for s in flood[:95]:  # (a few idle connections of the server's start may go first)
        closed_by_server(s)
    # ... and new clients are served, each taking the place of the oldest one left.
    statuses = []
    for _ in range(20):
        c = connect(srv)
        statuses.append(get(c))
        c.close()
    assert statuses == [200] * 20
    # Which flood connections are still open: those that answer when the header is
    # finished. They are the newest ones, and the closed ones the oldest: the flood's
    # 100 plus at most one per new client (and the few of the server's start).
    open_ = []
    for i, s in enumerate(flood):
        try:
            s.sendall(b"1\r\n\r\n")
        except (ConnectionResetError, BrokenPipeError):
            continue
        status, _ = read_response(s)
        if status == 200:
            open_.append(i)
        else:
            assert status in (None, 503), status
    assert open_ == list(range(150 - len(open_), 150)), open_
    assert 25 <= len(open_) <= 50, open_
    for s in flood:
        s.close()
    wait_for("the drops in the metrics",
             lambda: srv.metric("ogd_http_connections_dropped_total") >= 150 - len(open_))


def test_client_at_its_cap_loses_its_own_oldest_idle_connection(make_server):
    srv = make_server(config={"server": {"workers": 1, "max_connections_per_client": 3,
                                         "keepalive": 600}}, records=0)
    a = [idle_connection(srv, CLIENT_A) for _ in range(3)]
    b = [idle_connection(srv, CLIENT_B) for _ in range(3)]
    # A's fourth connection: A's oldest idle one makes room, B's are not touched.
    a4 = idle_connection(srv, CLIENT_A)
    assert closed_by_server(a[0]) is None
    for s in a[1:] + [a4] + b:
        assert get(s) == 200
    for s in a + b + [a4]:
        s.close()


def test_client_cap_drops_idle_first_then_the_oldest_unfinished(make_server):
    srv = make_server(config={"server": {"workers": 1, "max_connections_per_client": 3,
                                         "keepalive": 600, "header_timeout": 600}},
                      records=0)
    u1 = connect(srv, CLIENT_A)
    u1.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n")
    u2 = connect(srv, CLIENT_A)
    u2.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n")
    i1 = idle_connection(srv, CLIENT_A)
    # the idle one goes first, although the unfinished ones are older
    n1 = connect(srv, CLIENT_A)
    assert closed_by_server(i1) is None
    n1.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n")  # n1 is unfinished too
    # then the oldest unfinished one, told why
    n2 = connect(srv, CLIENT_A)
    assert_dropped_busy(u1)
    for s in (u2, n1):
        s.sendall(b"\r\n")
        assert read_response(s)[0] == 200
    assert get(n2) == 200
    for s in (u1, u2, i1, n1, n2):
        s.close()


def test_client_at_its_cap_with_every_connection_busy_gets_503(make_server):
    srv = make_server(config={"server": {"workers": 1, "max_connections_per_client": 2,
                                         "max_heavy_per_user": 4}},
                      records=0, env={"OGD_ENABLE_TEST_HOOKS": "1"})
    held = []
    for i in range(2):
        s = connect(srv, CLIENT_A)
        s.sendall(request_bytes("/_test/hold?name=a%d" % i,
                                {"Authorization": "Bearer " + srv.token}))
        held.append(s)
    wait_for("both requests to run", lambda: all(
        os.path.exists(os.path.join(srv.data_dir, "hold-a%d.started" % i)) for i in range(2)))
    # nothing of A's can be dropped: A's third connection is refused ...
    s = connect(srv, CLIENT_A)
    status, body = read_response(s)
    assert status == 503
    assert json.loads(body) == {"detail": "Server busy, try again later"}
    s.close()
    # ... and another client is served
    b = connect(srv, CLIENT_B)
    assert get(b) == 200
    b.close()
    for i, s in enumerate(held):
        open(os.path.join(srv.data_dir, "hold-a%d.release" % i), "w").close()
        assert read_response(s)[0] == 200
        s.close()
    wait_for("the refusal in the metrics",
             lambda: srv.metric("ogd_http_connections_refused_total") >= 1)


def test_forwarded_clients_are_counted_apart_and_only_from_a_trusted_proxy(make_server):
    srv = make_server(config={"server": {"workers": 1, "max_connections_per_client": 2,
                                         "keepalive": 600}}, records=0)
    # From a trusted proxy (127.0.0.1 by default): two clients, two connections each.
    # X-Forwarded-For is read from the right, skipping trusted proxies: "10.0.0.1,
    # 127.0.0.1" is 10.0.0.1, and "203.0.113.5, 10.0.0.2" is 10.0.0.2 (the entry the
    # proxy wrote, not the one its client made up).
    fwd1 = [{"X-Forwarded-For": "10.0.0.1"}, {"X-Forwarded-For": "10.0.0.1, 127.0.0.1"}]
    fwd2 = [{"X-Forwarded-For": "10.0.0.2"}, {"X-Forwarded-For": "203.0.113.5, 10.0.0.2"}]
    x1 = [idle_connection(srv, LOOPBACK, h) for h in fwd1]
    x2 = [idle_connection(srv, LOOPBACK, h) for h in fwd2]
    # 10.0.0.1's third connection: its own oldest one makes room, 10.0.0.2's stay
    x1.append(idle_connection(srv, LOOPBACK, fwd1[0]))
    assert closed_by_server(x1[0]) is None
    for s, h in zip(x1[1:] + x2, fwd1[1:] + fwd1[:1] + fwd2):
        assert get(s, headers=h) == 200
    # From a peer that is not trusted the header means nothing: three connections of
    # 127.0.0.2 naming three clients are three of 127.0.0.2's.
    u = [idle_connection(srv, CLIENT_A, {"X-Forwarded-For": "10.0.0.%d" % (3 + i)})
         for i in range(3)]
    assert closed_by_server(u[0]) is None
    for s in u[1:]:
        assert get(s) == 200
    for s in x1 + x2 + u:
        s.close()


def login_from(srv, source, forwarded, username, password):
    s = connect(srv, source)
    body = json.dumps({"username": username, "password": password}).encode()
    headers = {"Content-Type": "application/json", "Connection": "close"}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    s.sendall(request_bytes("/login", headers, "POST", body))
    status, _ = read_response(s)
    s.close()
    return status


def test_login_rate_limit_keys_on_the_forwarded_client(make_server):
    """The per-address limit of failed logins (50 in 5 minutes) counts the client the
    connection caps count: behind a trusted proxy the X-Forwarded-For client, not the
    proxy (before: every client of the proxy was locked out together)."""
    srv = make_server(records=0)
    srv.user_cli("add", "alice", password="alice-password")
    for i in range(50):  # 50 users, one failure each: no user is locked, the address is
        assert login_from(srv, LOOPBACK, "10.1.1.1", "nobody-%d" % i, "x") == 401
    assert login_from(srv, LOOPBACK, "10.1.1.1", "alice", "alice-password") == 429
    # another client of the same proxy is not locked out
    assert login_from(srv, LOOPBACK, "10.2.2.2", "alice", "alice-password") == 200
    # an untrusted peer naming the locked client is itself, and not locked out
    assert login_from(srv, CLIENT_A, "10.1.1.1", "alice", "alice-password") == 200
    # and a trusted proxy's own requests are not the locked client's
    r = requests.post(srv.url + "/login", json={"username": "alice",
                                                "password": "alice-password"}, timeout=30)
    assert r.status_code == 200
