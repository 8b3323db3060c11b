"""POST /submit/hdf and /submit/manifest (docs/ingest.md): accepted, rejected, partial,
duplicate and merged uploads, manifests, hostile files, and what ends up stored."""
import base64
import io
import json
import os
import struct
import zipfile

import numpy as np
import pytest
from PIL import Image

import hdfgen
from conftest import wait_for

ID = "20200407142816"
DIR = "2020/04/07/142816"


def post_file(srv, path, data, **kw):
    return srv.request("POST", path, files={"file": ("upload.bin", data)}, **kw)


def post_manifest(srv, doc, **kw):
    return post_file(srv, "/submit/manifest", json.dumps(doc).encode(), **kw)


def hdf_bytes(tmp_path, name="f.h5", **kw):
    p = str(tmp_path / name)
    hdfgen.make_file(p, **kw)
    with open(p, "rb") as f:
        return f.read()


def png_size(b64):
    raw = base64.b64decode(b64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", raw[16:24])
    return w, h, raw


@pytest.fixture
def srv(make_server):
    s = make_server(records=0)
    r = post_manifest(s, hdfgen.manifest({"NEW-SCALAR": "scalar", "NEW-IMAGE": "image"}))
    assert r.status_code == 201, r.text
    return s


def test_new_record_accepts_every_channel(srv, tmp_path):
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path))
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == "/records/" + ID
    body = r.json()
    assert list(body) == ["message", "response"]
    assert body["message"] == "Added as " + ID
    resp = body["response"]
    assert list(resp) == ["accepted_channels", "rejected_channels", "warnings"]
    assert resp["accepted_channels"] == sorted(hdfgen.default_channels())
    assert resp["rejected_channels"] == {}
    assert resp["warnings"] == []
    rec = srv.get("/records/" + ID).json()
    md = rec["metadata"]
    assert md["shotnum"] == 366272 and md["active_area"] == "ea1"
    assert md["timestamp"] == "2020-04-07T14:28:16"
    ch = rec["channels"]
    assert ch["PM-201-FE-EM"]["data"] == 330.523
    assert ch["PM-201-MODE"]["data"] == "GS"
    assert ch["PM-201-SHOT"]["data"] == 366272
    assert ch["PM-201-FE-EM"]["metadata"] == {"channel_dtype": "scalar", "units": "mJ"}
    cam = ch["PM-201-FE-CAM-2"]
    assert cam["image_path"] == DIR + "/PM-201-FE-CAM-2.png"
    assert cam["metadata"]["x_pixel_units"] == "µm" and cam["metadata"]["bit_depth"] == 12
    assert png_size(cam["thumbnail"])[:2] == (3, 3)
    wfs = ch["CM-202-CVC-WFS"]
    assert wfs["metadata"]["x_pixel_size"] == 100.0
    assert png_size(wfs["thumbnail"])[:2] == (50, 50)
    assert png_size(ch["PM-201-HJ-PD"]["thumbnail"])[:2] == (100, 100)
    assert png_size(ch["CM-202-CVC-WFS-COEF"]["thumbnail"])[:2] == (100, 100)
    assert ch["CM-202-CVC-WFS-COEF"]["metadata"]["labels"] == hdfgen.ZERNIKE
    keys = srv.object_keys()
    assert keys == sorted([
        "images/%s/PM-201-FE-CAM-1.png" % DIR, "images/%s/PM-201-FE-CAM-2.png" % DIR,
        "float_images/%s/CM-202-CVC-WFS.npz" % DIR,
        "waveforms/%s/PM-201-HJ-PD.json" % DIR,
        "vectors/%s/CM-202-CVC-WFS-COEF.json" % DIR])
    # every object's size is recorded in the store (for the export's size check), and
    # never shown to clients
    for key in keys:
        name = key.rsplit("/", 1)[1].rsplit(".", 1)[0]
        assert "object_size" not in ch[name]
        assert srv.stored_channel(ID, name)["object_size"] == len(read_object(srv, key))


def test_object_size_is_never_shown(srv, tmp_path):
    """object_size is ogd's own bookkeeping: no record or summary answer carries it, and a
    projection that names it finds a field that does not exist."""
    assert post_file(srv, "/submit/hdf", hdf_bytes(tmp_path)).status_code == 201
    cond = json.dumps({"_id": ID})
    answers = [srv.get("/records", params={"conditions": cond}).json()[0],
               srv.get("/records/" + ID).json()]
    for rec in answers:
        for name, ch in rec["channels"].items():
            assert "object_size" not in ch, name
    for name in ("PM-201-FE-CAM-2", "PM-201-HJ-PD"):
        summary = srv.get("/channels/summary/" + name).json()
        assert "object_size" not in json.dumps(summary)
        named = srv.get("/records", params={"conditions": cond, "projection":
                                            "channels.%s.object_size" % name}).json()
        absent = srv.get("/records", params={"conditions": cond, "projection":
                                             "channels.%s.no_such_field" % name}).json()
        assert named == absent == [{"_id": ID, "channels": {name: {}}}]


def read_object(srv, key):
    s3 = srv.s3()
    if s3:
        r = s3.get(key)
        assert r.status_code == 200, r.status_code
        return r.content
    with open(os.path.join(srv.data_dir, "objects", key), "rb") as f:
        return f.read()


