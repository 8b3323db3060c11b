#!/usr/bin/python3
"""Development check: full images and float images ogd renders equal matplotlib's pixels.

Needs python3-matplotlib and python3-pil (development time only) and a built ogd:
    OGD_BIN=build/ogd /usr/bin/python3 tools/check_falsecolour.py
Stores random 8- and 16-bit images and f4/f8 float arrays (with NaN) under a demo
record, renders them through GET /images/... and /images/float/... with several levels,
limit bit depths and maps, and compares with matplotlib's imsave (vmin/vmax of
spec/data.md §6.1 and §6.5).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "api"))
import io
import tempfile

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image
from conftest import OgdServer
from test_images import png_gray
rng = np.random.default_rng(1)
a16 = rng.integers(0, 65536, (40, 50)).astype(np.uint16)
a8 = rng.integers(0, 256, (40, 50)).astype(np.uint8)
f32 = rng.normal(0, 3, (30, 20)).astype(np.float32); f32[0, :5] = np.nan
f64 = rng.normal(0, 3, (30, 20)); f64[3, 3] = np.nan
d = tempfile.mkdtemp(); s = OgdServer(d, None); s.demo(1)
s.put_object("images/2023/06/05/080000/A16.png", png_gray(a16, 16))
s.put_object("images/2023/06/05/080000/A8.png", png_gray(a8, 8))
for name, arr in (("F32", f32), ("F64", f64)):
    b = io.BytesIO(); np.savez_compressed(b, arr); s.put_object(f"float_images/2023/06/05/080000/{name}.npz", b.getvalue())
s.start(); bad = 0; n = 0
try:
    for ch, arr, S in (("A16", a16, 16), ("A8", a8, 8)):
        for lo, hi, B in ((0, 255, 8), (3, 77, 8), (100, 3000, 12), (0, 65535, 16), (5, 9, 4), (0, 0, 8)):
            for cm in ("viridis", "jet_r", "tab10", "twilight", "gist_ncar", "Greys_r", "seismic"):
                r = s.get(f"/images/20230605080000/{ch}", params=dict(lower_level=lo, upper_level=hi, limit_bit_depth=B, colourmap_name=cm))
                m = 2.0 ** (S - B); vmin = lo * m; vmax = (hi + 1) * m - 1
                b = io.BytesIO(); plt.imsave(b, arr, vmin=vmin, vmax=vmax, cmap=cm, format="png"); b.seek(0)
                n += 1
                if r.status_code != 200 or not np.array_equal(np.asarray(Image.open(io.BytesIO(r.content))), np.asarray(Image.open(b))):
                    bad += 1; print("mismatch", ch, lo, hi, B, cm, r.status_code)
    for ch, arr in (("F32", f32), ("F64", f64)):
        am = np.nanmax(np.abs(arr))
        for cm in ("bwr", "viridis", "RdBu_r", "Paired"):
            r = s.get(f"/images/float/20230605080000/{ch}", params=dict(colourmap_name=cm))
            b = io.BytesIO(); plt.imsave(b, arr, vmin=-am, vmax=am, cmap=cm, format="png"); b.seek(0)
            n += 1
            if not np.array_equal(np.asarray(Image.open(io.BytesIO(r.content))), np.asarray(Image.open(b))):
                bad += 1; g = np.asarray(Image.open(io.BytesIO(r.content))); w = np.asarray(Image.open(b)); print("mismatch", ch, cm, int((g != w).any(axis=2).sum()))
    print(n, "renderings compared,", bad, "mismatches")
finally:
    s.stop()
sys.exit(1 if bad else 0)
