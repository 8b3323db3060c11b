/*
 * png: libspng wrappers and the area-averaging thumbnail; see png.h.
 *
 * Encoding: one libspng encoder context per call, writing into libspng's own growing
 * buffer (bounded by the image size we already checked), which is handed to the caller.
 * Decoding: one decoder context per call with image limits (PNG_MAX_DIM) and chunk limits
 * set before anything is read; the IHDR is checked against PNG_MAX_PIXELS and the
 * decoded size against DECODED_MAX before the pixel buffer is allocated. After the image
 * the trailing chunks are read through IEND so truncation anywhere is reported.
 * Thumbnail: separable box filter with fractional edge weights (each output pixel is the
 * exact mean of the source area it covers), horizontal pass into a float row buffer of
 * out_w x h, then vertical pass.
 */
#include "imaging/png.h"

#include <errno.h>
#include <math.h>
#include <spng.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Ancillary-chunk limits handed to libspng: one chunk, all cached chunks together. */
#define CHUNK_MAX ((size_t)8 << 20)
#define CHUNK_CACHE_MAX ((size_t)32 << 20)
/* Largest pixel buffer png_decode allocates (100 MP of RGBA 16 would be 800 MB). */
#define DECODED_MAX ((size_t)512 << 20)

const char *png_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case -EINVAL:
        return "malformed, truncated or unsupported PNG";
    case -E2BIG:
        return "image exceeds the size limits";
    case -ENOMEM:
        return "out of memory";
    default:
        return "PNG error";
    }
}

static int check_dims(uint32_t w, uint32_t h)
{
    if (w == 0 || h == 0)
        return -EINVAL;
    if (w > PNG_MAX_DIM || h > PNG_MAX_DIM || (uint64_t)w * h > PNG_MAX_PIXELS)
        return -E2BIG;
    return 0;
}

/* Maps a libspng error to ours. */
static int spng_to_errno(int rc)
{
    if (rc == SPNG_EMEM)
        return -ENOMEM;
    if (rc == SPNG_EWIDTH || rc == SPNG_EHEIGHT || rc == SPNG_EUSER_WIDTH ||
        rc == SPNG_EUSER_HEIGHT || rc == SPNG_ECHUNK_LIMITS || rc == SPNG_EOVERFLOW)
        return -E2BIG;
    return -EINVAL;
}

