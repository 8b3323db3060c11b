"""User preferences on the imaging paths (docs/api.md §4.10-§4.11, docs/imaging.md §9).

The administrator the tests log in as sets preferences with POST /users/preferences; every
rendering that follows a preference is compared with the same request naming the map in
the query (equal bytes). Vector thumbnails re-drawn from data[skip:limit] are compared
with the thumbnail of another vector whose slice holds the same values.
"""
import base64
import io
import json
import os
import subprocess
import tempfile

import numpy as np
import pytest
from PIL import Image

from conftest import OGD, OgdServer, serve
from test_images import png_gray, rgba

RID = "20230605080000"
TID = "20240101000000"  # image, float-image and vector thumbnails
MID = "20240102000000"  # a vector channel without its object
PREFS = ("PREFERRED_COLOUR_MAP", "PREFERRED_FLOAT_COLOUR_MAP", "VECTOR_SKIP", "VECTOR_LIMIT")
STORED_VEC_THUMB = base64.b64encode(png_gray([[7, 7], [7, 7]], 8)).decode()

# data[1:3] of both is [5, 7]; data[1:-1] of both is [5, 7, 1]
VECTORS = {"V-FULL": [0, 5, 7, 1, 2], "V-SAME": [9, 5, 7, 1, 4]}


def _record(rid, channels):
    return {"_id": rid,
            "metadata": {"epac_ops_data_version": "1.0", "shotnum": int(rid[-6:]) + 1,
                         "timestamp": {"$date": f"{rid[:4]}-{rid[4:6]}-{rid[6:8]}T00:00:00Z"}},
            "channels": channels}


def _import(s):
    la = Image.new("LA", (2, 2))
    la.putdata([(0, 255), (128, 255), (255, 0), (40, 7)])
    b = io.BytesIO()
    la.save(b, format="PNG")
    channels = {
        "T-IMG": {"metadata": {"channel_dtype": "image"}, "image_path": "x",
                  "thumbnail": base64.b64encode(png_gray([[0, 1, 50], [128, 200, 255]], 8)).decode()},
        "T-FLOAT": {"metadata": {"channel_dtype": "float_image"}, "image_path": "y",
                    "thumbnail": base64.b64encode(b.getvalue()).decode()},
    }
    for name, data in VECTORS.items():
        channels[name] = {"metadata": {"channel_dtype": "vector"}, "vector_path": "v",
                          "thumbnail": STORED_VEC_THUMB}
        s.put_object(f"vectors/2024/01/01/000000/{name}.json", json.dumps({"data": data}).encode())
    missing = {"V-GONE": {"metadata": {"channel_dtype": "vector"}, "vector_path": "v",
                          "thumbnail": STORED_VEC_THUMB}}
    path = os.path.join(s.data_dir, "prefs.jsonl")
    with open(path, "w") as f:
        f.write(json.dumps(_record(TID, channels)) + "\n")
        f.write(json.dumps(_record(MID, missing)) + "\n")
    subprocess.run([OGD, "import", "--config", s.config_path, "--collection", "records", path],
                   check=True, env=s.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)


@pytest.fixture(scope="module")
def srv():
    d = tempfile.mkdtemp(prefix="ogd-test-")
    s = OgdServer(d, None)
    s.demo(2)
    s.put_object("images/2023/06/05/080000/TEST-8.png", png_gray([[0, 1, 127, 128, 254, 255]], 8))
    buf = io.BytesIO()
    np.savez_compressed(buf, np.array([[-2.0, 0.0, np.nan], [1.0, 2.0, 0.3]], dtype=np.float32))
    s.put_object("float_images/2023/06/05/080000/TEST-FLOAT.npz", buf.getvalue())
    _import(s)
    yield from serve(s)


@pytest.fixture
def prefs(srv):
    """Sets preferences of the logged-in user; all four are removed after the test."""
    def set_pref(name, value):
        r = srv.request("POST", "/users/preferences", json={"name": name, "value": value})
        assert r.status_code == 201, r.text
    yield set_pref
    for name in PREFS:
        srv.request("DELETE", f"/users/preferences/{name}")


