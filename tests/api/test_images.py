"""GET /images/..., /waveforms/..., /vectors/... (docs/api.md §5.6-§5.12, docs/imaging.md).

One server with demo records for the module; objects with known pixels are stored behind
its back (put_object) under demo record ids, so the expected output pixels are known.
Expected colours come from matplotlib's tables (imsave with the same vmin/vmax).
"""
import base64
import io
import json
import os
import struct
import subprocess
import tempfile
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import OGD, OgdServer, serve

RID = "20230605080000"


def png_gray(values, bit_depth, sbit=None):
    """A greyscale PNG (8 or 16 bit) with an optional sBIT chunk."""
    a = np.asarray(values)
    h, w = a.shape
    raw = b""
    for row in a:
        raw += b"\x00" + (row.astype(">u2").tobytes() if bit_depth == 16
                          else row.astype("u1").tobytes())

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, 0, 0, 0, 0))
    if sbit:
        out += chunk(b"sBIT", bytes([sbit]))
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def rgba(content):
    img = Image.open(io.BytesIO(content))
    assert img.mode == "RGBA"
    return np.asarray(img)


def phash(content):
    """imagehash.phash: L, 32x32 Lanczos, DCT-II rows and columns, top-left 8x8 > median."""
    img = Image.open(io.BytesIO(content)).convert("L").resize((32, 32), Image.LANCZOS)
    px = np.asarray(img, dtype=float)
    n = 32
    k = np.arange(n)
    basis = np.cos(np.pi * k[:, None] * (2 * k[None, :] + 1) / (2 * n))
    # rounded so that coefficients which are zero in exact arithmetic compare as zero
    dct = np.round(basis @ px @ basis.T, 6)
    low = dct[:8, :8]
    bits = (low > np.median(low)).flatten()
    return "%016x" % int("".join("1" if b else "0" for b in bits), 2)


