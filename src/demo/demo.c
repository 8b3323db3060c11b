/*
 * demo: synthetic EPAC-shaped data; see demo.h.
 *
 * Flow per record i (shot time start + i * interval):
 *   1. a per-record PRNG per concern (scalars+beam, image noise, waveforms, vector), each
 *      seeded from (seed, stream, i) with splitmix64 into xoshiro256**, so concerns do not
 *      disturb each other's sequences (scalars are the same with images on or off);
 *   2. the beam parameters of both cameras (centre, width, amplitude) drift smoothly; the
 *      centroid / FWHM scalars are derived from them, so they agree with the images;
 *   3. scalars are added in channel-name order (ingest order), skipping "missing" ones;
 *   4. with images: pixels -> 16-bit PNG (<< 4, sBIT 12) and 8-bit thumbnail; waveform and
 *      vector JSON (pretty, 2-space indent) and their RGBA plot thumbnails drawn here;
 *      each object goes to the object store under its new-layout key (objstore_put copies
 *      the bytes, so they are freed at once) while at most max_in_flight puts are
 *      outstanding (the loop is run until one completes);
 *   5. the record document is written with STORE_RECORD_PUT (upsert).
 * At the end the loop runs until every put has completed; the first failure is returned.
 *
 * Memory: everything grown from options is capped (image size <= 4096 x 4096, thumbnails
 * <= 1024 x 1024, JSON buffers have fixed maxima), and per-record allocations are freed
 * before the next record.
 */
#include "demo/demo.h"

#include "auth/password.h"
#include "auth/permissions.h"
#include "imaging/png.h"
#include "objstore/keys.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/jsonw.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TWO_PI 6.283185307179586
#define WAVEFORM_POINTS 500
#define VECTOR_LEN 8
#define MAX_IMAGE_SIDE 4096u
#define MAX_THUMB_SIDE 1024u
#define JSON_OBJECT_MAX ((size_t)1 << 20) /* waveform / vector JSON text */
/* zlib level for the 16-bit camera PNGs: noise does not compress, and level 1 is ~5x
 * faster than the default for ~4% larger files. */
#define IMAGE_COMPRESSION 1

/* ---- PRNG: splitmix64 seeding, xoshiro256** generation ---------------------------- */

typedef struct rng {
    uint64_t s[4];
} rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    *x += 0x9e3779b97f4a7c15ULL;
    uint64_t z = *x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed, uint64_t stream, uint64_t index)
{
    uint64_t x = seed;
    uint64_t a = splitmix64(&x) ^ (stream * 0xd1342543de82ef95ULL);
    x = a;
    uint64_t b = splitmix64(&x) ^ (index * 0x9e3779b97f4a7c15ULL);
    x = b;
    for (int k = 0; k < 4; k++)
        r->s[k] = splitmix64(&x);
}

static uint64_t rotl(uint64_t v, int k)
{
    return (v << k) | (v >> (64 - k));
}

static uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static double rng_uniform(rng_t *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Standard normal (Box-Muller, one value per call). */
static double rng_gauss(rng_t *r)
{
    double u1 = 1.0 - rng_uniform(r); /* (0, 1] */
    double u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2);
}

/* Cheap approximately normal value (Irwin-Hall of four 16-bit uniforms), for pixels. */
static double rng_gauss_fast(rng_t *r)
{
    uint64_t v = rng_next(r);
    double sum = (double)(v & 0xffff) + (double)((v >> 16) & 0xffff) +
                 (double)((v >> 32) & 0xffff) + (double)(v >> 48);
    return (sum / 65536.0 - 2.0) * 1.7320508075688772;
}

enum { STREAM_PHASE = 1, STREAM_SCALAR, STREAM_IMAGE, STREAM_WAVEFORM, STREAM_VECTOR };

/* ---- channel catalogue ------------------------------------------------------------- */

typedef enum scalar_kind {
    SK_DRIFT,  /* base + two sine drifts + noise */
    SK_INT,    /* integer: base, rarely half */
    SK_STRING, /* operating mode text */
    SK_BEAM,   /* derived from a camera's beam parameters */
} scalar_kind;

typedef enum beam_field { BF_CENX, BF_CENY, BF_FWHMX, BF_FWHMY } beam_field;

typedef struct scalar_def {
    const char *id;
    const char *name;
    const char *path;
    const char *units; /* NULL = none */
    const char *notation;
    int precision;
    scalar_kind kind;
    double base, amp1, period1_s, amp2, period2_s, noise;
    double missing; /* probability the channel is absent from a shot */
    int cam;        /* SK_BEAM: 0 = PM-201-FE-CAM-1, 1 = PM-201-FE-CAM-2 */
    beam_field field;
    double scale; /* SK_BEAM: pixels -> units */
} scalar_def;