def body(r):
    assert r.status_code == 200, r.text
    return r.content


def detail(r):
    return r.status_code, r.json()


def record(srv, rid=TID, **params):
    r = srv.get(f"/records/{rid}", params=params)
    assert r.status_code == 200, r.text
    return r.json()["channels"]


def listed(srv, rid=TID, **params):
    r = srv.get("/records", params={"conditions": json.dumps({"_id": rid}), **params})
    assert r.status_code == 200, r.text
    return r.json()[0]["channels"]


# ---------------------------------------------------------------- colour maps

def test_no_preference_gives_the_config_defaults(srv):
    assert body(srv.get(f"/images/{RID}/TEST-8")) == body(
        srv.get(f"/images/{RID}/TEST-8", params={"colourmap_name": "viridis"}))
    assert body(srv.get(f"/images/float/{RID}/TEST-FLOAT")) == body(
        srv.get(f"/images/float/{RID}/TEST-FLOAT", params={"colourmap_name": "bwr"}))
    assert body(srv.get("/images/colour_bar")) == body(
        srv.get("/images/colour_bar", params={"colourmap_name": "viridis"}))
    assert record(srv) == record(srv, colourmap_name="viridis", float_colourmap_name="bwr")


def test_image_follows_the_preference(srv, prefs):
    viridis = body(srv.get(f"/images/{RID}/TEST-8"))
    prefs("PREFERRED_COLOUR_MAP", "magma")
    got = body(srv.get(f"/images/{RID}/TEST-8", params={"lower_level": 1, "upper_level": 200}))
    assert got == body(srv.get(f"/images/{RID}/TEST-8", params={
        "lower_level": 1, "upper_level": 200, "colourmap_name": "magma"}))
    assert body(srv.get(f"/images/{RID}/TEST-8")) != viridis
    # the query parameter beats the preference
    assert body(srv.get(f"/images/{RID}/TEST-8", params={"colourmap_name": "viridis"})) == viridis
    # an empty parameter skips the preference on the image endpoints: the config default
    assert body(srv.get(f"/images/{RID}/TEST-8", params={"colourmap_name": ""})) == viridis
    # the original image has no colour map
    orig = srv.get(f"/images/{RID}/TEST-8", params={"original_image": "true"})
    assert orig.content == png_gray([[0, 1, 127, 128, 254, 255]], 8)


def test_etag_changes_with_the_preference(srv, prefs):
    a = srv.get(f"/images/{RID}/TEST-8")
    prefs("PREFERRED_COLOUR_MAP", "cividis")
    b = srv.get(f"/images/{RID}/TEST-8")
    assert a.headers["ETag"] != b.headers["ETag"]
    r = srv.get(f"/images/{RID}/TEST-8", headers={"If-None-Match": a.headers["ETag"]})
    assert r.status_code == 200 and r.content == b.content


def test_colour_bar_follows_the_preference(srv, prefs):
    viridis = body(srv.get("/images/colour_bar"))
    prefs("PREFERRED_COLOUR_MAP", "jet_r")
    params = {"lower_level": 20, "upper_level": 100}
    assert body(srv.get("/images/colour_bar", params=params)) == body(
        srv.get("/images/colour_bar", params={**params, "colourmap_name": "jet_r"}))
    assert body(srv.get("/images/colour_bar", params={"colourmap_name": ""})) == viridis
    # level errors come first, as without a preference
    r = srv.get("/images/colour_bar", params={"lower_level": 9, "upper_level": 3})
    assert detail(r) == (400, {"detail": "lower_level must be less than or equal to upperlevel"})


