/*
 * demo_hdf5.c: the HDF5 writer of `ogd demo --hdf5` (see demo_hdf5.h). Uses the plain
 * libhdf5 API in the calling (CLI) process; workers never write HDF5.
 */
#include "demo/demo_hdf5.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const zernike[20] = {"Tilt X", "Tilt Y", "Defocus",   "Astig 0",   "Astig 45",
                                        "Coma X", "Coma Y", "Trefoil X", "Trefoil Y", "Spherical",
                                        "Z_4^-4", "Z_4^-2", "Z_4^2",     "Z_4^4",     "Z_5^-5",
                                        "Z_5^-3", "Z_5^-1", "Z_5^1",     "Z_5^3",     "Z_5^5"};

typedef struct chan {
    const char *name, *type, *label, *units;
} chan;

static const chan channels[] = {
    {"PM-201-FE-CAM-1", "image", "Front-end camera 1", NULL},
    {"PM-201-FE-CAM-2", "image", "Front-end camera 2", NULL},
    {"CM-202-CVC-WFS", "float_image", "Compressor output wavefront image", NULL},
    {"CM-202-CVC-WFS-COEF", "vector", "Compressor output wavefront coefficients", "nm"},
    {"PM-201-HJ-PD", "waveform", "D100 HJ photodiode trace", NULL},
    {"PM-201-PA1-PD", "waveform", "Pre-amplifier 1 photodiode trace", NULL},
    {"PM-201-FE-EM", "scalar", "D100 front-end energy", "mJ"},
    {"PM-201-PA1-EM", "scalar", "Pre-amplifier 1 energy", "J"},
    {"PM-201-TJ-CRY-T", "scalar", "Crystal temperature", "°C"},
    {"PM-201-CLEAN-PRES", "scalar", "Clean room pressure", "mbar"},
    {"PM-201-SHOT", "scalar", "Shot counter", NULL},
    {"PM-201-MODE", "scalar", "Operating mode", NULL},
};
#define NCHANNELS (sizeof(channels) / sizeof(channels[0]))

json_t *demo_hdf5_manifest(const char *id)
{
    json_t *cs = json_object();
    for (size_t i = 0; i < NCHANNELS; i++) {
        json_t *c = json_pack("{ss ss ss}", "name", channels[i].label, "path", "/PM-201", "type",
                              channels[i].type);
        if (channels[i].units)
            json_object_set_new(c, "units", json_string(channels[i].units));
        if (strcmp(channels[i].type, "scalar") == 0)
            json_object_set_new(c, "notation", json_string("normal"));
        if (strcmp(channels[i].type, "vector") == 0) {
            json_t *l = json_array();
            for (int k = 0; k < 20; k++)
                json_array_append_new(l, json_string(zernike[k]));
            json_object_set_new(c, "labels", l);
        }
        json_object_set_new(cs, channels[i].name, c);
    }
    return json_pack("{ss so}", "_id", id, "channels", cs);
}

/* splitmix64: a small deterministic generator per (seed, index, stream). */
static uint64_t mix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *x)
{
    return (double)(mix(x) >> 11) / 9007199254740992.0;
}

static double gauss(uint64_t *x)
{
    double u = uniform(x) + 1e-12, v = uniform(x);
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static bool attr_str(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = a >= 0 && H5Awrite(a, t, &value) >= 0;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return ok;
}

static bool attr_num(hid_t obj, const char *name, hid_t type, const void *value)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = a >= 0 && H5Awrite(a, type, value) >= 0;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    return ok;
}

static bool dataset(hid_t g, const char *name, hid_t type, int rank, const hsize_t *dims,
                    const void *data)
{
    hid_t sp = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(g, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = d >= 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (d >= 0)
        H5Dclose(d);
    H5Sclose(sp);
    return ok;
}

static hid_t group(hid_t f, const char *name, const char *dtype)
{
    hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0 && !attr_str(g, "channel_dtype", dtype)) {
        H5Gclose(g);
        return -1;
    }
    return g;
}

