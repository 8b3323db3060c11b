/*
 * builtins.c: the numerical builtins of the functions language (docs/functions.md §7):
 * background, centre, centroid_x/y, falling, fwhm, fwhm_x/y, integrate, rising, with the
 * reference's definitions, including its five-point smoothing and its half-maximum search
 * (`<=`, first argmax, NaN propagating as in numpy). Unlike the reference, builtins work on
 * copies: a waveform used by `fwhm(W)` is unchanged for the next function that reads `W`.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "functions/functions.h"

#define W_ (1u << FN_WAVEFORM)
#define I_ (1u << FN_IMAGE)

static const struct {
    const char *name;
    unsigned accepts;
} builtins[] = {
    {"background", W_ | I_}, {"centre", W_}, {"centroid_x", I_}, {"centroid_y", I_},
    {"falling", W_},         {"fwhm", W_},   {"fwhm_x", I_},     {"fwhm_y", I_},
    {"integrate", W_ | I_},  {"rising", W_},
};

unsigned fn_builtin_accepts(const char *name)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (strcmp(builtins[i].name, name) == 0)
            return builtins[i].accepts;
    return 0;
}

void fn_smooth(double *y, size_t n)
{
    if (n < 3)
        return;
    double lo = y[0], hi = y[0];
    bool nan = false;
    for (size_t i = 0; i < n; i++) {
        if (isnan(y[i]))
            nan = true;
        if (y[i] < lo)
            lo = y[i];
        if (y[i] > hi)
            hi = y[i];
    }
    if (nan)
        return; /* tol is NaN: no comparison holds */
    double tol = 0.2 * (hi - lo);
    size_t nd = n - 1;
    if (nd > PTRDIFF_MAX / sizeof(double)) /* cannot happen; tells the optimiser so */
        return;
    double *d = malloc(nd * sizeof *d);
    if (!d)
        return;
    for (size_t i = 0; i + 1 < n; i++)
        d[i] = y[i + 1] - y[i];
    double first = 0, last = 0;
    bool fix_first = fabs(d[0]) > tol && fabs(d[0] + d[1]) > tol;
    bool fix_last = fabs(d[n - 2]) > tol && fabs(d[n - 2] + d[n - 3]) > tol;
    if (fix_first)
        first = (3 * d[0] + d[1]) / 6;
    if (fix_last)
        last = (3 * d[n - 2] + d[n - 3]) / 6;
    for (size_t i = 1; i + 1 < n; i++) {
        if (fabs(d[i - 1]) > tol && fabs(d[i]) > tol) {
            double c = -2 * d[i - 1] + 2 * d[i];
            int k = 7;
            if (i > 1) {
                c -= d[i - 2] + d[i - 1];
                k++;
            }
            if (i < n - 2) {
                c += d[i] + d[i + 1];
                k++;
            }
            y[i] += c / k;
        }
    }
    y[0] += first;
    y[n - 1] -= last;
    free(d);
}

/* numpy's min/max: NaN if any element is NaN. */
static double np_min(const double *y, size_t n)
{
    double m = y[0];
    for (size_t i = 0; i < n; i++) {
        if (isnan(y[i]))
            return y[i];
        if (y[i] < m)
            m = y[i];
    }
    return m;
}

static double np_max(const double *y, size_t n)
{
    double m = y[0];
    for (size_t i = 0; i < n; i++) {
        if (isnan(y[i]))
            return y[i];
        if (y[i] > m)
            m = y[i];
    }
    return m;
}

/* numpy's argmax: the first NaN, else the first maximum. */
static size_t np_argmax(const double *y, size_t n)
{
    size_t p = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(y[i]))
            return i;
        if (y[i] > y[p])
            p = i;
    }
    return p;
}

int fn_half_max(const double *x, size_t nx, const double *y, size_t n, double *left, double *right,
                char *err)
{
    if (n == 0) {
        snprintf(err, FN_ERR_MAX, "waveform has no points");
        return -EINVAL;
    }
    if (nx < n) {
        snprintf(err, FN_ERR_MAX, "waveform has fewer x values (%zu) than y values (%zu)", nx, n);
        return -EINVAL;
    }
    double *c = malloc(n * sizeof *c);
    if (!c) {
        snprintf(err, FN_ERR_MAX, "out of memory");
        return -ENOMEM;
    }
    memcpy(c, y, n * sizeof *c);
    fn_smooth(c, n);
    double lo = np_min(c, n);
    for (size_t i = 0; i < n; i++)
        c[i] -= lo;
    double m = np_max(c, n);
    size_t p = np_argmax(c, n);
    size_t l = p, r = p;
    for (size_t j = p; j-- > 0;)
        if (c[j] <= m / 2) {
            l = j;
            break;
        }
    for (size_t j = p; j < n; j++)
        if (c[j] <= m / 2) {
            r = j;
            break;
        }
    free(c);
    *left = x[l];
    *right = x[r];
    return 0;
}

static double mean_of(const double *y, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += y[i];
    return n ? s / (double)n : NAN;
}