def test_float_image_follows_its_own_preference(srv, prefs):
    bwr = body(srv.get(f"/images/float/{RID}/TEST-FLOAT"))
    prefs("PREFERRED_COLOUR_MAP", "magma")  # integer images only
    assert body(srv.get(f"/images/float/{RID}/TEST-FLOAT")) == bwr
    prefs("PREFERRED_FLOAT_COLOUR_MAP", "RdBu")
    got = body(srv.get(f"/images/float/{RID}/TEST-FLOAT"))
    assert got == body(srv.get(f"/images/float/{RID}/TEST-FLOAT",
                               params={"colourmap_name": "RdBu"}))
    assert got != bwr
    assert body(srv.get(f"/images/float/{RID}/TEST-FLOAT",
                        params={"colourmap_name": "bwr"})) == bwr
    assert body(srv.get(f"/images/float/{RID}/TEST-FLOAT", params={"colourmap_name": ""})) == bwr
    # the integer-image endpoints do not read the float preference
    assert body(srv.get(f"/images/{RID}/TEST-8")) == body(
        srv.get(f"/images/{RID}/TEST-8", params={"colourmap_name": "magma"}))


def test_record_thumbnails_follow_the_preferences(srv, prefs):
    default = record(srv)
    prefs("PREFERRED_COLOUR_MAP", "magma")
    prefs("PREFERRED_FLOAT_COLOUR_MAP", "PiYG")
    explicit = record(srv, colourmap_name="magma", float_colourmap_name="PiYG")
    assert explicit["T-IMG"] != default["T-IMG"]
    assert explicit["T-FLOAT"] != default["T-FLOAT"]
    for got in (record(srv), listed(srv),
                # on /records and /records/{id_} an empty parameter falls back to the preference
                record(srv, colourmap_name="", float_colourmap_name=""),
                listed(srv, colourmap_name="", float_colourmap_name="")):
        assert got["T-IMG"] == explicit["T-IMG"]
        assert got["T-FLOAT"] == explicit["T-FLOAT"]
    # parameters beat preferences, each map on its own
    mixed = listed(srv, colourmap_name="viridis")
    assert mixed["T-IMG"] == default["T-IMG"]
    assert mixed["T-FLOAT"] == explicit["T-FLOAT"]
    # levels apply to the preferred map too
    assert listed(srv, lower_level=30, upper_level=90)["T-IMG"] == listed(
        srv, lower_level=30, upper_level=90, colourmap_name="magma")["T-IMG"]


def test_channel_summary_follows_the_preferences(srv, prefs):
    prefs("PREFERRED_COLOUR_MAP", "magma")
    prefs("PREFERRED_FLOAT_COLOUR_MAP", "PiYG")
    explicit = record(srv, colourmap_name="magma", float_colourmap_name="PiYG")
    ts = "2024-01-01T00:00:00"
    r = srv.get("/channels/summary/T-IMG")
    assert r.status_code == 200, r.text
    assert r.json()["recent_sample"] == [{ts: explicit["T-IMG"]["thumbnail"]}]
    r = srv.get("/channels/summary/T-FLOAT")
    assert r.json()["recent_sample"] == [{ts: explicit["T-FLOAT"]["thumbnail"]}]


def test_preference_string_that_is_no_colour_map(srv, prefs):
    prefs("PREFERRED_COLOUR_MAP", "nope")
    bad = {"detail": "nope is not a valid colour map name"}
    assert detail(srv.get(f"/images/{RID}/TEST-8")) == (400, bad)
    assert detail(srv.get("/images/colour_bar")) == (400, bad)
    assert detail(srv.get(f"/records/{TID}")) == (400, bad)
    assert detail(srv.get("/channels/summary/T-IMG")) == (400, bad)
    # inside /records' task group the reference turns it into 500
    r = srv.get("/records", params={"conditions": json.dumps({"_id": TID})})
    assert detail(r) == (500, {"detail": "Unknown error"})
    # a parameter naming a map avoids the preference
    assert srv.get(f"/images/{RID}/TEST-8", params={"colourmap_name": "viridis"}).status_code == 200
    assert srv.get(f"/records/{TID}", params={"colourmap_name": "gray"}).status_code == 200
    # the float endpoints do not read it
    assert srv.get(f"/images/float/{RID}/TEST-FLOAT").status_code == 200


