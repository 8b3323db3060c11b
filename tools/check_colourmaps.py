#!/usr/bin/python3
"""Development check: every colour bar ogd serves equals matplotlib's, byte for byte.

Needs python3-matplotlib and python3-pil (development time only) and a built ogd:
    OGD_BIN=build/ogd /usr/bin/python3 tools/check_colourmaps.py
Starts a server with an empty data directory, fetches /images/colour_bar for every name
of /images/colourmap_names at three level settings and compares the pixels with
matplotlib's imsave of the same 256 x 16 int64 array with the same vmin/vmax. Maps the
installed matplotlib lacks (berlin, managua, vanimo before 3.10) are registered first as
tools/gen_colourmaps.py builds them.
"""
import io
import os
import shutil
import sys
import tempfile

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "api"))
from conftest import OgdServer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_colourmaps import colour_maps  # noqa: E402


def register_missing():
    maps, built = colour_maps()
    for name in built:
        for n in (name, name + "_r"):
            matplotlib.colormaps.register(maps[n], name=n)


def main():
    register_missing()
    d = tempfile.mkdtemp()
    s = OgdServer(d, None)
    s.start()
    bad = []
    try:
        names = [n for v in s.get("/images/colourmap_names").json().values() for n in v]
        arr = np.tile(np.arange(256, dtype=np.int64), (16, 1))
        for lo, hi in ((0, 255), (50, 200), (7, 7)):
            for n in names:
                r = s.get("/images/colour_bar",
                          params={"colourmap_name": n, "lower_level": lo, "upper_level": hi})
                got = np.asarray(Image.open(io.BytesIO(r.content)))
                b = io.BytesIO()
                plt.imsave(b, arr, vmin=lo, vmax=hi, cmap=n, format="png")
                b.seek(0)
                want = np.asarray(Image.open(b))
                if not np.array_equal(got, want):
                    bad.append((n, lo, hi))
        print("%d maps x 3 level settings; mismatches: %d %s" % (len(names), len(bad), bad[:10]))
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