/* Smoothed copy of a waveform's y; NULL with err set on failure. */
static double *smoothed(const char *name, const fn_value *v, char *err)
{
    if (v->ny == 0) {
        snprintf(err, FN_ERR_MAX, "'%s' needs a waveform with at least one point", name);
        return NULL;
    }
    double *c = malloc(v->ny * sizeof *c);
    if (!c) {
        snprintf(err, FN_ERR_MAX, "out of memory");
        return NULL;
    }
    memcpy(c, v->y, v->ny * sizeof *c);
    fn_smooth(c, v->ny);
    return c;
}

/* Weighted mean index along one axis, truncated; -EINVAL when undefined. */
static int centroid(const char *name, const fn_value *v, bool along_x, size_t *out, char *err)
{
    size_t len = along_x ? v->w : v->h;
    double total = 0, weighted = 0;
    for (size_t r = 0; r < v->h; r++)
        for (size_t c = 0; c < v->w; c++) {
            double p = v->pix[r * v->w + c];
            total += p;
            weighted += p * (double)(along_x ? c : r);
        }
    double pos = weighted / total;
    if (!isfinite(pos)) {
        snprintf(err, FN_ERR_MAX, "'%s' is undefined for an image whose pixels sum to zero", name);
        return -EINVAL;
    }
    pos = trunc(pos);
    if (pos < 0 || pos >= (double)len) {
        snprintf(err, FN_ERR_MAX, "'%s' falls outside the image (negative pixel values)", name);
        return -EINVAL;
    }
    *out = (size_t)pos;
    return 0;
}

static int image_fwhm(const char *name, const fn_value *v, bool along_x, double *out, char *err)
{
    size_t at;
    int rc = centroid(name, v, !along_x, &at, err);
    if (rc)
        return rc;
    size_t n = along_x ? v->w : v->h;
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        snprintf(err, FN_ERR_MAX, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        x[i] = (double)i;
        y[i] = along_x ? v->pix[at * v->w + i] : v->pix[i * v->w + at];
    }
    double l, r;
    rc = fn_half_max(x, n, y, n, &l, &r, err);
    free(x);
    free(y);
    if (rc == 0)
        *out = r - l;
    return rc;
}

int fn_builtin_call(const char *name, const fn_value *v, double *out, char *err)
{
    unsigned set = fn_builtin_accepts(name);
    if (set == 0)
        return -ENOENT;
    if (!(set & (1u << v->type))) {
        snprintf(err, FN_ERR_MAX, "'%s' does not accept a %s", name, fn_type_name(v->type));
        return -EINVAL;
    }
    if (v->type == FN_IMAGE) {
        if (v->w == 0 || v->h == 0) {
            snprintf(err, FN_ERR_MAX, "'%s' needs a non-empty image", name);
            return -EINVAL;
        }
        if (strcmp(name, "background") == 0) {
            size_t rows = v->h < 10 ? v->h : 10, cols = v->w < 10 ? v->w : 10;
            double s = 0;
            for (size_t r = 0; r < rows; r++)
                for (size_t c = 0; c < cols; c++)
                    s += v->pix[r * v->w + c];
            *out = s / (double)(rows * cols);
            return 0;
        }
        if (strcmp(name, "integrate") == 0) {
            double s = 0;
            for (size_t i = 0; i < v->w * v->h; i++)
                s += v->pix[i];
            *out = s;
            return 0;
        }
        if (strcmp(name, "centroid_x") == 0 || strcmp(name, "centroid_y") == 0) {
            size_t at;
            int rc = centroid(name, v, name[9] == 'x', &at, err);
            if (rc == 0)
                *out = (double)at;
            return rc;
        }
        return image_fwhm(name, v, name[5] == 'x', out, err);
    }
    /* waveform */
    if (v->nx < v->ny) {
        snprintf(err, FN_ERR_MAX, "'%s': waveform has fewer x values (%zu) than y values (%zu)",
                 name, v->nx, v->ny);
        return -EINVAL;
    }
    if (strcmp(name, "background") == 0 || strcmp(name, "integrate") == 0) {
        double *y = smoothed(name, v, err);
        if (!y)
            return -EINVAL;
        size_t n = v->ny;
        if (name[0] == 'b') {
            *out = n < 50 ? mean_of(y, n) : (mean_of(y, 25) + mean_of(y + n - 25, 25)) / 2;
        } else {
            double s = 0;
            for (size_t i = 0; i + 1 < n; i++)
                s += y[i] * (v->x[i + 1] - v->x[i]);
            *out = s;
        }
        free(y);
        return 0;
    }
    if (v->ny == 0) {
        snprintf(err, FN_ERR_MAX, "'%s' needs a waveform with at least one point", name);
        return -EINVAL;
    }
    double l, r;
    int rc = fn_half_max(v->x, v->nx, v->y, v->ny, &l, &r, err);
    if (rc)
        return rc;
    if (strcmp(name, "rising") == 0)
        *out = l;
    else if (strcmp(name, "falling") == 0)
        *out = r;
    else if (strcmp(name, "fwhm") == 0)
        *out = r - l;
    else
        *out = (l + r) / 2;
    return 0;
}