static const scalar_def scalars[] = {
    {"PM-201-FE-EM", "D100 front-end energy", "/PM-201/FE", "mJ", "scientific", 3, SK_DRIFT, 2.5,
     0.15, 5400, 0.05, 620, 0.02, 0.01, 0, 0, 0},
    {"PM-201-FE-CAM-1-CENX", "D100 front-end NF centroid X", "/PM-201/FE", "px", "normal", 1,
     SK_BEAM, 0, 0, 0, 0, 0, 0, 0.01, 0, BF_CENX, 1.0},
    {"PM-201-FE-CAM-1-CENY", "D100 front-end NF centroid Y", "/PM-201/FE", "px", "normal", 1,
     SK_BEAM, 0, 0, 0, 0, 0, 0, 0.01, 0, BF_CENY, 1.0},
    {"PM-201-FE-CAM-1-FWHMX", "D100 front-end NF FWHM X", "/PM-201/FE", "mm", "normal", 3, SK_BEAM,
     0, 0, 0, 0, 0, 0, 0.01, 0, BF_FWHMX, 4.8e-3},
    {"PM-201-FE-CAM-1-FWHMY", "D100 front-end NF FWHM Y", "/PM-201/FE", "mm", "normal", 3, SK_BEAM,
     0, 0, 0, 0, 0, 0, 0.01, 0, BF_FWHMY, 4.8e-3},
    {"PM-201-FE-CAM-2-CENX", "D100 front-end FF centroid X", "/PM-201/FE", "px", "normal", 1,
     SK_BEAM, 0, 0, 0, 0, 0, 0, 0.03, 1, BF_CENX, 1.0},
    {"PM-201-FE-CAM-2-CENY", "D100 front-end FF centroid Y", "/PM-201/FE", "px", "normal", 1,
     SK_BEAM, 0, 0, 0, 0, 0, 0, 0.03, 1, BF_CENY, 1.0},
    {"PM-201-HJ-EM", "D100 Hartmann jet energy", "/PM-201/HJ", "mJ", "scientific", 3, SK_DRIFT, 1.9,
     0.12, 4800, 0.04, 900, 0.02, 0.02, 0, 0, 0},
    {"PM-201-TJ-CRY-T", "D100 crystal temperature", "/PM-201/TJ", "°C", "normal", 2, SK_DRIFT, 22.4,
     0.3, 10800, 0.05, 1500, 0.01, 0.0, 0, 0, 0},
    {"PM-201-TJ-EM", "D100 transport energy", "/PM-201/TJ", "J", "scientific", 4, SK_DRIFT, 0.0121,
     0.0008, 6000, 0.0002, 700, 0.0001, 0.02, 0, 0, 0},
    {"PM-201-PA1-DLY", "D100 pump delay", "/PM-201/PA1", "ns", "normal", 2, SK_DRIFT, 152.3, 0.4,
     20000, 0.0, 1, 0.05, 0.0, 0, 0, 0},
    {"SER-202-BI-RH-1", "Bay humidity 1", "/SER-202/BI", "%RH", "normal", 1, SK_DRIFT, 45.0, 4.0,
     43200, 1.0, 3000, 0.2, 0.0, 0, 0, 0},
    {"SER-202-BI-T-1", "Bay temperature 1", "/SER-202/BI", "°C", "normal", 2, SK_DRIFT, 20.8, 0.5,
     86400, 0.1, 2400, 0.02, 0.0, 0, 0, 0},
    {"SER-202-BI-P-1", "Bay pressure 1", "/SER-202/BI", "mbar", "normal", 1, SK_DRIFT, 1013.2, 3.0,
     172800, 0.5, 7200, 0.1, 0.0, 0, 0, 0},
    {"SER-202-OP-MODE", "Operating mode", "/SER-202/OP", NULL, "normal", 0, SK_STRING, 0, 0, 0, 0,
     0, 0, 0.0, 0, 0, 0},
    {"LA-201-OSC-REP", "Oscillator repetition rate", "/LA-201/OSC", "Hz", "normal", 0, SK_INT, 10,
     0, 0, 0, 0, 0, 0.0, 0, 0, 0},
    {"TS-202-TSM-EM", "Target chamber energy", "/TS-202/TSM", "J", "scientific", 3, SK_DRIFT, 4.2,
     0.3, 7200, 0.1, 800, 0.05, 0.05, 0, 0, 0},
    {"TS-202-TSM-P1-CAM-2-FWHMX", "Target focus FWHM X", "/TS-202/TSM", "µm", "normal", 2, SK_DRIFT,
     12.5, 1.2, 3600, 0.3, 500, 0.4, 0.1, 0, 0, 0},
    {"TS-202-TSM-P1-CAM-2-FWHMY", "Target focus FWHM Y", "/TS-202/TSM", "µm", "normal", 2, SK_DRIFT,
     14.1, 1.0, 4200, 0.3, 450, 0.4, 0.1, 0, 0, 0},
    {"TS-202-TSM-P1-PD-DUR", "Target pulse duration", "/TS-202/TSM", "fs", "normal", 1, SK_DRIFT,
     31.0, 2.0, 9000, 0.5, 1100, 0.8, 0.05, 0, 0, 0},
};
#define NSCALARS (sizeof(scalars) / sizeof(scalars[0]))

typedef enum object_kind { OK_IMAGE, OK_WAVEFORM, OK_VECTOR } object_kind;

typedef struct object_def {
    const char *id;
    const char *name;
    const char *path;
    object_kind kind;
    int index;      /* camera / photodiode number within its kind */
    double missing; /* probability the channel is absent from a shot */
} object_def;

static const object_def objects[] = {
    {"PM-201-FE-CAM-1", "D100 front-end NF", "/PM-201/FE", OK_IMAGE, 0, 0.0},
    {"PM-201-FE-CAM-2", "D100 front-end FF", "/PM-201/FE", OK_IMAGE, 1, 0.03},
    {"PM-201-FE-PD", "D100 front-end photodiode trace", "/PM-201/FE", OK_WAVEFORM, 0, 0.0},
    {"PM-201-HJ-PD", "D100 Hartmann jet photodiode trace", "/PM-201/HJ", OK_WAVEFORM, 1, 0.02},
    {"TS-202-TSM-WFS-COEF", "Target wavefront Zernike coefficients", "/TS-202/TSM", OK_VECTOR, 0,
     0.0},
};
#define NOBJECTS (sizeof(objects) / sizeof(objects[0]))

typedef struct camera_def {
    double exposure_time_s, gain, pixel_um;
    double rel_sigma_x, rel_sigma_y, peak; /* beam size relative to the frame, peak counts */
} camera_def;

static const camera_def cameras[2] = {
    {0.001, 5.5, 4.8, 0.14, 0.16, 2900},
    {0.0012, 2.0, 3.45, 0.045, 0.05, 3500},
};

