"""GET /export (docs/api.md §5.16, docs/export.md): the CSV byte for byte, the zip's members,
names and order, EXPORT_ERRORS.txt, the size check, backpressure and a client that goes away.

The records are ingested from HDF5 files shaped like the reference's export test data
(five hourly shots with FE-204-PSO-EM, an image and a waveform; a shot with a float image
and two vectors; a sparse shot), plus one record imported without `object_size` (as
records ingested before sizes were recorded), whose size the export finds with HEAD.
"""
import io
import json
import os
import socket
import struct
import subprocess
import tempfile
import time
import zipfile
import zlib

import numpy as np
import pytest

import hdfgen
from conftest import OGD, OgdServer, wait_for

CAM = "FE-204-PSO-CAM-1"
WF = "FE-204-PSO-P1-SP"
EM = "FE-204-PSO-EM"
FLOAT = "FE-204-NSS-WFS"
VEC = "FE-204-NSS-WFS-COEF"
LVEC = "FE-204-LT-WFS-COEF"
HOURS = ["20230605080000", "20230605090000", "20230605100000", "20230605110000",
         "20230605120000"]
EM_VALUES = [0.00010594708035376446, 9.375810612751191e-05, 9.462430835085363e-05,
             9.875110257767279e-05, 0.00010982626424599755]
SPARSE = "20230605070600"
WFS = "20230607080300"
LEGACY = "20230608090000"
FIVE = {"metadata.timestamp": {"$gte": "2023-06-05T08:00:00", "$lte": "2023-06-05T12:00:00"}}
TOO_MUCH = ("Too much data requested. Reduce either the number of records or channels "
            "requested, or both.")

MANIFEST = {"channels": {
    EM: {"name": "EM", "path": "/t", "type": "scalar"},
    CAM: {"name": "cam", "path": "/t", "type": "image"},
    WF: {"name": "sp", "path": "/t", "type": "waveform"},
    FLOAT: {"name": "wfs", "path": "/t", "type": "float_image"},
    VEC: {"name": "coef", "path": "/t", "type": "vector"},
    LVEC: {"name": "lcoef", "path": "/t", "type": "vector"},
}}


def image(seed, w=64, h=48):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4096, size=(h, w), dtype=np.uint16)


def waveform(seed):
    x = np.arange(645.0, 645.0 + 50)
    y = np.random.default_rng(seed).random(50) * 2000.0
    return x, y


def no_defaults():
    return {k: None for k in hdfgen.default_channels()}


def post_file(srv, path, data):
    r = srv.request("POST", path, files={"file": ("f.bin", data)})
    assert r.status_code in (200, 201), r.text
    return r


def ingest(srv, ts, channels, shotnum=None):
    fd, p = tempfile.mkstemp(suffix=".h5")
    os.close(fd)
    attrs = {"timestamp": ts + "+00:00", "epac_ops_data_version": "1.0"}
    drop = ()
    if shotnum is None:
        drop = ("shotnum",)
    else:
        attrs["shotnum"] = np.uint64(shotnum)
    chans = no_defaults()
    chans.update(channels)
    hdfgen.make_file(p, attrs=attrs, channels=chans, drop_attrs=drop)
    with open(p, "rb") as f:
        data = f.read()
    os.remove(p)
    post_file(srv, "/submit/hdf", data)


def fill(srv):
    post_file(srv, "/submit/manifest", json.dumps(MANIFEST).encode())
    for i, rid in enumerate(HOURS):
        x, y = waveform(i)
        ingest(srv, "2023-06-05T%s:00:00" % rid[8:10], {
            EM: {"dtype": "scalar", "data": EM_VALUES[i]},
            CAM: {"dtype": "image", "data": image(i), "attrs": {"bit_depth": 12}},
            WF: {"dtype": "waveform", "x": x, "y": y, "attrs": {"x_units": "ns"}},
        }, shotnum=423648000000 + 36000 * i)
    ingest(srv, "2023-06-07T08:03:00", {
        FLOAT: {"dtype": "float_image", "data": np.linspace(-1, 1, 50 * 68).reshape(50, 68)},
        VEC: {"dtype": "vector", "data": np.linspace(-3, 3, 50)},
        LVEC: {"dtype": "vector", "data": np.linspace(-2, 2, 20),
               "attrs": {"labels": hdfgen.ZERNIKE}},
    }, shotnum=423649000000)
    ingest(srv, "2023-06-05T07:06:00", {CAM: {"dtype": "image", "data": image(9),
                                              "attrs": {"bit_depth": 12}}})


