"""GET /functions/tokens, POST /functions/validate (docs/functions.md §4-§5) and functions
evaluated in GET /records (docs/functions.md §9)."""
import base64
import json
import struct

import pytest

IMG = "PM-201-FE-CAM-1"      # demo image channel (12-bit)
WAV = "PM-201-FE-PD"         # demo waveform channel
VEC = "TS-202-TSM-WFS-COEF"  # demo vector channel
SCA = "PM-201-FE-EM"         # demo scalar channel


@pytest.fixture(scope="module")
def srv(request):
    # one demo server for the module (module-scoped wrapper around make_server's logic)
    import tempfile
    from conftest import OgdServer, serve
    d = tempfile.mkdtemp(prefix="ogd-test-")
    s = OgdServer(d, None)
    s.demo(6, True)
    yield from serve(s)


def validate(srv, fns):
    return srv.request("POST", "/functions/validate", json=fns)


def fn(name, expr):
    return {"name": name, "expression": expr}


def test_tokens(srv):
    r = srv.get("/functions/tokens")
    assert r.status_code == 200
    toks = r.json()
    assert [t["symbol"] for t in toks] == [
        "+", "-", "*", "/", "**", "(", ")", "mean", "exp", "log", "max", "min", "background",
        "centre", "centroid_x", "centroid_y", "falling", "fwhm", "fwhm_x", "fwhm_y",
        "integrate", "rising"]
    assert toks[0] == {"symbol": "+", "name": "Add"}
    assert toks[4] == {"symbol": "**", "name": "Raise to power"}
    assert toks[6] == {"symbol": ")", "name": "Close bracket"}
    assert toks[17]["name"] == "Full Width Half Maximum"
    assert toks[15]["name"] == "Centroid (y)"
    for t in toks[:7]:
        assert list(t) == ["symbol", "name"]
    for t in toks[7:]:
        assert list(t) == ["symbol", "name", "details"] and t["details"]


def test_validate_types(srv):
    r = validate(srv, [fn("a", "1"), fn("b", "a + 1"), fn("c", f"{SCA} / 10"),
                       fn("d", f"log({SCA} / 10)"), fn("e", f"{WAV} - 737"),
                       fn("f", f"mean(log({WAV} - 737))"), fn("g", f"centre({WAV})"),
                       fn("h", f"{IMG} - 4"), fn("i", f"log({IMG} - 4)"), fn("j", VEC),
                       fn("k", "e * 2"), fn("l", f"background({IMG})")])
    assert r.status_code == 200, r.text
    assert r.json() == ["scalar", "scalar", "scalar", "scalar", "waveform", "scalar", "scalar",
                        "image", "image", "vector", "waveform", "scalar"]


def test_validate_conventional_precedence(srv):
    assert validate(srv, [fn("a", "36 / 6 * 3 + 2**2 - (3 + 5)")]).json() == ["scalar"]


