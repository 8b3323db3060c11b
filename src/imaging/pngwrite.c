/*
 * pngwrite: a fast writer for large PNGs: the RGBA frames rendered per request and the
 * greyscale camera frames stored at ingest (png_encode_rgba_deflate and
 * png_encode_gray_deflate in png.h). libspng compresses through zlib and tries every
 * filter on every row; for a full camera frame that is most of a request's time. Here
 * each row gets one fixed filter (Up: false-colour images are smooth from row to row),
 * the whole filtered image is compressed in one call to libdeflate (several times faster
 * than zlib at equal or better ratio; or, with PNG_DEFLATE_LITERALS, by huffdeflate's
 * literal-only coder, faster still on noisy frames), and the chunks are framed by hand: IHDR, one
 * IDAT per 1 GiB (PNG's chunk limit is 2^31 - 1), IEND.
 */
#include "imaging/png.h"

#include "imaging/huffdeflate.h"

#include <errno.h>
#include <stdbool.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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

/* Row y of the filtered stream into r[0..stride]: the filter byte, then the row
 * (16-bit samples shifted left by shift and written big-endian as PNG wants them)
 * Up-filtered against the row above (None for the first row). */
static void filter_row(const unsigned char *px, size_t stride, uint32_t y, bool swap,
                       unsigned shift, unsigned char *r)
{
    const unsigned char *cur = px + (size_t)y * stride;
    r[0] = y ? 2 : 0;
    if (swap) {
        const uint16_t *c16 = (const uint16_t *)(const void *)cur;
        const uint16_t *p16 = y ? (const uint16_t *)(const void *)(cur - stride) : NULL;
        size_t i = 0;
#ifdef __SSE2__
        /* eight samples at a time: shift, swap the bytes of each, subtract byte-wise */
        const __m128i zero = _mm_setzero_si128();
        const __m128i cnt = _mm_cvtsi32_si128((int)shift);
        for (; i + 8 <= stride / 2; i += 8) {
            __m128i v =
                _mm_sll_epi16(_mm_loadu_si128((const __m128i *)(const void *)(c16 + i)), cnt);
            __m128i u =
                p16 ? _mm_sll_epi16(_mm_loadu_si128((const __m128i *)(const void *)(p16 + i)), cnt)
                    : zero;
            v = _mm_or_si128(_mm_slli_epi16(v, 8), _mm_srli_epi16(v, 8));
            u = _mm_or_si128(_mm_slli_epi16(u, 8), _mm_srli_epi16(u, 8));
            _mm_storeu_si128((__m128i *)(void *)(r + 1 + 2 * i), _mm_sub_epi8(v, u));
        }
#endif
        for (; i < stride / 2; i++) {
            unsigned v = (uint16_t)(c16[i] << shift), u = p16 ? (uint16_t)(p16[i] << shift) : 0;
            r[1 + 2 * i] = (unsigned char)((v >> 8) - (u >> 8));
            r[2 + 2 * i] = (unsigned char)(v - u);
        }
    } else if (y) {
        const unsigned char *prev = cur - stride;
        for (size_t i = 0; i < stride; i++)
            r[1 + i] = (unsigned char)(cur[i] - prev[i]);
    } else {
        memcpy(r + 1, cur, stride);
    }
}

/* The writer behind the entry points. bpp: bytes per pixel in pixels (host order);
 * 16-bit samples are shifted left by shift and written big-endian. sbit: 0 = no sBIT
 * chunk. With PNG_DEFLATE_LITERALS the filtered stream is never held: a first pass over
 * the rows counts its bytes, a second filters each row again into one row buffer and
 * codes it (huffdeflate's stream functions). Other levels filter the whole image into one
 * buffer for libdeflate. */
