/*
 * figure.c: see figure.h. Sizes are in matplotlib's points converted at 130 dpi.
 */
#include "imaging/figure.h"

#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imaging/png.h"

#define DPI 130.0
#define PT(p) ((p)*DPI / 72.0)
#define FIG_W 1040 /* 8 in */
#define FIG_H 780  /* 6 in */
/* matplotlib's default subplot parameters */
#define AX_L (0.125 * FIG_W)
#define AX_R (0.9 * FIG_W)
#define AX_T ((1 - 0.88) * FIG_H)
#define AX_B ((1 - 0.11) * FIG_H)
#define FONT "DejaVu Sans"
#define FONT_PX PT(10)
#define TICK_LEN PT(3.5)
#define TICK_PAD PT(3.5)
#define LABEL_PAD PT(4)
#define PAD_PX ((int)lround(0.1 * DPI))
#define MAX_TICKS 64

typedef struct axis {
    double lo, hi;           /* view limits */
    double ticks[MAX_TICKS]; /* positions in data units */
    int nticks;
    int exp10; /* labels are value / 10^exp10; shown as "1eN" when non-zero */
    int decimals;
} axis;

static void margins(double *lo, double *hi, bool sticky_zero)
{
    double span = *hi - *lo;
    if (!(span > 0)) {
        double d = *lo != 0 ? fabs(*lo) * 0.05 : 0.05;
        *lo -= d;
        *hi += d;
        return;
    }
    double m = 0.05 * span;
    /* bars: zero stays the edge when the data starts or ends there (a sticky edge) */
    *lo = sticky_zero && *lo == 0 ? 0 : *lo - m;
    *hi = sticky_zero && *hi == 0 ? 0 : *hi + m;
}

/* MaxNLocator with steps 1, 2, 2.5, 5, 10: the smallest step giving at most nbins
 * intervals over the view; ticks inside the view. */
static void locate(axis *a, int nbins)
{
    static const double steps[] = {1, 2, 2.5, 5, 10};
    double span = a->hi - a->lo;
    double raw = span / (nbins > 0 ? nbins : 1);
    double scale = pow(10, floor(log10(raw)));
    double step = 10 * scale;
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
        if (steps[i] * scale >= raw * (1 - 1e-9)) {
            step = steps[i] * scale;
            break;
        }
    a->nticks = 0;
    double first = ceil(a->lo / step - 1e-9) * step;
    for (double t = first; t <= a->hi + step * 1e-9 && a->nticks < MAX_TICKS; t += step)
        a->ticks[a->nticks++] = fabs(t) < step * 1e-9 ? 0 : t;
    /* ScalarFormatter: a shared power of ten for very large or small values, and as many
     * decimals as the step needs */
    double big = fmax(fabs(a->lo), fabs(a->hi));
    a->exp10 = 0;
    if (big >= 1e5 || (big > 0 && big < 1e-4))
        a->exp10 = (int)floor(log10(big));
    double s = step / pow(10, a->exp10);
    a->decimals = 0;
    while (a->decimals < 10 && fabs(s * pow(10, a->decimals) - round(s * pow(10, a->decimals))) >
                                   1e-6 * s * pow(10, a->decimals))
        a->decimals++;
}

static void tick_text(const axis *a, double v, char *out, size_t n)
{
    double s = v / pow(10, a->exp10);
    if (fabs(s) < 1e-12)
        s = 0;
    snprintf(out, n, "%.*f", a->decimals, s);
    if (strcmp(out, "-0") == 0 || strncmp(out, "-0.", 3) == 0) {
        bool zero = true;
        for (const char *p = out + 1; *p; p++)
            if (*p != '0' && *p != '.')
                zero = false;
        if (zero)
            memmove(out, out + 1, strlen(out));
    }
    /* matplotlib prints a minus sign, not a hyphen */
    if (out[0] == '-' && strlen(out) + 2 < n) {
        memmove(out + 3, out + 1, strlen(out));
        memcpy(out, "\xe2\x88\x92", 3);
    }
}

static double map(double v, double lo, double hi, double p0, double p1)
{
    return p0 + (v - lo) / (hi - lo) * (p1 - p0);
}

static void text_at(cairo_t *cr, const char *s, double x, double y, double ax, double ay,
                    double angle)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, angle);
    /* anchor (ax, ay) in 0..1 of the ink box */
    cairo_move_to(cr, -e.x_bearing - ax * e.width, -e.y_bearing - ay * e.height);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

typedef struct frame {
    axis x, y;
    const char *const *xcat; /* categorical x labels, at the ticks 0..n-1 */
} frame;

