/*
 * falsecolour: the arithmetic of the reference's rendering (matplotlib imsave with a
 * Normalize(vmin, vmax) and a colour map), reproduced step by step so the same input
 * gives the same bytes:
 *
 *   t = (v - vmin) / (vmax - vmin)      in float32 for 8/16-bit input (float64 for int64
 *                                       and f8 arrays); t = 0 everywhere when vmax == vmin
 *   u = t * N                           same precision; u == N -> N - 1
 *   u < 0 -> entry 0 ("under"), u >= N -> entry N - 1 ("over"), NaN -> transparent,
 *   else entry floor(u).
 *
 * Float images scale symmetrically to the largest finite |v|; +inf and -inf are then "over"
 * and "under" (the reference takes an infinite maximum and paints everything flat).
 *
 * For 8- and 16-bit input the colour of every possible value is computed once into a
 * 256 / 65536 entry RGBA table, so a full image costs one table lookup per pixel.
 */
#include "imaging/falsecolour.h"

#include "imaging/png.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *falsecolour_check(const falsecolour_levels *lv)
{
    long top = 1L << lv->limit_bit_depth;
    if (lv->has_upper && lv->upper >= top)
        return "upper_level must be less than 2**limit_bit_depth";
    long lower = lv->has_lower ? lv->lower : 0;
    long upper = lv->has_upper ? lv->upper : top - 1;
    if (upper < lower)
        return "lower_level must be less than or equal to upperlevel";
    return NULL;
}

void falsecolour_limits(const falsecolour_levels *lv, int storage_bits, double *vmin, double *vmax)
{
    double m = ldexp(1.0, storage_bits - lv->limit_bit_depth);
    long lower = lv->has_lower ? lv->lower : 0;
    long upper = lv->has_upper ? lv->upper : (1L << lv->limit_bit_depth) - 1;
    *vmin = (double)lower * m;
    *vmax = (double)(upper + 1) * m - 1;
}

static inline void put(const colourmap *cm, int idx, uint8_t *px)
{
    const uint8_t *c = colourmap_entry(cm, idx);
    px[0] = c[0];
    px[1] = c[1];
    px[2] = c[2];
    px[3] = 255;
}

/* The index of t for a map of n entries, float32 arithmetic. */
static int index_f32(float v, float vmin, float span, int n, bool flat)
{
    float t = flat ? 0.0f : (v - vmin) / span;
    float u = t * (float)n;
    if (isnan(u)) /* inf / inf: only a float image's span past the largest float, and */
        return v > 0 ? n - 1 : 0; /* those are symmetric about 0 */
    if (u == (float)n)
        u = (float)(n - 1);
    if (u < 0.0f)
        return 0;
    if (u >= (float)n)
        return n - 1;
    return (int)u;
}

static int index_f64(double v, double vmin, double span, int n, bool flat)
{
    double t = flat ? 0.0 : (v - vmin) / span;
    double u = t * (double)n;
    if (isnan(u)) /* as in index_f32 */
        return v > 0 ? n - 1 : 0;
    if (u == (double)n)
        u = (double)(n - 1);
    if (u < 0.0)
        return 0;
    if (u >= (double)n)
        return n - 1;
    return (int)u;
}

void falsecolour_gray(const void *pixels, size_t npixels, int storage_bits, double vmin,
                      double vmax, const colourmap *cm, uint8_t *rgba)
{
    size_t nvalues = storage_bits == 16 ? 65536 : 256;
    /* a table of every 16-bit value only pays for images with many pixels (a function
     * thumbnail has a few thousand) */
    uint32_t *table =
        storage_bits == 16 && npixels < nvalues / 4 ? NULL : malloc(nvalues * sizeof(uint32_t));
    uint32_t small[256];
    if (!table && nvalues == 256)
        table = small;
    float fvmin = (float)vmin, fvmax = (float)vmax;
    float span = fvmax - fvmin;
    bool flat = fvmax == fvmin;
    int n = colourmap_len(cm);
    if (table) {
        for (size_t v = 0; v < nvalues; v++) {
            uint8_t px[4];
            put(cm, index_f32((float)v, fvmin, span, n, flat), px);
            memcpy(&table[v], px, 4);
        }
        if (storage_bits == 16) {
            const uint16_t *p = pixels;
            for (size_t i = 0; i < npixels; i++)
                memcpy(rgba + 4 * i, &table[p[i]], 4);
        } else {
            const uint8_t *p = pixels;
            for (size_t i = 0; i < npixels; i++)
                memcpy(rgba + 4 * i, &table[p[i]], 4);
        }
        if (table != small)
            free(table);
        return;
    }
    /* Few pixels, or no memory for the table: colour pixel by pixel. */
    for (size_t i = 0; i < npixels; i++) {
        float v = storage_bits == 16 ? (float)((const uint16_t *)pixels)[i]
                                     : (float)((const uint8_t *)pixels)[i];
        put(cm, index_f32(v, fvmin, span, n, flat), rgba + 4 * i);
    }
}