def import_legacy(srv):
    """A record without object_size (imported), its PNG put behind ogd's back."""
    png = srv.get(f"/images/{HOURS[0]}/{CAM}", params={"original_image": "true"}).content
    doc = {"_id": LEGACY, "metadata": {"epac_ops_data_version": "1.0", "shotnum": 1,
                                       "timestamp": {"$date": "2023-06-08T09:00:00Z"}},
           "channels": {CAM: {"metadata": {"channel_dtype": "image", "bit_depth": 12},
                              "image_path": "2023/06/08/090000/%s.png" % CAM}}}
    path = os.path.join(srv.data_dir, "legacy.jsonl")
    with open(path, "w") as f:
        f.write(json.dumps(doc) + "\n")
    subprocess.run([OGD, "import", "--config", srv.config_path, "--collection", "records", path],
                   check=True, env=srv.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)
    srv.put_object("images/2023/06/08/090000/%s.png" % CAM, png)
    return png


@pytest.fixture(scope="module")
def srv():
    d = tempfile.mkdtemp(prefix="ogd-test-")
    s = OgdServer(d, None)
    s.start()
    fill(s)
    s.legacy_png = import_legacy(s)
    yield s
    rc = s.stop()
    assert rc == 0
    assert not s.sanitizer_reports(), s.read_log()[-20000:]


def export(srv, projection, **params):
    params = dict(params)
    params["projection"] = projection
    for k, v in list(params.items()):
        if isinstance(v, dict):
            params[k] = json.dumps(v)
        elif isinstance(v, bool):
            params[k] = "true" if v else "false"
    return srv.get("/export", params=params)


def filename(r):
    cd = r.headers["content-disposition"]
    assert cd.startswith('attachment; filename="') and cd.endswith('"'), cd
    return cd[len('attachment; filename="'):-1]


def members(r):
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert z.testzip() is None
    return z


# ---- the main CSV, byte for byte (docs/export.md §4, §8) ----

EXPECTED = ('"shotnum","timestamp","epac_ops_data_version","FE-204-PSO-EM",\n'
            '423648000000,2023-06-05 08:00:00,"1.0",0.00010594708035376446,\n'
            '423648036000,2023-06-05 09:00:00,"1.0",9.375810612751191e-05,\n'
            '423648072000,2023-06-05 10:00:00,"1.0",9.462430835085363e-05,\n'
            '423648108000,2023-06-05 11:00:00,"1.0",9.875110257767279e-05,\n'
            '423648144000,2023-06-05 12:00:00,"1.0",0.00010982626424599755,\n')
META = ["metadata.shotnum", "metadata.timestamp", "metadata.epac_ops_data_version"]


def test_scalar_csv_is_byte_exact(srv):
    r = export(srv, META + ["channels." + EM], conditions=FIVE)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert filename(r) == "20230605080000_to_20230605120000.csv"
    assert r.content.decode() == EXPECTED


def test_id_column_first(srv):
    r = export(srv, ["_id"] + META + ["channels." + EM], conditions=FIVE)
    lines = r.content.decode().split("\n")
    assert lines[0] == '"ID","shotnum","timestamp","epac_ops_data_version","FE-204-PSO-EM",'
    assert lines[1] == '"20230605080000",423648000000,2023-06-05 08:00:00,"1.0",0.00010594708035376446,'


def test_only_id_and_single_projection_names(srv):
    r = export(srv, ["_id"], conditions=FIVE)
    assert filename(r) == "20230605080000_to_20230605120000_ID.csv"
    assert r.content.decode() == '"ID",\n' + "".join('"%s",\n' % i for i in HOURS)
    r = export(srv, ["channels." + EM], conditions=FIVE)
    assert filename(r) == "20230605080000_to_20230605120000_FE-204-PSO-EM.csv"
    assert r.content.decode().split("\n")[1] == "0.00010594708035376446,"


def test_skip_limit_and_descending_order(srv):
    r = export(srv, META + ["channels." + EM], conditions=FIVE, skip=1, limit=2,
               order="metadata.shotnum desc")
    assert filename(r) == "20230605100000_to_20230605110000.csv"
    lines = r.content.decode().split("\n")
    assert lines[1].startswith("423648108000,2023-06-05 11:00:00,")
    assert lines[2].startswith("423648072000,2023-06-05 10:00:00,")