def test_float_preference_that_is_no_colour_map(srv, prefs):
    prefs("PREFERRED_FLOAT_COLOUR_MAP", "nope")
    r = srv.get(f"/images/float/{RID}/TEST-FLOAT")
    assert detail(r) == (400, {"detail": "nope is not a valid colour map name"})
    # thumbnails: the reference's unvalidated matplotlib lookup fails with 500
    assert detail(srv.get(f"/records/{TID}")) == (500, {"detail": "Unknown error"})
    assert detail(srv.get("/channels/summary/T-FLOAT")) == (500, {"detail": "Unknown error"})
    assert srv.get(f"/images/{RID}/TEST-8").status_code == 200


def test_preference_of_another_json_type(srv, prefs):
    prefs("PREFERRED_COLOUR_MAP", 12)
    assert detail(srv.get(f"/images/{RID}/TEST-8")) == (
        400, {"detail": "12 is not a valid colour map name"})
    prefs("PREFERRED_COLOUR_MAP", True)
    assert detail(srv.get("/images/colour_bar")) == (
        400, {"detail": "True is not a valid colour map name"})


def test_empty_preference_means_the_default(srv, prefs):
    prefs("PREFERRED_COLOUR_MAP", "")
    assert body(srv.get(f"/images/{RID}/TEST-8")) == body(
        srv.get(f"/images/{RID}/TEST-8", params={"colourmap_name": "viridis"}))
    assert record(srv)["T-IMG"] == record(srv, colourmap_name="viridis")["T-IMG"]


# ---------------------------------------------------------------- vectors

def vec_png(thumb):
    img = Image.open(io.BytesIO(base64.b64decode(thumb)))
    assert img.size == (100, 100)  # vectors.thumbnail_size
    return np.asarray(img.convert("RGBA"))


def test_vector_thumbnails_as_stored_without_skip_or_limit(srv, prefs):
    ch = record(srv)
    assert ch["V-FULL"]["thumbnail"] == ch["V-SAME"]["thumbnail"] == STORED_VEC_THUMB
    prefs("VECTOR_SKIP", 0)
    prefs("VECTOR_LIMIT", 0)  # zero is "not set"
    assert record(srv)["V-FULL"]["thumbnail"] == STORED_VEC_THUMB
    assert listed(srv)["V-FULL"]["thumbnail"] == STORED_VEC_THUMB


@pytest.mark.parametrize("skip,limit,values", [(1, 3, [5, 7]), (1, -1, [5, 7, 1]),
                                               ("1", "3", [5, 7]), (1.9, 3.2, [5, 7])])
def test_vector_thumbnails_redrawn_from_the_slice(srv, prefs, skip, limit, values):
    prefs("VECTOR_SKIP", skip)
    prefs("VECTOR_LIMIT", limit)
    for ch in (record(srv), listed(srv)):
        full, same = ch["V-FULL"]["thumbnail"], ch["V-SAME"]["thumbnail"]
        assert full != STORED_VEC_THUMB
        # both slices hold the same values, so both plots are the same bytes
        assert full == same
        px = vec_png(full)
        blue = np.all(px[:, :, :3] == [31, 119, 180], axis=2)
        # one bar per value: count the runs of blue columns
        cols = blue.any(axis=0).astype(int)
        assert int(np.sum(np.diff(np.concatenate([[0], cols])) == 1)) == len(values)
    # image thumbnails are unaffected
    assert record(srv)["T-IMG"] == record(srv, colourmap_name="viridis")["T-IMG"]


def test_vector_thumbnail_redrawn_when_projected_alone(srv, prefs):
    """A projection down to the thumbnail leaves out the channel's type: it is looked up in
    the store, and the re-drawn thumbnail is the one of the whole channel."""
    prefs("VECTOR_SKIP", 1)
    prefs("VECTOR_LIMIT", 3)
    whole = listed(srv, projection="channels.V-FULL")["V-FULL"]["thumbnail"]
    alone = listed(srv, projection="channels.V-FULL.thumbnail")["V-FULL"]
    assert whole != STORED_VEC_THUMB
    assert alone == {"thumbnail": whole}