@pytest.mark.parametrize("fns,msg", [
    ([fn(SCA, "1")], f"Error at index 0: name '{SCA}' is already a channel name"),
    ([fn("a", "1"), fn("a", "2")], "Error at index 1: name 'a' is already a function name"),
    ([fn("fwhm", "1")], "Error at index 0: name 'fwhm' is already a builtin name"),
    ([fn("**", "1")], "Error at index 0: name '**' is already a builtin name"),
    ([fn("b@d_n@m3", "1")], "Error at index 0: name 'b@d_n@m3' must start with a letter, "
                            "and can only contain letters, digits, '-' or '_' characters"),
    ([fn("x", "(a")], "Error at index 0: expression '(a' has unexpected end-of-input, "
                      "check all brackets are closed"),
    ([fn("x", "s+1")], "Error at index 0: expression 's+1' has unexpected character, "
                       "check all brackets are opened"),
    ([fn("x", "zz + 1")], "Error at index 0: 'zz' is not a recognised channel"),
    ([fn("x", "x + 1")], "Error at index 0: 'x' is not a recognised channel"),
    ([fn("a", "b / 10"), fn("b", "1")], "Error at index 0: 'b' is not a recognised channel"),
    ([fn("x", "unknown(zz)")], "Error at index 0: 'zz' is not a recognised channel"),
    ([fn("x", "MEAN(1)")], "Error at index 0: 'MEAN' is not a recognised builtin function name"),
    ([fn("x", "centre(1)")], "Error at index 0: 'centre' accepts {'waveform'} type(s), "
                             "'scalar' provided"),
    ([fn("b", IMG), fn("c", WAV), fn("a", "b + c")],
     "Error at index 2: Operation between types [<ChannelDtype.IMAGE: 'image'>, "
     "<ChannelDtype.WAVEFORM: 'waveform'>] not supported"),
    ([fn("b", f"{IMG} - 4"), fn("c", WAV), fn("a", "b + c")],
     "Error at index 2: Operation between types ['image', "
     "<ChannelDtype.WAVEFORM: 'waveform'>] not supported"),
    ([fn("x", f"{VEC} + 1")], "Error at index 0: Operation between types "
                              "[<ChannelDtype.VECTOR: 'vector'>, 'scalar'] not supported"),
])
def test_validate_errors(srv, fns, msg):
    r = validate(srv, fns)
    assert r.status_code == 400
    assert r.json() == {"detail": msg}


def test_validate_names_are_stripped(srv):
    assert validate(srv, [fn("  a ", " 1 ")]).json() == ["scalar"]