static const char *const zernike_labels[VECTOR_LEN] = {
    "Tilt X", "Tilt Y", "Defocus", "Astig 0", "Astig 45", "Coma X", "Coma Y", "Spherical",
};

/* The channels of one run, in byte-wise name order (the order ingest writes them). */
typedef struct channel_ref {
    const char *id;
    const scalar_def *scalar; /* exactly one of these is set */
    const object_def *object;
    int index; /* position in scalars[] / objects[] */
} channel_ref;

static int channel_ref_cmp(const void *a, const void *b)
{
    return strcmp(((const channel_ref *)a)->id, ((const channel_ref *)b)->id);
}

/* ---- generation state ---------------------------------------------------------------- */

typedef struct beam {
    double cx, cy, sx, sy, peak; /* pixels, pixels, counts */
} beam_t;

typedef struct gen {
    const demo_options *o;
    store_t *store;
    objstore_t *os;
    uv_loop_t *loop;
    FILE *progress;
    channel_ref chans[NSCALARS + NOBJECTS];
    size_t nchans;
    double phase[NSCALARS + NOBJECTS + 8][4]; /* fixed per-run drift phases */
    /* uploads */
    int in_flight;
    int put_status; /* first failed put */
    char put_err[200];
    uint64_t objects_put;
    uint64_t object_bytes;
    /* scratch */
    uint16_t *pixels;
    double wx[WAVEFORM_POINTS], wy[WAVEFORM_POINTS];
    buf_t text;
    json_t *batch; /* records waiting to be written in one transaction */
} gen_t;

/* Records written per store transaction: one transaction per record spends most of its
 * time committing (100k records: ~48 s one by one, ~11 s in batches). */
#define DEMO_BATCH 500

