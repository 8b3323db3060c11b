/*
 * plot: a small anti-aliasing rasteriser for the thumbnail plots (see plot.h).
 *
 * Coverage is computed per pixel and kept as the maximum over everything drawn in one
 * colour (so joints of a polyline do not darken), then composited over white. Lines:
 * coverage = clamp(half_width + 0.5 - distance from the pixel centre to the segment),
 * a box-filter approximation that keeps sub-pixel lines visible but faint, as
 * matplotlib's are. Bars: the exact area of the pixel inside the rectangle.
 */
#include "imaging/plot.h"

#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imaging/png.h"

static const uint8_t BLUE[3] = {0x1f, 0x77, 0xb4};

typedef struct limits {
    double x0, x1, y0, y1;
} limits;

/* lo..hi widened by 5 % of the span each side; a zero span becomes +-1 around it. */
static void margins(double *lo, double *hi)
{
    double span = *hi - *lo;
    if (!(span > 0)) {
        *lo -= 1;
        *hi += 1;
        return;
    }
    *lo -= 0.05 * span;
    *hi += 0.05 * span;
}

static void composite(uint8_t *rgba, const float *cov, size_t n, const uint8_t colour[3])
{
    for (size_t i = 0; i < n; i++) {
        float a = cov[i];
        if (a <= 0)
            continue;
        for (int c = 0; c < 3; c++) {
            float v = rgba[4 * i + c] * (1 - a) + colour[c] * a;
            rgba[4 * i + c] = (uint8_t)(v + 0.5f);
        }
    }
}

static void white(uint8_t *rgba, size_t n)
{
    memset(rgba, 255, n * 4);
}

/* v as an int, clamped to [lo, hi] first (NaN: lo): converting a double outside int's
 * range is undefined, and absurd data (limits too wide or too narrow for doubles) puts
 * pixel coordinates at +-1e300 or infinity. */
static int clamp_int(double v, int lo, int hi)
{
    if (isnan(v) || v < lo)
        return lo;
    return v > hi ? hi : (int)v;
}

static void segment(float *cov, uint32_t w, uint32_t h, double ax, double ay, double bx, double by,
                    double hw)
{
    if (!isfinite(ax) || !isfinite(ay) || !isfinite(bx) || !isfinite(by))
        return; /* the limits overflowed (values near +-DBL_MAX): nothing to place */
    double r = hw + 1;
    int x0 = clamp_int(floor(fmin(ax, bx) - r), -1, (int)w),
        x1 = clamp_int(ceil(fmax(ax, bx) + r), -1, (int)w);
    int y0 = clamp_int(floor(fmin(ay, by) - r), -1, (int)h),
        y1 = clamp_int(ceil(fmax(ay, by) + r), -1, (int)h);
    if (x0 < 0)
        x0 = 0;
    if (y0 < 0)
        y0 = 0;
    if (x1 > (int)w - 1)
        x1 = (int)w - 1;
    if (y1 > (int)h - 1)
        y1 = (int)h - 1;
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (int py = y0; py <= y1; py++)
        for (int px = x0; px <= x1; px++) {
            double cx = px + 0.5, cy = py + 0.5;
            double t = len2 > 0 ? ((cx - ax) * dx + (cy - ay) * dy) / len2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            double ex = ax + t * dx - cx, ey = ay + t * dy - cy;
            double c = hw + 0.5 - sqrt(ex * ex + ey * ey);
            if (c <= 0)
                continue;
            float f = c > 1 ? 1.0f : (float)c;
            float *p = &cov[(size_t)py * w + px];
            if (f > *p)
                *p = f;
        }
}

void plot_waveform_rgba(const double *x, const double *y, size_t n, uint32_t w, uint32_t h,
                        double line_width_pt, uint8_t *rgba)
{
    size_t np = (size_t)w * h;
    white(rgba, np);
    limits l = {INFINITY, -INFINITY, INFINITY, -INFINITY};
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i]))
            continue;
        l.x0 = fmin(l.x0, x[i]);
        l.x1 = fmax(l.x1, x[i]);
        l.y0 = fmin(l.y0, y[i]);
        l.y1 = fmax(l.y1, y[i]);
    }
    if (l.x0 > l.x1)
        return; /* nothing finite to draw */
    margins(&l.x0, &l.x1);
    margins(&l.y0, &l.y1);
    float *cov = calloc(np, sizeof(float));
    if (!cov)
        return;
    double hw = line_width_pt * PLOT_DPI / 72.0 / 2;
    double sx = w / (l.x1 - l.x0), sy = h / (l.y1 - l.y0);
    bool have_prev = false;
    double px = 0, py = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) {
            have_prev = false;
            continue;
        }
        double qx = (x[i] - l.x0) * sx, qy = h - (y[i] - l.y0) * sy;
        if (have_prev)
            segment(cov, w, h, px, py, qx, qy, hw);
        else
            segment(cov, w, h, qx, qy, qx, qy, hw);
        px = qx;
        py = qy;
        have_prev = true;
    }
    composite(rgba, cov, np, BLUE);
    free(cov);
}