void falsecolour_int64(const int64_t *values, size_t nv, double vmin, double vmax,
                       const colourmap *cm, uint8_t *rgba)
{
    int n = colourmap_len(cm);
    bool flat = vmax == vmin;
    for (size_t i = 0; i < nv; i++)
        put(cm, index_f64((double)values[i], vmin, vmax - vmin, n, flat), rgba + 4 * i);
}

void falsecolour_f64(const double *values, size_t nv, double vmin, double vmax, const colourmap *cm,
                     uint8_t *rgba)
{
    int n = colourmap_len(cm);
    bool flat = vmax == vmin;
    for (size_t i = 0; i < nv; i++) {
        if (isnan(values[i]))
            memset(rgba + 4 * i, 0, 4);
        else
            put(cm, index_f64(values[i], vmin, vmax - vmin, n, flat), rgba + 4 * i);
    }
}

double falsecolour_absmax_f32(const float *v, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]) && fabsf(v[i]) > m)
            m = fabsf(v[i]);
    return m == 0 ? 1.0 : (double)m;
}

double falsecolour_absmax_f64(const double *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]) && fabs(v[i]) > m)
            m = fabs(v[i]);
    return m == 0 ? 1.0 : m;
}

void falsecolour_float_f32(const float *v, size_t nv, const colourmap *cm, uint8_t *rgba)
{
    float a = (float)falsecolour_absmax_f32(v, nv);
    float vmin = -a, span = a - vmin;
    int n = colourmap_len(cm);
    for (size_t i = 0; i < nv; i++) {
        if (isnan(v[i]))
            memset(rgba + 4 * i, 0, 4);
        else
            put(cm, index_f32(v[i], vmin, span, n, false), rgba + 4 * i);
    }
}

void falsecolour_float_f64(const double *v, size_t nv, const colourmap *cm, uint8_t *rgba)
{
    double a = falsecolour_absmax_f64(v, nv);
    double vmin = -a, span = a - vmin;
    int n = colourmap_len(cm);
    for (size_t i = 0; i < nv; i++) {
        if (isnan(v[i]))
            memset(rgba + 4 * i, 0, 4);
        else
            put(cm, index_f64(v[i], vmin, span, n, false), rgba + 4 * i);
    }
}

void falsecolour_la_thumbnail(const uint8_t *la, size_t npixels, const colourmap *cm, uint8_t *rgba)
{
    int n = colourmap_len(cm);
    for (size_t i = 0; i < npixels; i++) {
        int idx = la[2 * i] < n ? la[2 * i] : n - 1;
        put(cm, idx, rgba + 4 * i);
        rgba[4 * i + 3] = la[2 * i + 1] ? 255 : 0;
    }
}

int falsecolour_colour_bar(const falsecolour_levels *lv, const colourmap *cm, uint32_t height,
                           uint8_t **rgba_out)
{
    double vmin, vmax;
    falsecolour_limits(lv, 8, &vmin, &vmax);
    int64_t row[256];
    for (int i = 0; i < 256; i++)
        row[i] = i;
    uint8_t *rgba = malloc((size_t)256 * 4 * height);
    if (!rgba)
        return -ENOMEM;
    falsecolour_int64(row, 256, vmin, vmax, cm, rgba);
    for (uint32_t y = 1; y < height; y++)
        memcpy(rgba + (size_t)y * 256 * 4, rgba, 256 * 4);
    *rgba_out = rgba;
    return 0;
}

static const char *png_mode_name(const png_image *img)
{
    switch (img->file_color_type) {
    case 0:
        return img->file_bit_depth == 1 ? "1" : img->file_bit_depth == 16 ? "I;16" : "L";
    case 2:
        return "RGB";
    case 3:
        return "P";
    case 4:
        return "LA";
    default:
        return "RGBA";
    }
}

int falsecolour_png(const void *png, size_t len, const falsecolour_levels *lv, const colourmap *cm,
                    int compression_level, unsigned char **out, size_t *outlen, const char **mode)
{
    png_image img;
    *mode = NULL;
    int rc = png_decode(png, len, &img);
    if (rc != 0)
        return rc;
    if (img.color_type != PNG_COLOR_GRAY || img.file_bit_depth == 1) {
        *mode = png_mode_name(&img);
        png_image_free(&img);
        return -EINVAL;
    }
    size_t n = (size_t)img.width * img.height;
    uint8_t *rgba = malloc(n * 4);
    if (!rgba) {
        png_image_free(&img);
        return -ENOMEM;
    }
    double vmin, vmax;
    falsecolour_limits(lv, img.bit_depth, &vmin, &vmax);
    falsecolour_gray(img.pixels, n, img.bit_depth, vmin, vmax, cm, rgba);
    rc = png_encode_rgba_deflate(rgba, img.width, img.height, compression_level, out, outlen);
    free(rgba);
    png_image_free(&img);
    return rc;
}
