"""HTTP/1.1 behaviour: routing, 404/405/307, url_prefix, CORS, keep-alive, pipelining,
chunked bodies, limits and request-smuggling rules (hostile input answered with 4xx, the
worker stays up)."""
import socket

import requests


def raw(srv, data, timeout=60, read_all=True):
    """Sends raw bytes and returns everything the server sends back until it closes (every
    exchange here ends with a close; the timeout is a guard, not a timing)."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    s.sendall(data)
    chunks = []
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
            if not read_all:
                break
    except socket.timeout:
        pass
    s.close()
    return b"".join(chunks)


def status_of(resp):
    return int(resp.split(b" ", 2)[1]) if resp else None


def test_version_healthz_readyz(fixture_server):
    assert fixture_server.get("/version").json() == {"version": "0.1.0"}
    assert fixture_server.get("/healthz").status_code == 200
    r = fixture_server.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "database": "ok", "object_store": "ok"}


def test_404_405(fixture_server):
    r = fixture_server.get("/nope")
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
    r = requests.post(fixture_server.url + "/records/count")
    assert (r.status_code, r.json()) == (405, {"detail": "Method Not Allowed"})
    assert r.headers["allow"] == "GET"
    r = requests.head(fixture_server.url + "/records")
    assert r.status_code == 405


def test_trailing_slash_redirects(fixture_server):
    r = fixture_server.get("/records/count/?conditions=%7B%7D", allow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"] == "/records/count?conditions=%7B%7D"


def test_url_prefix_both_ways(make_server):
    srv = make_server(config={"app": {"url_prefix": "/api"}}, records=0)
    assert srv.get("/api/version").status_code == 200
    assert srv.get("/version").status_code == 200
    assert srv.get("/apiversion").status_code == 404


def test_cors_default_no_credentials(fixture_server):
    h = {"Origin": "http://localhost:3000"}
    r = fixture_server.get("/version", headers=h)
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["access-control-expose-headers"] == "Content-Disposition"
    assert "access-control-allow-credentials" not in r.headers
    r = requests.options(fixture_server.url + "/records", headers={
        **h, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert r.status_code == 200 and r.text == "OK"
    assert r.headers["access-control-allow-headers"] == "authorization,content-type"
    assert "GET" in r.headers["access-control-allow-methods"]
    assert r.headers["access-control-max-age"] == "600"
    r = requests.options(fixture_server.url + "/records", headers={
        **h, "Access-Control-Request-Method": "BREW"})
    assert (r.status_code, r.text) == (400, "Disallowed CORS method")


def test_cors_configured_origin_gets_credentials(make_server):
    srv = make_server(config={"app": {"cors_origins": ["http://localhost:3000"]}}, records=0)
    r = srv.get("/version", headers={"Origin": "http://localhost:3000"})
    assert r.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert r.headers["access-control-allow-credentials"] == "true"
    assert r.headers["vary"] == "Origin"
    r = srv.get("/version", headers={"Origin": "http://evil.example"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers


def test_keep_alive_and_pipelining(fixture_server):
    req = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    resp = raw(fixture_server, req * 20 + last)
    assert resp.count(b"HTTP/1.1 200 OK") == 21
    assert resp.rstrip().endswith(b'{"status":"ok"}')


def test_chunked_request_body_accepted(fixture_server):
    resp = raw(fixture_server, b"GET /version HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                               b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert status_of(resp) == 200


def test_smuggling_shapes_are_400(fixture_server):
    cases = [
        b"POST /version HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /version HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST /version HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"GET /version HTTP/1.1\nHost: x\n\n",
        b"GET /version HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n",
        b"GET /version HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        b"BLAH\r\n\r\n",
    ]
    for c in cases:
        resp = raw(fixture_server, c)
        assert status_of(resp) == 400, (c, resp[:200])
        assert b"Connection: close" in resp
    assert fixture_server.get("/healthz").status_code == 200


def test_header_limit_431(fixture_server):
    big = b"X-Big: " + b"a" * 20000 + b"\r\n"
    resp = raw(fixture_server, b"GET /version HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    assert status_of(resp) == 431
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(150))
    resp = raw(fixture_server, b"GET /version HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status_of(resp) == 431


def test_body_limit_413(fixture_server):
    resp = raw(fixture_server, b"POST /version HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
    assert status_of(resp) == 413
    body = b"a" * 70000
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body), body) for _ in range(20)) + b"0\r\n\r\n"
    resp = raw(fixture_server, b"POST /version HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    assert status_of(resp) == 413


def test_slow_headers_get_408(make_server):
    srv = make_server(config={"server": {"header_timeout": 1}}, records=0)
    resp = raw(srv, b"GET /version HTTP/1.1\r\nHost: x\r\n")
    assert status_of(resp) == 408  # only the server's header timer answers so
    head, body = resp.split(b"\r\n\r\n", 1)
    assert b"Content-Length: %d" % len(body) in head
    assert body == b'{"detail":"Request Timeout"}'


def test_client_disconnect_mid_request_is_harmless(fixture_server):
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", fixture_server.port))
        s.sendall(b"GET /records?conditions=%7B%7D HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                  + fixture_server.token.encode() + b"\r\n\r\n")
        s.close()
    assert fixture_server.get("/records/count").json() == 6


def test_percent_decoding_of_path_params(fixture_server):
    r = fixture_server.get("/channels/CM%2D202%2DCVC%2DCAM%2D1")
    assert r.status_code == 200
