"""EPAC-shaped HDF5 test files (h5py) and the channel manifest that goes with them.

`make_file(path, **changes)` writes a file shaped like the reference's test file: root
attributes, then one group per channel (scalar, image, float_image, waveform, vector).
`channels` maps a name to a dict {"dtype", "data" | "x"/"y", "attrs", "extra"} and
overrides/extends the default set (None removes a channel). `manifest()` is a manifest
naming every default channel. Run as a script to write a file: hdfgen.py OUT.h5
"""
import sys

import h5py
import numpy as np

ZERNIKE = ["Tilt X", "Tilt Y", "Defocus", "Astig 0", "Astig 45", "Coma X", "Coma Y",
           "Trefoil X", "Trefoil Y", "Spherical", "Z_4^-4", "Z_4^-2", "Z_4^2", "Z_4^4",
           "Z_5^-5", "Z_5^-3", "Z_5^-1", "Z_5^1", "Z_5^3", "Z_5^5"]


def default_channels():
    return {
        "PM-201-FE-CAM-1": {"dtype": "image",
                            "data": np.arange(12, dtype=np.uint8).reshape(3, 4),
                            "attrs": {"exposure_time_s": 0.001, "gain": 5.5, "bit_depth": 6}},
        "PM-201-FE-CAM-2": {"dtype": "image",
                            "data": np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.uint16),
                            "attrs": {"exposure_time_s": 0.001, "gain": 5.5,
                                      "x_pixel_size": 441.0, "x_pixel_units": "µm",
                                      "y_pixel_size": 441.0, "y_pixel_units": "µm",
                                      "bit_depth": 12}},
        "CM-202-CVC-WFS": {"dtype": "float_image", "data": np.ones((100, 100)),
                           "attrs": {"x_pixel_size": 100, "y_pixel_size": 100}},
        "CM-202-CVC-WFS-COEF": {"dtype": "vector",
                                "data": np.linspace(-1, 1, 20),
                                "attrs": {"units": "nm", "labels": ZERNIKE}},
        "PM-201-HJ-PD": {"dtype": "waveform", "x": np.array([1, 2, 3, 4, 5, 6]),
                         "y": np.array([8, 3, 6, 2, 3, 8]),
                         "attrs": {"x_units": "s", "y_units": "kJ"}},
        "PM-201-FE-EM": {"dtype": "scalar", "data": 330.523, "attrs": {"units": "mJ"}},
        "PM-201-TJ-EM": {"dtype": "scalar", "data": -8895000.0},
        "PM-201-SHOT": {"dtype": "scalar", "data": 366272},
        "PM-201-MODE": {"dtype": "scalar", "data": "GS"},
    }


def manifest(extra=None):
    chans = {}
    for name, ch in default_channels().items():
        chans[name] = {"name": "display " + name, "path": "/test", "type": ch["dtype"]}
    for name, typ in (extra or {}).items():
        chans[name] = {"name": "display " + name, "path": "/test", "type": typ}
    return {"channels": chans}


def root_attrs():
    return {"epac_ops_data_version": "1.0", "timestamp": "2020-04-07T14:28:16+00:00",
            "shotnum": np.uint64(366272), "active_area": "ea1",
            "active_experiment": "90097341"}


def make_file(path, attrs=None, channels=None, drop_attrs=()):
    chans = default_channels()
    for k, v in (channels or {}).items():
        if v is None:
            chans.pop(k, None)
        else:
            chans[k] = v
    ra = root_attrs()
    ra.update(attrs or {})
    with h5py.File(path, "w") as f:
        for k, v in ra.items():
            if k not in drop_attrs:
                f.attrs[k] = v
        for name, ch in chans.items():
            g = f.create_group(name)
            if ch.get("dtype") is not None:
                g.attrs["channel_dtype"] = ch["dtype"]
            for k, v in ch.get("attrs", {}).items():
                g.attrs[k] = v
            for key in ("data", "x", "y"):
                if key in ch:
                    g.create_dataset(key, data=ch[key])
            for key, v in ch.get("extra", {}).items():
                g.create_dataset(key, data=v)
    return path


if __name__ == "__main__":
    make_file(sys.argv[1])