def test_stored_formats(srv, tmp_path):
    assert post_file(srv, "/submit/hdf", hdf_bytes(tmp_path)).status_code == 201
    wf = read_object(srv, "waveforms/%s/PM-201-HJ-PD.json" % DIR).decode()
    assert wf.startswith('{\n  "x": [\n    1.0,\n    2.0,')
    assert json.loads(wf) == {"x": [1.0, 2, 3, 4, 5, 6], "y": [8.0, 3, 6, 2, 3, 8]}
    vec = json.loads(read_object(srv, "vectors/%s/CM-202-CVC-WFS-COEF.json" % DIR))
    assert np.allclose(vec["data"], np.linspace(-1, 1, 20))
    npz = np.load(io.BytesIO(read_object(srv, "float_images/%s/CM-202-CVC-WFS.npz" % DIR)))
    assert npz.files == ["arr_0"]
    assert npz["arr_0"].dtype == np.float64 and npz["arr_0"].shape == (100, 100)
    assert (npz["arr_0"] == 1).all()
    png = read_object(srv, "images/%s/PM-201-FE-CAM-2.png" % DIR)
    # 16-bit grey (12-bit data shifted by 4), sBIT 12
    assert png[24] == 16 and png[25] == 0
    i = png.index(b"sBIT")
    assert png[i + 4] == 12
    img = Image.open(io.BytesIO(png))
    assert img.size == (3, 3)
    assert list(np.asarray(img).ravel()) == [16 * v for v in range(1, 10)]
    png8 = read_object(srv, "images/%s/PM-201-FE-CAM-1.png" % DIR)
    assert png8[24] == 8 and png8[png8.index(b"sBIT") + 4] == 6


def test_manifest_missing(make_server, tmp_path):
    s = make_server(records=0)
    r = post_file(s, "/submit/hdf", hdf_bytes(tmp_path))
    assert r.status_code == 400
    assert r.json()["detail"].startswith("There is no manifest file stored in the database")


@pytest.mark.parametrize("ts,ok", [
    ("2020-04-07T14:28:16+00:00", True), ("2020-04-07T14:28:16+0000", True),
    ("2020-04-07T14:28:16Z", True), ("2020-4-7T14:28:16Z", True),
    ("07-04-2020T14:28:16+00:00", False), ("not-a-timestamp", False),
    ("2020-04-07", False), ("2020-04-07T14:28:16", False), ("2020-04-07 14:28:16+00:00", False),
    ("2020-04-07T14:28", False), (55458554, False)])
def test_timestamps(srv, tmp_path, ts, ok):
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path, attrs={"timestamp": ts}))
    if ok:
        assert r.status_code == 201, r.text
    else:
        assert r.status_code == 400
        assert r.json()["detail"].startswith("Invalid timestamp metadata.")


def test_id_uses_the_files_own_offset(srv, tmp_path):
    r = post_file(srv, "/submit/hdf", hdf_bytes(
        tmp_path, attrs={"timestamp": "2020-04-07T14:28:16+01:00"}))
    assert r.status_code == 201
    rec = srv.get("/records/" + ID).json()
    assert rec["metadata"]["timestamp"] == "2020-04-07T13:28:16"


@pytest.mark.parametrize("ts", [
    "0001-01-01T00:00:00+14:00",  # 0000-12-31T10:00:00 in UTC
    "0001-01-01T13:59:59+14:00",  # one second before 0001-01-01T00:00:00 UTC
    "9999-12-31T23:59:59-14:00",  # 10000-01-01T13:59:59 in UTC
    "9999-12-31T10:00:00-14:00",  # 10000-01-01T00:00:00 in UTC
])
def test_timestamp_outside_the_years_1_to_9999_in_utc(srv, tmp_path, ts):
    """A timestamp that parses but whose instant falls outside years 1..9999 once converted
    to UTC cannot be stored (the reference fails with a 500): the whole file is rejected as
    for any other invalid timestamp, and the message names it."""
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path, attrs={"timestamp": ts}))
    assert r.status_code == 400, r.text
    assert r.json() == {"detail": "Invalid timestamp metadata. '%s' is outside the supported "
                                  "range: in UTC it must fall within the years 1 to 9999." % ts}
    assert srv.get("/records/count").json() == 0
    assert srv.object_keys() == []
    assert "record write failed" not in srv.read_log()


def test_timestamps_at_the_edges_of_the_range(srv, tmp_path):
    """The first and last instants of years 1..9999 in UTC, from either side of UTC, and a
    year below 1000: each id is 14 digits (the file's own wall clock, zero-padded), each
    stored timestamp is the naive UTC text with a four-digit year."""
    cases = [("0001-01-01T00:00:00+00:00", "00010101000000", "0001-01-01T00:00:00"),
             ("0001-01-01T14:00:00+14:00", "00010101140000", "0001-01-01T00:00:00"),
             ("0999-06-05T08:00:00Z", "09990605080000", "0999-06-05T08:00:00"),
             ("9999-12-31T23:59:59+00:00", "99991231235959", "9999-12-31T23:59:59"),
             ("9999-12-31T09:59:59-14:00", "99991231095959", "9999-12-31T23:59:59")]
    for shotnum, (ts, rid, utc) in enumerate(cases, 1):
        r = post_file(srv, "/submit/hdf", hdf_bytes(
            tmp_path, attrs={"timestamp": ts, "shotnum": np.uint64(shotnum)}))
        assert r.status_code == 201, (ts, r.text)
        assert r.json()["message"] == "Added as " + rid
        rec = srv.get("/records/" + rid)
        assert rec.status_code == 200, (ts, rec.text)
        assert rec.json()["metadata"]["timestamp"] == utc
        d = "%s/%s/%s/%s" % (rid[:4], rid[4:6], rid[6:8], rid[8:])
        assert "images/%s/PM-201-FE-CAM-2.png" % d in srv.object_keys(), ts
    assert srv.get("/records/count").json() == len(cases)