int demo_hdf5_write(const char *path, uint64_t seed, int64_t index, uint32_t w, uint32_t h)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    uint64_t r = seed * 1000003u + (uint64_t)index;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return -EIO;
    bool ok = true;
    time_t t = (time_t)1685952000 + (time_t)index * 10; /* 2023-06-05T08:00:00Z */
    struct tm tm;
    gmtime_r(&t, &tm);
    char ts[40];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    uint64_t shot = 100000 + (uint64_t)index;
    ok = ok && attr_str(f, "epac_ops_data_version", "1.0") && attr_str(f, "timestamp", ts) &&
         attr_str(f, "active_area", "ea1") && attr_str(f, "active_experiment", "90097341") &&
         attr_num(f, "shotnum", H5T_NATIVE_UINT64, &shot);
    /* images: a Gaussian beam drifting with the shot, 12-bit with noise */
    uint16_t *img = malloc((size_t)w * h * sizeof(uint16_t));
    double *wf = malloc(64 * 64 * sizeof(double));
    ok = ok && img && wf;
    for (int cam = 0; ok && cam < 2; cam++) {
        double cx = w * (0.5 + 0.1 * sin(index * 0.07 + cam)),
               cy = h * (0.5 + 0.1 * cos(index * 0.05));
        double sg = (w < h ? w : h) * 0.12;
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++) {
                double v =
                    3000 * exp(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / (2 * sg * sg)) + 60 +
                    8 * gauss(&r);
                img[(size_t)y * w + x] = (uint16_t)(v < 0 ? 0 : v > 4095 ? 4095 : v);
            }
        hid_t g = group(f, channels[cam].name, "image");
        hsize_t dims[2] = {h, w};
        int bd = 12;
        double exposure = 0.001, gain = 1.5 + cam, px = 3.45;
        ok = g >= 0 && dataset(g, "data", H5T_NATIVE_UINT16, 2, dims, img) &&
             attr_num(g, "bit_depth", H5T_NATIVE_INT, &bd) &&
             attr_num(g, "exposure_time_s", H5T_NATIVE_DOUBLE, &exposure) &&
             attr_num(g, "gain", H5T_NATIVE_DOUBLE, &gain) &&
             attr_num(g, "x_pixel_size", H5T_NATIVE_DOUBLE, &px) &&
             attr_str(g, "x_pixel_units", "µm") &&
             attr_num(g, "y_pixel_size", H5T_NATIVE_DOUBLE, &px) &&
             attr_str(g, "y_pixel_units", "µm");
        if (g >= 0)
            H5Gclose(g);
    }
    /* wavefront and its coefficients */
    double coef[20];
    for (int k = 0; k < 20; k++)
        coef[k] = gauss(&r) * 40 / (1 + k);
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++) {
            double u = (x - 31.5) / 32, v = (y - 31.5) / 32, rr = u * u + v * v;
            wf[y * 64 + x] = rr > 1 ? NAN : coef[0] * u + coef[1] * v + coef[2] * (2 * rr - 1);
        }
    if (ok) {
        hid_t g = group(f, "CM-202-CVC-WFS", "float_image");
        hsize_t dims[2] = {64, 64};
        ok = g >= 0 && dataset(g, "data", H5T_NATIVE_DOUBLE, 2, dims, wf);
        if (g >= 0)
            H5Gclose(g);
        g = ok ? group(f, "CM-202-CVC-WFS-COEF", "vector") : -1;
        hsize_t n = 20;
        ok = g >= 0 && dataset(g, "data", H5T_NATIVE_DOUBLE, 1, &n, coef) &&
             attr_str(g, "units", "nm");
        if (ok) {
            hid_t st = H5Tcopy(H5T_C_S1);
            H5Tset_size(st, H5T_VARIABLE);
            H5Tset_cset(st, H5T_CSET_UTF8);
            hid_t sp = H5Screate_simple(1, &n, NULL);
            hid_t a = H5Acreate2(g, "labels", st, sp, H5P_DEFAULT, H5P_DEFAULT);
            ok = a >= 0 && H5Awrite(a, st, zernike) >= 0;
            if (a >= 0)
                H5Aclose(a);
            H5Sclose(sp);
            H5Tclose(st);
        }
        if (g >= 0)
            H5Gclose(g);
    }
    /* photodiode traces */
    for (int pd = 0; ok && pd < 2; pd++) {
        double x[500], y[500];
        for (int i = 0; i < 500; i++) {
            x[i] = i * 2e-9;
            double tt = (i - 150 - 40 * pd) / 20.0;
            y[i] = (tt > 0 ? tt * exp(1 - tt) : 0) * (1 + 0.05 * gauss(&r)) + 0.01 * gauss(&r);
        }
        hid_t g = group(f, channels[4 + pd].name, "waveform");
        hsize_t n = 500;
        ok = g >= 0 && dataset(g, "x", H5T_NATIVE_DOUBLE, 1, &n, x) &&
             dataset(g, "y", H5T_NATIVE_DOUBLE, 1, &n, y) && attr_str(g, "x_units", "s") &&
             attr_str(g, "y_units", "V");
        if (g >= 0)
            H5Gclose(g);
    }
    /* scalars */
    double vals[4] = {120 + 3 * gauss(&r), 8.5 + 0.2 * gauss(&r), 21.3 + 0.1 * gauss(&r),
                      1013 + gauss(&r)};
    for (int i = 0; ok && i < 4; i++) {
        hid_t g = group(f, channels[6 + i].name, "scalar");
        ok = g >= 0 && dataset(g, "data", H5T_NATIVE_DOUBLE, 0, NULL, &vals[i]) &&
             (!channels[6 + i].units || attr_str(g, "units", channels[6 + i].units));
        if (g >= 0)
            H5Gclose(g);
    }
    if (ok) {
        hid_t g = group(f, "PM-201-SHOT", "scalar");
        int64_t s = (int64_t)shot;
        ok = g >= 0 && dataset(g, "data", H5T_NATIVE_INT64, 0, NULL, &s);
        if (g >= 0)
            H5Gclose(g);
    }
    if (ok) {
        hid_t g = group(f, "PM-201-MODE", "scalar");
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, H5T_VARIABLE);
        H5Tset_cset(st, H5T_CSET_UTF8);
        const char *mode = index % 7 == 0 ? "EX" : "GS";
        ok = g >= 0 && dataset(g, "data", st, 0, NULL, &mode);
        H5Tclose(st);
        if (g >= 0)
            H5Gclose(g);
    }
    free(img);
    free(wf);
    if (H5Fclose(f) < 0)
        ok = false;
    return ok ? 0 : -EIO;
}