static void report(gen_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(gen_t *g, const char *fmt, ...)
{
    if (!g->progress)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("demo: ", g->progress);
    vfprintf(g->progress, fmt, ap);
    fputc('\n', g->progress);
    fflush(g->progress);
    va_end(ap);
}

void demo_options_default(demo_options *o)
{
    memset(o, 0, sizeof(*o));
    o->records = 200;
    o->seed = 1;
    o->images = true;
    o->skip_if_not_empty = false;
    o->start_us = INT64_C(1685952000) * 1000000; /* 2023-06-05T08:00:00Z */
    o->interval_s = 10;
    o->image_width = 320;
    o->image_height = 240;
    o->image_thumb_w = o->image_thumb_h = 50;
    o->waveform_thumb_w = o->waveform_thumb_h = 100;
    o->vector_thumb_w = o->vector_thumb_h = 100;
    o->max_in_flight = 64;
}

static double drift(const gen_t *g, int slot, double t, double amp1, double p1, double amp2,
                    double p2)
{
    double v = 0;
    if (p1 > 0)
        v += amp1 * sin(TWO_PI * t / p1 + g->phase[slot][0]);
    if (p2 > 0)
        v += amp2 * sin(TWO_PI * t / p2 + g->phase[slot][1]);
    return v;
}

/* Beam parameters of camera cam at time t (draws from the scalar stream r). */
static beam_t beam_at(const gen_t *g, int cam, double t, rng_t *r)
{
    const camera_def *c = &cameras[cam];
    double w = g->o->image_width;
    double h = g->o->image_height;
    int slot = (int)(NSCALARS + NOBJECTS) + cam * 2;
    beam_t b;
    b.cx = w / 2 + drift(g, slot, t, 0.08 * w, 3600, 0.02 * w, 310) + 0.006 * w * rng_gauss(r);
    b.cy = h / 2 + drift(g, slot + 1, t, 0.07 * h, 5400, 0.02 * h, 270) + 0.006 * h * rng_gauss(r);
    double size = 1 + drift(g, slot, t, 0.12, 7200, 0.03, 530) + 0.015 * rng_gauss(r);
    b.sx = c->rel_sigma_x * w * size;
    b.sy = c->rel_sigma_y * h * size * (1 + 0.01 * rng_gauss(r));
    b.peak = c->peak * (1 + drift(g, slot + 1, t, 0.08, 6600, 0.02, 410) + 0.03 * rng_gauss(r));
    return b;
}

/* ---- drawing (thumbnails of waveforms and vectors) ---------------------------------- */

typedef struct canvas {
    uint32_t w, h;
    float *cov; /* coverage 0..1 per pixel of the shape being drawn */
    uint8_t *rgba;
} canvas;

static int canvas_init(canvas *c, uint32_t w, uint32_t h)
{
    c->w = w;
    c->h = h;
    c->cov = calloc((size_t)w * h, sizeof(float));
    c->rgba = malloc((size_t)w * h * 4);
    if (!c->cov || !c->rgba) {
        free(c->cov);
        free(c->rgba);
        return -ENOMEM;
    }
    memset(c->rgba, 255, (size_t)w * h * 4); /* opaque white */
    return 0;
}

static void canvas_free(canvas *c)
{
    free(c->cov);
    free(c->rgba);
}

/* Composites colour (r,g,b) over the canvas with the accumulated coverage, then clears it. */
static void canvas_flush(canvas *c, uint8_t r, uint8_t gr, uint8_t b)
{
    for (size_t i = 0; i < (size_t)c->w * c->h; i++) {
        float a = c->cov[i];
        if (a <= 0)
            continue;
        if (a > 1)
            a = 1;
        uint8_t *p = c->rgba + i * 4;
        p[0] = (uint8_t)lrintf(p[0] + (r - p[0]) * a);
        p[1] = (uint8_t)lrintf(p[1] + (gr - p[1]) * a);
        p[2] = (uint8_t)lrintf(p[2] + (b - p[2]) * a);
        c->cov[i] = 0;
    }
}

/* Adds an anti-aliased segment of the given width (pixels) to the coverage (max rule). */
static void canvas_segment(canvas *c, double x0, double y0, double x1, double y1, double width)
{
    double half = width / 2;
    double minx = fmin(x0, x1) - half - 1;
    double maxx = fmax(x0, x1) + half + 1;
    double miny = fmin(y0, y1) - half - 1;
    double maxy = fmax(y0, y1) + half + 1;
    int ix0 = minx < 0 ? 0 : (int)minx;
    int iy0 = miny < 0 ? 0 : (int)miny;
    int ix1 = maxx > c->w - 1 ? (int)c->w - 1 : (int)maxx;
    int iy1 = maxy > c->h - 1 ? (int)c->h - 1 : (int)maxy;
    double dx = x1 - x0;
    double dy = y1 - y0;
    double len2 = dx * dx + dy * dy;
    for (int py = iy0; py <= iy1; py++) {
        for (int px = ix0; px <= ix1; px++) {
            double cx = px + 0.5;
            double cy = py + 0.5;
            double tpos = len2 > 0 ? ((cx - x0) * dx + (cy - y0) * dy) / len2 : 0;
            if (tpos < 0)
                tpos = 0;
            if (tpos > 1)
                tpos = 1;
            double ex = x0 + tpos * dx - cx;
            double ey = y0 + tpos * dy - cy;
            double d = sqrt(ex * ex + ey * ey);
            double a = half + 0.5 - d;
            if (a <= 0)
                continue;
            if (a > 1)
                a = 1;
            if (width < 1)
                a *= width; /* thin lines fade rather than thin out */
            float *cv = &c->cov[(size_t)py * c->w + (size_t)px];
            if (*cv < a)
                *cv = (float)a;
        }
    }
}

/* Adds an axis-aligned rectangle [x0,x1) x [y0,y1) with fractional edge coverage. */
static void canvas_rect(canvas *c, double x0, double y0, double x1, double y1)
{
    if (x1 < x0) {
        double t = x0;
        x0 = x1;
        x1 = t;
    }
    if (y1 < y0) {
        double t = y0;
        y0 = y1;
        y1 = t;
    }
    int ix0 = x0 < 0 ? 0 : (int)floor(x0);
    int iy0 = y0 < 0 ? 0 : (int)floor(y0);
    int ix1 = x1 > c->w ? (int)c->w : (int)ceil(x1);
    int iy1 = y1 > c->h ? (int)c->h : (int)ceil(y1);
    for (int py = iy0; py < iy1; py++) {
        double oy = fmin(y1, py + 1.0) - fmax(y0, (double)py);
        if (oy <= 0)
            continue;
        for (int px = ix0; px < ix1; px++) {
            double ox = fmin(x1, px + 1.0) - fmax(x0, (double)px);
            if (ox <= 0)
                continue;
            float *cv = &c->cov[(size_t)py * c->w + (size_t)px];
            *cv += (float)(ox * oy);
        }
    }
}

/* Data range with matplotlib's default 5% margins. */
static void padded_range(const double *v, size_t n, double *lo, double *hi)
{
    double a = v[0];
    double b = v[0];
    for (size_t i = 1; i < n; i++) {
        a = fmin(a, v[i]);
        b = fmax(b, v[i]);
    }
    if (b - a <= 0) {
        a -= 0.5;
        b += 0.5;
    }
    double m = (b - a) * 0.05;
    *lo = a - m;
    *hi = b + m;
}

/* Line plot of (x, y) like the reference's matplotlib thumbnail: white background, no axes,
 * one thin #1f77b4 line. *out: RGBA PNG (caller frees). */
static int plot_line(const double *x, const double *y, size_t n, uint32_t w, uint32_t h,
                     unsigned char **out, size_t *outlen)
{
    canvas c;
    int rc = canvas_init(&c, w, h);
    if (rc)
        return rc;
    double xl, xh, yl, yh;
    padded_range(x, n, &xl, &xh);
    padded_range(y, n, &yl, &yh);
    double sx = w / (xh - xl);
    double sy = h / (yh - yl);
    for (size_t i = 1; i < n; i++) {
        canvas_segment(&c, (x[i - 1] - xl) * sx, (yh - y[i - 1]) * sy, (x[i] - xl) * sx,
                       (yh - y[i]) * sy, 0.9);
    }
    canvas_flush(&c, 0x1f, 0x77, 0xb4);
    rc = png_encode_rgba(c.rgba, w, h, PNG_COMPRESSION_DEFAULT, out, outlen);
    canvas_free(&c);
    return rc;
}

/* Bar chart of v[0..n) at x = 0..n-1 (bar width 0.8, #1f77b4) with a black line at 0. */
static int plot_bars(const double *v, size_t n, uint32_t w, uint32_t h, unsigned char **out,
                     size_t *outlen)
{
    canvas c;
    int rc = canvas_init(&c, w, h);
    if (rc)
        return rc;
    double ends[2] = {-0.4, n - 0.6};
    double xl, xh, yl, yh;
    padded_range(ends, 2, &xl, &xh);
    double yv[VECTOR_LEN + 1];
    size_t m = n < VECTOR_LEN ? n : VECTOR_LEN;
    for (size_t i = 0; i < m; i++)
        yv[i] = v[i];
    yv[m] = 0;
    padded_range(yv, m + 1, &yl, &yh);
    double sx = w / (xh - xl);
    double sy = h / (yh - yl);
    for (size_t i = 0; i < m; i++) {
        canvas_rect(&c, (i - 0.4 - xl) * sx, (yh - v[i]) * sy, (i + 0.4 - xl) * sx, yh * sy);
    }
    canvas_flush(&c, 0x1f, 0x77, 0xb4);
    double zero = yh * sy;
    double lw = 1.5 * 130.0 / 72.0 * (h / 100.0); /* 1.5 pt at 130 dpi, scaled */
    canvas_rect(&c, 0, zero - lw / 2, w, zero + lw / 2);
    canvas_flush(&c, 0, 0, 0);
    rc = png_encode_rgba(c.rgba, w, h, PNG_COMPRESSION_DEFAULT, out, outlen);
    canvas_free(&c);
    return rc;
}

/* ---- object uploads -------------------------------------------------------------------- */

/* Put completion: one fewer in flight; remember the first failure. */
static void put_done(int status, void *data)
{
    gen_t *g = data;
    g->in_flight--;
    if (status && !g->put_status) {
        g->put_status = status;
        snprintf(g->put_err, sizeof(g->put_err), "%s", strerror(-status));
    }
}

/* Runs the loop until at most limit puts are outstanding. 0 or -EIO if the loop ran dry
 * with puts still owed (a broken back end; never expected). */
static int wait_uploads(gen_t *g, int limit)
{
    while (g->in_flight > limit) {
        if (uv_run(g->loop, UV_RUN_ONCE) == 0 && g->in_flight > limit) {
            report(g, "error: the loop stopped with %d object puts outstanding", g->in_flight);
            return -EIO;
        }
    }
    return 0;
}

/* Uploads one object under its new-layout key. Frees obj (objstore_put copies it). */
static int upload(gen_t *g, object_kind kind, const char *record_id, const char *channel,
                  unsigned char *obj, size_t len)
{
    objstore_kind ok = kind == OK_IMAGE      ? OBJ_IMAGE
                       : kind == OK_WAVEFORM ? OBJ_WAVEFORM
                                             : OBJ_VECTOR;
    char key[OBJSTORE_KEY_MAX];
    int rc = objstore_key_new(ok, record_id, channel, key);
    if (!rc)
        rc = wait_uploads(g, g->o->max_in_flight - 1);
    if (!rc)
        rc = objstore_put(g->os, key, obj, len, put_done, g, NULL);
    free(obj);
    if (rc) {
        report(g, "error: put %s: %s", key, strerror(-rc));
        return rc;
    }
    g->in_flight++;
    g->objects_put++;
    g->object_bytes += len;
    return 0;
}

/* ---- per-record generation --------------------------------------------------------- */

/* Formats the record id (%Y%m%d%H%M%S) and the directory (%Y/%m/%d/%H%M%S) for a time. */
static void format_id(int64_t us, char id[16], char dir[24])
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(id, 16, "%Y%m%d%H%M%S", &tm);
    strftime(dir, 24, "%Y/%m/%d/%H%M%S", &tm);
}