def test_validate_422(srv):
    r = validate(srv, [fn("", "  ")])
    assert r.status_code == 422
    d = r.json()["detail"]
    assert len(d) == 2
    assert [e["loc"] for e in d] == [["body", 0, "name"], ["body", 0, "expression"]]
    assert all(e["msg"] == "String should have at least 1 character" for e in d)
    r = validate(srv, [{"name": "a"}])
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"] == "Field required"
    assert r.json()["detail"][0]["loc"] == ["body", 0, "expression"]
    r = srv.request("POST", "/functions/validate", data="[{", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"
    r = validate(srv, {"name": "a", "expression": "1"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "list_type"


def test_validate_hostile(srv):
    r = validate(srv, [fn("a", "(" * 5000 + "1" + ")" * 5000)])
    assert r.status_code == 400
    assert r.json()["detail"] == "Error at index 0: expression is longer than 1000 characters"
    r = validate(srv, [fn("a", "(" * 200 + "1" + ")" * 200)])
    assert r.status_code == 400
    assert "nested too deeply" in r.json()["detail"]
    r = validate(srv, [fn("a%d" % i, "1") for i in range(101)])
    assert r.status_code == 400
    assert "At most 100 functions" in r.json()["detail"]
    # the worker is still there
    assert validate(srv, [fn("a", "1 / 3")]).json() == ["scalar"]


# ---- functions in GET /records ----

def png_gray8(rows):
    """A minimal 8-bit greyscale PNG of the given rows (lists of ints)."""
    import struct
    import zlib

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    h, w = len(rows), len(rows[0])
    raw = b"".join(b"\0" + bytes(r) for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def key_dir(rid):
    return f"{rid[0:4]}/{rid[4:6]}/{rid[6:8]}/{rid[8:]}"


def records_with(srv, *fns, **params):
    q = [("functions", json.dumps(f)) for f in fns]
    q += [("order", "_id ASC")] + list(params.items())
    return srv.get("/records", params=q)


@pytest.fixture(scope="module")
def known(srv):
    """The first record's waveform and image replaced by small known ones."""
    rid = srv.get("/records", params={"order": "_id ASC", "limit": 1}).json()[0]["_id"]
    srv.put_object(f"waveforms/{key_dir(rid)}/{WAV}.json",
                   json.dumps({"x": [0, 1, 2, 3, 4], "y": [0, 1, 2, 1, 0]}).encode())
    rows = [[0, 0, 0, 0], [0, 1, 0, 0], [1, 2, 1, 0], [0, 1, 0, 0]]
    # the demo's images are 12-bit (bit_depth 12): stored values are raw << 4
    srv.put_object(f"images/{key_dir(rid)}/{IMG}.png", png_gray8([[v * 16 for v in r] for r in rows]))
    return rid


def test_records_constant_function(srv):
    plain = srv.get("/records", params={"order": "_id ASC"}).json()
    r = records_with(srv, fn("test", "1"))
    assert r.status_code == 200, r.text
    recs = r.json()
    assert len(recs) == len(plain) == 6
    for p, rec in zip(plain, recs):
        assert rec["channels"]["test"] == {"metadata": {"channel_dtype": "scalar"}, "data": 1.0}
        assert len(rec["channels"]) == len(p["channels"]) + 1
        assert list(rec["channels"])[-1] == "test"
    assert '"data":1.0' in r.text


def test_records_scalar_functions_and_skipping(srv):
    recs = records_with(srv, fn("a", f"{SCA} / 10"), fn("b", "a * 2"), fn("c", "1")).json()
    present = 0
    for rec in recs:
        ch = rec["channels"]
        if SCA in ch:
            present += 1
            assert ch["a"]["data"] == pytest.approx(ch[SCA]["data"] / 10, rel=1e-15)
            assert ch["b"]["data"] == pytest.approx(ch[SCA]["data"] / 5, rel=1e-15)
        else:  # absent channel: a skipped, and b, which uses a
            assert "a" not in ch and "b" not in ch
        assert ch["c"]["data"] == 1.0
    assert present > 0


def test_records_waveform_and_image_inputs(srv, known):
    fns = [fn("w_fwhm", f"fwhm({WAV})"), fn("w_centre", f"centre({WAV})"),
           fn("w_int", f"integrate({WAV})"), fn("w_ratio", f"integrate({WAV}) / max({WAV})"),
           fn("w_mean", f"mean({WAV})"), fn("w_after", f"max({WAV})"),
           fn("i_cx", f"centroid_x({IMG})"), fn("i_cy", f"centroid_y({IMG})"),
           fn("i_fx", f"fwhm_x({IMG})"), fn("i_sum", f"integrate({IMG})"),
           fn("i_mean", f"mean({IMG})"), fn("shifted", f"{WAV} - 1")]
    r = records_with(srv, *fns)
    assert r.status_code == 200, r.text
    recs = r.json()
    ch = recs[0]["channels"]
    assert recs[0]["_id"] == known
    data = {k: ch[k]["data"] for k in ch if k.startswith(("w_", "i_"))}
    assert data == pytest.approx({"w_fwhm": 4.0, "w_centre": 2.0, "w_int": 34 / 9,
                                  "w_ratio": 17 / 9, "w_mean": 0.8, "w_after": 2.0,
                                  "i_cx": 1.0, "i_cy": 2.0, "i_fx": 2.0, "i_sum": 6.0,
                                  "i_mean": 6 / 16})
    meta = ch["shifted"]["metadata"]
    assert meta["channel_dtype"] == "waveform"
    assert ch[WAV]["metadata"].get("x_units") == meta.get("x_units")
    # a waveform result carries a plotted thumbnail of waveforms.thumbnail_size (100x100)
    png = base64.b64decode(ch["shifted"]["thumbnail"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (100, 100)
    # every other record got values from its own demo objects
    for rec in recs[1:]:
        c = rec["channels"]
        assert isinstance(c["w_mean"]["data"], float)
        assert c["i_sum"]["data"] > 0


def test_records_functions_with_projection(srv, known):
    r = records_with(srv, fn("m", f"mean({WAV})"), projection="metadata.shotnum")
    assert r.status_code == 200, r.text
    rec = r.json()[0]
    assert rec["channels"]["m"]["data"] == pytest.approx(0.8)
    assert WAV in rec["channels"]  # the input channel comes back, as the reference does


@pytest.mark.parametrize("fns,status,msg", [
    ([fn("a", "b / 10"), fn("b", "1")], 400, "{'b'} are not recognised channels/functions"),
    ([fn("a", "a + 1")], 400, "{'a'} are not recognised channels/functions"),
    ([fn("a", "y + x")], 400, "{'x', 'y'} are not recognised channels/functions"),
    ([fn("a", "(1")], 400, "Function 'a': expression '(1' has unexpected end-of-input, "
                           "check all brackets are closed"),
])
def test_records_function_errors(srv, fns, status, msg):
    r = records_with(srv, *fns)
    assert r.status_code == status
    assert r.json() == {"detail": msg}


def test_records_function_runtime_errors(srv):
    r = records_with(srv, fn("a", "1 / 0"))
    assert r.status_code == 400
    assert r.json()["detail"].startswith("Function 'a' on record '")
    assert r.json()["detail"].endswith("': division by zero")
    r = records_with(srv, fn("a", f"centre({SCA})"))
    assert r.status_code == 400
    assert "'centre' accepts {'waveform'} type(s), 'scalar' provided" in r.json()["detail"]
    r = srv.get("/records", params={"functions": "{not json"})
    assert r.status_code == 422
    r = srv.get("/records", params={"functions": '{"name": "a"}'})
    assert r.status_code == 400
    # NaN results are null, and the worker is still up
    r = records_with(srv, fn("a", f"log({WAV} * 0 - 1)"), fn("b", "mean(a)"))
    assert r.status_code == 200
    assert all(rec["channels"]["b"]["data"] is None for rec in r.json())


def test_record_by_id_functions(srv, known):
    q = [("functions", json.dumps(fn("m", f"mean({WAV})"))),
         ("functions", json.dumps(fn("two", "m * 2")))]
    r = srv.get(f"/records/{known}", params=q)
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["_id"] == known
    assert rec["channels"]["m"] == {"metadata": {"channel_dtype": "scalar"}, "data": pytest.approx(0.8)}
    assert rec["channels"]["two"]["data"] == pytest.approx(1.6)
    r = srv.get(f"/records/{known}", params=[("functions", json.dumps(fn("a", "zz")))])
    assert r.status_code == 400
    assert r.json() == {"detail": "{'zz'} are not recognised channels/functions"}
    assert srv.get("/records/19990101000000", params=q).status_code == 404


def test_records_function_stored_data_errors(make_server):
    s = make_server(records=2)
    rid = s.get("/records", params={"order": "_id ASC", "limit": 1}).json()[0]["_id"]
    s.put_object(f"waveforms/{key_dir(rid)}/{WAV}.json", b"not json")
    r = records_with(s, fn("m", f"mean({WAV})"))
    assert r.status_code == 500
    assert r.json() == {"detail": f"Channel '{WAV}' of record '{rid}' cannot be used: stored "
                                  "waveform is not a JSON object with x and y arrays"}
    # a string-valued scalar channel is the client's mistake
    r = records_with(s, fn("m", "SER-202-OP-MODE + 1"))
    assert r.status_code == 400
    assert "channel 'SER-202-OP-MODE' has no numeric value" in r.json()["detail"]
    assert records_with(s, fn("c", "1")).status_code == 200



def test_unusable_channel_in_a_skipped_function_stays_skipped(srv):
    # the demo's record 4 lacks TS-202-TSM-P1-CAM-2-FWHMX; SER-202-OP-MODE is a string
    q = [("functions", json.dumps(fn("a", "TS-202-TSM-P1-CAM-2-FWHMX + SER-202-OP-MODE"))),
         ("functions", json.dumps(fn("c", "2")))]
    r = srv.get("/records/20230605080030", params=q)
    assert r.status_code == 200, r.text
    assert "a" not in r.json()["channels"] and r.json()["channels"]["c"]["data"] == 2.0
    r = srv.get("/records/20230605080000", params=q)
    assert r.status_code == 400
    assert r.json() == {"detail": "Channel 'SER-202-OP-MODE' of record '20230605080000' cannot "
                                  "be used: channel 'SER-202-OP-MODE' has no numeric value"}


# ---- image-valued functions; functions on /images, the crosshair and /waveforms ----

def later_records(srv):
    """Conditions selecting every demo record but the first (which `known` shrinks)."""
    first = srv.get("/records", params={"order": "_id ASC", "limit": 1}).json()[0]["_id"]
    return json.dumps({"_id": {"$gt": first}})


def png_pixels(content):
    import io
    import numpy as np
    from PIL import Image
    img = Image.open(io.BytesIO(content))
    return img.mode, np.asarray(img)


def test_records_image_function_thumbnail(srv):
    import numpy as np
    cond = later_records(srv)
    r = records_with(srv, fn("a", f"{IMG} - 4"), conditions=cond)
    assert r.status_code == 200, r.text
    recs = r.json()
    assert len(recs) == 5
    for rec in recs:
        ch = rec["channels"]["a"]
        # pixel-size fields carry the pixel counts of the 320 x 240 demo frames
        assert ch["metadata"] == {"channel_dtype": "image", "x_pixel_size": 320,
                                  "y_pixel_size": 240}
        mode, thumb = png_pixels(base64.b64decode(ch["thumbnail"]))
        # strided downsample: steps 320 // 50 = 6 and 240 // 50 = 4 -> 54 x 60 pixels
        assert mode == "RGBA" and thumb.shape == (60, 54, 4)
        # the same pixels as the full rendering of the function, taken every 6th/4th pixel
        full = srv.get(f"/images/{rec['_id']}/a",
                       params={"functions": json.dumps(fn("a", f"{IMG} - 4"))})
        assert full.status_code == 200
        _, px = png_pixels(full.content)
        assert np.array_equal(thumb, px[::4, ::6])
    # truncate cuts the image thumbnail too
    r = records_with(srv, fn("a", f"{IMG} - 4"), conditions=cond, truncate="true")
    assert all(len(rec["channels"]["a"]["thumbnail"]) == 50 for rec in r.json())
    # levels and colour map of the request apply
    plain = records_with(srv, fn("a", IMG), conditions=cond).json()[0]["channels"]["a"]
    other = records_with(srv, fn("a", IMG), conditions=cond, colourmap_name="jet",
                         lower_level=10, upper_level=20).json()[0]["channels"]["a"]
    assert plain["thumbnail"] != other["thumbnail"]
    # a bad map fails the stored thumbnails first, as without functions
    r = records_with(srv, fn("a", IMG), conditions=cond, colourmap_name="nope")
    assert (r.status_code, r.json()) == (500, {"detail": "Unknown error"})


def test_records_image_narrower_than_thumbnail(srv, known):
    # ogd answers 400 where the reference fails with 500 (a stride of 0)
    r = records_with(srv, fn("a", f"{IMG} - 1"))
    assert r.status_code == 400
    assert r.json() == {"detail": f"Function 'a' on record '{known}': the image (4 x 4 pixels) "
                                  "is narrower or shorter than the thumbnail size (50 x 50)"}
    # scalar results of the same small image still work
    assert records_with(srv, fn("a", f"mean({IMG})")).status_code == 200


def demo_id(srv, n=1):
    return srv.get("/records", params={"order": "_id ASC", "skip": n, "limit": 1}).json()[0]["_id"]


def with_fns(*fns, **params):
    return [("functions", json.dumps(f)) for f in fns] + list(params.items())


def test_images_function_full_image(srv):
    import numpy as np
    rid = demo_id(srv)
    stored = srv.get(f"/images/{rid}/{IMG}")
    same = srv.get(f"/images/{rid}/f", params=with_fns(fn("f", IMG)))
    assert same.status_code == 200 and same.headers["content-type"] == "image/png"
    # the identity function renders exactly as the stored 12-bit image
    assert np.array_equal(png_pixels(same.content)[1], png_pixels(stored.content)[1])
    lv = dict(lower_level=3, upper_level=40, limit_bit_depth=8, colourmap_name="jet")
    a = srv.get(f"/images/{rid}/{IMG}", params=lv)
    b = srv.get(f"/images/{rid}/f", params=with_fns(fn("f", IMG), **lv))
    assert np.array_equal(png_pixels(a.content)[1], png_pixels(b.content)[1])
    # original_image: a 16-bit greyscale PNG of the storage values
    orig_mode, orig = png_pixels(srv.get(f"/images/{rid}/{IMG}",
                                         params={"original_image": "true"}).content)
    r = srv.get(f"/images/{rid}/g", params=with_fns(fn("g", f"{IMG} / 2 - 4"),
                                                    original_image="true"))
    assert r.status_code == 200
    assert r.content[24:26] == bytes([16, 0])  # IHDR: bit depth 16, greyscale
    mode, g = png_pixels(r.content)
    # 12-bit data: value / 16, the function, truncated, back into the top 12 bits
    expect = np.clip(np.trunc(orig.astype(float) / 16 / 2 - 4), 0, None) * 16
    assert np.array_equal(g.astype(float), expect)
    # coloured, the same function is RGBA of the same size
    mode, c = png_pixels(srv.get(f"/images/{rid}/g",
                                 params=with_fns(fn("g", f"{IMG} / 2 - 4"))).content)
    assert mode == "RGBA" and c.shape == (240, 320, 4)
    # other functions are evaluated as inputs of the named one
    r = srv.get(f"/images/{rid}/h", params=with_fns(fn("k", "2"), fn("h", f"{IMG} / k"),
                                                    original_image="true"))
    assert np.array_equal(png_pixels(r.content)[1].astype(float),
                          np.trunc(orig.astype(float) / 16 / 2) * 16)


def test_crosshair_of_function_image(srv):
    rid = demo_id(srv, 2)
    stored = srv.get(f"/images/{rid}/{IMG}/crosshair").json()
    r = srv.get(f"/images/{rid}/f/crosshair", params=with_fns(fn("f", IMG)))
    assert r.status_code == 200, r.text
    assert r.json() == stored
    pos = {"position": "[10, 20]"}
    at = srv.get(f"/images/{rid}/f/crosshair", params=with_fns(fn("f", f"{IMG} * 2"), **pos))
    base = srv.get(f"/images/{rid}/{IMG}/crosshair", params=pos).json()
    body = at.json()
    assert body["row"]["position"] == 20 and body["column"]["position"] == 10
    # 12-bit storage: doubling a value doubles its storage value (clamped at 65535)
    assert body["row"]["intensity"]["y"] == [min(v * 2, 65535)
                                             for v in base["row"]["intensity"]["y"]]


def test_waveform_function(srv):
    rid = demo_id(srv)
    stored = srv.get(f"/waveforms/{rid}/{WAV}").json()
    r = srv.get(f"/waveforms/{rid}/a", params=with_fns(fn("a", f"{WAV} / 100")))
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["x", "y"]
    assert body["x"] == stored["x"]
    assert body["y"] == pytest.approx([v / 100 for v in stored["y"]], rel=1e-15)
    # a scalar function answers its bare number
    rec = srv.get(f"/records/{rid}").json()
    r = srv.get(f"/waveforms/{rid}/s", params=with_fns(fn("s", f"{SCA} * 2")))
    assert r.status_code == 200
    assert r.json() == pytest.approx(rec["channels"][SCA]["data"] * 2)
    # functions named otherwise are ignored, even broken ones
    r = srv.get(f"/waveforms/{rid}/{WAV}", params=with_fns(fn("z", "(1")))
    assert r.json() == stored


def test_channel_functions_errors(srv):
    rid = demo_id(srv)
    cases = [
        (f"/images/{rid}/f", [fn("f", "zz / 2")], 400,
         "{'zz'} are not recognised channels/functions"),
        (f"/images/{rid}/f/crosshair", [fn("f", "b"), fn("b", "1")], 400,
         "{'b'} are not recognised channels/functions"),
        (f"/waveforms/{rid}/f", [fn("f", "(1")], 400,
         "Function 'f': expression '(1' has unexpected end-of-input, check all brackets are "
         "closed"),
        (f"/images/{rid}/f", [fn("f", f"{SCA} + 1")], 400, "Function 'f' gives a scalar, not an image"),
        (f"/images/{rid}/f/crosshair", [fn("f", WAV)], 400,
         "Function 'f' gives a waveform, not an image"),
        (f"/waveforms/{rid}/f", [fn("f", IMG)], 400, "Function 'f' gives a image, not a waveform"),
        ("/images/19990101000000/f", [fn("f", IMG)], 404, "Record cannot be found"),
        ("/waveforms/19990101000000/f", [fn("f", f"{WAV} * 2")], 404, "Record cannot be found"),
        (f"/images/{rid}/f", [fn("f", IMG)], 400, "upper_level must be less than "
                                                  "2**limit_bit_depth"),
        (f"/images/{rid}/f", [fn("f", IMG)], 400, "nope is not a valid colour map name"),
    ]
    for path, fns, status, msg in cases:
        params = with_fns(*fns)
        if msg.startswith("upper_level"):
            params += [("upper_level", "300")]
        if msg.startswith("nope"):
            params += [("colourmap_name", "nope")]
        r = srv.get(path, params=params)
        assert (r.status_code, r.json()) == (status, {"detail": msg}), path
    # a function whose input channel this record lacks has no value: 404
    rec4 = "20230605080030"  # the demo's record 4 lacks TS-202-TSM-P1-CAM-2-FWHMX
    r = srv.get(f"/waveforms/{rec4}/f",
                params=with_fns(fn("f", "TS-202-TSM-P1-CAM-2-FWHMX * 2")))
    assert r.status_code == 404
    assert r.json() == {"detail": f"Function 'f' has no value for record '{rec4}': a channel "
                                  "it uses is missing"}
    assert srv.get(f"/images/{rid}/{IMG}").status_code == 200  # the worker is still up


def test_image_function_bit_depths(make_server, tmp_path):
    """Ingested 6-, 8- and 16-bit images: the storage rules of docs/functions.md §9.5."""
    import numpy as np
    import hdfgen
    s = make_server(records=0)
    names = {"IMG-6": 6, "IMG-8": 8, "IMG-16": 16}
    man = hdfgen.manifest({n: "image" for n in names})
    r = s.request("POST", "/submit/manifest",
                  files={"file": ("m.json", json.dumps(man).encode())})
    assert r.status_code == 201, r.text
    rng = np.random.default_rng(7)
    data = {"IMG-6": rng.integers(0, 64, (60, 70)).astype(np.uint8),
            "IMG-8": rng.integers(0, 256, (60, 70)).astype(np.uint8),
            "IMG-16": rng.integers(0, 65536, (60, 70)).astype(np.uint16)}
    chans = {n: {"dtype": "image", "data": data[n], "attrs": {"bit_depth": bd}}
             for n, bd in names.items()}
    p = str(tmp_path / "f.h5")
    hdfgen.make_file(p, channels=chans)
    with open(p, "rb") as f:
        r = s.request("POST", "/submit/hdf", files={"file": ("f.h5", f.read())})
    assert r.status_code == 201, r.text
    rid = "20200407142816"

    def original(name, expr):
        r = s.get(f"/images/{rid}/f", params=with_fns(fn("f", expr), original_image="true"))
        assert r.status_code == 200, r.text
        assert r.content[24:26] == bytes([16, 0])
        return png_pixels(r.content)[1].astype(np.int64)

    # 6-bit: raw values back in the top 6 of 8 bits (x 4)
    assert np.array_equal(original("IMG-6", "IMG-6"), data["IMG-6"].astype(np.int64) * 4)
    assert np.array_equal(original("IMG-6", "IMG-6 / 2"), (data["IMG-6"] // 2).astype(np.int64) * 4)
    # 8 and 16 bits keep the values: the original form is their integer part
    assert np.array_equal(original("IMG-8", "IMG-8 / 2"),
                          np.trunc(data["IMG-8"] / 2).astype(np.int64))
    assert np.array_equal(original("IMG-16", "IMG-16 / 3"),
                          np.trunc(data["IMG-16"] / 3).astype(np.int64))
    # a function image keeps the bit depth of its input for functions that use it
    r = s.get(f"/images/{rid}/f", params=with_fns(fn("g", "IMG-6 * 2"), fn("f", "g + 1"),
                                                  original_image="true"))
    assert np.array_equal(png_pixels(r.content)[1].astype(np.int64),
                          np.minimum((data["IMG-6"].astype(np.int64) * 2 + 1) * 4, 255))
    # /records: 70 x 60 frames give strides 1 x 1, so the thumbnail is the whole image
    r = s.get("/records", params=with_fns(fn("a", "IMG-8 * 1"), fn("b", "IMG-6 + 1")))
    assert r.status_code == 200, r.text
    ch = r.json()[0]["channels"]
    for k in ("a", "b"):
        assert ch[k]["metadata"] == {"channel_dtype": "image", "x_pixel_size": 70,
                                     "y_pixel_size": 60}
        mode, px = png_pixels(base64.b64decode(ch[k]["thumbnail"]))
        assert mode == "RGBA" and px.shape == (60, 70, 4)


def test_client_gone_during_function_evaluation(srv):
    """Clients that go away at once, mid-evaluation: the worker stays up, nothing leaks
    (the module's server is checked for sanitizer reports when it stops)."""
    import socket
    import urllib.parse
    rid = demo_id(srv)
    f = urllib.parse.quote(json.dumps(fn("f", f"{IMG} - 4")))
    paths = [f"/images/{rid}/f?functions={f}", f"/images/{rid}/f/crosshair?functions={f}",
             f"/records?functions={f}&limit=5"]
    host, port = srv.url.split("//")[1].split(":")
    for _ in range(5):
        for path in paths:
            sock = socket.create_connection((host, int(port)))
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                         f"{srv.token}\r\n\r\n".encode())
            sock.close()
    r = srv.get(f"/images/{rid}/f", params=with_fns(fn("f", f"{IMG} - 4")))
    assert r.status_code == 200


def test_image_function_on_one_record_and_with_projection(srv):
    rid = demo_id(srv, 3)
    r = srv.get(f"/records/{rid}", params=with_fns(fn("a", f"{IMG} * 2"), truncate="true"))
    assert r.status_code == 200, r.text
    ch = r.json()["channels"]["a"]
    assert ch["metadata"]["x_pixel_size"] == 320 and len(ch["thumbnail"]) == 50
    r = srv.get("/records", params=with_fns(fn("a", f"{IMG} * 2"),
                                            conditions=json.dumps({"_id": rid}),
                                            projection="metadata.shotnum"))
    assert r.status_code == 200, r.text
    rec = r.json()[0]
    assert set(rec["channels"]) == {IMG, "a"}
    assert rec["channels"]["a"]["metadata"]["y_pixel_size"] == 240


def test_function_named_like_a_stored_channel_replaces_it(srv):
    rid = demo_id(srv)
    stored = srv.get(f"/waveforms/{rid}/{WAV}").json()
    r = srv.get(f"/waveforms/{rid}/{WAV}", params=with_fns(fn(WAV, f"{WAV} * 2")))
    assert r.status_code == 200, r.text
    assert r.json()["y"] == pytest.approx([v * 2 for v in stored["y"]], rel=1e-15)


def test_images_function_uses_the_preferred_colour_map(srv):
    """A function image on /images resolves its colour map as a stored image does: the
    query, else the user's PREFERRED_COLOUR_MAP, else the default."""
    import numpy as np
    rid = demo_id(srv)
    r = srv.request("POST", "/users/preferences",
                    json={"name": "PREFERRED_COLOUR_MAP", "value": "jet"})
    assert r.status_code == 201, r.text
    try:
        pref = srv.get(f"/images/{rid}/f", params=with_fns(fn("f", IMG)))
        named = srv.get(f"/images/{rid}/f", params=with_fns(fn("f", IMG), colourmap_name="jet"))
        default = srv.get(f"/images/{rid}/f", params=with_fns(fn("f", IMG),
                                                              colourmap_name="viridis"))
        assert np.array_equal(png_pixels(pref.content)[1], png_pixels(named.content)[1])
        assert not np.array_equal(png_pixels(pref.content)[1], png_pixels(default.content)[1])
    finally:
        srv.request("DELETE", "/users/preferences/PREFERRED_COLOUR_MAP")