static int encode(const void *pixels, uint32_t w, uint32_t h, int colour_type, int bit_depth,
                  size_t bpp, unsigned shift, int sbit, int level, unsigned char **out,
                  size_t *outlen)
{
    if (w == 0 || h == 0 || w > PNG_MAX_DIM || h > PNG_MAX_DIM || (uint64_t)w * h > PNG_MAX_PIXELS)
        return w == 0 || h == 0 ? -EINVAL : -E2BIG;
    bool literals = level == PNG_DEFLATE_LITERALS;
    if (level < 0 || level > 12)
        level = 6;
    size_t stride = (size_t)w * bpp, rawlen = (stride + 1) * h;
    const unsigned char *px = pixels;
    bool swap = bit_depth == 16;
    /* literals: one row; otherwise the whole filtered image */
    unsigned char *raw = malloc(literals ? stride + 1 : rawlen);
    if (!raw)
        return -ENOMEM;
    uint64_t freq[256] = {0};
    for (uint32_t y = 0; y < h; y++) {
        unsigned char *r = literals ? raw : raw + (size_t)y * (stride + 1);
        filter_row(px, stride, y, swap, shift, r);
        if (literals)
            huffdeflate_count(freq, r, stride + 1);
    }
    struct libdeflate_compressor *c = literals ? NULL : libdeflate_alloc_compressor(level);
    if (!literals && !c) {
        free(raw);
        return -ENOMEM;
    }
    size_t bound =
        literals ? huffdeflate_zlib_bound(rawlen) : libdeflate_zlib_compress_bound(c, rawlen);
    size_t nidat = bound / (1u << 30) + 1;
    /* signature + IHDR + sBIT + IDAT framing + IEND */
    unsigned char *o = bound ? malloc(8 + 25 + 13 + bound + 12 * nidat + 12) : NULL;
    /* one IDAT (every frame below 1 GiB compressed): compressed in place, no copy */
    unsigned char *z = bound && nidat > 1 ? malloc(bound) : NULL;
    if (!o || (nidat > 1 && !z)) {
        free(o);
        free(z);
        free(raw);
        libdeflate_free_compressor(c);
        return -ENOMEM;
    }
    size_t n = 0;
    memcpy(o, "\x89PNG\r\n\x1a\n", 8);
    n += 8;
    unsigned char ihdr[13];
    put32(ihdr, w);
    put32(ihdr + 4, h);
    ihdr[8] = (unsigned char)bit_depth;
    ihdr[9] = (unsigned char)colour_type;
    ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filtering, no interlace */
    n += chunk(o + n, "IHDR", ihdr, 13);
    if (sbit > 0) {
        unsigned char sb = (unsigned char)sbit;
        n += chunk(o + n, "sBIT", &sb, 1);
    }
    unsigned char *dst = z ? z : o + n + 8;
    size_t zlen = 0;
    if (literals) {
        huffdeflate_stream hs;
        if (huffdeflate_begin(&hs, freq, dst, bound) == 0) {
            for (uint32_t y = 0; y < h; y++) {
                filter_row(px, stride, y, swap, shift, raw);
                huffdeflate_put(&hs, raw, stride + 1);
            }
            zlen = huffdeflate_end(&hs);
        }
    } else {
        zlen = libdeflate_zlib_compress(c, raw, rawlen, dst, bound);
    }
    libdeflate_free_compressor(c);
    free(raw);
    if (zlen == 0) {
        free(o);
        free(z);
        return -ENOMEM;
    }
    if (!z) {
        put32(o + n, (uint32_t)zlen);
        memcpy(o + n + 4, "IDAT", 4);
        put32(o + n + 8 + zlen, libdeflate_crc32(0, o + n + 4, 4 + zlen));
        n += 12 + zlen;
    }
    for (size_t off = 0; z && off < zlen; off += 1u << 30) {
        size_t part = zlen - off < (1u << 30) ? zlen - off : (1u << 30);
        n += chunk(o + n, "IDAT", z + off, part);
    }
    n += chunk(o + n, "IEND", NULL, 0);
    free(z);
    *out = o;
    *outlen = n;
    return 0;
}

int png_encode_rgba_deflate(const void *pixels, uint32_t w, uint32_t h, int level,
                            unsigned char **out, size_t *outlen)
{
    return encode(pixels, w, h, PNG_COLOR_RGBA, 8, 4, 0, 0, level, out, outlen);
}

int png_encode_gray_deflate(const void *pixels, uint32_t w, uint32_t h, int bit_depth, int sbit,
                            int level, unsigned char **out, size_t *outlen)
{
    return png_encode_gray_deflate_shift(pixels, w, h, bit_depth, 0, sbit, level, out, outlen);
}

int png_encode_gray_deflate_shift(const void *pixels, uint32_t w, uint32_t h, int bit_depth,
                                  unsigned shift, int sbit, int level, unsigned char **out,
                                  size_t *outlen)
{
    if (bit_depth != 8 && bit_depth != 16)
        return -EINVAL;
    if (sbit < 0 || sbit > bit_depth || shift >= 16 || (shift && bit_depth != 16))
        return -EINVAL;
    return encode(pixels, w, h, 0 /* greyscale */, bit_depth, (size_t)bit_depth / 8, shift, sbit,
                  level, out, outlen);
}