static json_t *scalar_value(gen_t *g, const scalar_def *d, int slot, int64_t i, double t,
                            const beam_t beams[2], rng_t *r)
{
    double noise = rng_gauss(r);
    double u = rng_uniform(r);
    switch (d->kind) {
    case SK_DRIFT:
        return json_real(d->base + drift(g, slot, t, d->amp1, d->period1_s, d->amp2, d->period2_s) +
                         d->noise * noise);
    case SK_INT:
        return json_integer(u < 0.01 ? (json_int_t)d->base / 2 : (json_int_t)d->base);
    case SK_STRING: {
        static const char *const modes[3] = {"EX", "FP", "GS"};
        int64_t block = (i + (int64_t)(g->phase[slot][0] * 10)) / 37;
        return json_string(modes[block % 3]);
    }
    case SK_BEAM: {
        const beam_t *b = &beams[d->cam];
        double v = 0;
        switch (d->field) {
        case BF_CENX:
            v = b->cx;
            break;
        case BF_CENY:
            v = b->cy;
            break;
        case BF_FWHMX:
            v = 2.3548200450309493 * b->sx;
            break;
        case BF_FWHMY:
            v = 2.3548200450309493 * b->sy;
            break;
        }
        /* measurement noise of the analysis, small against the beam jitter */
        return json_real((v + 0.05 * noise) * d->scale);
    }
    }
    return json_null();
}

/* Renders camera cam's frame into g->pixels (stored form: 12-bit << 4). */
static void render_image(gen_t *g, const beam_t *b, rng_t *r)
{
    uint32_t w = g->o->image_width;
    uint32_t h = g->o->image_height;
    double *gx = malloc(w * sizeof(double));
    if (!gx)
        return;
    for (uint32_t x = 0; x < w; x++) {
        double d = (x + 0.5 - b->cx) / b->sx;
        gx[x] = exp(-0.5 * d * d);
    }
    for (uint32_t y = 0; y < h; y++) {
        double d = (y + 0.5 - b->cy) / b->sy;
        double gy = b->peak * exp(-0.5 * d * d);
        uint16_t *row = g->pixels + (size_t)y * w;
        for (uint32_t x = 0; x < w; x++) {
            double signal = 96 + gx[x] * gy;
            double v = signal + (6.0 + 0.6 * sqrt(signal)) * rng_gauss_fast(r);
            long q = lrint(v);
            if (q < 0)
                q = 0;
            if (q > 4095)
                q = 4095;
            row[x] = (uint16_t)(q << 4);
        }
    }
    free(gx);
}

