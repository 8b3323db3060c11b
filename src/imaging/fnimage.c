/*
 * fnimage.c: the storage form of a function's image value and its two renderings
 * (docs/functions.md §9.3 thumbnail, §9.4 full PNG pixels). See fnimage.h for the rules.
 */
#include "imaging/fnimage.h"

#include "imaging/png.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int fnimage_storage_bits(int bit_depth)
{
    if (bit_depth < 1 || bit_depth > 16)
        return 16;
    return bit_depth <= 8 ? 8 : 16;
}

/* Truncation toward zero clamped to 0..top; NaN -> 0. */
static double clamp_trunc(double v, double top)
{
    if (!(v > 0))
        return 0;
    v = trunc(v);
    return v > top ? top : v;
}

int fnimage_make(const double *pix, size_t w, size_t h, int bit_depth, fnimage *out)
{
    memset(out, 0, sizeof *out);
    if (w > PNG_MAX_DIM || h > PNG_MAX_DIM || w == 0 || h == 0)
        return -E2BIG;
    if (bit_depth < 1 || bit_depth > 16)
        bit_depth = 16;
    size_t n = w * h;
    out->w = (uint32_t)w;
    out->h = (uint32_t)h;
    out->storage_bits = fnimage_storage_bits(bit_depth);
    if (bit_depth == 8 || bit_depth == 16) {
        out->f64 = malloc(n * sizeof(double));
        if (!out->f64)
            return -ENOMEM;
        memcpy(out->f64, pix, n * sizeof(double));
        return 0;
    }
    if (bit_depth < 8) {
        double mul = ldexp(1, 8 - bit_depth);
        out->sample = 8;
        out->u8 = malloc(n);
        if (!out->u8)
            return -ENOMEM;
        for (size_t i = 0; i < n; i++)
            out->u8[i] = (uint8_t)clamp_trunc(clamp_trunc(pix[i], 255) * mul, 255);
        return 0;
    }
    double mul = ldexp(1, 16 - bit_depth);
    out->sample = 16;
    out->u16 = malloc(n * sizeof(uint16_t));
    if (!out->u16)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        out->u16[i] = (uint16_t)clamp_trunc(clamp_trunc(pix[i], 65535) * mul, 65535);
    return 0;
}

void fnimage_free(fnimage *img)
{
    free(img->f64);
    free(img->u8);
    free(img->u16);
    memset(img, 0, sizeof *img);
}

double fnimage_at(const fnimage *img, size_t i, size_t j)
{
    size_t k = i * img->w + j;
    return img->sample == 8 ? img->u8[k] : img->sample == 16 ? img->u16[k] : img->f64[k];
}

/* Colours n samples of img starting at the given element pointers (one of the three). */
static void colour(const fnimage *img, const void *samples, size_t n, double vmin, double vmax,
                   const colourmap *cm, uint8_t *rgba)
{
    if (img->sample == 0)
        falsecolour_f64(samples, n, vmin, vmax, cm, rgba);
    else
        falsecolour_gray(samples, n, img->sample, vmin, vmax, cm, rgba);
}

int fnimage_thumbnail_rgba(const double *pix, size_t w, size_t h, int bit_depth, uint32_t box_w,
                           uint32_t box_h, const falsecolour_levels *lv, const colourmap *cm,
                           uint8_t **rgba, uint32_t *tw, uint32_t *th)
{
    *rgba = NULL;
    if (box_w == 0 || box_h == 0)
        return -EDOM;
    size_t sx = w / box_w, sy = h / box_h;
    if (sx == 0 || sy == 0)
        return -EDOM;
    size_t ow = (w + sx - 1) / sx, oh = (h + sy - 1) / sy;
    double *sub = malloc(ow * oh * sizeof *sub);
    if (!sub)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < h; i += sy)
        for (size_t j = 0; j < w; j += sx)
            sub[k++] = pix[i * w + j];
    fnimage img;
    int rc = fnimage_make(sub, ow, oh, bit_depth, &img);
    free(sub);
    if (rc == 0)
        rc = fnimage_rgba(&img, lv, cm, rgba);
    fnimage_free(&img);
    if (rc == 0) {
        *tw = (uint32_t)ow;
        *th = (uint32_t)oh;
    }
    return rc;
}

int fnimage_rgba(const fnimage *img, const falsecolour_levels *lv, const colourmap *cm,
                 uint8_t **rgba)
{
    size_t n = (size_t)img->w * img->h;
    uint8_t *out = malloc(n * 4);
    if (!out)
        return -ENOMEM;
    double vmin, vmax;
    falsecolour_limits(lv, img->storage_bits, &vmin, &vmax);
    const void *samples = img->sample == 8    ? (const void *)img->u8
                          : img->sample == 16 ? (const void *)img->u16
                                              : (const void *)img->f64;
    colour(img, samples, n, vmin, vmax, cm, out);
    *rgba = out;
    return 0;
}

int fnimage_gray16(const fnimage *img, uint16_t **out)
{
    size_t n = (size_t)img->w * img->h;
    uint16_t *g = malloc(n * sizeof *g);
    if (!g)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        g[i] = img->sample == 8    ? img->u8[i]
               : img->sample == 16 ? img->u16[i]
                                   : (uint16_t)clamp_trunc(img->f64[i], 65535);
    *out = g;
    return 0;
}