@pytest.mark.parametrize("attrs,drop,msg", [
    ({}, ("epac_ops_data_version",), "epac_ops_data_version does not exist"),
    ({"epac_ops_data_version": 1.0}, (), "epac_ops_data_version has wrong datatype. Should be string"),
    ({"epac_ops_data_version": "4.0"}, (), "epac_ops_data_version major version was not 1"),
    ({"epac_ops_data_version": " 1.0"}, (), "epac_ops_data_version major version was not 1"),
    ({}, ("active_area",), "active_area is missing"),
    ({"active_area": 467}, (), "active_area has wrong datatype. Expected string"),
    ({"active_experiment": 90097341}, (), "active_experiment has wrong datatype. Expected string"),
])
def test_file_checks(srv, tmp_path, attrs, drop, msg):
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path, attrs=attrs, drop_attrs=drop))
    assert r.status_code == 400
    assert r.json() == {"detail": msg}
    assert srv.object_keys() == []


def test_minor_version_warning(srv, tmp_path):
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path, attrs={"epac_ops_data_version": "1.4"}))
    assert r.status_code == 201
    assert r.json()["response"]["warnings"] == ["File minor version number too high (expected <=2)"]


def test_shotnum_model_errors(srv, tmp_path):
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path, attrs={"shotnum": "string"}))
    assert r.status_code == 400
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path, attrs={"shotnum": "366272"}))
    assert r.status_code == 201
    assert srv.get("/records/" + ID).json()["metadata"]["shotnum"] == 366272


def test_channel_checks(srv, tmp_path):
    chans = {
        "PM-201-FE-CAM-2": {"dtype": "image", "data": 42},
        "PM-201-HJ-PD": {"dtype": "waveform", "x": np.arange(3.0), "y": 53},
        "PM-201-FE-CAM-1": {"dtype": "image", "data": np.ones((2, 2), dtype=np.uint32),
                            "attrs": {"x_pixel_size": "441", "x_pixel_units": 42}},
        "FALSE_SCALAR": {"dtype": "scalar", "data": 1.0},
        "PM-201-FE-EM": {"dtype": "image", "data": np.ones((2, 2), dtype=np.uint8)},
        "PM-201-TJ-EM": {"dtype": "scalar", "data": np.array([1.0])},
        "PM-201-SHOT": {"dtype": "scalar", "data": 1, "extra": {"other": 1}},
        "CM-202-CVC-WFS-COEF": {"dtype": "vector", "data": np.array([1.0]),
                                "attrs": {"labels": ["one", "two"]}},
        "PM-201-MODE": {"data": 5},
    }
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path, channels=chans))
    assert r.status_code == 201, r.text
    resp = r.json()["response"]
    assert resp["accepted_channels"] == ["CM-202-CVC-WFS"]
    rej = resp["rejected_channels"]
    assert rej["PM-201-FE-CAM-2"] == ["data has wrong datatype, should be ndarray",
                                      "data has wrong datatype, should be uint16 or uint8"]
    assert rej["PM-201-HJ-PD"] == ["y attribute must be a list of floats",
                                   "y attribute has wrong shape"]
    assert rej["PM-201-FE-CAM-1"] == ["x_pixel_size attribute has wrong datatype",
                                      "x_pixel_units attribute has wrong datatype",
                                      "data has wrong datatype, should be uint16 or uint8"]
    assert rej["FALSE_SCALAR"] == ["Channel name is not recognised (does not appear in manifest)"]
    assert rej["PM-201-FE-EM"] == ["channel_dtype has wrong data type or its value is unsupported"]
    assert rej["PM-201-TJ-EM"] == ["data has wrong datatype"]
    assert rej["PM-201-SHOT"] == ["unexpected group or dataset in channel group"]
    assert rej["CM-202-CVC-WFS-COEF"] == ["labels attribute has wrong length"]
    assert rej["PM-201-MODE"] == ["channel_dtype attribute is missing"]
    # check-merge order (A5.3): per check (dtype, required, optional, dataset, unrecognised,
    # name), the record channels' reasons, then the extraction failures of that check
    assert list(rej) == ["PM-201-FE-EM", "PM-201-MODE", "PM-201-FE-CAM-2", "PM-201-HJ-PD",
                         "PM-201-TJ-EM", "CM-202-CVC-WFS-COEF", "PM-201-FE-CAM-1",
                         "PM-201-SHOT", "FALSE_SCALAR"]
    rec = srv.get("/records/" + ID).json()
    assert list(rec["channels"]) == ["CM-202-CVC-WFS"]
    assert srv.object_keys() == ["float_images/%s/CM-202-CVC-WFS.npz" % DIR]


def test_waveform_lengths_differ(srv, tmp_path):
    chans = {"PM-201-HJ-PD": {"dtype": "waveform", "x": np.arange(3.0), "y": np.arange(4.0)}}
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path, channels=chans))
    assert r.status_code == 201
    assert r.json()["response"]["rejected_channels"] == {
        "PM-201-HJ-PD": ["x and y attributes have different lengths"]}


def test_merge(srv, tmp_path):
    data = hdf_bytes(tmp_path)
    assert post_file(srv, "/submit/hdf", data).status_code == 201
    r = post_file(srv, "/submit/hdf", data)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["message"] == "Updated " + ID
    assert body["response"]["accepted_channels"] == []
    rej = body["response"]["rejected_channels"]
    assert list(rej) == sorted(hdfgen.default_channels())
    assert set(rej.values()) == {"Channel is already present in existing record"}
    # a new scalar, and an image whose object went missing, are accepted
    chans = {"NEW-SCALAR": {"dtype": "scalar", "data": 0}}
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path, "g.h5", channels=chans))
    assert r.status_code == 200
    assert r.json()["response"]["accepted_channels"] == ["NEW-SCALAR"]
    rec = srv.get("/records/" + ID).json()
    assert rec["version"] == 3
    assert rec["channels"]["NEW-SCALAR"]["data"] == 0
    assert "PM-201-FE-EM" in rec["channels"]


