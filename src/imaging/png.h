/*
 * png: PNG encoding and decoding (libspng) plus the greyscale thumbnail downscale.
 *
 * Owns the conversion between in-memory pixel arrays and PNG bytes. Pixel arrays are
 * tightly packed rows, top row first; 16-bit samples are uint16_t in host byte order on
 * both sides (libspng swaps to the file's big-endian order). Encoders return a malloc'd
 * PNG (caller frees with free()); png_decode fills a png_image whose pixels the caller
 * releases with png_image_free. Every entry point enforces the same size limits
 * (PNG_MAX_DIM per side, PNG_MAX_PIXELS in all) before allocating, and libspng's chunk
 * limits cap what ancillary chunks can make it allocate, so hostile input cannot make
 * memory grow without bound. Errors are negative errno values: -EINVAL (malformed,
 * truncated or unsupported input / arguments), -E2BIG (over a limit), -ENOMEM.
 *
 * Data flow at ingest / demo generation: raw sensor samples -> shifted into the most
 * significant bits -> png_encode_gray(..., sbit) -> object store; the same pixels ->
 * png_thumbnail_gray8 -> png_encode_gray(8-bit) -> base64 -> record. On read: object bytes
 * -> png_decode -> colouring (elsewhere).
 *
 * Note: the type name png_image also exists in libpng's <png.h>; do not include both in
 * one translation unit.
 */
#ifndef OGD_IMAGING_PNG_H
#define OGD_IMAGING_PNG_H

#include <stddef.h>
#include <stdint.h>

#define PNG_MAX_DIM 65535u                   /* widest / tallest image accepted */
#define PNG_MAX_PIXELS ((uint64_t)100000000) /* width * height accepted (100 megapixels) */

/* Colour types (values as in the PNG IHDR). Decoded palette images come back as RGBA. */
enum {
    PNG_COLOR_GRAY = 0,
    PNG_COLOR_RGB = 2,
    PNG_COLOR_GRAY_ALPHA = 4,
    PNG_COLOR_RGBA = 6,
};

/* Default zlib compression level for the encoders' compression_level argument. */
#define PNG_COMPRESSION_DEFAULT (-1)

typedef struct png_image {
    uint32_t width;
    uint32_t height;
    int bit_depth;       /* of pixels: 8 or 16 (1/2/4-bit greyscale is expanded to 8) */
    int file_bit_depth;  /* as written in the file's IHDR: 1, 2, 4, 8 or 16 */
    int color_type;      /* PNG_COLOR_* of pixels */
    int file_color_type; /* as written in the file (3 = palette) */
    int channels;        /* samples per pixel: 1 to 4 */
    int sbit;            /* sBIT of the grey (or red) channel; 0 = the file has no sBIT */
    size_t stride;       /* bytes per row of pixels */
    size_t len;          /* bytes of pixels = height * stride */
    void *pixels;        /* owned; released by png_image_free */
} png_image;

/* Encodes a greyscale image of bit_depth 8 (uint8_t samples) or 16 (uint16_t samples).
 * sbit: 0 = no sBIT chunk, else 1..bit_depth, written as the grey significant bits.
 * compression_level: 0..9 or PNG_COMPRESSION_DEFAULT. pixels is borrowed; *out is
 * malloc'd (caller frees). */
int png_encode_gray(const void *pixels, uint32_t w, uint32_t h, int bit_depth, int sbit,
                    int compression_level, unsigned char **out, size_t *outlen);
/* Encodes an 8-bit RGBA image (4 bytes per pixel, non-premultiplied). Same ownership. */
int png_encode_rgba(const void *pixels, uint32_t w, uint32_t h, int compression_level,
                    unsigned char **out, size_t *outlen);
/* The same output type, written for speed (pngwrite.c): one fixed row filter and
 * libdeflate at level 0..12 (out-of-range -> 6) instead of zlib, or literal-only Huffman
 * coding with level PNG_DEFLATE_LITERALS (imaging/huffdeflate.h: the fastest, and for
 * noisy frames smaller than libdeflate's level 1). For the per-request renderings of full
 * frames. Same ownership and limits. */