/* Fills g->wx / g->wy with photodiode trace pd (ns, V). */
static void render_waveform(gen_t *g, int pd, double t, rng_t *r)
{
    double t0 = (pd == 0 ? 18.0 : 22.5) + 0.4 * rng_gauss(r);
    double amp =
        (pd == 0 ? 0.82 : 0.55) *
        (1 + drift(g, (int)NSCALARS + 2 + pd, t, 0.08, 4000, 0.02, 350) + 0.03 * rng_gauss(r));
    double rise = pd == 0 ? 1.2 : 0.8;
    double fall = pd == 0 ? 4.5 : 7.0;
    for (int k = 0; k < WAVEFORM_POINTS; k++) {
        double x = k / 10.0; /* 0.0 .. 49.9 ns */
        double s = x - t0;
        double y = 0;
        if (s > 0) {
            y = amp * (1 - exp(-s / rise)) * exp(-s / fall) * 1.9;
            y += 0.04 * amp * exp(-s / 12.0) * sin(TWO_PI * s / 3.1); /* ringing */
        }
        y += 0.004 * rng_gauss(r);
        g->wx[k] = x;
        g->wy[k] = nearbyint(y * 1e5) / 1e5; /* a 10 uV digitiser step */
    }
}

/* Generates one object channel of a record: uploads the object and returns the channel
 * sub-document (NULL + *rc on failure). */
static json_t *object_channel(gen_t *g, const object_def *d, const char *id, const char *dir,
                              const beam_t beams[2], double t, rng_t *r, int *rc)
{
    const demo_options *o = g->o;
    unsigned char *obj = NULL;
    size_t objlen = 0;
    unsigned char *thumb = NULL;
    size_t thumblen = 0;
    json_t *meta = json_object();
    json_t *ch = json_object();
    const char *ext = "json";
    const char *path_key = NULL;
    *rc = 0;
    if (d->kind == OK_IMAGE) {
        const camera_def *cam = &cameras[d->index];
        render_image(g, &beams[d->index], r);
        *rc = png_encode_gray(g->pixels, o->image_width, o->image_height, 16, 12, IMAGE_COMPRESSION,
                              &obj, &objlen);
        unsigned char *t8 = NULL;
        uint32_t tw = 0;
        uint32_t th = 0;
        if (!*rc)
            *rc = png_thumbnail_gray8(g->pixels, o->image_width, o->image_height, 16, 0,
                                      o->image_thumb_w, o->image_thumb_h, &t8, &tw, &th);
        if (!*rc)
            *rc = png_encode_gray(t8, tw, th, 8, 0, PNG_COMPRESSION_DEFAULT, &thumb, &thumblen);
        free(t8);
        json_object_set_new(meta, "channel_dtype", json_string("image"));
        json_object_set_new(meta, "exposure_time_s", json_real(cam->exposure_time_s));
        json_object_set_new(meta, "gain", json_real(cam->gain));
        json_object_set_new(meta, "x_pixel_size", json_real(cam->pixel_um));
        json_object_set_new(meta, "x_pixel_units", json_string("µm"));
        json_object_set_new(meta, "y_pixel_size", json_real(cam->pixel_um));
        json_object_set_new(meta, "y_pixel_units", json_string("µm"));
        json_object_set_new(meta, "bit_depth", json_integer(12));
        ext = "png";
        path_key = "image_path";
    } else if (d->kind == OK_WAVEFORM) {
        render_waveform(g, d->index, t, r);
        static const char *const names[2] = {"x", "y"};
        const double *vals[2] = {g->wx, g->wy};
        size_t lens[2] = {WAVEFORM_POINTS, WAVEFORM_POINTS};
        buf_reset(&g->text);
        *rc = jsonw_pretty_arrays(&g->text, names, vals, lens, 2);
        if (!*rc)
            *rc = plot_line(g->wx, g->wy, WAVEFORM_POINTS, o->waveform_thumb_w, o->waveform_thumb_h,
                            &thumb, &thumblen);
        json_object_set_new(meta, "channel_dtype", json_string("waveform"));
        json_object_set_new(meta, "x_units", json_string("ns"));
        json_object_set_new(meta, "y_units", json_string("V"));
        path_key = "waveform_path";
    } else {
        double v[VECTOR_LEN];
        static const double scale[VECTOR_LEN] = {0.35, 0.3, 0.5, 0.12, 0.1, 0.06, 0.05, 0.03};
        for (int k = 0; k < VECTOR_LEN; k++) {
            double x = scale[k] * (sin(TWO_PI * t / (2400.0 + 500 * k) + g->phase[k][2]) +
                                   0.15 * rng_gauss(r));
            v[k] = nearbyint(x * 1e4) / 1e4;
        }
        static const char *const names[1] = {"data"};
        const double *vals[1] = {v};
        size_t lens[1] = {VECTOR_LEN};
        buf_reset(&g->text);
        *rc = jsonw_pretty_arrays(&g->text, names, vals, lens, 1);
        if (!*rc)
            *rc = plot_bars(v, VECTOR_LEN, o->vector_thumb_w, o->vector_thumb_h, &thumb, &thumblen);
        json_object_set_new(meta, "channel_dtype", json_string("vector"));
        json_object_set_new(meta, "units", json_string("µm"));
        json_t *labels = json_array();
        for (int k = 0; k < VECTOR_LEN; k++)
            json_array_append_new(labels, json_string(zernike_labels[k]));
        json_object_set_new(meta, "labels", labels);
        path_key = "vector_path";
    }
    if (*rc)
        goto fail;
    if (d->kind != OK_IMAGE) {
        objlen = g->text.len;
        obj = (unsigned char *)buf_take(&g->text);
    }
    char rel[160];
    snprintf(rel, sizeof(rel), "%s/%s.%s", dir, d->id, ext);
    *rc = upload(g, d->kind, id, d->id, obj, objlen); /* frees obj */
    obj = NULL;
    if (*rc)
        goto fail;
    json_t *th = base64_json_take(thumb, thumblen);
    thumb = NULL;
    if (!th) {
        *rc = -ENOMEM;
        goto fail;
    }
    json_object_set_new(ch, "metadata", meta);
    if (d->kind == OK_IMAGE) {
        json_object_set_new(ch, "image_path", json_string(rel));
        json_object_set_new(ch, "thumbnail", th);
    } else {
        json_object_set_new(ch, "thumbnail", th);
        json_object_set_new(ch, path_key, json_string(rel));
    }
    return ch;
fail:
    free(obj);
    free(thumb);
    json_decref(meta);
    json_decref(ch);
    return NULL;
}

