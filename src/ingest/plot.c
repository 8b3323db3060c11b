/*
 * plot.c: coverage canvas (segments with round caps, rectangles with fractional edges)
 * composited over white, then PNG. Same drawing model as the demo's thumbnails.
 */
#include "ingest/plot.h"

#include "imaging/png.h"

#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct canvas {
    uint32_t w, h;
    float *cov;
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
    memset(c->rgba, 255, (size_t)w * h * 4);
    return 0;
}

static void canvas_flush(canvas *c, uint8_t r, uint8_t g, uint8_t b)
{
    for (size_t i = 0; i < (size_t)c->w * c->h; i++) {
        float a = c->cov[i];
        if (a <= 0)
            continue;
        if (a > 1)
            a = 1;
        uint8_t *p = c->rgba + i * 4;
        p[0] = (uint8_t)lrintf(p[0] + (r - p[0]) * a);
        p[1] = (uint8_t)lrintf(p[1] + (g - p[1]) * a);
        p[2] = (uint8_t)lrintf(p[2] + (b - p[2]) * a);
        c->cov[i] = 0;
    }
}

static int canvas_finish(canvas *c, unsigned char **out, size_t *outlen)
{
    int rc = png_encode_rgba(c->rgba, c->w, c->h, PNG_COMPRESSION_DEFAULT, out, outlen);
    free(c->cov);
    free(c->rgba);
    return rc;
}

static void canvas_segment(canvas *c, double x0, double y0, double x1, double y1, double width)
{
    double half = width / 2;
    double minx = fmax(fmin(x0, x1) - half - 1, 0), maxx = fmin(fmax(x0, x1) + half + 1, c->w - 1);
    double miny = fmax(fmin(y0, y1) - half - 1, 0), maxy = fmin(fmax(y0, y1) + half + 1, c->h - 1);
    if (!(minx <= maxx && miny <= maxy))
        return;
    double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (int py = (int)miny; py <= (int)maxy; py++) {
        for (int px = (int)minx; px <= (int)maxx; px++) {
            double cx = px + 0.5, cy = py + 0.5;
            double t = len2 > 0 ? ((cx - x0) * dx + (cy - y0) * dy) / len2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            double ex = x0 + t * dx - cx, ey = y0 + t * dy - cy;
            double a = half + 0.5 - sqrt(ex * ex + ey * ey);
            if (a <= 0)
                continue;
            if (a > 1)
                a = 1;
            if (width < 1)
                a *= width;
            float *cv = &c->cov[(size_t)py * c->w + (size_t)px];
            if (*cv < a)
                *cv = (float)a;
        }
    }
}

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
    if (!(x1 > 0 && y1 > 0 && x0 < c->w && y0 < c->h))
        return;
    int ix0 = x0 < 0 ? 0 : (int)floor(x0), iy0 = y0 < 0 ? 0 : (int)floor(y0);
    int ix1 = x1 > c->w ? (int)c->w : (int)ceil(x1), iy1 = y1 > c->h ? (int)c->h : (int)ceil(y1);
    for (int py = iy0; py < iy1; py++) {
        double oy = fmin(y1, py + 1.0) - fmax(y0, (double)py);
        for (int px = ix0; px < ix1 && oy > 0; px++) {
            double ox = fmin(x1, px + 1.0) - fmax(x0, (double)px);
            if (ox > 0)
                c->cov[(size_t)py * c->w + (size_t)px] += (float)(ox * oy);
        }
    }
}

/* Finite data range with 5% margins; an empty or flat range gets +-0.5. */
static void padded_range(const double *v, size_t n, double extra, bool use_extra, double *lo,
                         double *hi)
{
    double a = INFINITY, b = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (isfinite(v[i])) {
            a = fmin(a, v[i]);
            b = fmax(b, v[i]);
        }
    }
    if (use_extra) {
        a = fmin(a, extra);
        b = fmax(b, extra);
    }
    if (!isfinite(a) || !isfinite(b)) {
        a = 0;
        b = 0;
    }
    if (b - a <= 0 || !isfinite(b - a)) {
        a -= 0.5;
        b += 0.5;
    }
    double m = (b - a) * 0.05;
    *lo = a - m;
    *hi = b + m;
}

int plot_line_png(const double *x, const double *y, size_t n, uint32_t w, uint32_t h,
                  double line_width_px, unsigned char **out, size_t *outlen)
{
    canvas c;
    int rc = canvas_init(&c, w, h);
    if (rc)
        return rc;
    double xl, xh, yl, yh;
    padded_range(x, n, 0, false, &xl, &xh);
    padded_range(y, n, 0, false, &yl, &yh);
    double sx = w / (xh - xl), sy = h / (yh - yl);
    for (size_t i = 1; i < n; i++) {
        if (!isfinite(x[i - 1]) || !isfinite(y[i - 1]) || !isfinite(x[i]) || !isfinite(y[i]))
            continue;
        canvas_segment(&c, (x[i - 1] - xl) * sx, (yh - y[i - 1]) * sy, (x[i] - xl) * sx,
                       (yh - y[i]) * sy, line_width_px);
    }
    canvas_flush(&c, 0x1f, 0x77, 0xb4);
    return canvas_finish(&c, out, outlen);
}

int plot_bars_png(const double *v, size_t n, uint32_t w, uint32_t h, unsigned char **out,
                  size_t *outlen)
{
    canvas c;
    int rc = canvas_init(&c, w, h);
    if (rc)
        return rc;
    double ends[2] = {-0.4, n ? n - 0.6 : 0.4};
    double xl, xh, yl, yh;
    padded_range(ends, 2, 0, false, &xl, &xh);
    padded_range(v, n, 0, true, &yl, &yh);
    double sx = w / (xh - xl), sy = h / (yh - yl);
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]))
            canvas_rect(&c, (i - 0.4 - xl) * sx, (yh - v[i]) * sy, (i + 0.4 - xl) * sx, yh * sy);
    canvas_flush(&c, 0x1f, 0x77, 0xb4);
    double zero = yh * sy;
    double lw = 1.5 * 130.0 / 72.0 * (h / 100.0);
    canvas_rect(&c, 0, zero - lw / 2, w, zero + lw / 2);
    canvas_flush(&c, 0, 0, 0);
    return canvas_finish(&c, out, outlen);
}