def test_vector_limit_alone_and_truncate(srv, prefs):
    prefs("VECTOR_LIMIT", 2)  # data[:2]: [0, 5] and [9, 5] differ
    ch = record(srv)
    assert ch["V-FULL"]["thumbnail"] != ch["V-SAME"]["thumbnail"]
    t = record(srv, truncate="true")["V-FULL"]["thumbnail"]
    assert len(t) == 50 and ch["V-FULL"]["thumbnail"].startswith(t)
    t = listed(srv, truncate="true")["V-FULL"]["thumbnail"]
    assert len(t) == 50 and ch["V-FULL"]["thumbnail"].startswith(t)


def test_vector_summary_is_never_redrawn(srv, prefs):
    prefs("VECTOR_SKIP", 1)
    r = srv.get("/channels/summary/V-FULL")
    assert r.status_code == 200
    assert r.json()["recent_sample"] == [{"2024-01-01T00:00:00": STORED_VEC_THUMB}]
    # /vectors returns the data, whatever the preferences
    assert srv.get(f"/vectors/{TID}/V-FULL").json() == {"data": [0.0, 5.0, 7.0, 1.0, 2.0]}


def test_vector_object_missing(srv, prefs):
    assert record(srv, rid=MID)["V-GONE"]["thumbnail"] == STORED_VEC_THUMB
    prefs("VECTOR_SKIP", 1)
    r = srv.get(f"/records/{MID}")
    assert detail(r) == (404, {"detail": f"Vector with id={MID}, channel=V-GONE could not be "
                                         "found in object storage, check deletion policy and "
                                         "age of requested data"})
    r = srv.get("/records", params={"conditions": json.dumps({"_id": MID})})
    assert detail(r) == (500, {"detail": "Unknown error"})
    # a projection without the vector thumbnail needs no object
    r = srv.get("/records", params={"conditions": json.dumps({"_id": MID}),
                                    "projection": "metadata.shotnum"})
    assert r.status_code == 200


@pytest.mark.parametrize("value", ["abc", "1.5", [1], {"a": 1}])
def test_vector_preference_that_is_no_integer(srv, prefs, value):
    prefs("VECTOR_SKIP", value)
    msg = ("The VECTOR_SKIP preference must be an integer: change or delete it "
           "(/users/preferences)")
    for r in (srv.get(f"/records/{TID}"),
              srv.get("/records", params={"conditions": json.dumps({"_id": TID})}),
              # the list reads skip/limit whatever the page holds, as the reference
              srv.get("/records", params={"conditions": json.dumps({"_id": "none"})})):
        assert detail(r) == (400, {"detail": msg})
    # one record: read only when the record exists and has channels
    assert detail(srv.get("/records/none")) == (404, {"detail": "Record cannot be found"})
    # the image endpoints do not read it
    assert srv.get(f"/images/{RID}/TEST-8").status_code == 200
    assert srv.get("/healthz").status_code == 200


def test_user_without_a_document_gets_the_defaults(srv):
    srv.user_cli("add", "gone", "--all-routes", password="secret-gone-1")
    token = srv.login("gone", "secret-gone-1")
    r = srv.request("DELETE", "/users/gone")
    assert r.status_code == 204, r.text
    h = {"Authorization": "Bearer " + token}
    r = srv.get(f"/images/{RID}/TEST-8", headers=h)
    if r.status_code in (401, 403):
        pytest.skip("tokens of deleted users are refused")
    assert body(r) == body(srv.get(f"/images/{RID}/TEST-8", params={"colourmap_name": "viridis"}))
    assert srv.get(f"/records/{TID}", headers=h).json()["channels"]["T-IMG"] == record(
        srv, colourmap_name="viridis")["T-IMG"]