static json_t *manifest_doc(const gen_t *g, const char *id)
{
    json_t *chans = json_object();
    for (size_t k = 0; k < g->nchans; k++) {
        const channel_ref *c = &g->chans[k];
        json_t *e = json_object();
        if (c->scalar) {
            const scalar_def *d = c->scalar;
            json_object_set_new(e, "name", json_string(d->name));
            json_object_set_new(e, "path", json_string(d->path));
            json_object_set_new(e, "type", json_string("scalar"));
            if (d->units)
                json_object_set_new(e, "units", json_string(d->units));
            json_object_set_new(e, "precision", json_integer(d->precision));
            json_object_set_new(e, "notation", json_string(d->notation));
        } else {
            const object_def *d = c->object;
            json_object_set_new(e, "name", json_string(d->name));
            json_object_set_new(e, "path", json_string(d->path));
            if (d->kind == OK_IMAGE) {
                json_object_set_new(e, "type", json_string("image"));
            } else if (d->kind == OK_WAVEFORM) {
                json_object_set_new(e, "type", json_string("waveform"));
                json_object_set_new(e, "x_units", json_string("ns"));
                json_object_set_new(e, "y_units", json_string("V"));
            } else {
                json_object_set_new(e, "type", json_string("vector"));
                json_object_set_new(e, "units", json_string("µm"));
                json_t *labels = json_array();
                for (int k2 = 0; k2 < VECTOR_LEN; k2++)
                    json_array_append_new(labels, json_string(zernike_labels[k2]));
                json_object_set_new(e, "labels", labels);
            }
        }
        json_object_set_new(chans, c->id, e);
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "_id", json_string(id));
    json_object_set_new(doc, "channels", chans);
    return doc;
}

static int put_doc(gen_t *g, store_op_kind kind, json_t *doc, const char *what)
{
    store_op_t op;
    store_op_init(&op, kind);
    op.doc = doc;
    int rc = store_run_sync(g->store, &op);
    if (rc == -EEXIST) {
        /* Re-running over existing data: replace (a plain insert skips two deletes). */
        store_op_cleanup(&op);
        store_op_init(&op, kind);
        op.doc = doc;
        op.replace = true;
        rc = store_run_sync(g->store, &op);
    }
    if (rc)
        report(g, "error: storing %s: %s (%d)", what, op.err[0] ? op.err : "store error", rc);
    store_op_cleanup(&op);
    return rc;
}

/* Writes the batched records (STORE_RECORDS_PUT) and empties the batch. */
static int flush_batch(gen_t *g)
{
    if (json_array_size(g->batch) == 0)
        return 0;
    int rc = put_doc(g, STORE_RECORDS_PUT, g->batch, "records");
    json_array_clear(g->batch);
    return rc;
}

static int generate_record(gen_t *g, int64_t i)
{
    const demo_options *o = g->o;
    int64_t us = o->start_us + i * o->interval_s * 1000000;
    double t = (double)(i * o->interval_s);
    char id[16];
    char dir[24];
    format_id(us, id, dir);
    char ts[32];
    store_format_timestamp(us, ts);

    rng_t rs;
    rng_seed(&rs, o->seed, STREAM_SCALAR, (uint64_t)i);
    beam_t beams[2];
    beams[0] = beam_at(g, 0, t, &rs);
    beams[1] = beam_at(g, 1, t, &rs);

    json_t *doc = json_object();
    json_t *meta = json_object();
    json_t *chans = json_object();
    json_object_set_new(doc, "_id", json_string(id));
    json_object_set_new(meta, "epac_ops_data_version", json_string("1.0"));
    json_object_set_new(meta, "shotnum", json_integer(423648000000 + i * 1800));
    json_object_set_new(meta, "timestamp", json_string(ts));
    json_object_set_new(meta, "active_area", json_string("ea1"));
    json_object_set_new(meta, "active_experiment", json_string("90097341"));
    json_object_set_new(doc, "metadata", meta);
    json_object_set_new(doc, "channels", chans);

    /* Presence draws happen for every channel in a fixed order, images or not. */
    rng_t rimg;
    rng_t rwav;
    rng_t rvec;
    rng_seed(&rimg, o->seed, STREAM_IMAGE, (uint64_t)i);
    rng_seed(&rwav, o->seed, STREAM_WAVEFORM, (uint64_t)i);
    rng_seed(&rvec, o->seed, STREAM_VECTOR, (uint64_t)i);
    int rc = 0;
    for (size_t k = 0; k < g->nchans && !rc; k++) {
        const channel_ref *c = &g->chans[k];
        if (c->scalar) {
            json_t *v = scalar_value(g, c->scalar, c->index, i, t, beams, &rs);
            bool missing = rng_uniform(&rs) < c->scalar->missing;
            if (missing) {
                json_decref(v);
                continue;
            }
            json_t *ch = json_object();
            json_t *cm = json_object();
            json_object_set_new(cm, "channel_dtype", json_string("scalar"));
            if (c->scalar->units)
                json_object_set_new(cm, "units", json_string(c->scalar->units));
            json_object_set_new(ch, "metadata", cm);
            json_object_set_new(ch, "data", v);
            json_object_set_new(chans, c->id, ch);
        } else {
            rng_t *r = c->object->kind == OK_IMAGE      ? &rimg
                       : c->object->kind == OK_WAVEFORM ? &rwav
                                                        : &rvec;
            if (rng_uniform(r) < c->object->missing)
                continue;
            json_t *ch = object_channel(g, c->object, id, dir, beams, t, r, &rc);
            if (ch)
                json_object_set_new(chans, c->id, ch);
            else
                report(g, "error: record %s channel %s: %s", id, c->id, strerror(-rc));
        }
    }
    if (!rc) {
        json_array_append(g->batch, doc);
        if (json_array_size(g->batch) >= DEMO_BATCH)
            rc = flush_batch(g);
    }
    json_decref(doc);
    return rc;
}