def test_merge_metadata_decisions(srv, tmp_path):
    assert post_file(srv, "/submit/hdf", hdf_bytes(tmp_path)).status_code == 201
    r = post_file(srv, "/submit/hdf", hdf_bytes(
        tmp_path, attrs={"timestamp": "2020-04-07T15:00:00+00:00"}))
    assert r.status_code == 400
    assert r.json()["detail"] == "a record with this shotnum already exists"
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path, attrs={"shotnum": np.uint64(5)}))
    assert r.status_code == 400
    assert r.json()["detail"] == "inconsistent metadata"
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path, drop_attrs=("shotnum",)))
    assert r.status_code == 400
    assert r.json()["detail"] == "inconsistent metadata"
    r = post_file(srv, "/submit/hdf", hdf_bytes(
        tmp_path, attrs={"timestamp": "2020-04-07T15:00:00+00:00", "shotnum": np.uint64(7)}))
    assert r.status_code == 201


@pytest.mark.parametrize("data", [b"", b"not an hdf5 file at all", b"\x89HDF\r\n\x1a\n" + b"\0" * 100])
def test_not_hdf5(srv, data):
    r = post_file(srv, "/submit/hdf", data)
    assert r.status_code == 400
    assert r.json() == {"detail": "Uploaded file is not a valid HDF5 file"}
    assert srv.get("/healthz").status_code == 200


def test_truncated_and_corrupted_files(srv, tmp_path):
    good = hdf_bytes(tmp_path)
    rng = np.random.default_rng(7)
    pids = srv.worker_pids()
    for cut in (len(good) // 2, len(good) - 100, 600, 2048):
        r = post_file(srv, "/submit/hdf", good[:cut])
        assert r.status_code in (400, 201), r.text
        if r.status_code == 400:
            assert r.json()["detail"].startswith("Uploaded")
    for _ in range(12):
        bad = bytearray(good)
        for pos in rng.integers(0, len(bad), 40):
            bad[pos] = int(rng.integers(0, 256))
        r = post_file(srv, "/submit/hdf", bytes(bad))
        assert r.status_code in (200, 201, 400), r.text
    assert srv.worker_pids() == pids
    assert srv.get("/healthz").status_code == 200


def test_missing_file_field(srv):
    r = srv.request("POST", "/submit/hdf", data={"file": "plain text"})
    assert r.status_code == 422
    r = srv.request("POST", "/submit/hdf", files={"other": ("x", b"1")})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "file"]


def test_upload_limit(make_server, tmp_path):
    s = make_server(records=0, config={"server": {"max_upload_bytes": 4096}})
    r = post_file(s, "/submit/hdf", b"x" * 10000)
    assert r.status_code == 413


# ---- manifests ----

