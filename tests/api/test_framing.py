"""Strict HTTP/1.1 framing, one table of raw-socket cases (issue: hardening, part 2).

Every refused case is answered 400 (or 413 where a limit is passed) with
`Connection: close`, and nothing after it on that connection is answered: bytes a lenient
parser would read as a second request (the smuggling shape) get no answer of their own.
Accepted cases are there too, so that strictness does not refuse what clients send. Each
case runs against a fresh connection of one shared server, on both back-end pairs."""
import socket

import pytest

LOGIN = b'{"username":"nobody","password":"x"}'
SECOND = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def chunked_login(chunks):
    return (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunks)


# (name, request bytes, expected status of the first answer, answers expected in total,
#  connection closed by the server after them)
CASES = [
    # --- refused ---
    ("chunk data not followed by CRLF",
     chunked_login(b"%x\r\n%s" % (len(LOGIN), LOGIN) + b"XX0\r\n\r\n") + SECOND, 400, 1, True),
    ("chunk data followed by LF only",
     chunked_login(b"%x\r\n%s" % (len(LOGIN), LOGIN) + b"\n0\r\n\r\n") + SECOND, 400, 1, True),
    ("obs-fold after an empty Transfer-Encoding",
     b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"
     + SECOND, 400, 1, True),
    ("obs-fold after an empty Content-Length",
     b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 5\r\n\r\nhello" + SECOND,
     400, 1, True),
    ("obs-fold with a tab after a value",
     b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tfolded\r\n\r\n" + SECOND, 400, 1, True),
    ("HTTP/1.1 without Host", b"GET /healthz HTTP/1.1\r\n\r\n" + SECOND, 400, 1, True),
    ("HTTP/0.9 request line", b"GET /healthz\r\n\r\n" + SECOND, 400, 1, True),
    ("space inside a header name",
     b"GET /healthz HTTP/1.1\r\nHost: x\r\nX Foo: 1\r\n\r\n" + SECOND, 400, 1, True),
    ("space before the colon",
     b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n" + SECOND, 400, 1, True),
    ("chunk size over the route's body limit",
     chunked_login(b"FFFFFFF\r\n"), 413, 1, True),
    ("chunk size that overflows", chunked_login(b"FFFFFFFFFFFFFFFFFF\r\n"), 400, 1, True),
    ("two Host headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n" + SECOND,
     400, 1, True),
    ("Content-Length and Transfer-Encoding",
     b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
     b"\r\n0\r\n\r\n" + SECOND, 400, 1, True),
    ("a bare CR in the request line", b"GET /healthz\rX HTTP/1.1\r\nHost: x\r\n\r\n", 400, 1,
     True),
    # found by fuzz_http: llhttp refuses a bare LF everywhere but in these two empty lines
    ("a bare LF ending the header section",
     b"GET /healthz HTTP/1.1\r\nHost: x\r\n\n" + SECOND, 400, 1, True),
    ("a bare LF ending the header section of a body",
     b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\n{}" + SECOND, 400, 1, True),
    ("a bare LF ending the trailer section",
     chunked_login(b"%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\n" % (len(LOGIN), LOGIN)) + SECOND,
     400, 1, True),
    ("a bare LF after the last chunk",
     chunked_login(b"%x\r\n%s\r\n0\r\n\n" % (len(LOGIN), LOGIN)) + SECOND, 400, 1, True),
    # --- accepted ---
    ("a chunked body", chunked_login(b"%x\r\n%s\r\n0\r\n\r\n" % (len(LOGIN), LOGIN)) + SECOND,
     401, 2, False),
    ("chunk extensions and a trailer",
     chunked_login(b"%x;name=value\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (len(LOGIN), LOGIN))
     + SECOND, 401, 2, False),
    ("HTTP/1.0 without Host", b"GET /healthz HTTP/1.0\r\n\r\n", 200, 1, True),
    ("an empty header value", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Empty:\r\n\r\n" + SECOND,
     200, 2, False),
    ("spaces around a header value",
     b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A:   1   \r\n\r\n" + SECOND, 200, 2, False),
]


def parse_answers(buf, heads):
    """The statuses of the complete answers at the start of buf, and the bytes after them
    (an answer cut short stays in the rest)."""
    statuses = []
    while buf.startswith(b"HTTP/1.") and b"\r\n\r\n" in buf:
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(statuses) < heads:
            length = 0
        if len(rest) < length:
            break
        statuses.append(int(head.split(b" ", 2)[1]))
        buf = rest[length:]
    return statuses, buf


def exchange(srv, data, heads=0, want=None):
    """Sends data, reads until the server closes, or (want given) until `want` complete
    answers came and then a quiet second; returns (answers, closed): each answer's
    status, in order. The first `heads` answers are to HEAD requests: they end with their
    head, whatever their Content-Length says (RFC 9110 9.3.2). The waits for answers are
    long guards (a loaded machine only makes the test slower); the quiet second after the
    expected answers is there to see an extra, smuggled answer, which would follow at
    once."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    s.sendall(data)
    buf = b""
    closed = False
    try:
        while True:
            if want is not None and len(parse_answers(buf, heads)[0]) >= want:
                s.settimeout(1)
            b = s.recv(65536)
            if not b:
                closed = True
                break
            buf += b
    except socket.timeout:
        pass
    s.close()
    statuses, rest = parse_answers(buf, heads)
    assert rest == b"", rest[:200]
    return statuses, closed


@pytest.mark.parametrize("name,data,status,answers,closed", CASES, ids=[c[0] for c in CASES])
def test_framing(fixture_server, name, data, status, answers, closed):
    got, was_closed = exchange(fixture_server, data, want=None if closed else answers)
    assert got[:1] == [status], (name, got)
    assert len(got) == answers, (name, got)
    if closed:
        assert was_closed, name
    assert fixture_server.get("/healthz").status_code == 200


def test_long_multipart_boundary_is_400_saying_so(fixture_server):
    boundary = "b" * 200
    body = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.h5\"\r\n\r\n"
            "x\r\n--%s--\r\n" % (boundary, boundary)).encode()
    r = fixture_server.request("POST", "/submit/hdf", data=body, headers={
        "Content-Type": "multipart/form-data; boundary=" + boundary})
    assert r.status_code == 400
    assert "boundary" in r.json()["detail"]
    assert "70" in r.json()["detail"]


def test_head_answers_have_no_content(fixture_server):
    """Found by fuzz_http: the router's answers to HEAD (405 for a GET route, 404) carried
    their JSON body, which a client pipelining on the connection reads as the start of
    the next answer."""
    data = (b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n" + SECOND)
    got, _ = exchange(fixture_server, data, heads=2, want=3)
    assert got == [405, 404, 200]


def test_trailer_fields_are_not_headers(fixture_server):
    """Found by fuzz_http: the fields of a chunked body's trailer section were added to the
    request's headers after the header checks, so a trailer could bring a second Host,
    or the Authorization that the header section (and any proxy checking it) lacked."""
    head = b"GET /records/count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    auth = b"Authorization: Bearer " + fixture_server.token.encode() + b"\r\n"
    got, _ = exchange(fixture_server, head + auth + b"\r\n0\r\n\r\n" + SECOND, want=2)
    assert got == [200, 200]
    got, _ = exchange(fixture_server, head + b"\r\n0\r\n" + auth + b"\r\n" + SECOND, want=2)
    assert got == [401, 200]
    got, _ = exchange(fixture_server, head + auth + b"\r\n0\r\nHost: y\r\n\r\n" + SECOND,
                      want=2)
    assert got == [200, 200]
