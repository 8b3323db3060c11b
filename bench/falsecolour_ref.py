#!/usr/bin/python3
"""The reference's false-colour method, timed for bench/falsecolour.c.

Usage: falsecolour_ref.py STORED_PNG RUNS. Decodes the stored PNG with PIL into a numpy
array and renders it with matplotlib's imsave (vmin 0, vmax 65535: default levels on 16-bit
storage, viridis) into an in-memory PNG saved by PIL, as the reference service does.
Prints "<best ms> <png bytes>".
"""
import io
import sys
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def main():
    data = open(sys.argv[1], "rb").read()
    runs = int(sys.argv[2])
    best, size = None, 0
    for _ in range(runs):
        t0 = time.perf_counter()
        arr = np.array(Image.open(io.BytesIO(data)))
        out = io.BytesIO()
        plt.imsave(out, arr, vmin=0, vmax=65535, cmap="viridis", format="png")
        t = (time.perf_counter() - t0) * 1000
        size = len(out.getvalue())
        best = t if best is None or t < best else best
    print("%.1f %d" % (best, size))


if __name__ == "__main__":
    main()
