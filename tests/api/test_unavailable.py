"""Object storage that cannot be reached is never "not found" (issue: hardening, part 3).

The S3 server answering 503 on every try, stalling, or refusing connections (through
tests/tools/faultproxy.py, in front of the real Ceph RGW) must give every route 503
"Object storage unavailable, try again later" with Retry-After, while a really missing
object keeps its 404. /export answers 503 before its first byte and cuts the stream
after it (no well-formed zip claims success); EXPORT_ERRORS.txt lists only objects that
are missing. A request logs one line for its failed object calls, not one per call.
Production pair only (the embedded store's files cannot be made unreachable)."""
import io
import json
import socket
import zipfile

import pytest

from conftest import BACKEND, dechunk, read_to_close
from test_production import faultproxy  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(BACKEND != "production",
                                reason="needs the production back ends (OGD_TEST_BACKEND)")

UNAVAILABLE = {"detail": "Object storage unavailable, try again later"}
FAST = {"request_timeout": 2, "max_read_wait": 3, "max_retries": 1, "cache_maxsize": 0}


def channels_by_type(srv, rid):
    rec = srv.get("/records/" + rid).json()
    out = {}
    for name, ch in sorted(rec["channels"].items()):
        out.setdefault(ch["metadata"]["channel_dtype"], name)
    return out


def object_routes(srv, rid):
    by = channels_by_type(srv, rid)
    routes = ["/images/%s/%s" % (rid, by["image"]),
              "/images/%s/%s/crosshair?position=%%5B1,1%%5D" % (rid, by["image"]),
              "/waveforms/%s/%s" % (rid, by["waveform"])]
    if "float_image" in by:
        routes.append("/images/float/%s/%s" % (rid, by["float_image"]))
    if "vector" in by:
        routes.append("/vectors/%s/%s" % (rid, by["vector"]))
    return routes


@pytest.mark.parametrize("fault", ["status503", "stall", "reset"])
def test_every_object_route_says_unavailable(make_server, faultproxy, fault):  # noqa: F811
    srv = make_server(config={"echo": dict(FAST, url=faultproxy.url)}, records=2)
    rid = srv.get("/records?limit=1").json()[0]["_id"]
    routes = object_routes(srv, rid)
    for path in routes:  # all fine first
        assert srv.get(path).status_code == 200, path
    if fault == "status503":
        faultproxy(mode="status", code=503, count=-1)
    elif fault == "stall":
        faultproxy(mode="stall", count=-1)
    else:
        faultproxy(mode="reset", count=-1)
    for path in routes:
        r = srv.get(path, timeout=60)
        assert r.status_code == 503, (path, r.status_code, r.text)
        assert r.json() == UNAVAILABLE, path
        assert r.headers["Retry-After"] == "1"
    faultproxy(mode="pass")
    for path in routes:
        assert srv.get(path).status_code == 200, path
    # a really missing object is still 404, with the reference's text
    image = channels_by_type(srv, rid)["image"]
    key = [k for k in srv.object_keys() if k.startswith("images/") and image in k
           and rid[8:] in k.replace("/", "")][0]
    srv.delete_object(key)
    r = srv.get("/images/%s/%s" % (rid, image))
    assert r.status_code == 404
    assert "could not be found in object storage" in r.json()["detail"]


def test_functions_and_vector_thumbnails_say_unavailable(make_server, faultproxy):  # noqa: F811
    srv = make_server(config={"echo": dict(FAST, url=faultproxy.url)}, records=2)
    rid = srv.get("/records?limit=1").json()[0]["_id"]
    wave = channels_by_type(srv, rid)["waveform"]
    fn = json.dumps({"name": "f", "expression": "%s * 2" % wave})
    assert srv.get("/records", params={"functions": fn}).status_code == 200
    faultproxy(mode="status", code=503, count=-1)
    r = srv.get("/records", params={"functions": fn}, timeout=60)
    assert (r.status_code, r.json()) == (503, UNAVAILABLE)
    faultproxy(mode="pass")
    if "vector" in channels_by_type(srv, rid):
        assert srv.request("POST", "/users/preferences",
                           json={"name": "VECTOR_SKIP", "value": 1}).status_code in (200, 201)
        assert srv.get("/records/" + rid).status_code == 200
        faultproxy(mode="status", code=503, count=-1)
        r = srv.get("/records/" + rid, timeout=60)
        assert (r.status_code, r.json()) == (503, UNAVAILABLE)
        faultproxy(mode="pass")