static int check_options(const demo_options *o)
{
    if (o->records < 0 || o->records > 100000000 || o->interval_s <= 0 ||
        o->interval_s > 86400 * 365)
        return -EINVAL;
    if (!o->images)
        return 0;
    if (o->image_width < 8 || o->image_height < 8 || o->image_width > MAX_IMAGE_SIDE ||
        o->image_height > MAX_IMAGE_SIDE)
        return -EINVAL;
    uint32_t sides[6] = {o->image_thumb_w,    o->image_thumb_h,  o->waveform_thumb_w,
                         o->waveform_thumb_h, o->vector_thumb_w, o->vector_thumb_h};
    for (int k = 0; k < 6; k++) {
        if (sides[k] < 1 || sides[k] > MAX_THUMB_SIDE)
            return -EINVAL;
    }
    if (o->max_in_flight < 1 || o->max_in_flight > 4096)
        return -EINVAL;
    return 0;
}

int demo_generate(const demo_options *opts, store_t *store, objstore_t *os, uv_loop_t *loop,
                  FILE *progress)
{
    gen_t *g = calloc(1, sizeof(*g));
    if (g)
        g->batch = json_array();
    if (!g)
        return -ENOMEM;
    g->o = opts;
    g->store = store;
    g->os = os;
    g->loop = loop;
    g->progress = progress;
    buf_init(&g->text, JSON_OBJECT_MAX);
    int rc = check_options(opts);
    if (rc) {
        report(g, "error: invalid options");
        goto out;
    }
    if (opts->images && (!os || !loop)) {
        report(g, "error: images need an object store and its loop");
        rc = -EINVAL;
        goto out;
    }

    if (opts->skip_if_not_empty) {
        store_op_t op;
        store_op_init(&op, STORE_RECORDS_COUNT);
        rc = store_run_sync(store, &op);
        int64_t n = op.count;
        if (rc)
            report(g, "error: counting records: %s (%d)", op.err[0] ? op.err : "store error", rc);
        store_op_cleanup(&op);
        if (rc)
            goto out;
        if (n > 0) {
            report(g, "the database already holds %lld records; nothing generated", (long long)n);
            rc = DEMO_SKIPPED;
            goto out;
        }
    }

    /* Channel list (name order) and per-run phases. */
    for (size_t k = 0; k < NSCALARS; k++) {
        g->chans[g->nchans++] = (channel_ref){scalars[k].id, &scalars[k], NULL, (int)k};
    }
    if (opts->images) {
        for (size_t k = 0; k < NOBJECTS; k++)
            g->chans[g->nchans++] = (channel_ref){objects[k].id, NULL, &objects[k], (int)k};
    }
    qsort(g->chans, g->nchans, sizeof(g->chans[0]), channel_ref_cmp);
    rng_t rp;
    rng_seed(&rp, opts->seed, STREAM_PHASE, 0);
    for (size_t k = 0; k < sizeof(g->phase) / sizeof(g->phase[0]); k++) {
        for (int j = 0; j < 4; j++)
            g->phase[k][j] = TWO_PI * rng_uniform(&rp);
    }
    if (opts->images) {
        g->pixels = malloc((size_t)opts->image_width * opts->image_height * sizeof(uint16_t));
        if (!g->pixels) {
            rc = -ENOMEM;
            goto out;
        }
    }

    char mid[16];
    char mdir[24];
    format_id(opts->start_us, mid, mdir);
    json_t *manifest = manifest_doc(g, mid);
    rc = put_doc(g, STORE_MANIFEST_PUT, manifest, "the channel manifest");
    json_decref(manifest);
    if (rc)
        goto out;

    for (int64_t i = 0; i < opts->records; i++) {
        rc = generate_record(g, i);
        if (!rc && g->put_status)
            rc = g->put_status;
        if (rc)
            break;
        if ((i + 1) % 1000 == 0)
            report(g, "%lld/%lld records", (long long)(i + 1), (long long)opts->records);
    }
    if (!rc)
        rc = flush_batch(g);
    int wrc = wait_uploads(g, 0);
    if (!rc)
        rc = wrc;
    if (!rc && g->put_status)
        rc = g->put_status;
    if (rc) {
        if (g->put_status)
            report(g, "error: object upload failed: %s", g->put_err);
        goto out;
    }
    report(g, "generated %lld records (%zu channels, %llu objects, %llu object bytes)",
           (long long)opts->records, g->nchans, (unsigned long long)g->objects_put,
           (unsigned long long)g->object_bytes);
out:
    json_decref(g->batch);
    free(g->pixels);
    buf_free(&g->text);
    free(g);
    return rc;
}

int demo_create_user(store_t *store)
{
    char hash[PASSWORD_HASH_BYTES];
    if (password_init() != 0 || password_hash("demo", hash) != 0)
        return -ENOMEM;
    json_t *list = json_array();
    for (size_t i = 0; i < auth_npermissions; i++)
        json_array_append_new(list, json_string(auth_permissions[i]));
    json_t *user = json_pack("{s:s, s:s, s:s, s:o}", "_id", "demo", "auth_type", "local",
                             "password_hash", hash, "authorised_routes", list);
    store_op_t op;
    store_op_init(&op, STORE_USER_PUT);
    op.doc = user;
    int rc = store_run_sync(store, &op);
    store_op_cleanup(&op);
    json_decref(user);
    return rc == -EEXIST ? 0 : rc;
}