def test_manifest_versions(srv):
    m = hdfgen.manifest({"NEW-SCALAR": "scalar", "NEW-IMAGE": "image"})
    latest = srv.get("/channels").json()
    del m["channels"]["NEW-SCALAR"]
    r = post_manifest(srv, m)
    assert r.status_code == 400
    assert r.json()["detail"] == ("NEW-SCALAR has been removed from the input channel metadata. "
                                  "Channels cannot be removed, add the channel back into the "
                                  "file and re-submit")
    m["channels"]["NEW-IMAGE"]["type"] = "scalar"
    r = post_manifest(srv, m, params={"bypass_channel_check": "true"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("type_ has been modified on the NEW-IMAGE channel. "
                                         "Value stored in database: image. ")
    m["channels"]["NEW-IMAGE"]["type"] = "image"
    m["channels"]["NEW-IMAGE"]["units"] = "J"
    r = post_manifest(srv, m, params={"bypass_channel_check": "true"})
    assert r.status_code == 400
    assert "Value stored in database: None." in r.json()["detail"]
    assert srv.get("/channels").json() == latest


def test_manifest_errors(srv):
    r = post_file(srv, "/submit/manifest", b"")
    assert r.status_code == 400
    assert r.json()["detail"] == ("Channel manifest file not valid JSON. Expecting value: "
                                  "line 1 column 1 (char 0)")
    r = post_file(srv, "/submit/manifest", b'{"channels": {"a": {"name" "x"}}}')
    assert r.status_code == 400
    assert r.json()["detail"].startswith("Channel manifest file not valid JSON.")
    for doc in ({}, [], {"channels": {"a": {"path": "/x"}}},
                {"channels": {"a": {"name": "n", "path": "/x", "type": "colour"}}}):
        r = post_manifest(srv, doc)
        assert r.status_code == 400, doc
    r = post_manifest(srv, {"channels": {"a": {"name": "n", "path": "/x", "x_units": "s"}}})
    assert r.status_code == 400
    assert r.json()["detail"] == ("Only waveform channels should contain waveform channel "
                                  "metadata. Invalid channel is called: n")
    r = post_manifest(srv, {"channels": {"a": {"name": "n", "path": "/x", "labels": ["a"]}}})
    assert r.json()["detail"] == ("Only vector channels should contain vector channel "
                                  "metadata. Invalid channel is called: n")
    r = srv.request("POST", "/submit/manifest?bypass_channel_check=maybe",
                    files={"file": ("m", b"{}")})
    assert r.status_code == 422


def test_first_manifest_is_stored(make_server):
    s = make_server(records=0)
    r = post_manifest(s, {"_id": "ignored", "channels": {
        "A": {"name": "a", "path": "/a", "type": "image", "junk": 1},
        "B": {"name": "b", "path": "/b", "precision": "3"}}})
    assert r.status_code == 201
    mid = r.json()
    assert isinstance(mid, str) and len(mid) == 14
    got = s.get("/channels").json()
    assert got["channels"]["A"] == {"name": "a", "path": "/a", "type": "image"}
    assert got["channels"]["B"] == {"name": "b", "path": "/b", "type": "scalar", "precision": 3}


def test_absurd_dimensions(make_server, tmp_path):
    """A dataset that declares 40 GB but stores nothing (chunked, never written), on a
    server whose ingest limits let it through to the helper's output cap: the helper
    refuses it instead of allocating it; the worker is untouched. (Within the default
    limits the channel is rejected instead: test_decompression_bomb.)"""
    import h5py
    srv = make_server(records=0, config={"ingest": {"max_decompressed_bytes": 1 << 40,
                                                    "max_file_decompressed_bytes": 1 << 44}})
    assert post_manifest(srv, hdfgen.manifest()).status_code == 201
    p = str(tmp_path / "huge.h5")
    hdfgen.make_file(p, channels={"PM-201-FE-CAM-2": None})
    with h5py.File(p, "a") as f:
        g = f.create_group("PM-201-FE-CAM-2")
        g.attrs["channel_dtype"] = "image"
        g.create_dataset("data", shape=(140000, 140000), dtype=np.uint16, chunks=(64, 64))
    with open(p, "rb") as f:
        data = f.read()
    assert len(data) < 1 << 20
    pids = srv.worker_pids()
    r = post_file(srv, "/submit/hdf", data)
    assert r.status_code == 400
    assert r.json()["detail"].startswith("Uploaded HDF5 file is not accepted: a dataset is too large")
    assert srv.worker_pids() == pids
    assert srv.object_keys() == []


def bomb_file(tmp_path, name="PM-201-FE-CAM-2", side=24000):
    """The default file with image channel `name` holding a gzip-compressed side x side
    uint16 frame of which one 1000 x 1000 chunk is written (the rest reads as the fill
    value): a few kilobytes declaring 2 * side^2 bytes."""
    import h5py
    p = str(tmp_path / "bomb.h5")
    hdfgen.make_file(p, channels={name: None})
    with h5py.File(p, "a") as f:
        g = f.create_group(name)
        g.attrs["channel_dtype"] = "image"
        d = g.create_dataset("data", shape=(side, side), dtype=np.uint16, chunks=(1000, 1000),
                             compression="gzip")
        d[:1000, :1000] = np.full((1000, 1000), 7, dtype=np.uint16)
    with open(p, "rb") as f:
        return f.read()


def test_decompression_bomb(srv, tmp_path):
    """A small gzip file declaring a 24000 x 24000 16-bit image (1.15 GB once inflated):
    that channel is rejected from its declared size, within the default limits
    (ingest.max_decompressed_bytes, 256 MiB), and never read; the file's other channels
    are stored; no worker is harmed."""
    data = bomb_file(tmp_path)
    assert len(data) < 1 << 20
    pids = srv.worker_pids()
    r = post_file(srv, "/submit/hdf", data)
    assert r.status_code == 201, r.text
    resp = r.json()["response"]
    assert resp["rejected_channels"] == {"PM-201-FE-CAM-2": [
        "data is too large: 1152000000 bytes when decompressed, more than the limit of "
        "268435456 bytes"]}
    others = sorted(set(hdfgen.default_channels()) - {"PM-201-FE-CAM-2"})
    assert resp["accepted_channels"] == others
    assert sorted(srv.get("/records/" + ID).json()["channels"]) == others
    assert "images/%s/PM-201-FE-CAM-2.png" % DIR not in srv.object_keys()
    assert "images/%s/PM-201-FE-CAM-1.png" % DIR in srv.object_keys()
    assert srv.worker_pids() == pids
    assert srv.get("/healthz").status_code == 200


def numeric_bytes(chans):
    """What the numeric datasets of a file made by hdfgen with these channels hold."""
    total = 0
    for ch in chans.values():
        for key in ("data", "x", "y"):
            if key in ch and not isinstance(ch[key], str):
                total += np.asarray(ch[key]).nbytes
    return total


def test_decompressed_size_limits(make_server, tmp_path):
    """ingest.max_decompressed_bytes applies to every kind of channel (a waveform names
    its x or y), and ingest.max_file_decompressed_bytes to the sum: a file over it is
    rejected whole, naming the limit, and leaves nothing behind; at it, it is stored."""
    chans = hdfgen.default_channels()
    chans["PM-201-HJ-PD"] = {"dtype": "waveform", "x": np.arange(200.0), "y": np.arange(200.0)}
    whole = numeric_bytes(chans)
    cfg = {"ingest": {"max_decompressed_bytes": 1000}}
    srv = make_server(records=0, config=cfg)
    assert post_manifest(srv, hdfgen.manifest()).status_code == 201
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path, channels=chans))
    assert r.status_code == 201, r.text
    assert r.json()["response"]["rejected_channels"] == {
        "CM-202-CVC-WFS": ["data is too large: 80000 bytes when decompressed, more than the "
                           "limit of 1000 bytes"],
        "PM-201-HJ-PD": ["x attribute is too large: 1600 bytes when decompressed, more than "
                         "the limit of 1000 bytes",
                         "y attribute is too large: 1600 bytes when decompressed, more than "
                         "the limit of 1000 bytes"]}

    for limit, ok in ((whole - 1, False), (whole, True)):
        srv = make_server(records=0, config={"ingest": {"max_file_decompressed_bytes": limit}})
        assert post_manifest(srv, hdfgen.manifest()).status_code == 201
        r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path, channels=chans))
        if ok:
            assert r.status_code == 201, r.text
            assert r.json()["response"]["rejected_channels"] == {}
            continue
        assert r.status_code == 400, r.text
        assert r.json() == {"detail": "Uploaded HDF5 file is not accepted: its datasets hold "
                                      "%d bytes when decompressed, more than the limit of %d "
                                      "bytes (ingest.max_file_decompressed_bytes)"
                                      % (whole, limit)}
        assert srv.get("/records/" + ID).status_code == 404
        assert srv.object_keys() == []