def test_sparse_rows_have_empty_cells(srv):
    r = export(srv, META + ["channels." + EM],
               conditions={"metadata.timestamp": {"$lte": "2023-06-05T08:00:00"}})
    assert r.content.decode().split("\n")[1:3] == [
        ',2023-06-05 07:06:00,"1.0",,',
        '423648000000,2023-06-05 08:00:00,"1.0",0.00010594708035376446,']


def test_unknown_metadata_key_and_other_first_part(srv):
    r = export(srv, ["metadata.shotnum", "metadata.nope", "other.thing"],
               conditions={"_id": HOURS[0]})
    # a known key, an unknown key (empty cell) and a header-only column
    assert r.content.decode() == '"shotnum","nope","thing",\n423648000000,,\n'


def test_single_record_name(srv):
    r = export(srv, ["_id", "channels." + EM], conditions={"_id": HOURS[2]})
    assert filename(r) == "20230605100000.csv"


# ---- errors (docs/export.md §2-§3) ----

@pytest.mark.parametrize("params,status,detail", [
    ({}, 400, "No channels specified to export"),
    ({"projection": ["metadata"], "conditions": json.dumps({"_id": "nothing"})}, 400,
     "No records found to export"),
    ({"projection": ["metadata"]}, 400, "Projection 'metadata' did not include a second term"),
    ({"projection": ["channels.NOPE"]}, 400,
     "'NOPE' is not a recognised channel or function name"),
    ({"projection": ["channels." + EM], "export_scalars": "false"}, 400, "Nothing to export"),
])
def test_errors(srv, params, status, detail):
    r = srv.get("/export", params=params)
    assert r.status_code == status, r.text
    assert r.json() == {"detail": detail}


def test_bad_parameter_types_are_422(srv):
    for k, v in (("lower_level", "x"), ("upper_level", "70000"), ("limit_bit_depth", "17"),
                 ("export_images", "maybe"), ("skip", "z")):
        r = srv.get("/export", params={"projection": ["_id"], k: v})
        assert r.status_code == 422, (k, r.text)
    r = srv.get("/export", params={"projection": ["_id"], "conditions": "{bad"})
    assert r.status_code in (400, 422)


def test_export_needs_a_token(srv):
    r = srv.request("GET", "/export", auth=False, params={"projection": ["_id"]})
    assert r.status_code == 401


# ---- the zip (docs/export.md §5-§9) ----

def test_images_zip_members_order_and_bytes(srv):
    r = export(srv, META + ["channels." + EM, "channels." + CAM], conditions=FIVE)
    assert r.headers.get("transfer-encoding") == "chunked"
    assert filename(r) == "20230605080000_to_20230605120000.zip"
    z = members(r)
    names = z.namelist()
    assert names == ["%s_%s.png" % (i, CAM) for i in HOURS] + [
        "20230605080000_to_20230605120000.csv"]
    for i in HOURS:
        stored = srv.get(f"/images/{i}/{CAM}", params={"original_image": "true"}).content
        assert z.read("%s_%s.png" % (i, CAM)) == stored
        assert z.getinfo("%s_%s.png" % (i, CAM)).compress_type == zipfile.ZIP_STORED
    assert z.read(names[-1]).decode() == EXPECTED
    assert z.getinfo(names[-1]).compress_type == zipfile.ZIP_DEFLATED
    assert (z.getinfo(names[0]).external_attr >> 16) & 0o777 == 0o600


def test_zip_opens_in_other_readers(srv, tmp_path):
    r = export(srv, ["channels." + CAM, "channels." + WF], conditions=FIVE)
    p = tmp_path / "e.zip"
    p.write_bytes(r.content)
    assert subprocess.run(["unzip", "-tqq", str(p)], stdout=subprocess.DEVNULL).returncode == 0
    assert subprocess.run(["7z", "t", str(p)], stdout=subprocess.DEVNULL).returncode == 0