/* Adds the exact pixel coverage of the rectangle [x0,x1] x [y0,y1] (pixel units). */
static void rect(float *cov, uint32_t w, uint32_t h, double x0, double x1, double y0, double y1)
{
    int px0 = clamp_int(floor(fmax(x0, 0)), 0, (int)w),
        px1 = clamp_int(ceil(fmin(x1, w)), 0, (int)w);
    int py0 = clamp_int(floor(fmax(y0, 0)), 0, (int)h),
        py1 = clamp_int(ceil(fmin(y1, h)), 0, (int)h);
    for (int py = py0; py < py1; py++) {
        double oy = fmin(y1, py + 1) - fmax(y0, py);
        if (oy <= 0)
            continue;
        for (int px = px0; px < px1; px++) {
            double ox = fmin(x1, px + 1) - fmax(x0, px);
            if (ox <= 0)
                continue;
            float *p = &cov[(size_t)py * w + px];
            float f = (float)(ox * oy);
            if (f > *p)
                *p = f;
        }
    }
}

void plot_vector_rgba(const double *v, size_t n, uint32_t w, uint32_t h, uint8_t *rgba)
{
    size_t np = (size_t)w * h;
    white(rgba, np);
    if (n == 0)
        return;
    limits l = {-0.4, (double)(n - 1) + 0.4, 0, 0};
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            l.y0 = fmin(l.y0, v[i]);
            l.y1 = fmax(l.y1, v[i]);
        }
    margins(&l.x0, &l.x1);
    margins(&l.y0, &l.y1);
    float *cov = calloc(np, sizeof(float));
    if (!cov)
        return;
    double sx = w / (l.x1 - l.x0), sy = h / (l.y1 - l.y0);
    double zero = h - (0 - l.y0) * sy;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            continue;
        double top = h - (v[i] - l.y0) * sy;
        rect(cov, w, h, ((double)i - 0.4 - l.x0) * sx, ((double)i + 0.4 - l.x0) * sx,
             fmin(top, zero), fmax(top, zero));
    }
    composite(rgba, cov, np, BLUE);
    memset(cov, 0, np * sizeof(float));
    double hw = 1.5 * PLOT_DPI / 72.0 / 2;
    rect(cov, w, h, 0, w, zero - hw, zero + hw);
    static const uint8_t black[3] = {0, 0, 0};
    composite(rgba, cov, np, black);
    free(cov);
}

static int encode(uint8_t *rgba, uint32_t w, uint32_t h, unsigned char **out, size_t *outlen)
{
    int rc = png_encode_rgba_deflate(rgba, w, h, 6, out, outlen);
    free(rgba);
    return rc;
}

int plot_waveform_png(const double *x, const double *y, size_t n, uint32_t w, uint32_t h,
                      double line_width_pt, unsigned char **out, size_t *outlen)
{
    if (w == 0 || h == 0 || w > 4096 || h > 4096)
        return -EINVAL;
    uint8_t *rgba = malloc((size_t)w * h * 4);
    if (!rgba)
        return -ENOMEM;
    plot_waveform_rgba(x, y, n, w, h, line_width_pt, rgba);
    return encode(rgba, w, h, out, outlen);
}

int plot_vector_png(const double *v, size_t n, uint32_t w, uint32_t h, unsigned char **out,
                    size_t *outlen)
{
    if (w == 0 || h == 0 || w > 4096 || h > 4096)
        return -EINVAL;
    uint8_t *rgba = malloc((size_t)w * h * 4);
    if (!rgba)
        return -ENOMEM;
    plot_vector_rgba(v, n, w, h, rgba);
    return encode(rgba, w, h, out, outlen);
}