static void draw_axes(cairo_t *cr, const frame *f, const char *x_label, const char *y_label)
{
    char buf[64];
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, PT(0.8));
    cairo_rectangle(cr, AX_L, AX_T, AX_R - AX_L, AX_B - AX_T);
    cairo_stroke(cr);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, FONT_PX);
    double max_ylabel_w = 0;
    for (int i = 0; i < f->x.nticks; i++) {
        double px = map(f->x.ticks[i], f->x.lo, f->x.hi, AX_L, AX_R);
        cairo_move_to(cr, px, AX_B);
        cairo_line_to(cr, px, AX_B + TICK_LEN);
        cairo_stroke(cr);
        const char *s = buf;
        if (f->xcat) {
            s = f->xcat[(size_t)llround(f->x.ticks[i])];
        } else {
            tick_text(&f->x, f->x.ticks[i], buf, sizeof buf);
        }
        text_at(cr, s, px, AX_B + TICK_LEN + TICK_PAD, 0.5, 0, 0);
    }
    for (int i = 0; i < f->y.nticks; i++) {
        double py = map(f->y.ticks[i], f->y.lo, f->y.hi, AX_B, AX_T);
        cairo_move_to(cr, AX_L, py);
        cairo_line_to(cr, AX_L - TICK_LEN, py);
        cairo_stroke(cr);
        tick_text(&f->y, f->y.ticks[i], buf, sizeof buf);
        cairo_text_extents_t e;
        cairo_text_extents(cr, buf, &e);
        max_ylabel_w = fmax(max_ylabel_w, e.width);
        text_at(cr, buf, AX_L - TICK_LEN - TICK_PAD, py, 1, 0.5, 0);
    }
    if (f->x.exp10 && !f->xcat) {
        snprintf(buf, sizeof buf, "1e%d", f->x.exp10);
        text_at(cr, buf, AX_R, AX_B + TICK_LEN + TICK_PAD + FONT_PX * 1.4, 1, 0, 0);
    }
    if (f->y.exp10) {
        snprintf(buf, sizeof buf, "1e%d", f->y.exp10);
        text_at(cr, buf, AX_L, AX_T - TICK_PAD, 0, 1, 0);
    }
    if (x_label && *x_label)
        text_at(cr, x_label, (AX_L + AX_R) / 2,
                AX_B + TICK_LEN + TICK_PAD + FONT_PX * 1.2 + LABEL_PAD, 0.5, 0, 0);
    if (y_label && *y_label)
        text_at(cr, y_label, AX_L - TICK_LEN - TICK_PAD - max_ylabel_w - LABEL_PAD,
                (AX_T + AX_B) / 2, 0.5, 1, -M_PI / 2);
}

/* Crops to the drawn (non-white) pixels plus the padding and encodes RGBA. */
static int finish(cairo_surface_t *surf, unsigned char **out, size_t *outlen)
{
    cairo_surface_flush(surf);
    if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS)
        return -EIO;
    const unsigned char *data = cairo_image_surface_get_data(surf);
    int stride = cairo_image_surface_get_stride(surf);
    int x0 = FIG_W, y0 = FIG_H, x1 = -1, y1 = -1;
    for (int y = 0; y < FIG_H; y++) {
        const uint32_t *row = (const uint32_t *)(data + (size_t)y * (size_t)stride);
        for (int x = 0; x < FIG_W; x++)
            if ((row[x] & 0xffffffu) != 0xffffffu) {
                if (x < x0)
                    x0 = x;
                if (x > x1)
                    x1 = x;
                if (y < y0)
                    y0 = y;
                if (y > y1)
                    y1 = y;
            }
    }
    if (x1 < 0)
        x0 = y0 = 0, x1 = FIG_W - 1, y1 = FIG_H - 1;
    x0 = x0 - PAD_PX < 0 ? 0 : x0 - PAD_PX;
    y0 = y0 - PAD_PX < 0 ? 0 : y0 - PAD_PX;
    x1 = x1 + PAD_PX >= FIG_W ? FIG_W - 1 : x1 + PAD_PX;
    y1 = y1 + PAD_PX >= FIG_H ? FIG_H - 1 : y1 + PAD_PX;
    uint32_t w = (uint32_t)(x1 - x0 + 1), h = (uint32_t)(y1 - y0 + 1);
    uint8_t *rgba = malloc((size_t)w * h * 4);
    if (!rgba)
        return -ENOMEM;
    for (uint32_t y = 0; y < h; y++) {
        const uint32_t *row =
            (const uint32_t *)(data + (size_t)(y + (uint32_t)y0) * (size_t)stride);
        for (uint32_t x = 0; x < w; x++) {
            uint32_t p = row[x + (uint32_t)x0]; /* opaque: premultiplied = straight */
            uint8_t *o = rgba + ((size_t)y * w + x) * 4;
            o[0] = (uint8_t)(p >> 16);
            o[1] = (uint8_t)(p >> 8);
            o[2] = (uint8_t)p;
            o[3] = 255;
        }
    }
    int rc = png_encode_rgba_deflate(rgba, w, h, 6, out, outlen);
    free(rgba);
    return rc ? -ENOMEM : 0;
}

