/*
 * falsecolour: turns greyscale and float pixel arrays into RGBA through a colour map.
 *
 * Owns the rules of docs/imaging.md §2 (integer images: level checks, storage and limit bit
 * depths, vmin/vmax, the float32 index arithmetic, under/over colours) and
 * docs/imaging.md §6 (float images: symmetric limits around 0, NaN transparent; LA
 * thumbnails used as direct table indices). Pure functions on caller-owned memory, no I/O:
 * callers run them on the thread pool. Output is always 8-bit RGBA, 4 bytes per pixel, same
 * size as the input.
 */
#ifndef OGD_IMAGING_FALSECOLOUR_H
#define OGD_IMAGING_FALSECOLOUR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imaging/colourmap.h"

/* Request levels. has_lower/has_upper false = "None" (0 and 2^limit - 1). */
typedef struct falsecolour_levels {
    long lower, upper;
    int limit_bit_depth; /** 0..16 */
    bool has_lower, has_upper;
} falsecolour_levels;

/* Checks the levels: NULL when fine, else the 400 message of docs/api.md §4.10 (static). */
const char *falsecolour_check(const falsecolour_levels *lv);

/* vmin / vmax for an image stored at storage_bits (8 or 16): vmin = L * 2^(S-B),
 * vmax = (U + 1) * 2^(S-B) - 1. Levels must have passed falsecolour_check. */
void falsecolour_limits(const falsecolour_levels *lv, int storage_bits, double *vmin, double *vmax);

/* Colours an integer image: pixels are uint8_t (storage_bits 8) or uint16_t (16),
 * w * h of them; rgba gets w * h * 4 bytes. Index arithmetic in float32, as the
 * reference does for 8/16-bit arrays. */
void falsecolour_gray(const void *pixels, size_t npixels, int storage_bits, double vmin,
                      double vmax, const colourmap *cm, uint8_t *rgba);

/* Colours an array of int64-like values in float64 arithmetic (the colour bar). */
void falsecolour_int64(const int64_t *values, size_t n, double vmin, double vmax,
                       const colourmap *cm, uint8_t *rgba);

/* Colours doubles with the given limits in float64 arithmetic (function images that keep
 * their values); NaN -> (0,0,0,0). */
void falsecolour_f64(const double *values, size_t n, double vmin, double vmax, const colourmap *cm,
                     uint8_t *rgba);
/* Float images: absmax = max |v| over finite values, or 1 when there are none or all are
 * zero (+-inf then colour as over / under). */
double falsecolour_absmax_f32(const float *v, size_t n);
double falsecolour_absmax_f64(const double *v, size_t n);
/* Colours with vmin = -absmax, vmax = +absmax; NaN -> (0,0,0,0). f32 variant computes in
 * float32, f64 in float64. */
void falsecolour_float_f32(const float *v, size_t n, const colourmap *cm, uint8_t *rgba);
void falsecolour_float_f64(const double *v, size_t n, const colourmap *cm, uint8_t *rgba);

/* Re-colours a float-image thumbnail (8-bit grey + alpha, 2 bytes per pixel): L is the
 * table index directly (over the end -> last entry), alpha 0 stays 0, else 255. */
void falsecolour_la_thumbnail(const uint8_t *la, size_t npixels, const colourmap *cm,
                              uint8_t *rgba);

/* The full-image path (GET /images/{id}/{ch}): decodes a stored greyscale PNG (8 or
 * 16 bit), colours it with the levels (already checked) and map, and encodes an RGBA PNG
 * with png_encode_rgba_deflate at compression_level (libdeflate 0..12). 0 with *out malloc'd
 * (caller frees); -EINVAL with *mode set to the PIL-style mode name ("RGB", "LA", ...) when the PNG
 * is not a greyscale image the reference accepts; other negative values for undecodable input or no
 * memory. */
int falsecolour_png(const void *png, size_t len, const falsecolour_levels *lv, const colourmap *cm,
                    int compression_level, unsigned char **out, size_t *outlen, const char **mode);

/* Renders the colour bar: 256 x height, every row 0..255 treated as 8-bit storage. */
int falsecolour_colour_bar(const falsecolour_levels *lv, const colourmap *cm, uint32_t height,
                           uint8_t **rgba_out);

#endif