@pytest.fixture(scope="module")
def srv():
    d = tempfile.mkdtemp(prefix="ogd-test-")
    s = OgdServer(d, None)
    s.demo(3)
    # 16-bit storage of 12-bit data (values << 4), with sBIT 12
    s.put_object(f"images/2023/06/05/080000/TEST-16.png",
                 png_gray([[0, 255, 256, 8000], [16639, 16640, 65535, 12000]], 16, 12))
    s.put_object(f"images/2023/06/05/080000/TEST-8.png", png_gray([[0, 1, 127, 128, 254, 255]], 8))
    # legacy key layout only
    s.put_object(f"images/{RID}/TEST-LEGACY.png", png_gray([[0, 255]], 8))
    # crosshair: a 5x7 image with a bright cross at x=4, y=2
    cross = np.full((5, 7), 10)
    cross[2, :] = [10, 20, 60, 100, 200, 100, 10]
    cross[:, 4] = [10, 50, 200, 50, 10]
    s.put_object(f"images/2023/06/05/080000/TEST-CROSS.png", png_gray(cross, 8))
    buf = io.BytesIO()
    np.savez_compressed(buf, np.array([[-2.0, 0.0, np.nan], [1.0, 2.0, 0.3]], dtype=np.float32))
    s.put_object(f"float_images/2023/06/05/080000/TEST-FLOAT.npz", buf.getvalue())
    buf = io.BytesIO()
    np.savez_compressed(buf, np.array([[-2.0, np.inf, 0.0], [-np.inf, 2.0, 1.0]]))
    s.put_object(f"float_images/2023/06/05/080000/TEST-FLOAT-INF.npz", buf.getvalue())
    s.put_object("images/2023/06/05/080000/TEST-RGB.png", _rgb_png())
    s.put_object(f"waveforms/2023/06/05/080000/TEST-WAVE.json",
                 b'{\n  "x": [1.0, 2.5, 1e-05],\n  "y": [3, null, -0.1]\n}')
    s.put_object(f"vectors/2023/06/05/080000/TEST-VEC.json", b'{"data": [5.639372695195284, 1]}')
    s.put_object(f"vectors/2023/06/05/080000/TEST-BAD.json", b'{"data": "nope"}')
    # damaged objects
    good = png_gray([[1, 2], [3, 4]], 8)
    s.put_object("images/2023/06/05/080000/BAD-TRUNC.png", good[:len(good) // 2])
    s.put_object("images/2023/06/05/080000/BAD-EMPTY.png", b"")
    s.put_object("float_images/2023/06/05/080000/BAD.npz", b"PK\x03\x04" + b"\0" * 64)
    s.put_object("waveforms/2023/06/05/080000/BAD.json", b"{not json")
    import_thumbnail_record(s)
    yield from serve(s)


THUMB_GREY = [[0, 1, 50], [128, 200, 255]]
THUMB_LA = [[(0, 255), (128, 255)], [(255, 0), (40, 7)]]
THUMB_ID = "20240101000000"


def import_thumbnail_record(s):
    """A record whose image and float-image thumbnails have known pixels."""
    la = Image.new("LA", (2, 2))
    la.putdata([p for row in THUMB_LA for p in row])
    b = io.BytesIO()
    la.save(b, format="PNG")
    rec = {"_id": THUMB_ID,
           "metadata": {"epac_ops_data_version": "1.0", "shotnum": 1,
                        "timestamp": {"$date": "2024-01-01T00:00:00Z"}},
           "channels": {
               "T-IMG": {"metadata": {"channel_dtype": "image"}, "image_path": "x",
                         "thumbnail": base64.b64encode(png_gray(THUMB_GREY, 8)).decode()},
               "T-FLOAT": {"metadata": {"channel_dtype": "float_image"}, "image_path": "y",
                           "thumbnail": base64.b64encode(b.getvalue()).decode()},
               "T-BROKEN": {"metadata": {"channel_dtype": "image"}, "image_path": "z",
                            "thumbnail": "bm90IGEgcG5n"}}}
    path = os.path.join(s.data_dir, "thumbs.jsonl")
    with open(path, "w") as f:
        f.write(json.dumps(rec) + "\n")
    subprocess.run([OGD, "import", "--config", s.config_path, "--collection", "records", path],
                   check=True, env=s.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)


def _rgb_png():
    b = io.BytesIO()
    Image.new("RGB", (2, 2), (1, 2, 3)).save(b, format="PNG")
    return b.getvalue()


VIRIDIS_0 = [68, 1, 84, 255]
VIRIDIS_255 = [253, 231, 36, 255]


def test_full_image_default_levels_16bit(srv):
    r = srv.get(f"/images/{RID}/TEST-16")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    px = rgba(r.content)
    assert px.shape == (2, 4, 4)
    # default levels 0..255 at limit 8 on 16-bit storage: vmin 0, vmax 65535
    assert px[0, 0].tolist() == VIRIDIS_0
    assert px[1, 2].tolist() == VIRIDIS_255


def test_full_image_levels_under_over(srv):
    r = srv.get(f"/images/{RID}/TEST-16", params={"lower_level": 1, "upper_level": 64})
    px = rgba(r.content).reshape(-1, 4).tolist()
    assert px == [VIRIDIS_0, VIRIDIS_0, VIRIDIS_0, [34, 137, 141, 255],
                  VIRIDIS_255, VIRIDIS_255, VIRIDIS_255, [75, 194, 108, 255]]


def test_limit_bit_depth_equivalence(srv):
    a = srv.get(f"/images/{RID}/TEST-16",
                params={"lower_level": 32, "upper_level": 63, "limit_bit_depth": 8})
    b = srv.get(f"/images/{RID}/TEST-16",
                params={"lower_level": 512, "upper_level": 1023, "limit_bit_depth": 12})
    assert a.status_code == b.status_code == 200
    assert np.array_equal(rgba(a.content), rgba(b.content))
    c = srv.get(f"/images/{RID}/TEST-16", params={"lower_level": 512, "upper_level": 1023,
                                                  "limit_bit_depth": 12, "colourmap_name": "jet_r"})
    px = rgba(c.content).reshape(-1, 4).tolist()
    assert px[0] == [127, 0, 0, 255]  # under -> first entry of jet_r
    assert px[7] == [150, 255, 95, 255]  # 12000


def test_8bit_image_and_colourmaps(srv):
    px = rgba(srv.get(f"/images/{RID}/TEST-8").content).reshape(-1, 4).tolist()
    assert px == [VIRIDIS_0, [68, 2, 85, 255], [32, 143, 140, 255], [32, 144, 140, 255],
                  [250, 230, 34, 255], VIRIDIS_255]
    px = rgba(srv.get(f"/images/{RID}/TEST-8", params={"colourmap_name": "tab10"}).content)
    assert px[0, 0].tolist() == [31, 119, 180, 255]
    assert px[0, 5].tolist() == [23, 190, 207, 255]
    # an empty name falls back to the default map
    empty = srv.get(f"/images/{RID}/TEST-8", params={"colourmap_name": ""})
    assert empty.content == srv.get(f"/images/{RID}/TEST-8").content


def test_original_image_unchanged(srv):
    r = srv.get(f"/images/{RID}/TEST-16", params={"original_image": "true"})
    assert r.status_code == 200
    assert r.content == png_gray([[0, 255, 256, 8000], [16639, 16640, 65535, 12000]], 16, 12)
    # levels are not checked for the original
    r = srv.get(f"/images/{RID}/TEST-16", params={"original_image": "true", "lower_level": 9,
                                                  "upper_level": 3})
    assert r.status_code == 200


def test_legacy_key_fallback(srv):
    r = srv.get(f"/images/{RID}/TEST-LEGACY")
    assert r.status_code == 200
    assert rgba(r.content).reshape(-1, 4).tolist() == [VIRIDIS_0, VIRIDIS_255]


def test_level_and_colourmap_errors(srv):
    def err(params):
        r = srv.get(f"/images/{RID}/TEST-8", params=params)
        return r.status_code, r.json()["detail"]
    assert err({"upper_level": 256}) == (400, "upper_level must be less than 2**limit_bit_depth")
    assert err({"upper_level": 4095, "limit_bit_depth": 11}) == (
        400, "upper_level must be less than 2**limit_bit_depth")
    assert err({"lower_level": 10, "upper_level": 9}) == (
        400, "lower_level must be less than or equal to upperlevel")
    assert err({"colourmap_name": "nope"}) == (400, "nope is not a valid colour map name")
    assert err({"colourmap_name": "Viridis"}) == (400, "Viridis is not a valid colour map name")
    for params, name in (({"lower_level": -1}, "lower_level"),
                         ({"upper_level": 65536}, "upper_level"),
                         ({"limit_bit_depth": 17}, "limit_bit_depth"),
                         ({"upper_level": "x"}, "upper_level"),
                         ({"original_image": "maybe"}, "original_image")):
        r = srv.get(f"/images/{RID}/TEST-8", params=params)
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["query", name]


def test_missing_objects(srv):
    r = srv.get(f"/images/{RID}/NOPE")
    assert r.status_code == 404
    assert r.json()["detail"] == (f"Image with id={RID}, channel=NOPE could not be found due to "
                                  "invalid id and or channel")
    # a channel of the record that has no image object (a scalar)
    rec = srv.get(f"/records/{RID}").json()
    scalar = next(k for k, v in rec["channels"].items()
                  if v["metadata"]["channel_dtype"] == "scalar")
    r = srv.get(f"/images/{RID}/{scalar}")
    assert r.status_code == 404
    assert r.json()["detail"] == (f"Image with id={RID}, channel={scalar} could not be found in "
                                  "object storage, check deletion policy and age of requested data")
    r = srv.get("/vectors/20230605080300/test")
    assert r.status_code == 404
    assert r.json()["detail"] == ("Vector with id=20230605080300, channel=test could not be found "
                                  "due to invalid id and or channel")
    r = srv.get(f"/images/float/{RID}/NOPE")
    assert r.json()["detail"].startswith("FloatImage with id=")
    r = srv.get(f"/waveforms/{RID}/NOPE")
    assert r.json()["detail"].startswith("Waveform with id=")
    # a missing image wins over bad levels, as in the reference
    r = srv.get(f"/images/{RID}/NOPE", params={"lower_level": 9, "upper_level": 3})
    assert r.status_code == 404


def test_non_grey_image_mode(srv):
    r = srv.get(f"/images/{RID}/TEST-RGB")
    assert r.status_code == 500
    assert r.json()["detail"] == "Image mode RGB not recognised"


def test_demo_image_renders(srv):
    rec = srv.get(f"/records/{RID}").json()
    cams = [k for k, v in rec["channels"].items() if v["metadata"]["channel_dtype"] == "image"]
    assert cams
    orig = srv.get(f"/images/{RID}/{cams[0]}", params={"original_image": "true"})
    src = Image.open(io.BytesIO(orig.content))
    r = srv.get(f"/images/{RID}/{cams[0]}")
    assert r.status_code == 200
    assert rgba(r.content).shape[:2] == (src.height, src.width)


def test_etag_and_304(srv):
    r = srv.get(f"/images/{RID}/TEST-8")
    etag = r.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith('W/')
    assert "cache-control" in r.headers
    r2 = srv.get(f"/images/{RID}/TEST-8", headers={"If-None-Match": etag})
    assert r2.status_code == 304
    assert r2.content == b""
    assert r2.headers["etag"] == etag
    # other parameters, another tag
    r3 = srv.get(f"/images/{RID}/TEST-8", params={"colourmap_name": "jet"},
                 headers={"If-None-Match": etag})
    assert r3.status_code == 200
    assert r3.headers["etag"] != etag
    bar = srv.get("/images/colour_bar")
    assert srv.get("/images/colour_bar",
                   headers={"If-None-Match": bar.headers["etag"]}).status_code == 304


def test_colour_bar(srv):
    r = srv.get("/images/colour_bar")
    assert r.status_code == 200
    px = rgba(r.content)
    assert px.shape == (16, 256, 4)
    assert px[0, 0].tolist() == VIRIDIS_0 and px[15, 255].tolist() == VIRIDIS_255
    assert phash(r.content) == "a000000000000000"
    r = srv.get("/images/colour_bar", params={"colourmap_name": "jet_r", "lower_level": 50,
                                              "upper_level": 200})
    assert phash(r.content) == "cf00000000000000"
    assert srv.get("/images/colour_bar", params={"upper_level": 65536}).status_code == 422
    r = srv.get("/images/colour_bar", params={"upper_level": 256})
    assert (r.status_code, r.json()["detail"]) == (
        400, "upper_level must be less than 2**limit_bit_depth")
    r = srv.get("/images/colour_bar", params={"lower_level": 6, "upper_level": 5})
    assert r.status_code == 400
    r = srv.get("/images/colour_bar", params={"colourmap_name": "bogus"})
    assert (r.status_code, r.json()["detail"]) == (400, "bogus is not a valid colour map name")


# docs/api.md §5.9 and docs/imaging.md §3, the exact response
CATALOGUE = {
    "Cyclic": ["hsv", "hsv_r", "twilight", "twilight_r", "twilight_shifted",
               "twilight_shifted_r"],
    "Diverging": ["berlin", "berlin_r", "BrBG", "BrBG_r", "bwr", "bwr_r", "coolwarm",
                  "coolwarm_r", "managua", "managua_r", "PiYG", "PiYG_r", "PRGn", "PRGn_r",
                  "PuOr", "PuOr_r", "RdBu", "RdBu_r", "RdGy", "RdGy_r", "RdYlBu", "RdYlBu_r",
                  "RdYlGn", "RdYlGn_r", "seismic", "seismic_r", "Spectral", "Spectral_r",
                  "vanimo", "vanimo_r"],
    "Miscellaneous": ["brg", "brg_r", "CMRmap", "CMRmap_r", "cubehelix", "cubehelix_r",
                      "flag", "flag_r", "gist_earth", "gist_earth_r", "gist_ncar",
                      "gist_ncar_r", "gist_rainbow", "gist_rainbow_r", "gist_stern",
                      "gist_stern_r", "gnuplot", "gnuplot2", "gnuplot2_r", "gnuplot_r", "jet",
                      "jet_r", "nipy_spectral", "nipy_spectral_r", "ocean", "ocean_r", "prism",
                      "prism_r", "rainbow", "rainbow_r", "terrain", "terrain_r", "turbo",
                      "turbo_r"],
    "Perceptually Uniform Sequential": ["cividis", "cividis_r", "inferno", "inferno_r", "magma",
                                        "magma_r", "plasma", "plasma_r", "viridis",
                                        "viridis_r"],
    "Qualitative": ["Accent", "Accent_r", "Dark2", "Dark2_r", "Paired", "Paired_r", "Pastel1",
                    "Pastel1_r", "Pastel2", "Pastel2_r", "Set1", "Set1_r", "Set2", "Set2_r",
                    "Set3", "Set3_r", "tab10", "tab10_r", "tab20", "tab20_r", "tab20b",
                    "tab20b_r", "tab20c", "tab20c_r"],
    "Sequential": ["Blues", "Blues_r", "BuGn", "BuGn_r", "BuPu", "BuPu_r", "GnBu", "GnBu_r",
                   "Greens", "Greens_r", "Greys", "Greys_r", "Oranges", "Oranges_r", "OrRd",
                   "OrRd_r", "PuBu", "PuBu_r", "PuBuGn", "PuBuGn_r", "PuRd", "PuRd_r",
                   "Purples", "Purples_r", "RdPu", "RdPu_r", "Reds", "Reds_r", "YlGn",
                   "YlGn_r", "YlGnBu", "YlGnBu_r", "YlOrBr", "YlOrBr_r", "YlOrRd",
                   "YlOrRd_r"],
    "Sequential (2)": ["afmhot", "afmhot_r", "autumn", "autumn_r", "binary", "binary_r",
                       "bone", "bone_r", "cool", "cool_r", "copper", "copper_r", "gist_gray",
                       "gist_gray_r", "gist_heat", "gist_heat_r", "gist_yarg", "gist_yarg_r",
                       "gray", "gray_r", "hot", "hot_r", "pink", "pink_r", "spring",
                       "spring_r", "summer", "summer_r", "winter", "winter_r", "Wistia",
                       "Wistia_r"],
}


def test_colourmap_names(srv):
    r = srv.get("/images/colourmap_names")
    assert r.status_code == 200
    m = r.json()
    assert list(m) == sorted(m)
    assert m == CATALOGUE
    assert list(m) == list(CATALOGUE)
    assert sum(len(v) for v in m.values()) == 172
    for names in m.values():
        assert names == sorted(names, key=str.lower)
    for name in (n for v in m.values() for n in v):
        assert srv.get("/images/colour_bar", params={"colourmap_name": name}).status_code == 200


def lut_bytes(row):
    """matplotlib's byte conversion of a colour-map row: trunc(255 * c)."""
    return [int(c * 255) for c in row]


# First and last rows of matplotlib 3.10's colour data for the three maps it added
LISTED_310_ENDS = {
    "berlin": ([0.62108, 0.69018, 0.99951], [0.99987, 0.68007, 0.67995]),
    "managua": ([1, 0.81263, 0.40424], [0.50411, 0.90708, 0.99978]),
    "vanimo": ([1, 0.80346, 0.99215], [0.74458, 0.99141, 0.64748]),
}


@pytest.mark.parametrize("name", sorted(LISTED_310_ENDS))
def test_colour_bar_310_listed(srv, name):
    first, last = (lut_bytes(row) + [255] for row in LISTED_310_ENDS[name])
    px = rgba(srv.get("/images/colour_bar", params={"colourmap_name": name}).content)
    assert px.shape == (16, 256, 4)
    assert px[0, 0].tolist() == first and px[15, 255].tolist() == last
    px_r = rgba(srv.get("/images/colour_bar", params={"colourmap_name": name + "_r"}).content)
    assert px_r[0, 0].tolist() == last and px_r[15, 255].tolist() == first
    # a listed map's _r is its rows reversed
    assert (px_r[:, ::-1] == px).all()
    # an 8-bit image: 0 and 255 at the default levels take the first and last entries
    img = rgba(srv.get(f"/images/{RID}/TEST-8", params={"colourmap_name": name}).content)
    assert img[0, 0].tolist() == first and img[0, 5].tolist() == last


def test_float_image(srv):
    r = srv.get(f"/images/float/{RID}/TEST-FLOAT")
    assert r.status_code == 200
    px = rgba(r.content).reshape(-1, 4).tolist()
    assert px == [[0, 0, 255, 255], [255, 254, 254, 255], [0, 0, 0, 0],
                  [255, 126, 126, 255], [255, 0, 0, 255], [255, 216, 216, 255]]
    r = srv.get(f"/images/float/{RID}/TEST-FLOAT", params={"colourmap_name": "nope"})
    assert (r.status_code, r.json()["detail"]) == (400, "nope is not a valid colour map name")
    r = srv.get(f"/images/float/{RID}/TEST-FLOAT", params={"colourmap_name": "viridis"})
    assert rgba(r.content)[0, 0].tolist() == VIRIDIS_0


def test_float_image_with_infinities(srv):
    # the finite values keep their scale; +inf and -inf take the map's ends (an infinite
    # scale used to index past the colour table and take the worker down)
    r = srv.get(f"/images/float/{RID}/TEST-FLOAT-INF")
    assert r.status_code == 200
    px = rgba(r.content).reshape(-1, 4).tolist()
    assert px == [[0, 0, 255, 255], [255, 0, 0, 255], [255, 254, 254, 255],
                  [0, 0, 255, 255], [255, 0, 0, 255], [255, 126, 126, 255]]
    assert srv.get(f"/images/float/{RID}/TEST-FLOAT").status_code == 200


def test_crosshair(srv):
    r = srv.get(f"/images/{RID}/TEST-CROSS/crosshair", params={"position": "[4, 2]"})
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["row", "column"]
    assert body["row"]["position"] == 2
    assert body["row"]["intensity"] == {"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                                        "y": [10.0, 20.0, 60.0, 100.0, 200.0, 100.0, 10.0]}
    assert body["column"]["position"] == 4
    assert body["column"]["intensity"]["y"] == [10.0, 50.0, 200.0, 50.0, 10.0]
    assert isinstance(body["row"]["fwhm"], float)
    # negative positions wrap
    r2 = srv.get(f"/images/{RID}/TEST-CROSS/crosshair", params={"position": "[-3, -3]"})
    assert r2.json() == body
    # out of range -> 500; not a pair -> 422
    assert srv.get(f"/images/{RID}/TEST-CROSS/crosshair",
                   params={"position": "[7, 0]"}).status_code == 500
    assert srv.get(f"/images/{RID}/TEST-CROSS/crosshair",
                   params={"position": "[1]"}).status_code == 422
    assert srv.get(f"/images/{RID}/TEST-CROSS/crosshair",
                   params={"position": "[1,"}).status_code == 422
    # centroid when no position is given
    c = srv.get(f"/images/{RID}/TEST-CROSS/crosshair").json()
    a = np.full((5, 7), 10.0)
    a[2, :] = [10, 20, 60, 100, 200, 100, 10]
    a[:, 4] = [10, 50, 200, 50, 10]
    x = int((a.sum(axis=0) * np.arange(7)).sum() / a.sum())
    y = int((a.sum(axis=1) * np.arange(5)).sum() / a.sum())
    assert (c["column"]["position"], c["row"]["position"]) == (x, y)


def fwhm_reference(y):
    """The FWHM rule of docs/imaging.md §7, written out independently for the test."""
    y = [float(v) for v in y]
    n = len(y)
    d = [y[i + 1] - y[i] for i in range(n - 1)]
    if n >= 3:
        tol = 0.2 * (max(y) - min(y))
        out = list(y)
        if abs(d[0]) > tol and abs(d[0] + d[1]) > tol:
            out[0] += (3 * d[0] + d[1]) / 6
        for i in range(1, n - 1):
            if abs(d[i - 1]) > tol and abs(d[i]) > tol:
                c, div = -2 * d[i - 1] + 2 * d[i], 7
                if i > 1:
                    c -= d[i - 2] + d[i - 1]
                    div += 1
                if i < n - 2:
                    c += d[i] + d[i + 1]
                    div += 1
                out[i] += c / div
        if abs(d[-1]) > tol and abs(d[-1] + d[-2]) > tol:
            out[-1] -= (3 * d[-1] + d[-2]) / 6
        y = out
    lo = min(y)
    y = [v - lo for v in y]
    k = y.index(max(y))
    half = y[k] / 2
    left = next((i for i in range(k - 1, -1, -1) if y[i] <= half), k)
    right = next((i for i in range(k, n) if y[i] <= half), k)
    return float(right - left)


def test_crosshair_fwhm_on_demo_image(srv):
    rec = srv.get(f"/records/{RID}").json()
    cam = next(k for k, v in rec["channels"].items() if v["metadata"]["channel_dtype"] == "image")
    body = srv.get(f"/images/{RID}/{cam}/crosshair").json()
    for prof in (body["row"], body["column"]):
        assert prof["fwhm"] == fwhm_reference(prof["intensity"]["y"])
    cross = srv.get(f"/images/{RID}/TEST-CROSS/crosshair", params={"position": "[4, 2]"}).json()
    assert cross["row"]["fwhm"] == fwhm_reference(cross["row"]["intensity"]["y"])
    assert cross["column"]["fwhm"] == fwhm_reference(cross["column"]["intensity"]["y"])


def test_waveform_and_vector(srv):
    r = srv.get(f"/waveforms/{RID}/TEST-WAVE")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.text == '{"x":[1.0,2.5,1e-5],"y":[3.0,null,-0.1]}'
    r = srv.get(f"/vectors/{RID}/TEST-VEC")
    assert r.text == '{"data":[5.639372695195284,1.0]}'
    r = srv.get(f"/vectors/{RID}/TEST-BAD")
    assert (r.status_code, r.json()) == (500, {"detail": "Unknown error"})
    rec = srv.get(f"/records/{RID}").json()
    for k, v in rec["channels"].items():
        dt = v["metadata"]["channel_dtype"]
        if dt == "waveform":
            w = srv.get(f"/waveforms/{RID}/{k}").json()
            assert list(w) == ["x", "y"] and len(w["x"]) == len(w["y"]) > 0
        if dt == "vector":
            assert list(srv.get(f"/vectors/{RID}/{k}").json()) == ["data"]


def test_function_named_like_channel(srv):
    # TEST-8 is an object without a channel in the record: as a function input it is unknown
    f = json.dumps({"name": "TEST-8", "expression": "TEST-8 / 10"})
    r = srv.get(f"/images/{RID}/TEST-8", params={"functions": f})
    assert (r.status_code, r.json()) == (400, {"detail": "{'TEST-8'} are not recognised "
                                                         "channels/functions"})
    # functions with other names are ignored
    other = json.dumps({"name": "a", "expression": "1"})
    assert srv.get(f"/images/{RID}/TEST-8", params={"functions": other}).status_code == 200


def thumbs(srv, **params):
    r = srv.get("/records", params=dict(conditions=json.dumps({"_id": THUMB_ID}), **params))
    return r


def decode_thumb(text):
    return rgba(base64.b64decode(text))


def test_records_thumbnails_recoloured(srv):
    r = thumbs(srv)
    assert r.status_code == 200
    ch = r.json()[0]["channels"]
    bar = rgba(srv.get("/images/colour_bar").content)[0]
    px = decode_thumb(ch["T-IMG"]["thumbnail"])
    assert px.shape == (2, 3, 4)
    for (i, j), v in np.ndenumerate(np.array(THUMB_GREY)):
        assert px[i, j].tolist() == bar[v].tolist()
    # float thumbnail: L is a direct index into bwr; any non-zero alpha is opaque
    fbar = rgba(srv.get("/images/colour_bar", params={"colourmap_name": "bwr"}).content)[0]
    fpx = decode_thumb(ch["T-FLOAT"]["thumbnail"])
    for i, row in enumerate(THUMB_LA):
        for j, (l, a) in enumerate(row):
            assert fpx[i, j, :3].tolist() == fbar[l, :3].tolist()
            assert fpx[i, j, 3] == (255 if a else 0)
    # an undecodable thumbnail is passed through
    assert ch["T-BROKEN"]["thumbnail"] == "bm90IGEgcG5n"


def test_records_thumbnails_with_map_and_levels(srv):
    r = thumbs(srv, colourmap_name="jet_r", lower_level=50, upper_level=200,
               float_colourmap_name="viridis")
    ch = r.json()[0]["channels"]
    bar = rgba(srv.get("/images/colour_bar", params={"colourmap_name": "jet_r", "lower_level": 50,
                                                     "upper_level": 200}).content)[0]
    px = decode_thumb(ch["T-IMG"]["thumbnail"])
    for (i, j), v in np.ndenumerate(np.array(THUMB_GREY)):
        assert px[i, j].tolist() == bar[v].tolist()
    assert decode_thumb(ch["T-FLOAT"]["thumbnail"])[0, 0, :3].tolist() == VIRIDIS_0[:3]
    # truncation applies to the re-coloured thumbnail
    t = thumbs(srv, truncate="true").json()[0]["channels"]["T-IMG"]["thumbnail"]
    assert len(t) == 50 and t.startswith("iVBORw0KGgo")


@pytest.mark.parametrize("params", [{}, {"colourmap_name": "jet_r", "lower_level": 50,
                                         "upper_level": 200, "float_colourmap_name": "viridis"}])
def test_records_thumbnails_recoloured_when_projected_alone(srv, params):
    """A projection down to the thumbnail leaves out the channel's metadata: the type is
    looked up in the store, and the thumbnail is the same RGBA PNG as with the whole
    channel projected."""
    for name in ("T-IMG", "T-FLOAT"):
        whole = thumbs(srv, projection="channels." + name, **params).json()[0]["channels"][name]
        alone = thumbs(srv, projection="channels.%s.thumbnail" % name, **params).json()
        assert alone == [{"_id": THUMB_ID, "channels": {name: {"thumbnail": alone[0][
            "channels"][name]["thumbnail"]}}}]
        png = base64.b64decode(alone[0]["channels"][name]["thumbnail"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[25] == 6  # colour type RGBA
        assert np.array_equal(decode_thumb(alone[0]["channels"][name]["thumbnail"]),
                              decode_thumb(whole["thumbnail"]))
        assert alone[0]["channels"][name]["thumbnail"] == whole["thumbnail"]


def test_records_thumbnail_errors(srv):
    # the reference answers 500 "Unknown error" when a returned record needs the bad value
    for params in ({"colourmap_name": "nope"}, {"lower_level": 9, "upper_level": 3},
                   {"float_colourmap_name": "nope"}):
        r = thumbs(srv, **params)
        assert (r.status_code, r.json()) == (500, {"detail": "Unknown error"})
    # harmless when no returned record has such a thumbnail
    r = srv.get("/records", params={"conditions": json.dumps({"_id": "none"}),
                                    "colourmap_name": "nope"})
    assert (r.status_code, r.json()) == (200, [])
    r = srv.get("/records", params={"conditions": json.dumps({"_id": THUMB_ID}),
                                    "projection": "metadata.shotnum", "colourmap_name": "nope"})
    assert r.status_code == 200
    assert thumbs(srv, upper_level=256).status_code == 422


def test_demo_thumbnails_are_rgba(srv):
    recs = srv.get("/records", params={"conditions": "{}", "limit": 2}).json()
    n = 0
    for rec in recs:
        for v in rec["channels"].values():
            if v["metadata"]["channel_dtype"] == "image":
                assert decode_thumb(v["thumbnail"]).shape[2] == 4
                n += 1
    assert n > 0


def test_record_by_id_thumbnails(srv):
    r = srv.get(f"/records/{THUMB_ID}", params={"colourmap_name": "jet_r", "lower_level": 50,
                                                "upper_level": 200})
    assert r.status_code == 200
    listed = thumbs(srv, colourmap_name="jet_r", lower_level=50, upper_level=200).json()[0]
    assert r.json()["channels"]["T-IMG"] == listed["channels"]["T-IMG"]
    assert r.json()["channels"]["T-FLOAT"] == listed["channels"]["T-FLOAT"]
    # errors keep their status here (no task group in the reference's code path)
    r = srv.get(f"/records/{THUMB_ID}", params={"colourmap_name": "nope"})
    assert (r.status_code, r.json()) == (400, {"detail": "nope is not a valid colour map name"})
    r = srv.get(f"/records/{THUMB_ID}", params={"lower_level": 9, "upper_level": 3})
    assert (r.status_code, r.json()) == (
        400, {"detail": "lower_level must be less than or equal to upperlevel"})
    r = srv.get(f"/records/{THUMB_ID}", params={"float_colourmap_name": "nope"})
    assert (r.status_code, r.json()) == (500, {"detail": "Unknown error"})


def test_channel_summary_thumbnails_recoloured(srv):
    r = srv.get("/channels/summary/T-IMG")
    assert r.status_code == 200
    sample = r.json()["recent_sample"]
    assert len(sample) == 1
    px = decode_thumb(sample[0]["2024-01-01T00:00:00"])
    bar = rgba(srv.get("/images/colour_bar").content)[0]
    for (i, j), v in np.ndenumerate(np.array(THUMB_GREY)):
        assert px[i, j].tolist() == bar[v].tolist()
    f = srv.get("/channels/summary/T-FLOAT").json()["recent_sample"][0]["2024-01-01T00:00:00"]
    fbar = rgba(srv.get("/images/colour_bar", params={"colourmap_name": "bwr"}).content)[0]
    assert decode_thumb(f)[0, 1, :3].tolist() == fbar[128, :3].tolist()


def test_damaged_objects_give_500_and_the_worker_stays_up(srv):
    for path in (f"/images/{RID}/BAD-TRUNC", f"/images/{RID}/BAD-EMPTY",
                 f"/images/{RID}/BAD-TRUNC/crosshair", f"/images/float/{RID}/BAD",
                 f"/waveforms/{RID}/BAD"):
        r = srv.get(path)
        assert (r.status_code, r.json()) == (500, {"detail": "Unknown error"}), path
    # the original bytes are served as stored, damaged or not
    r = srv.get(f"/images/{RID}/BAD-EMPTY", params={"original_image": "true"})
    assert (r.status_code, r.content) == (200, b"")
    assert srv.get(f"/images/{RID}/TEST-8").status_code == 200


def test_records_thumbnail_error_with_functions(srv):
    f = json.dumps({"name": "a", "expression": "1"})
    r = thumbs(srv, colourmap_name="nope", functions=f)
    assert (r.status_code, r.json()) == (500, {"detail": "Unknown error"})
    r = thumbs(srv, functions=f)
    assert r.status_code == 200
    ch = r.json()[0]["channels"]
    assert ch["a"]["data"] == 1.0
    assert decode_thumb(ch["T-IMG"]["thumbnail"]).shape == (2, 3, 4)
