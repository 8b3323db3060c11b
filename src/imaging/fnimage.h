/*
 * fnimage: turns the image value of a user function (a w x h array of doubles) into what
 * the data plane serves (docs/functions.md §9.3-§9.5): the storage form, a false-colour
 * thumbnail for /records, and the full PNG for /images and /export.
 *
 * Storage form (docs/functions.md §9.5): the overall bit depth d of the function (the
 * largest bit_depth of the image channels it uses, 16 when none is known) decides how the
 * values are stored: d = 8 or 16 keeps the doubles (storage depth d); d < 8 truncates to 8
 * bits and shifts left by 8 - d; 8 < d < 16 truncates to 16 bits and shifts left by 16 - d.
 * ogd clamps into the storage range where the reference's integer casts wrap around
 * (NaN -> 0).
 *
 * Pure functions on caller-owned memory, no I/O: callers run them on the thread pool.
 */
#ifndef OGD_IMAGING_FNIMAGE_H
#define OGD_IMAGING_FNIMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "imaging/colourmap.h"
#include "imaging/falsecolour.h"

typedef struct fnimage {
    uint32_t w, h;
    int storage_bits; /** 8 or 16: what levels and limit_bit_depth are relative to */
    int sample;       /** 0: f64 holds the values; 8: u8; 16: u16 */
    double *f64;      /** owned */
    uint8_t *u8;      /** owned */
    uint16_t *u16;    /** owned */
} fnimage;

/* The storage depth and shift of docs/functions.md §9.5 for overall bit depth d (0 or out
 * of 1..16 = 16). */
int fnimage_storage_bits(int bit_depth);
/* Builds the storage form of pix[w*h] (borrowed) for overall bit depth bit_depth. 0 or
 * -ENOMEM / -E2BIG (a side over PNG_MAX_DIM). Free with fnimage_free. */
int fnimage_make(const double *pix, size_t w, size_t h, int bit_depth, fnimage *out);
void fnimage_free(fnimage *img);
/* Value of pixel (row i, column j) as a double (for profiles). */
double fnimage_at(const fnimage *img, size_t i, size_t j);

/* The /records thumbnail of the function value pix[w*h] (borrowed) at overall bit depth
 * bit_depth: strided downsample pix[::sy, ::sx] with sx = w / box_w, sy = h / box_h
 * (integer division), put into storage form (only the sampled pixels: the form is
 * pointwise) and coloured with lv (limit_bit_depth as given) and cm. -EDOM when the image
 * is narrower or shorter than the box (a step of 0). On 0, *rgba (malloc'd, caller frees)
 * holds *tw x *th RGBA pixels. */
int fnimage_thumbnail_rgba(const double *pix, size_t w, size_t h, int bit_depth, uint32_t box_w,
                           uint32_t box_h, const falsecolour_levels *lv, const colourmap *cm,
                           uint8_t **rgba, uint32_t *tw, uint32_t *th);
/* Colours the whole image with lv (already checked) and cm: *rgba malloc'd, w*h*4 bytes. */
int fnimage_rgba(const fnimage *img, const falsecolour_levels *lv, const colourmap *cm,
                 uint8_t **rgba);
/* The original_image form: the storage values truncated to integers and clamped to
 * 0..65535 (NaN -> 0), as w*h uint16_t; *out malloc'd. */
int fnimage_gray16(const fnimage *img, uint16_t **out);

#endif