def test_false_colour_images_match_the_image_endpoint(srv):
    r = export(srv, ["channels." + CAM], conditions={"_id": HOURS[1]}, colourmap_name="jet",
               lower_level=10, upper_level=200)
    z = members(r)
    assert filename(r) == "20230605090000_FE-204-PSO-CAM-1.zip"
    png = z.read("%s_%s.png" % (HOURS[1], CAM))
    ref = srv.get(f"/images/{HOURS[1]}/{CAM}", params={"colourmap_name": "jet",
                                                       "lower_level": 10, "upper_level": 200})
    assert png == ref.content
    # any non-default level alone also colours (with viridis)
    z = members(export(srv, ["channels." + CAM], conditions={"_id": HOURS[1]}, upper_level=100))
    png = z.read("%s_%s.png" % (HOURS[1], CAM))
    ref = srv.get(f"/images/{HOURS[1]}/{CAM}", params={"upper_level": 100,
                                                       "colourmap_name": "viridis"})
    assert png == ref.content


def test_waveform_csv_and_png(srv):
    r = export(srv, ["channels." + EM, "channels." + WF], conditions=FIVE,
               export_waveform_images=True)
    z = members(r)
    names = z.namelist()
    want = []
    for i in HOURS:
        want += ["%s_%s.csv" % (i, WF), "%s_%s.png" % (i, WF)]
    assert names == want + ["20230605080000_to_20230605120000.csv"]
    x, y = waveform(0)
    assert z.read("%s_%s.csv" % (HOURS[0], WF)).decode() == "".join(
        "%r,%r\n" % (float(a), float(b)) for a, b in zip(x, y))
    png = z.read("%s_%s.png" % (HOURS[0], WF))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # an 8 x 6 in figure at 130 dpi cropped to what was drawn (a tight bounding box)
    w, h = struct.unpack(">II", png[16:24])
    assert 700 <= w <= 1040 and 500 <= h <= 780, (w, h)


def test_flags_turn_members_off(srv):
    z = members(export(srv, ["channels." + EM, "channels." + CAM, "channels." + WF],
                       conditions=FIVE, export_images=False))
    assert not any(n.endswith(".png") for n in z.namelist())
    z = members(export(srv, ["channels." + EM, "channels." + CAM], conditions=FIVE,
                       export_scalars=False))
    assert z.namelist() == ["%s_%s.png" % (i, CAM) for i in HOURS]
    r = export(srv, ["channels." + EM, "channels." + WF], conditions=FIVE,
               export_waveform_csvs=False)
    # no waveform files at all: the CSV alone answers
    assert r.headers["content-type"] == "text/plain; charset=utf-8"


def test_float_image_and_vectors(srv):
    r = export(srv, META + ["channels." + FLOAT, "channels." + VEC], conditions={"_id": WFS},
               export_vector_images=True)
    z = members(r)
    assert z.namelist() == ["%s_%s.npz" % (WFS, FLOAT), "%s_%s.csv" % (WFS, VEC),
                            "%s_%s.png" % (WFS, VEC), "%s.csv" % WFS]
    a = np.load(io.BytesIO(z.read("%s_%s.npz" % (WFS, FLOAT))))["arr_0"]
    assert a.shape == (50, 68)
    lines = z.read("%s_%s.csv" % (WFS, VEC)).decode().split("\n")
    assert len(lines) == 51 and lines[-1] == ""
    assert lines[0] == repr(float(np.linspace(-3, 3, 50)[0]))


def test_labelled_vector_without_float_images(srv):
    r = export(srv, META + ["channels." + FLOAT, "channels." + LVEC], conditions={"_id": WFS},
               export_float_images=False, export_vector_images=True)
    z = members(r)
    assert z.namelist() == ["%s_%s.csv" % (WFS, LVEC), "%s_%s.png" % (WFS, LVEC),
                            "%s.csv" % WFS]
    text = z.read("%s_%s.csv" % (WFS, LVEC)).decode()
    assert text == "".join("%s,%r\n" % (l, float(v))
                           for l, v in zip(hdfgen.ZERNIKE, np.linspace(-2, 2, 20)))
    assert z.read("%s.csv" % WFS).decode().split("\n")[0] == (
        '"shotnum","timestamp","epac_ops_data_version",')


def test_bad_colour_map_becomes_error_lines(srv):
    r = export(srv, ["channels." + EM, "channels." + CAM], conditions=FIVE,
               colourmap_name="not-a-map")
    z = members(r)
    assert z.namelist() == ["EXPORT_ERRORS.txt"]  # every file failed: the CSV is lost too
    assert z.read("EXPORT_ERRORS.txt").decode() == "".join(
        "Could not find image for %s %s\n" % (i, CAM) for i in HOURS)