/* A white figure, its state saved and then clipped to the axes box with the default blue
 * as the source: the caller draws the data and restores before drawing the axes. */
static cairo_t *canvas(cairo_surface_t **surf)
{
    *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, FIG_W, FIG_H);
    cairo_t *cr = cairo_create(*surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_save(cr);
    cairo_rectangle(cr, AX_L, AX_T, AX_R - AX_L, AX_B - AX_T);
    cairo_clip(cr);
    cairo_set_source_rgb(cr, 0x1f / 255.0, 0x77 / 255.0, 0xb4 / 255.0);
    return cr;
}

static int done(cairo_t *cr, cairo_surface_t *surf, unsigned char **out, size_t *outlen)
{
    int rc = cairo_status(cr) == CAIRO_STATUS_SUCCESS ? finish(surf, out, outlen) : -EIO;
    cairo_destroy(cr);
    cairo_surface_destroy(surf);
    return rc;
}

/* Data-axis bins as AutoLocator's "auto": the axis length over three (x) or two (y)
 * label heights, at most 9 for matplotlib's default. */
static int bins(double length_px, double per)
{
    int n = (int)floor(length_px / (FONT_PX * per));
    return n < 1 ? 1 : n > 9 ? 9 : n;
}

int figure_waveform_png(const double *x, const double *y, size_t n, const char *x_label,
                        const char *y_label, unsigned char **out, size_t *outlen)
{
    frame f = {0};
    f.x.lo = f.y.lo = INFINITY;
    f.x.hi = f.y.hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i])) {
            f.x.lo = fmin(f.x.lo, x[i]);
            f.x.hi = fmax(f.x.hi, x[i]);
            f.y.lo = fmin(f.y.lo, y[i]);
            f.y.hi = fmax(f.y.hi, y[i]);
        }
    if (!(f.x.lo <= f.x.hi))
        return -EINVAL;
    margins(&f.x.lo, &f.x.hi, false);
    margins(&f.y.lo, &f.y.hi, false);
    locate(&f.x, bins(AX_R - AX_L, 3));
    locate(&f.y, bins(AX_B - AX_T, 2));
    cairo_surface_t *surf;
    cairo_t *cr = canvas(&surf);
    cairo_set_line_width(cr, PT(1.5));
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    bool pen = false;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) {
            pen = false; /* a gap, as matplotlib breaks the line at NaN */
            continue;
        }
        double px = map(x[i], f.x.lo, f.x.hi, AX_L, AX_R);
        double py = map(y[i], f.y.lo, f.y.hi, AX_B, AX_T);
        if (pen)
            cairo_line_to(cr, px, py);
        else
            cairo_move_to(cr, px, py);
        pen = true;
    }
    cairo_stroke(cr);
    cairo_restore(cr);
    draw_axes(cr, &f, x_label, y_label);
    return done(cr, surf, out, outlen);
}

int figure_vector_png(const double *v, size_t n, const char *const *labels, unsigned char **out,
                      size_t *outlen)
{
    if (n == 0 || n > 100000)
        return -EINVAL;
    frame f = {0};
    f.y.lo = 0;
    f.y.hi = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            f.y.lo = fmin(f.y.lo, v[i]);
            f.y.hi = fmax(f.y.hi, v[i]);
        }
    f.x.lo = -0.4;
    f.x.hi = (double)(n - 1) + 0.4;
    margins(&f.x.lo, &f.x.hi, false);
    margins(&f.y.lo, &f.y.hi, true);
    locate(&f.y, bins(AX_B - AX_T, 2));
    if (labels && n <= MAX_TICKS) {
        f.xcat = labels;
        f.x.nticks = (int)n;
        for (size_t i = 0; i < n; i++)
            f.x.ticks[i] = (double)i;
    } else {
        locate(&f.x, bins(AX_R - AX_L, 3));
    }
    cairo_surface_t *surf;
    cairo_t *cr = canvas(&surf);
    double zero = map(0, f.y.lo, f.y.hi, AX_B, AX_T);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            continue;
        double xa = map((double)i - 0.4, f.x.lo, f.x.hi, AX_L, AX_R);
        double xb = map((double)i + 0.4, f.x.lo, f.x.hi, AX_L, AX_R);
        double yv = map(v[i], f.y.lo, f.y.hi, AX_B, AX_T);
        cairo_rectangle(cr, xa, fmin(yv, zero), xb - xa, fabs(yv - zero));
    }
    cairo_fill(cr);
    cairo_restore(cr);
    draw_axes(cr, &f, NULL, NULL);
    return done(cr, surf, out, outlen);
}
