/*
 * pngwrite: a fast writer for the large RGBA PNGs rendered per request (see
 * png_encode_rgba_deflate in png.h). libspng compresses through zlib and tries every
 * filter on every row; for a full camera frame that is most of a request's time. Here
 * each row gets one fixed filter (Up: false-colour images are smooth from row to row),
 * the whole filtered image is compressed in one call to libdeflate (several times faster
 * than zlib at equal or better ratio), and the chunks are framed by hand: IHDR, one
 * IDAT per 1 GiB (PNG's chunk limit is 2^31 - 1), IEND.
 */
#include "imaging/png.h"

#include <errno.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Writes a chunk (length, type, data, CRC) at o; returns the bytes written. */
static size_t chunk(unsigned char *o, const char *type, const unsigned char *data, size_t len)
{
    put32(o, (uint32_t)len);
    memcpy(o + 4, type, 4);
    if (len)
        memcpy(o + 8, data, len);
    uint32_t crc = libdeflate_crc32(0, o + 4, 4 + len);
    put32(o + 8 + len, crc);
    return 12 + len;
}

int png_encode_rgba_deflate(const void *pixels, uint32_t w, uint32_t h, int level,
                            unsigned char **out, size_t *outlen)
{
    if (w == 0 || h == 0 || w > PNG_MAX_DIM || h > PNG_MAX_DIM || (uint64_t)w * h > PNG_MAX_PIXELS)
        return w == 0 || h == 0 ? -EINVAL : -E2BIG;
    if (level < 0 || level > 12)
        level = 6;
    size_t stride = (size_t)w * 4, rawlen = (stride + 1) * h;
    unsigned char *raw = malloc(rawlen);
    if (!raw)
        return -ENOMEM;
    const unsigned char *px = pixels;
    for (uint32_t y = 0; y < h; y++) {
        unsigned char *r = raw + (size_t)y * (stride + 1);
        const unsigned char *cur = px + (size_t)y * stride;
        if (y == 0) {
            r[0] = 0; /* None */
            memcpy(r + 1, cur, stride);
            continue;
        }
        const unsigned char *prev = cur - stride;
        r[0] = 2; /* Up */
        for (size_t i = 0; i < stride; i++)
            r[1 + i] = (unsigned char)(cur[i] - prev[i]);
    }
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
    if (!c) {
        free(raw);
        return -ENOMEM;
    }
    size_t bound = libdeflate_zlib_compress_bound(c, rawlen);
    size_t nidat = bound / (1u << 30) + 1;
    /* signature + IHDR + IDAT framing + IEND */
    unsigned char *o = malloc(8 + 25 + bound + 12 * nidat + 12);
    unsigned char *z = malloc(bound);
    if (!o || !z) {
        free(o);
        free(z);
        free(raw);
        libdeflate_free_compressor(c);
        return -ENOMEM;
    }
    size_t zlen = libdeflate_zlib_compress(c, raw, rawlen, z, bound);
    libdeflate_free_compressor(c);
    free(raw);
    if (zlen == 0) {
        free(o);
        free(z);
        return -ENOMEM;
    }
    size_t n = 0;
    memcpy(o, "\x89PNG\r\n\x1a\n", 8);
    n += 8;
    unsigned char ihdr[13];
    put32(ihdr, w);
    put32(ihdr + 4, h);
    ihdr[8] = 8;                        /* bit depth */
    ihdr[9] = PNG_COLOR_RGBA;           /* colour type */
    ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filtering, no interlace */
    n += chunk(o + n, "IHDR", ihdr, 13);
    for (size_t off = 0; off < zlen; off += 1u << 30) {
        size_t part = zlen - off < (1u << 30) ? zlen - off : (1u << 30);
        n += chunk(o + n, "IDAT", z + off, part);
    }
    n += chunk(o + n, "IEND", NULL, 0);
    free(z);
    *out = o;
    *outlen = n;
    return 0;
}