def test_record_without_recorded_size_is_sized_and_exported(srv):
    r = export(srv, ["channels." + CAM], conditions={"_id": LEGACY})
    z = members(r)
    assert z.read("%s_%s.png" % (LEGACY, CAM)) == srv.legacy_png


def test_cors_exposes_the_file_name(srv):
    r = srv.get("/export", params={"projection": ["_id"], "conditions": json.dumps(FIVE)},
                headers={"Origin": "http://example.org"})
    assert "content-disposition" in r.headers.get("access-control-expose-headers", "").lower()


# ---- failures, limits, slow and vanishing clients (private servers) ----

def cam_key(rid):
    return "images/%s/%s/%s/%s/%s.png" % (rid[:4], rid[4:6], rid[6:8], rid[8:], CAM)


@pytest.fixture
def own(make_server):
    def make(config=None):
        s = make_server(config=config, records=0)
        fill(s)
        return s
    return make


def test_missing_objects_become_error_lines(own):
    s = own({"echo": {"cache_maxsize": 0}})  # objects vanish behind the cache's back
    s.delete_object(cam_key(HOURS[1]))
    s.delete_object("waveforms/2023/06/05/110000/%s.json" % WF)
    r = export(s, ["channels." + EM, "channels." + CAM, "channels." + WF], conditions=FIVE)
    z = members(r)
    names = z.namelist()
    assert "%s_%s.png" % (HOURS[1], CAM) not in names
    assert "%s_%s.csv" % (HOURS[3], WF) not in names
    assert "%s_%s.png" % (HOURS[0], CAM) in names
    assert names[-2:] == ["20230605080000_to_20230605120000.csv", "EXPORT_ERRORS.txt"]
    assert z.read("EXPORT_ERRORS.txt").decode() == (
        "Could not find image for %s %s\n" % (HOURS[1], CAM)
        + "Could not find waveform for %s %s\n" % (HOURS[3], WF))
    # every image gone: a zip of EXPORT_ERRORS.txt only (the reference's quirk)
    for i in HOURS:
        if i != HOURS[1]:
            s.delete_object(cam_key(i))
    z = members(export(s, ["channels." + EM, "channels." + CAM], conditions=FIVE))
    assert z.namelist() == ["EXPORT_ERRORS.txt"]


def test_size_limit_is_checked_before_the_first_byte(own):
    s = own({"export": {"max_filesize_bytes": 20000}})
    r = export(s, ["channels." + EM, "channels." + CAM], conditions=FIVE)
    assert r.status_code == 400
    assert r.json() == {"detail": TOO_MUCH}
    # scalars alone still fit
    assert export(s, ["channels." + EM], conditions=FIVE).status_code == 200