#define PNG_DEFLATE_LITERALS (-2)
int png_encode_rgba_deflate(const void *pixels, uint32_t w, uint32_t h, int level,
                            unsigned char **out, size_t *outlen);
/* The fast writer for greyscale frames (8-bit uint8_t or 16-bit uint16_t samples in host
 * order) with an optional sBIT chunk (0 = none, else 1..bit_depth). Same ownership. */
int png_encode_gray_deflate(const void *pixels, uint32_t w, uint32_t h, int bit_depth, int sbit,
                            int level, unsigned char **out, size_t *outlen);
/* The same, 16-bit samples shifted left by shift (0..15, bits shifted past 16 dropped)
 * on the way: stored frames of fewer significant bits, without a shifted copy. */
int png_encode_gray_deflate_shift(const void *pixels, uint32_t w, uint32_t h, int bit_depth,
                                  unsigned shift, int sbit, int level, unsigned char **out,
                                  size_t *outlen);
/* Encodes an 8-bit grey + alpha image (2 bytes per pixel: L, A). Same ownership. */
int png_encode_gray_alpha(const void *pixels, uint32_t w, uint32_t h, int compression_level,
                          unsigned char **out, size_t *outlen);

/* Decodes a whole PNG (data borrowed) into *out; on error *out holds no memory. Grey,
 * grey+alpha, RGB and RGBA keep their layout and depth (8/16); 1/2/4-bit grey is scaled
 * to 8 bits; palette images are expanded to RGBA 8 (tRNS applied). The file must be
 * complete through IEND with valid CRCs. */
int png_decode(const void *data, size_t len, png_image *out);
/* Releases out->pixels; safe on a zeroed or already freed image. */
void png_image_free(png_image *img);

/* Size of a thumbnail of a w x h image fitted inside box_w x box_h: aspect preserved
 * (each side rounded to whichever integer keeps the aspect closest), at least 1 pixel,
 * never enlarged (an image already inside the box keeps its size). */
void png_thumbnail_size(uint32_t w, uint32_t h, uint32_t box_w, uint32_t box_h, uint32_t *tw,
                        uint32_t *th);

/* Area-averaging downscale of a greyscale image (bit_depth 8: uint8_t, 16: uint16_t
 * samples) to an 8-bit image fitting inside box_w x box_h (png_thumbnail_size).
 * value_bits says how samples map to 8 bits: 0 = they use the whole bit_depth range
 * (the stored-PNG form, significant bits at the top, so 16-bit -> round(v / 256), as
 * the reference's thumbnails); 1..bit_depth = they are right-aligned values of that many
 * bits (raw sensor data, e.g. 12 for 0..4095), scaled so 2^value_bits maps to 256.
 * Results are rounded and clipped to 0..255. pixels borrowed; *out malloc'd (caller
 * frees), *out_w x *out_h bytes. */
int png_thumbnail_gray8(const void *pixels, uint32_t w, uint32_t h, int bit_depth, int value_bits,
                        uint32_t box_w, uint32_t box_h, unsigned char **out, uint32_t *out_w,
                        uint32_t *out_h);
/* The same, 16-bit samples first shifted left by shift (0..15, bits past 16 dropped):
 * the thumbnail of the frame png_encode_gray_deflate_shift stores, from the raw samples. */
int png_thumbnail_gray8_shift(const void *pixels, uint32_t w, uint32_t h, int bit_depth,
                              unsigned shift, int value_bits, uint32_t box_w, uint32_t box_h,
                              unsigned char **out, uint32_t *out_w, uint32_t *out_h);

/* Convenience for ingest: thumbnail of a decoded greyscale image (value_bits 0, as above)
 * encoded as an 8-bit greyscale PNG (caller frees *out). -EINVAL for non-grey images. */
int png_thumbnail_png(const png_image *img, uint32_t box_w, uint32_t box_h, unsigned char **out,
                      size_t *outlen);

/* A short static description of a png_* error code. */
const char *png_strerror(int err);

#endif