def test_channel_count_limit(make_server, tmp_path):
    """ingest.max_channels: a file with one channel more is rejected whole (400 naming
    the count and the limit) before anything is stored; a file at the limit is
    ingested."""
    data = hdf_bytes(tmp_path)
    n = len(hdfgen.default_channels())
    srv = make_server(records=0, config={"ingest": {"max_channels": n - 1}})
    assert post_manifest(srv, hdfgen.manifest()).status_code == 201
    r = post_file(srv, "/submit/hdf", data)
    assert r.status_code == 400, r.text
    assert r.json() == {"detail": "File has too many channels: %d, more than the limit of %d "
                                  "(ingest.max_channels)" % (n, n - 1)}
    assert srv.get("/records/" + ID).status_code == 404
    assert srv.object_keys() == []

    srv = make_server(records=0, config={"ingest": {"max_channels": n}})
    assert post_manifest(srv, hdfgen.manifest()).status_code == 201
    r = post_file(srv, "/submit/hdf", data)
    assert r.status_code == 201, r.text
    assert r.json()["response"]["accepted_channels"] == sorted(hdfgen.default_channels())
    assert len(srv.object_keys()) == 5


def test_wrong_attribute_types(srv, tmp_path):
    chans = {"PM-201-FE-CAM-2": {"dtype": "image",
                                 "data": np.ones((4, 4), dtype=np.uint16),
                                 "attrs": {"bit_depth": "12", "gain": "5.5",
                                           "exposure_time_s": np.array([1.0, 2.0])}},
             "PM-201-HJ-PD": {"dtype": "waveform", "x": np.array(["lgf"], dtype=object),
                              "y": np.arange(3.0), "attrs": {"x_units": 23}},
             "CM-202-CVC-WFS-COEF": {"dtype": "vector", "data": 5.0,
                                     "attrs": {"labels": [1]}}}
    r = post_file(srv, "/submit/hdf", hdf_bytes(tmp_path, channels=chans))
    assert r.status_code == 201
    rej = r.json()["response"]["rejected_channels"]
    assert rej["PM-201-FE-CAM-2"] == ["exposure_time_s attribute has wrong datatype",
                                      "gain attribute has wrong datatype",
                                      "bit_depth attribute has wrong datatype"]
    assert rej["PM-201-HJ-PD"] == ["x attribute must be a list of floats",
                                   "x_units attribute has wrong datatype",
                                   "x attribute has wrong datatype, should be a list of floats"]
    assert rej["CM-202-CVC-WFS-COEF"] == ["data has wrong datatype, should be list[float]",
                                          "labels attribute has wrong datatype"]


def test_backup_copies(make_server, tmp_path):
    cache = str(tmp_path / "cache")
    s = make_server(records=0, config={"backup": {"cache_directory": cache,
                                                  "target_url": "root://backup.invalid//ogd",
                                                  "copy_cron_string": "0 3 * * *"}})
    assert post_manifest(s, hdfgen.manifest()).status_code == 201
    data = hdf_bytes(tmp_path)
    assert post_file(s, "/submit/hdf", data).status_code == 201
    assert post_file(s, "/submit/hdf", data).status_code == 200
    d = os.path.join(cache, DIR)
    assert sorted(os.listdir(d)) == ["1.hdf5", "2.hdf5"]
    for name in ("1.hdf5", "2.hdf5"):
        with open(os.path.join(d, name), "rb") as f:
            assert f.read() == data
    # a rejected file leaves no copy
    assert post_file(s, "/submit/hdf", hdf_bytes(tmp_path, attrs={"active_area": 3})).status_code == 400
    assert sorted(os.listdir(d)) == ["1.hdf5", "2.hdf5"]


def test_concurrent_uploads_of_one_shot(srv, tmp_path):
    """The same new shot from several clients at once: one insert wins, the others merge
    or get the duplicate-id answer; the record never points at a missing object."""
    import threading
    data = hdf_bytes(tmp_path)
    results = []

    def post():
        r = post_file(srv, "/submit/hdf", data)
        results.append((r.status_code, r.json()))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(s for s, _ in results)
    assert statuses.count(201) == 1, results
    for s, body in results:
        assert s in (200, 201) or body == {"detail": "Session name already exists for this user."}
    rec = srv.get("/records/" + ID).json()
    keys = srv.object_keys()
    for name, ch in rec["channels"].items():
        for field in ("image_path", "waveform_path", "vector_path"):
            if field in ch:
                prefix = {"waveform_path": "waveforms", "vector_path": "vectors"}.get(field)
                if not prefix:
                    prefix = "float_images" if ch[field].endswith(".npz") else "images"
                assert prefix + "/" + ch[field] in keys


def test_two_manifests_in_one_second(make_server):
    s = make_server(records=0)
    m = hdfgen.manifest()
    codes = []
    for _ in range(3):
        r = post_manifest(s, m)
        codes.append((r.status_code, r.json()))
    assert codes[0][0] == 201
    # ids are the server's local time to the second: a second one within the same second
    # collides (the reference's duplicate-id answer); one in the next second is stored
    dup = (400, {"detail": "Session name already exists for this user."})
    for status, body in codes[1:]:
        assert status == 201 or (status, body) == dup
    # three posts well within a second cross at most one second boundary
    assert dup in codes[1:]