def raw_export(srv, query, rcvbuf=None):
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", srv.port))
    sock.sendall(("GET /export?%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                  % (query, srv.token)).encode())
    return sock


def big_images(srv, n, manifest=True):
    rng = np.random.default_rng(7)
    if manifest:  # a second manifest in the same second is refused (its id is the time)
        post_file(srv, "/submit/manifest", json.dumps(MANIFEST).encode())
    for i in range(n):
        ingest(srv, "2023-07-01T00:%02d:%02d" % (i // 60, i % 60), {
            CAM: {"dtype": "image", "data": rng.integers(0, 65535, size=(400, 400),
                                                         dtype=np.uint16)}})


def dechunk(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    out = b""
    while True:
        line, _, body = body.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            return head, out
        out += body[:n]
        body = body[n + 2:]


def test_slow_reader_pauses_the_fetching(make_server):
    s = make_server(config={"export": {"max_buffer_bytes": 65536, "max_concurrency": 8},
                            "echo": {"cache_maxsize": 0}, "server": {"workers": 1}},
                    records=0)
    n = 40
    big_images(s, n)  # ~320 KB each
    before = s.metric("ogd_objstore_gets_total")
    import urllib.parse
    q = urllib.parse.urlencode({"projection": "channels." + CAM})
    sock = raw_export(s, q, rcvbuf=16384)
    time.sleep(1.5)  # the client reads nothing: the server must stop fetching
    stalled = s.metric("ogd_objstore_gets_total") - before
    assert stalled < n / 2, stalled
    raw = b""
    while True:
        b = sock.recv(1 << 20)
        if not b:
            break
        raw += b
        if raw.endswith(b"\r\n0\r\n\r\n"):
            break
    sock.close()
    head, body = dechunk(raw)
    assert b" 200 " in head.split(b"\r\n")[0]
    z = zipfile.ZipFile(io.BytesIO(body))
    assert z.testzip() is None
    assert len(z.namelist()) == n
    assert s.metric("ogd_objstore_gets_total") - before >= n


def test_client_going_away_cancels_and_the_worker_stays(make_server):
    s = make_server(config={"export": {"max_buffer_bytes": 65536, "max_concurrency": 4},
                            "echo": {"cache_maxsize": 0}, "server": {"workers": 1}},
                    records=0)
    big_images(s, 30)
    pids = s.worker_pids()
    import urllib.parse
    q = urllib.parse.urlencode({"projection": "channels." + CAM})
    sock = raw_export(s, q, rcvbuf=16384)
    sock.recv(4096)
    sock.close()
    wait_for("the export's reads to be cancelled", lambda: s.metric("ogd_objstore_in_flight") == 0)
    assert s.worker_pids() == pids
    r = export(s, ["channels." + CAM])
    assert len(members(r).namelist()) == 30


def test_export_does_not_fill_the_object_cache(own):
    s = own({"server": {"workers": 1}})
    gets = s.metric("ogd_objstore_gets_total")
    members(export(s, ["channels." + CAM], conditions=FIVE))
    # the worker publishes its counters on a heartbeat: once its reads are counted, the
    # same publication carries the cache's size
    wait_for("the export's reads in /metrics", lambda: s.metric("ogd_objstore_gets_total") >= gets + 5)
    assert s.metric("ogd_objstore_cache_entries") == 0
    s.get(f"/images/{HOURS[0]}/{CAM}", params={"original_image": "true"})
    wait_for("the image in the cache", lambda: s.metric("ogd_objstore_cache_entries") == 1)


# ---- functions (docs/export.md §9, §11) ----

def fns(*pairs):
    return [json.dumps({"name": n, "expression": e}) for n, e in pairs]


def test_function_scalar_column(srv):
    r = export(srv, META + ["channels.scalar"], conditions=FIVE,
               functions=fns(("scalar", EM + " + 1")))
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    lines = r.content.decode().split("\n")
    assert lines[0] == '"shotnum","timestamp","epac_ops_data_version","scalar",'
    assert lines[1] == '423648000000,2023-06-05 08:00:00,"1.0",1.0001059470803537,'
    assert lines[2] == '423648036000,2023-06-05 09:00:00,"1.0",%r,' % (EM_VALUES[1] + 1)


def test_function_members(srv):
    r = export(srv, META + ["channels.scalar", "channels.waveform", "channels.image"],
               conditions=FIVE, export_waveform_images=True,
               functions=fns(("scalar", EM + " + 1"), ("waveform", WF + " / 2"),
                             ("image", CAM + " * 2")))
    z = members(r)
    names = z.namelist()
    want = []
    for i in HOURS:
        want += ["%s_waveform.csv" % i, "%s_waveform.png" % i, "%s_image.png" % i]
    assert names == want + ["20230605080000_to_20230605120000.csv"]
    assert z.read(names[-1]).decode().split("\n")[0] == (
        '"shotnum","timestamp","epac_ops_data_version","scalar",')
    x, y = waveform(0)
    assert z.read("%s_waveform.csv" % HOURS[0]).decode() == "".join(
        "%r,%r\n" % (float(a), float(b) / 2) for a, b in zip(x, y))
    # the image is the function's PNG: with default levels, 16-bit greyscale of the values
    png = z.read("%s_image.png" % HOURS[0])
    ref = srv.get(f"/images/{HOURS[0]}/image",
                  params={"functions": fns(("image", CAM + " * 2")), "original_image": "true"})
    assert png == ref.content
    # coloured when a colour parameter is given, as /images renders it
    z = members(export(srv, ["channels.image"], conditions={"_id": HOURS[1]},
                       colourmap_name="jet", functions=fns(("image", CAM + " * 2"))))
    ref = srv.get(f"/images/{HOURS[1]}/image",
                  params={"functions": fns(("image", CAM + " * 2")), "colourmap_name": "jet"})
    assert z.read("%s_image.png" % HOURS[1]) == ref.content


def test_function_of_a_missing_channel_is_skipped(srv):
    # the sparse record has no EM: no value, no file, no error line
    r = export(srv, ["_id", "channels.scalar"],
               conditions={"metadata.timestamp": {"$lte": "2023-06-05T08:00:00"}},
               functions=fns(("scalar", EM + " + 1")))
    assert r.content.decode().split("\n")[1:3] == [
        '"%s",,' % SPARSE, '"%s",1.0001059470803537,' % HOURS[0]]
    r = export(srv, ["_id", "channels.image"],
               conditions={"metadata.timestamp": {"$lte": "2023-06-05T08:00:00"}},
               functions=fns(("image", EM + " * " + CAM)))
    assert members(r).namelist() == ["%s_image.png" % HOURS[0],
                                     "%s_to_%s.csv" % (SPARSE, HOURS[0])]


def test_function_errors_are_4xx(srv):
    r = export(srv, ["channels.f"], conditions=FIVE, functions=fns(("f", "NOPE + 1")))
    assert r.status_code == 400, r.text
    assert "NOPE" in r.json()["detail"]
    r = export(srv, ["channels.f"], conditions=FIVE, functions=['{"name": "f"}'])
    assert r.status_code in (400, 422), r.text


def test_functions_over_many_records(own):
    """Several evaluation batches, results in record order."""
    s = own()
    big_images(s, 40, manifest=False)
    r = export(s, ["_id", "channels.m", "channels.d"],
               conditions={"metadata.timestamp": {"$gte": "2023-07-01T00:00:00"}},
               functions=fns(("m", "max(%s)" % CAM), ("d", CAM + " / 2")))
    z = members(r)
    names = z.namelist()
    ids = [n.split("_")[0] for n in names[:-1]]
    assert len(ids) == 40 and ids == sorted(ids)
    lines = z.read(names[-1]).decode().split("\n")
    assert lines[0] == '"ID","m",'
    assert len(lines) == 42 and all(float(l.split(",")[1]) > 60000 for l in lines[1:41])


def test_zip64_with_more_than_65535_members(make_server, tmp_path):
    """65,600 records with one tiny image each: the archive needs the Zip64 end records;
    Python's zipfile and Info-ZIP read it back whole."""
    n = 65600
    s = make_server(config={"mongodb": {"max_documents": 70000},
                            "echo": {"cache_maxsize": 0}}, records=0)
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010800000000"
                        "3a7e9b550000000a49444154789c6360000000020001e221bc330000000049454e44ae426082")
    recs = tmp_path / "records.jsonl"
    chans = tmp_path / "channels.jsonl"
    base = 1704067200  # 2024-01-01
    keys = []
    with open(recs, "w") as f:
        for i in range(n):
            t = time.gmtime(base + i)
            rid = time.strftime("%Y%m%d%H%M%S", t)
            keys.append("images/%s/%s/%s/%s/C.png" % (rid[:4], rid[4:6], rid[6:8], rid[8:]))
            f.write(json.dumps({"_id": rid, "metadata": {
                "timestamp": {"$date": time.strftime("%Y-%m-%dT%H:%M:%SZ", t)}},
                "channels": {"C": {"metadata": {"channel_dtype": "image"},
                                   "object_size": len(png)}}}) + "\n")
    with open(chans, "w") as f:
        f.write(json.dumps({"_id": "20240101000000", "channels": {
            "C": {"name": "c", "path": "/c", "type": "image"}}}) + "\n")
    for coll, path in (("records", recs), ("channels", chans)):
        subprocess.run([OGD, "import", "--config", s.config_path, "--collection", coll,
                        str(path)], check=True, env=s.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=600)
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda k: s.put_object(k, png), keys))
    r = s.request("GET", "/export", params={"projection": "channels.C"}, timeout=600)
    assert r.status_code == 200, r.text[:300]
    p = tmp_path / "big.zip"
    p.write_bytes(r.content)
    z = zipfile.ZipFile(str(p))
    infos = z.infolist()
    assert len(infos) == n
    assert infos[0].filename == "20240101000000_C.png"
    assert z.read(infos[-1]) == png
    assert z.testzip() is None
    # the end records: a Zip64 end-of-directory record and its locator precede the classic one
    tail = r.content[-22 - 20 - 56:]
    assert tail[:4] == b"PK\x06\x06" and tail[56:60] == b"PK\x06\x07"
    assert struct.unpack("<H", r.content[-22 + 8:-22 + 10])[0] == 0xFFFF
    assert subprocess.run(["unzip", "-tqq", str(p)], stdout=subprocess.DEVNULL).returncode == 0