def raw_export(srv, query):
    """GET /export on a raw socket: (status, head bytes, body bytes as received, whether the
    chunked body ended with its last chunk)."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    s.sendall(("GET /export?%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Connection: close\r\n\r\n" % (query, srv.token)).encode())
    data = read_to_close(s)
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        payload, ended = dechunk(body)
    else:
        payload, ended = body, True
    return status, head, payload, ended


def export_query(srv, channels):
    params = ["conditions=%7B%7D"] + ["projection=channels.%s" % c for c in channels]
    return "&".join(params)


def test_export_unavailable_before_the_first_byte_is_503(make_server, faultproxy):  # noqa: F811
    srv = make_server(config={"echo": dict(FAST, url=faultproxy.url)}, records=3)
    rid = srv.get("/records?limit=1").json()[0]["_id"]
    image = channels_by_type(srv, rid)["image"]
    q = export_query(srv, [image])
    status, _, payload, ended = raw_export(srv, q)
    assert status == 200 and ended
    assert zipfile.ZipFile(io.BytesIO(payload)).testzip() is None
    faultproxy(mode="status", code=503, count=-1)
    status, head, payload, _ = raw_export(srv, q)
    assert status == 503, head
    assert json.loads(payload) == UNAVAILABLE
    assert b"retry-after: 1" in head.lower()
    faultproxy(mode="pass")


def test_export_unavailable_after_the_first_byte_cuts_the_stream(make_server,
                                                                 faultproxy):  # noqa: F811
    """The last record's image stalls until the client has the answer's first bytes, then
    the store answers 503 on every try: the stream is cut (no final chunk, no readable
    zip), and the export logs one line."""
    srv = make_server(config={"echo": dict(FAST, url=faultproxy.url, max_read_wait=60,
                                           max_retries=10)},
                      records=4)
    ids = sorted(r["_id"] for r in srv.get("/records").json())
    image = channels_by_type(srv, ids[0])["image"]
    last = ids[-1]
    match = "/%s/images/%s/%s/%s/%s/" % (srv.config_value("echo", "bucket_name"), last[0:4],
                                         last[4:6], last[6:8], last[8:])
    faultproxy(mode="stall", count=-1, match=match, method="GET")
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
    s.sendall(("GET /export?%s&order=_id%%20asc HTTP/1.1\r\nHost: x\r\nAuthorization: "
               "Bearer %s\r\nConnection: close\r\n\r\n"
               % (export_query(srv, [image]), srv.token)).encode())
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < 64:
        b = s.recv(65536)
        assert b, "closed before the first bytes"
        data += b
    assert data.startswith(b"HTTP/1.1 200 ")
    # the first members are out; now the stalled object's store fails for good
    faultproxy(mode="status", code=503, count=-1, match=match, method="GET")
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    payload, ended = dechunk(data.partition(b"\r\n\r\n")[2])
    assert not ended  # no final chunk: a failed transfer
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(payload))
    faultproxy(mode="pass")
    lines = [x for x in srv.read_log().splitlines() if '"msg":"export: ' in x]
    assert len(lines) == 1 and "the stream is cut" in lines[0], lines


def test_export_errors_list_only_missing_objects(make_server, faultproxy):  # noqa: F811
    srv = make_server(config={"echo": dict(FAST, url=faultproxy.url)}, records=3)
    ids = sorted(r["_id"] for r in srv.get("/records").json())
    image = channels_by_type(srv, ids[0])["image"]
    gone = [k for k in srv.object_keys("images/") if image in k][0]
    srv.delete_object(gone)
    status, _, payload, ended = raw_export(srv, export_query(srv, [image]))
    assert status == 200 and ended
    z = zipfile.ZipFile(io.BytesIO(payload))
    errors = z.read("EXPORT_ERRORS.txt").decode().splitlines()
    assert len(errors) == 1 and errors[0].startswith("Could not find image for ")


def test_an_outage_logs_a_line_per_request_not_per_call(make_server, faultproxy):  # noqa: F811
    srv = make_server(config={"echo": dict(FAST, url=faultproxy.url)}, records=6)
    rid = srv.get("/records?limit=1").json()[0]["_id"]
    image = channels_by_type(srv, rid)["image"]
    before = len(srv.read_log().splitlines())
    faultproxy(mode="status", code=503, count=-1)
    status, _, _, _ = raw_export(srv, export_query(srv, [image]))
    assert status == 503
    faultproxy(mode="pass")
    new = srv.read_log().splitlines()[before:]
    warn = [x for x in new if '"level":"warn"' in x or '"level":"error"' in x]
    # one line for the export, and the object store's rate-limited line(s): not one per
    # failed call (6 objects x 2 tries)
    assert sum('"msg":"export: ' in x for x in warn) == 1, warn
    assert sum('"msg":"objstore: ' in x for x in warn) <= 2, warn