def test_concurrent_merges_keep_every_channel(make_server, tmp_path):
    """Files of one shot from several systems arriving together: each merge adds its own
    channels and none is lost (the merge is one transaction per record)."""
    import threading
    extra = {"NEW-A": "scalar", "NEW-B": "scalar", "NEW-C": "image", "NEW-D": "waveform"}
    s = make_server(records=0)
    assert post_manifest(s, hdfgen.manifest(extra)).status_code == 201
    assert post_file(s, "/submit/hdf", hdf_bytes(tmp_path)).status_code == 201
    bodies = {
        "NEW-A": {"dtype": "scalar", "data": 1.5},
        "NEW-B": {"dtype": "scalar", "data": "x"},
        "NEW-C": {"dtype": "image", "data": np.ones((5, 5), dtype=np.uint8)},
        "NEW-D": {"dtype": "waveform", "x": np.arange(4.0), "y": np.arange(4.0)},
    }
    files = {}
    for name, ch in bodies.items():
        chans = {k: None for k in hdfgen.default_channels()}
        chans[name] = ch
        files[name] = hdf_bytes(tmp_path, name + ".h5", channels=chans)
    results = {}

    def post(name):
        r = post_file(s, "/submit/hdf", files[name])
        results[name] = (r.status_code, r.json())

    threads = [threading.Thread(target=post, args=(n,)) for n in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, (status, body) in results.items():
        assert status == 200, body
        assert body["response"]["accepted_channels"] == [name]
    rec = s.get("/records/" + ID).json()
    assert rec["version"] == 5
    assert set(extra) <= set(rec["channels"])
    assert rec["channels"]["NEW-A"]["data"] == 1.5
    assert len(rec["channels"]) == len(hdfgen.default_channels()) + 4
    assert "images/%s/NEW-C.png" % DIR in s.object_keys()


def submits_finished(srv):
    """How many POST /submit/hdf requests the server has finished (its access log)."""
    return srv.read_log().count('"method":"POST","route":"/submit/hdf"')


EXPECTED_KEYS = {"images/%s/PM-201-FE-CAM-1.png" % DIR, "images/%s/PM-201-FE-CAM-2.png" % DIR,
                 "float_images/%s/CM-202-CVC-WFS.npz" % DIR,
                 "waveforms/%s/PM-201-HJ-PD.json" % DIR,
                 "vectors/%s/CM-202-CVC-WFS-COEF.json" % DIR}


def assert_all_or_nothing(srv):
    """The upload of hdf_bytes ended as the complete record with its objects, or nothing."""
    r = srv.get("/records/" + ID)
    keys = srv.object_keys()
    if r.status_code == 200:
        assert set(keys) == EXPECTED_KEYS
    else:
        assert r.status_code == 404 and keys == [], "half-done: record %d, objects %r" % (
            r.status_code, keys)
    return r.status_code == 200


def test_client_going_away_leaves_nothing_half_done(srv, tmp_path):
    """The client sends a whole upload and hangs up at once: whatever stage the pipeline
    was in, once the server has finished the request the end state is either the complete
    record with its objects or nothing."""
    import socket
    import time
    data = hdf_bytes(tmp_path)
    for delay in (0, 0.02, 0.05):
        head, body = multipart_request(srv, data)
        before = submits_finished(srv)
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            sock.sendall(head + body)
            time.sleep(delay)
        wait_for("the upload's request to finish", lambda: submits_finished(srv) > before)
        if assert_all_or_nothing(srv):
            assert srv.request("DELETE", "/records/" + ID).status_code == 204
            assert srv.object_keys() == []
    assert srv.get("/healthz").status_code == 200


def helper_pids(srv):
    """The HDF5 helper processes the server's workers are running."""
    import subprocess
    pids = []
    for w in srv.worker_pids():
        out = subprocess.run(["pgrep", "-P", str(w), "-f", "_hdf5-parse"], capture_output=True,
                             text=True).stdout
        pids += [int(p) for p in out.split()]
    return pids


STALL = {"OGD_ENABLE_TEST_HOOKS": "1", "OGD_TEST_HDF5_STALL": "1"}


def test_client_leaving_cancels_its_ingest(make_server, tmp_path):
    """The client leaves while its upload is being read by the HDF5 helper (a test hook
    makes the helper never answer): the server notices at once, although it is not reading
    the request any more, cancels the ingest (the helper is killed), logs the request as
    aborted (499) and counts it in /metrics; nothing of the upload is stored."""
    import socket
    srv = make_server(records=0, env=STALL)
    assert post_manifest(srv, hdfgen.manifest()).status_code == 201
    head, body = multipart_request(srv, hdf_bytes(tmp_path))
    with socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.sendall(head + body)
        wait_for("the HDF5 helper to start", lambda: helper_pids(srv))
        helpers = helper_pids(srv)
    wait_for("the helper to be killed", lambda: not any(os.path.exists("/proc/%d" % p)
                                                        for p in helpers))
    wait_for("the upload's request to finish", lambda: submits_finished(srv) == 1)
    line = [json.loads(x) for x in srv.read_log().splitlines()
            if '"route":"/submit/hdf"' in x][0]
    assert line["status"] == 499 and line["aborted"] is True
    m = srv.get("/metrics").text
    assert 'ogd_http_requests_aborted_total{method="POST",route="/submit/hdf"} 1' in m
    assert srv.object_keys() == []
    assert srv.get("/records/count").json() == 0


@pytest.mark.parametrize("how", ["fast", "graceful", "fast_client_gone"])
def test_stop_with_an_ingest_in_progress(make_server, tmp_path, how):
    """A stop while an upload's HDF5 helper is still working (a test hook makes it never
    answer): the ingest is cancelled, the helper killed, the request and everything the
    pipeline held are freed (the sanitizer builds check for leaks at exit), the server
    exits 0, and nothing of the upload is left."""
    import signal
    import socket
    srv = make_server(records=0, env=STALL, config={"server": {"graceful_timeout": 1}})
    assert post_manifest(srv, hdfgen.manifest()).status_code == 201
    head, body = multipart_request(srv, hdf_bytes(tmp_path))
    sock = socket.create_connection(("127.0.0.1", srv.port))
    sock.sendall(head + body)
    wait_for("the HDF5 helper to start", lambda: helper_pids(srv))
    helpers = helper_pids(srv)
    if how == "fast_client_gone":
        sock.close()
    rc = srv.stop(signal.SIGQUIT if how == "graceful" else signal.SIGTERM)
    assert rc == 0, srv.read_log()[-5000:]
    assert not srv.sanitizer_reports(), srv.read_log()[-20000:]
    for pid in helpers:  # killed, and reaped by its worker before the worker exited
        assert not os.path.exists("/proc/%d" % pid)
    if how != "fast_client_gone":
        sock.settimeout(30)
        rest = sock.recv(65536)  # the connection was closed without an answer
        assert rest == b"", rest
        sock.close()
    assert srv.object_keys() == []
    srv.start()
    assert srv.get("/records/count").json() == 0


# ---- large uploads (bodies from 1 MiB on are read straight into a memfd) ----

BOUNDARY = "ogdbigboundary"


def multipart_request(srv, data, before=""):
    """A raw POST /submit/hdf with data as the part "file" (after the text of other parts,
    `before`), authenticated: (head, body) bytes."""
    body = ((before + "--%s\r\nContent-Disposition: form-data; name=\"file\"; "
             "filename=\"f.h5\"\r\n\r\n" % BOUNDARY).encode() + data
            + ("\r\n--%s--\r\n" % BOUNDARY).encode())
    head = ("POST /submit/hdf HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            "boundary=%s\r\nContent-Length: %d\r\nAuthorization: Bearer %s\r\n\r\n"
            % (BOUNDARY, len(body), srv.token)).encode()
    return head, body


def read_response(f):
    """One HTTP/1.1 response with a Content-Length from a socket file: (status, body)."""
    status = int(f.readline().split()[1])
    length = 0
    while True:
        line = f.readline()
        assert line, "connection closed inside the headers"
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, f.read(length)


def big_image_file(tmp_path):
    img = np.random.default_rng(3).integers(0, 4096, (1024, 700), dtype=np.uint16)
    data = hdf_bytes(tmp_path, channels={"NEW-IMAGE": {"dtype": "image", "data": img,
                                                       "attrs": {"bit_depth": 12}}})
    assert len(data) > (1 << 20)
    return data, img


def test_large_upload_in_pieces(srv, tmp_path):
    """Headers with the first body bytes in one packet, the rest in pieces: the stored
    frame is the uploaded one."""
    import socket
    import time
    data, img = big_image_file(tmp_path)
    head, body = multipart_request(srv, data)
    with socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.sendall(head + body[:1000])
        cuts = [1000, 1001, 70000, 600000, len(body) - 3, len(body)]
        for a, b in zip(cuts, cuts[1:]):
            time.sleep(0.02)
            sock.sendall(body[a:b])
        status, text = read_response(sock.makefile("rb"))
    assert status == 201, text
    assert "NEW-IMAGE" in json.loads(text)["response"]["accepted_channels"]
    png = read_object(srv, "images/%s/NEW-IMAGE.png" % DIR)
    stored = np.array(Image.open(io.BytesIO(png)))
    assert stored.shape == img.shape
    assert (stored.astype(np.uint16) == (img << 4)).all()


def test_large_upload_cut_short(srv, tmp_path):
    """A client announcing a large body and leaving half-way: nothing stored, the worker
    stays up."""
    import socket
    import time
    data, _ = big_image_file(tmp_path)
    head, body = multipart_request(srv, data)
    pids = srv.worker_pids()
    with socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(0.1)
    time.sleep(0.3)
    assert srv.get("/records/" + ID).status_code == 404
    assert srv.object_keys() == []
    assert srv.worker_pids() == pids
    assert srv.get("/healthz").status_code == 200


def test_large_upload_then_pipelined_request(srv):
    """A large upload (not HDF5) and a second request in one write: both answered, in
    order, on the one connection."""
    import socket
    head, body = multipart_request(srv, b"not an hdf5 file " * 80000)
    nxt = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.sendall(head + body + nxt)
        f = sock.makefile("rb")
        status, text = read_response(f)
        assert status == 400
        assert json.loads(text) == {"detail": "Uploaded file is not a valid HDF5 file"}
        status, _ = read_response(f)
        assert status == 200


def test_large_upload_after_another_field(srv, tmp_path):
    """The memfd aligns the first part's content; a file in a later part (here at an odd
    offset) is read as well, its frames copied where they cannot be referenced."""
    import socket
    data, img = big_image_file(tmp_path)
    head, body = multipart_request(srv, data, before="--%s\r\nContent-Disposition: form-data; "
                                   "name=\"note\"\r\n\r\nodd\r\n" % BOUNDARY)
    with socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.sendall(head + body)
        status, text = read_response(sock.makefile("rb"))
    assert status == 201, text
    png = read_object(srv, "images/%s/NEW-IMAGE.png" % DIR)
    stored = np.array(Image.open(io.BytesIO(png)))
    assert (stored.astype(np.uint16) == (img << 4)).all()