static int encode(const void *pixels, uint32_t w, uint32_t h, uint8_t color_type, int depth,
                  int channels, int sbit, int level, unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    int rc = check_dims(w, h);
    if (rc)
        return rc;
    if (!pixels || (depth != 8 && depth != 16) || level < -1 || level > 9 || sbit < 0 ||
        sbit > depth)
        return -EINVAL;
    size_t len = (size_t)w * h * (size_t)channels * (size_t)(depth / 8);

    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    if (!ctx)
        return -ENOMEM;
    struct spng_ihdr ihdr = {
        .width = w,
        .height = h,
        .bit_depth = (uint8_t)depth,
        .color_type = color_type,
        .compression_method = 0,
        .filter_method = 0,
        .interlace_method = SPNG_INTERLACE_NONE,
    };
    int src = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    if (!src)
        src = spng_set_ihdr(ctx, &ihdr);
    if (!src && level >= 0)
        src = spng_set_option(ctx, SPNG_IMG_COMPRESSION_LEVEL, level);
    if (!src && sbit > 0) {
        struct spng_sbit sb = {0};
        if (color_type == SPNG_COLOR_TYPE_GRAYSCALE ||
            color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA)
            sb.grayscale_bits = (uint8_t)sbit;
        else
            sb.red_bits = sb.green_bits = sb.blue_bits = (uint8_t)sbit;
        if (color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA ||
            color_type == SPNG_COLOR_TYPE_TRUECOLOR_ALPHA)
            sb.alpha_bits = (uint8_t)depth;
        src = spng_set_sbit(ctx, &sb);
    }
    if (!src)
        src = spng_encode_image(ctx, pixels, len, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    if (src) {
        spng_ctx_free(ctx);
        return spng_to_errno(src);
    }
    int gerr = 0;
    size_t plen = 0;
    unsigned char *png = spng_get_png_buffer(ctx, &plen, &gerr);
    spng_ctx_free(ctx);
    if (!png || gerr) {
        free(png);
        return gerr ? spng_to_errno(gerr) : -ENOMEM;
    }
    *out = png;
    *outlen = plen;
    return 0;
}

int png_encode_gray(const void *pixels, uint32_t w, uint32_t h, int bit_depth, int sbit,
                    int compression_level, unsigned char **out, size_t *outlen)
{
    return encode(pixels, w, h, SPNG_COLOR_TYPE_GRAYSCALE, bit_depth, 1, sbit, compression_level,
                  out, outlen);
}

int png_encode_rgba(const void *pixels, uint32_t w, uint32_t h, int compression_level,
                    unsigned char **out, size_t *outlen)
{
    return encode(pixels, w, h, SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 8, 4, 0, compression_level, out,
                  outlen);
}

int png_encode_gray_alpha(const void *pixels, uint32_t w, uint32_t h, int compression_level,
                          unsigned char **out, size_t *outlen)
{
    return encode(pixels, w, h, SPNG_COLOR_TYPE_GRAYSCALE_ALPHA, 8, 2, 0, compression_level, out,
                  outlen);
}

void png_image_free(png_image *img)
{
    if (!img)
        return;
    free(img->pixels);
    img->pixels = NULL;
    img->len = 0;
}

/* Expands packed 1/2/4-bit grey rows (in, packed stride) into 8-bit samples scaled to
 * 0..255, writing w*h bytes to out. */
static void unpack_low_gray(const unsigned char *in, size_t in_stride, uint32_t w, uint32_t h,
                            int depth, unsigned char *out)
{
    unsigned maxv = (1u << depth) - 1;
    unsigned per_byte = 8u / (unsigned)depth;
    for (uint32_t y = 0; y < h; y++) {
        const unsigned char *row = in + (size_t)y * in_stride;
        unsigned char *o = out + (size_t)y * w;
        for (uint32_t x = 0; x < w; x++) {
            unsigned byte = row[x / per_byte];
            unsigned shift = 8u - (unsigned)depth * (x % per_byte + 1u);
            unsigned v = (byte >> shift) & maxv;
            o[x] = (unsigned char)(v * 255u / maxv);
        }
    }
}

/* True when the complete IEND chunk occurs in data (searched from the end, since
 * anything after it is ignored). */
static bool has_iend(const void *data, size_t len)
{
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    const unsigned char *p = data;
    for (size_t i = len; i >= sizeof(iend); i--) {
        if (p[i - 1] == 0x82 && memcmp(p + i - sizeof(iend), iend, sizeof(iend)) == 0)
            return true;
    }
    return false;
}

int png_decode(const void *data, size_t len, png_image *out)
{
    memset(out, 0, sizeof(*out));
    if (!data || len < 8)
        return -EINVAL;
    spng_ctx *ctx = spng_ctx_new(0);
    if (!ctx)
        return -ENOMEM;
    int rc = 0;
    unsigned char *raw = NULL;
    int src = spng_set_image_limits(ctx, PNG_MAX_DIM, PNG_MAX_DIM);
    if (!src)
        src = spng_set_chunk_limits(ctx, CHUNK_MAX, CHUNK_CACHE_MAX);
    if (!src)
        src = spng_set_crc_action(ctx, SPNG_CRC_ERROR, SPNG_CRC_ERROR);
    if (!src)
        src = spng_set_png_buffer(ctx, data, len);
    struct spng_ihdr ihdr;
    if (!src)
        src = spng_get_ihdr(ctx, &ihdr);
    if (src) {
        rc = spng_to_errno(src);
        goto out;
    }
    rc = check_dims(ihdr.width, ihdr.height);
    if (rc)
        goto out;

    int fmt = SPNG_FMT_PNG;
    int flags = 0;
    int channels;
    int color = ihdr.color_type;
    switch (ihdr.color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE:
        channels = 1;
        break;
    case SPNG_COLOR_TYPE_TRUECOLOR:
        channels = 3;
        break;
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA:
        channels = 2;
        break;
    case SPNG_COLOR_TYPE_TRUECOLOR_ALPHA:
        channels = 4;
        break;
    case SPNG_COLOR_TYPE_INDEXED:
        channels = 4;
        color = PNG_COLOR_RGBA;
        fmt = SPNG_FMT_RGBA8;
        flags = SPNG_DECODE_TRNS;
        break;
    default:
        rc = -EINVAL;
        goto out;
    }
    size_t dlen = 0;
    src = spng_decoded_image_size(ctx, fmt, &dlen);
    if (src) {
        rc = spng_to_errno(src);
        goto out;
    }
    if (dlen > DECODED_MAX) {
        rc = -E2BIG;
        goto out;
    }
    raw = malloc(dlen ? dlen : 1);
    if (!raw) {
        rc = -ENOMEM;
        goto out;
    }
    src = spng_decode_image(ctx, raw, dlen, fmt, flags);
    if (src) {
        rc = spng_to_errno(src);
        goto out;
    }
    /* Reads the chunks after the image data through IEND (and fetches sBIT, which the
     * PNG spec places before IDAT): a truncated tail fails here. */
    struct spng_sbit sb;
    src = spng_get_sbit(ctx, &sb);
    if (src == 0) {
        out->sbit = ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE ||
                            ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA
                        ? sb.grayscale_bits
                        : sb.red_bits;
    } else if (src != SPNG_ECHUNKAVAIL) {
        rc = spng_to_errno(src);
        goto out;
    }

    /* libspng stops at the IEND header without reading its CRC; insist on the whole
     * chunk (zero length, so its bytes are fixed) so a file cut inside it is refused. */
    if (!has_iend(data, len)) {
        rc = -EINVAL;
        goto out;
    }

    out->width = ihdr.width;
    out->height = ihdr.height;
    out->file_bit_depth = ihdr.bit_depth;
    out->file_color_type = ihdr.color_type;
    out->color_type = color;
    out->channels = channels;
    if (ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE && ihdr.bit_depth < 8) {
        size_t n = (size_t)ihdr.width * ihdr.height;
        unsigned char *g = malloc(n);
        if (!g) {
            rc = -ENOMEM;
            goto out;
        }
        unpack_low_gray(raw, dlen / ihdr.height, ihdr.width, ihdr.height, ihdr.bit_depth, g);
        free(raw);
        raw = g;
        dlen = n;
        out->bit_depth = 8;
    } else {
        out->bit_depth = fmt == SPNG_FMT_PNG ? ihdr.bit_depth : 8;
    }
    out->stride = (size_t)ihdr.width * (size_t)channels * (size_t)(out->bit_depth / 8);
    out->len = dlen;
    out->pixels = raw;
    raw = NULL;
out:
    free(raw);
    spng_ctx_free(ctx);
    if (rc) {
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

/* Picks the integer size along the free axis whose aspect ratio is closest to the
 * source's, from floor and ceil of the exact value (never below 1). */
static uint32_t fit_side(double exact, uint32_t fixed, double aspect, bool free_is_width)
{
    double fl = floor(exact);
    double ce = ceil(exact);
    if (fl < 1)
        fl = 1;
    if (ce < 1)
        ce = 1;
    double a_fl = free_is_width ? fl / fixed : fixed / fl;
    double a_ce = free_is_width ? ce / fixed : fixed / ce;
    return (uint32_t)(fabs(aspect - a_fl) <= fabs(aspect - a_ce) ? fl : ce);
}

void png_thumbnail_size(uint32_t w, uint32_t h, uint32_t box_w, uint32_t box_h, uint32_t *tw,
                        uint32_t *th)
{
    if (w == 0 || h == 0 || box_w == 0 || box_h == 0) {
        *tw = w ? 1 : 0;
        *th = h ? 1 : 0;
        return;
    }
    if (w <= box_w && h <= box_h) {
        *tw = w;
        *th = h;
        return;
    }
    double aspect = (double)w / h;
    if ((double)box_w / box_h >= aspect) {
        /* The box is wider than the image: height fills the box. */
        uint32_t nw = fit_side(box_h * aspect, box_h, aspect, true);
        *tw = nw > box_w ? box_w : nw;
        *th = box_h;
    } else {
        uint32_t nh = fit_side(box_w / aspect, box_w, aspect, false);
        *tw = box_w;
        *th = nh > box_h ? box_h : nh;
    }
}

/* For one axis: which source samples (first, count) feed output index o and with what
 * weights (fractions of the output cell, summing to 1). */
typedef struct span {
    uint32_t first;
    uint32_t count;
    size_t woff; /* offset of the weights in the shared weight array */
} span;

/* Builds the spans for scaling n source samples to m outputs (m <= n). *weights gets a
 * malloc'd array; returns NULL on allocation failure. */
static span *build_spans(uint32_t n, uint32_t m, float **weights)
{
    span *sp = calloc(m, sizeof(*sp));
    /* Each output covers at most ceil(n/m) + 1 source samples. */
    size_t per = (size_t)(n / m) + 2;
    float *wt = calloc((size_t)m * per, sizeof(*wt));
    if (!sp || !wt) {
        free(sp);
        free(wt);
        return NULL;
    }
    double scale = (double)n / m;
    for (uint32_t o = 0; o < m; o++) {
        double lo = o * scale;
        double hi = (o + 1) * scale;
        if (hi > n)
            hi = n;
        uint32_t first = (uint32_t)floor(lo);
        uint32_t last = (uint32_t)ceil(hi); /* exclusive */
        if (last > n)
            last = n;
        if (last <= first)
            last = first + 1;
        if (last - first > per)
            last = first + (uint32_t)per;
        sp[o].first = first;
        sp[o].count = last - first;
        sp[o].woff = (size_t)o * per;
        double total = 0;
        for (uint32_t i = first; i < last; i++) {
            double a = lo > i ? lo : i;
            double b = hi < i + 1.0 ? hi : i + 1.0;
            double wgt = b > a ? b - a : 0;
            wt[sp[o].woff + (i - first)] = (float)wgt;
            total += wgt;
        }
        if (total > 0) {
            for (uint32_t i = 0; i < sp[o].count; i++)
                wt[sp[o].woff + i] = (float)(wt[sp[o].woff + i] / total);
        }
    }
    *weights = wt;
    return sp;
}

int png_thumbnail_gray8(const void *pixels, uint32_t w, uint32_t h, int bit_depth, int value_bits,
                        uint32_t box_w, uint32_t box_h, unsigned char **out, uint32_t *out_w,
                        uint32_t *out_h)
{
    return png_thumbnail_gray8_shift(pixels, w, h, bit_depth, 0, value_bits, box_w, box_h, out,
                                     out_w, out_h);
}

int png_thumbnail_gray8_shift(const void *pixels, uint32_t w, uint32_t h, int bit_depth,
                              unsigned shift, int value_bits, uint32_t box_w, uint32_t box_h,
                              unsigned char **out, uint32_t *out_w, uint32_t *out_h)
{
    *out = NULL;
    *out_w = *out_h = 0;
    int rc = check_dims(w, h);
    if (rc)
        return rc;
    if (!pixels || (bit_depth != 8 && bit_depth != 16) || value_bits < 0 ||
        value_bits > bit_depth || box_w == 0 || box_h == 0 || shift >= 16 ||
        (shift && bit_depth != 16))
        return -EINVAL;
    if (value_bits == 0)
        value_bits = bit_depth;
    /* 8-bit value = sample * 256 / 2^value_bits. */
    double factor = ldexp(1.0, 8 - value_bits);

    uint32_t tw;
    uint32_t th;
    png_thumbnail_size(w, h, box_w, box_h, &tw, &th);
    float *wx = NULL;
    float *wy = NULL;
    span *sx = build_spans(w, tw, &wx);
    span *sy = build_spans(h, th, &wy);
    float *tmp = malloc((size_t)tw * h * sizeof(float));
    unsigned char *res = malloc((size_t)tw * th);
    if (!sx || !sy || !tmp || !res) {
        rc = -ENOMEM;
        goto out;
    }
    const uint8_t *p8 = pixels;
    const uint16_t *p16 = pixels;
    /* The horizontal pass is most of the work. Four rows at a time: four independent sums
     * instead of one chain of dependent additions, each summed in the same order as alone
     * (the results are the same to the bit). One loop per sample type. */
    uint32_t y = 0;
    for (; y + 4 <= h && bit_depth == 16; y += 4) {
        for (uint32_t o = 0; o < tw; o++) {
            const span *s = &sx[o];
            const float *k = wx + s->woff;
            const uint16_t *r0 = p16 + (size_t)y * w + s->first, *r1 = r0 + w, *r2 = r1 + w,
                           *r3 = r2 + w;
            double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            for (uint32_t i = 0; i < s->count; i++) {
                double kk = k[i];
                a0 += (double)(uint16_t)(r0[i] << shift) * kk;
                a1 += (double)(uint16_t)(r1[i] << shift) * kk;
                a2 += (double)(uint16_t)(r2[i] << shift) * kk;
                a3 += (double)(uint16_t)(r3[i] << shift) * kk;
            }
            tmp[(size_t)y * tw + o] = (float)a0;
            tmp[(size_t)(y + 1) * tw + o] = (float)a1;
            tmp[(size_t)(y + 2) * tw + o] = (float)a2;
            tmp[(size_t)(y + 3) * tw + o] = (float)a3;
        }
    }
    for (; y < h; y++) {
        size_t row = (size_t)y * w;
        for (uint32_t o = 0; o < tw; o++) {
            const span *s = &sx[o];
            const float *k = wx + s->woff;
            double acc = 0;
            if (bit_depth == 8) {
                const uint8_t *src = p8 + row + s->first;
                for (uint32_t i = 0; i < s->count; i++)
                    acc += (double)src[i] * k[i];
            } else {
                const uint16_t *src = p16 + row + s->first;
                for (uint32_t i = 0; i < s->count; i++)
                    acc += (double)(uint16_t)(src[i] << shift) * k[i];
            }
            tmp[(size_t)y * tw + o] = (float)acc;
        }
    }
    for (uint32_t o = 0; o < th; o++) {
        const span *s = &sy[o];
        const float *k = wy + s->woff;
        for (uint32_t x = 0; x < tw; x++) {
            double acc = 0;
            for (uint32_t i = 0; i < s->count; i++)
                acc += (double)tmp[(size_t)(s->first + i) * tw + x] * k[i];
            double v = floor(acc * factor + 0.5);
            if (v < 0)
                v = 0;
            if (v > 255)
                v = 255;
            res[(size_t)o * tw + x] = (unsigned char)v;
        }
    }
    *out = res;
    res = NULL;
    *out_w = tw;
    *out_h = th;
out:
    free(sx);
    free(sy);
    free(wx);
    free(wy);
    free(tmp);
    free(res);
    return rc;
}

int png_thumbnail_png(const png_image *img, uint32_t box_w, uint32_t box_h, unsigned char **out,
                      size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (!img || !img->pixels || img->color_type != PNG_COLOR_GRAY)
        return -EINVAL;
    unsigned char *t = NULL;
    uint32_t tw;
    uint32_t th;
    int rc = png_thumbnail_gray8(img->pixels, img->width, img->height, img->bit_depth, 0, box_w,
                                 box_h, &t, &tw, &th);
    if (rc)
        return rc;
    rc = png_encode_gray(t, tw, th, 8, 0, PNG_COMPRESSION_DEFAULT, out, outlen);
    free(t);
    return rc;
}
