/* Unit tests for src/imaging/png.c (libspng wrappers, thumbnails) and src/util/base64.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "imaging/png.h"
#include "util/base64.h"

static void test_gray8_round_trip(void **state)
{
    uint32_t w = 37;
    uint32_t h = 11;
    uint8_t *px = malloc((size_t)w * h);
    for (size_t i = 0; i < (size_t)w * h; i++)
        px[i] = (uint8_t)(i * 7 + 3);
    unsigned char *png = NULL;
    size_t len = 0;
    assert_int_equal(png_encode_gray(px, w, h, 8, 0, 9, &png, &len), 0);
    assert_non_null(png);
    assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
    png_image img;
    assert_int_equal(png_decode(png, len, &img), 0);
    assert_int_equal(img.width, w);
    assert_int_equal(img.height, h);
    assert_int_equal(img.bit_depth, 8);
    assert_int_equal(img.color_type, PNG_COLOR_GRAY);
    assert_int_equal(img.channels, 1);
    assert_int_equal(img.sbit, 0);
    assert_int_equal(img.stride, w);
    assert_int_equal(img.len, (size_t)w * h);
    assert_memory_equal(img.pixels, px, (size_t)w * h);
    png_image_free(&img);
    png_image_free(&img); /* idempotent */
    free(png);
    free(px);
}

static void test_gray16_sbit_round_trip(void **state)
{
    uint32_t w = 320;
    uint32_t h = 240;
    uint16_t *px = malloc((size_t)w * h * 2);
    for (size_t i = 0; i < (size_t)w * h; i++)
        px[i] = (uint16_t)(((i * 2654435761u) & 0xfff) << 4);
    px[0] = 0xfff0;
    px[1] = 0x0010;
    unsigned char *png = NULL;
    size_t len = 0;
    assert_int_equal(png_encode_gray(px, w, h, 16, 12, PNG_COMPRESSION_DEFAULT, &png, &len), 0);
    /* sBIT chunk: length 1, "sBIT", value 12. */
    assert_non_null(memmem(png, len, "\0\0\0\1sBIT\x0c", 9));
    png_image img;
    assert_int_equal(png_decode(png, len, &img), 0);
    assert_int_equal(img.bit_depth, 16);
    assert_int_equal(img.file_bit_depth, 16);
    assert_int_equal(img.sbit, 12);
    assert_int_equal(img.stride, (size_t)w * 2);
    assert_memory_equal(img.pixels, px, (size_t)w * h * 2);
    png_image_free(&img);
    free(png);

    /* The file holds big-endian samples: check the first row through zlib directly. */
    uint16_t tiny[2] = {0x1234, 0xabcd};
    assert_int_equal(png_encode_gray(tiny, 2, 1, 16, 0, 0, &png, &len), 0);
    unsigned char *idat = memmem(png, len, "IDAT", 4);
    assert_non_null(idat);
    uint32_t ilen =
        (uint32_t)idat[-4] << 24 | (uint32_t)idat[-3] << 16 | (uint32_t)idat[-2] << 8 | idat[-1];
    unsigned char raw[16];
    uLongf rawlen = sizeof(raw);
    assert_int_equal(uncompress(raw, &rawlen, idat + 4, ilen), Z_OK);
    assert_int_equal(rawlen, 5);
    assert_int_equal(raw[0], 0); /* filter: none at level 0 */
    assert_memory_equal(raw + 1, "\x12\x34\xab\xcd", 4);
    free(png);
    free(px);
}

/* The fast greyscale writer (libdeflate or literal-only, one row filter) gives the pixels and sBIT
 * back through the libspng decoder, at both depths. */
static void test_gray_deflate_round_trip(void **state)
{
    (void)state;
    enum { W = 37, H = 23 };
    uint16_t p16[W * H];
    uint8_t p8[W * H];
    for (int i = 0; i < W * H; i++) {
        p16[i] = (uint16_t)((i * 2654435761u) >> 16) & 0xfff0; /* 12 significant bits */
        p8[i] = (uint8_t)(i * 7 + (i / W) * 13);
    }
    unsigned char *png = NULL;
    size_t len = 0;
    png_image img;
    assert_int_equal(png_encode_gray_deflate(p16, W, H, 16, 12, 1, &png, &len), 0);
    assert_int_equal(png_decode(png, len, &img), 0);
    assert_int_equal(img.width, W);
    assert_int_equal(img.height, H);
    assert_int_equal(img.bit_depth, 16);
    assert_int_equal(img.sbit, 12);
    assert_memory_equal(img.pixels, p16, sizeof(p16));
    png_image_free(&img);
    free(png);
    assert_int_equal(png_encode_gray_deflate(p8, W, H, 8, 0, 6, &png, &len), 0);
    assert_int_equal(png_decode(png, len, &img), 0);
    assert_int_equal(img.bit_depth, 8);
    assert_int_equal(img.sbit, 0);
    assert_memory_equal(img.pixels, p8, sizeof(p8));
    png_image_free(&img);
    free(png);
    /* the literal-only coder (what ingest stores): same pixels, same sBIT */
    assert_int_equal(png_encode_gray_deflate(p16, W, H, 16, 12, PNG_DEFLATE_LITERALS, &png, &len),
                     0);
    assert_int_equal(png_decode(png, len, &img), 0);
    assert_int_equal(img.bit_depth, 16);
    assert_int_equal(img.sbit, 12);
    assert_memory_equal(img.pixels, p16, sizeof(p16));
    png_image_free(&img);
    free(png);
    assert_int_equal(png_encode_gray_deflate(p8, W, H, 8, 0, PNG_DEFLATE_LITERALS, &png, &len), 0);
    assert_int_equal(png_decode(png, len, &img), 0);
    assert_int_equal(img.bit_depth, 8);
    assert_memory_equal(img.pixels, p8, sizeof(p8));
    png_image_free(&img);
    free(png);
    assert_int_equal(png_encode_gray_deflate(p8, W, H, 4, 0, 6, &png, &len), -EINVAL);
    assert_int_equal(png_encode_gray_deflate(p8, W, H, 8, 9, 6, &png, &len), -EINVAL);
    assert_int_equal(png_encode_gray_deflate(p8, 0, H, 8, 0, 6, &png, &len), -EINVAL);
}

/* The shifted writer and thumbnail (ingest's frames of fewer significant bits) are the
 * plain ones over a shifted copy, bits pushed past 16 dropped; widths with and without a
 * tail past the eight-sample SIMD steps, every compression. */
static void test_gray_deflate_shift_matches_shifted_copy(void **state)
{
    (void)state;
    const uint32_t widths[] = {1, 8, 21, 64};
    const int levels[] = {PNG_DEFLATE_LITERALS, 1, 6};
    for (size_t wi = 0; wi < sizeof(widths) / sizeof(widths[0]); wi++) {
        uint32_t w = widths[wi], h = 13;
        uint16_t *raw = malloc(sizeof(uint16_t) * w * h);
        uint16_t *shifted = malloc(sizeof(uint16_t) * w * h);
        assert_non_null(raw);
        assert_non_null(shifted);
        for (unsigned shift = 0; shift < 16; shift += 5) {
            for (uint32_t i = 0; i < w * h; i++) {
                /* mostly 12-bit values, a few with higher bits set (dropped by the shift) */
                raw[i] = (uint16_t)(((i * 2654435761u) >> 13) & (i % 7 ? 0x0fff : 0xffff));
                shifted[i] = (uint16_t)(raw[i] << shift);
            }
            for (size_t li = 0; li < sizeof(levels) / sizeof(levels[0]); li++) {
                unsigned char *a = NULL, *b = NULL;
                size_t alen = 0, blen = 0;
                assert_int_equal(
                    png_encode_gray_deflate_shift(raw, w, h, 16, shift, 12, levels[li], &a, &alen),
                    0);
                assert_int_equal(
                    png_encode_gray_deflate(shifted, w, h, 16, 12, levels[li], &b, &blen), 0);
                assert_int_equal(alen, blen);
                assert_memory_equal(a, b, alen);
                png_image img;
                assert_int_equal(png_decode(a, alen, &img), 0);
                assert_memory_equal(img.pixels, shifted, sizeof(uint16_t) * w * h);
                png_image_free(&img);
                free(a);
                free(b);
            }
            unsigned char *ta = NULL, *tb = NULL;
            uint32_t taw, tah, tbw, tbh;
            assert_int_equal(
                png_thumbnail_gray8_shift(raw, w, h, 16, shift, 0, 5, 5, &ta, &taw, &tah), 0);
            assert_int_equal(png_thumbnail_gray8(shifted, w, h, 16, 0, 5, 5, &tb, &tbw, &tbh), 0);
            assert_int_equal(taw, tbw);
            assert_int_equal(tah, tbh);
            assert_memory_equal(ta, tb, (size_t)taw * tah);
            free(ta);
            free(tb);
        }
        unsigned char *x = NULL;
        size_t xl = 0;
        uint32_t xw, xh;
        assert_int_equal(png_encode_gray_deflate_shift(raw, w, h, 16, 16, 0, 1, &x, &xl), -EINVAL);
        assert_int_equal(png_encode_gray_deflate_shift(raw, w, h, 8, 1, 0, 1, &x, &xl), -EINVAL);
        assert_int_equal(png_thumbnail_gray8_shift(raw, w, h, 8, 1, 0, 5, 5, &x, &xw, &xh),
                         -EINVAL);
        free(raw);
        free(shifted);
    }
}

static void test_rgba_and_gray_alpha(void **state)
{
    uint32_t w = 9;
    uint32_t h = 5;
    uint8_t px[9 * 5 * 4];
    for (size_t i = 0; i < sizeof(px); i++)
        px[i] = (uint8_t)(i * 31);
    unsigned char *png = NULL;
    size_t len = 0;
    assert_int_equal(png_encode_rgba(px, w, h, 6, &png, &len), 0);
    png_image img;
    assert_int_equal(png_decode(png, len, &img), 0);
    assert_int_equal(img.color_type, PNG_COLOR_RGBA);
    assert_int_equal(img.channels, 4);
    assert_int_equal(img.bit_depth, 8);
    assert_int_equal(img.stride, w * 4);
    assert_memory_equal(img.pixels, px, sizeof(px));
    png_image_free(&img);
    free(png);

    assert_int_equal(png_encode_gray_alpha(px, w, h, 1, &png, &len), 0);
    assert_int_equal(png_decode(png, len, &img), 0);
    assert_int_equal(img.color_type, PNG_COLOR_GRAY_ALPHA);
    assert_int_equal(img.channels, 2);
    assert_memory_equal(img.pixels, px, (size_t)w * h * 2);
    png_image_free(&img);
    free(png);
}

static void test_bad_arguments(void **state)
{
    uint8_t px[4] = {0};
    unsigned char *png = (unsigned char *)"x";
    size_t len = 1;
    assert_int_equal(png_encode_gray(px, 0, 1, 8, 0, 6, &png, &len), -EINVAL);
    assert_null(png);
    assert_int_equal(png_encode_gray(px, 2, 2, 12, 0, 6, &png, &len), -EINVAL);
    assert_int_equal(png_encode_gray(px, 2, 2, 8, 9, 6, &png, &len), -EINVAL);
    assert_int_equal(png_encode_gray(px, 2, 2, 8, 0, 10, &png, &len), -EINVAL);
    assert_int_equal(png_encode_gray(px, 70000, 1, 8, 0, 6, &png, &len), -E2BIG);
    assert_int_equal(png_encode_gray(px, 20000, 20000, 8, 0, 6, &png, &len), -E2BIG);
    assert_string_equal(png_strerror(-E2BIG), "image exceeds the size limits");
}

/* Recomputes the CRC of the chunk whose type starts at p (length precedes it). */
static void fix_crc(unsigned char *p)
{
    uint32_t clen = (uint32_t)p[-4] << 24 | (uint32_t)p[-3] << 16 | (uint32_t)p[-2] << 8 | p[-1];
    uLong crc = crc32(0, p, 4 + clen);
    p[4 + clen] = (unsigned char)(crc >> 24);
    p[5 + clen] = (unsigned char)(crc >> 16);
    p[6 + clen] = (unsigned char)(crc >> 8);
    p[7 + clen] = (unsigned char)crc;
}

static void test_malformed_and_truncated(void **state)
{
    uint32_t w = 64;
    uint32_t h = 64;
    uint16_t *px = malloc((size_t)w * h * 2);
    for (size_t i = 0; i < (size_t)w * h; i++)
        px[i] = (uint16_t)(i * 977);
    unsigned char *png = NULL;
    size_t len = 0;
    assert_int_equal(png_encode_gray(px, w, h, 16, 0, 6, &png, &len), 0);
    png_image img;

    /* Every truncation, including one that only drops IEND, is rejected cleanly. */
    for (size_t cut = 0; cut < len; cut++) {
        int rc = png_decode(png, cut, &img);
        if (rc != -EINVAL)
            fprintf(stderr, "cut %zu of %zu: rc %d\n", cut, len, rc);
        assert_true(rc == -EINVAL);
        assert_null(img.pixels);
    }
    assert_int_equal(png_decode(png, len, &img), 0);
    png_image_free(&img);

    /* Not a PNG at all. */
    assert_int_equal(png_decode("GIF89a.......................", 30, &img), -EINVAL);
    assert_int_equal(png_decode(NULL, 0, &img), -EINVAL);

    /* A flipped byte inside IDAT: CRC mismatch. */
    unsigned char *bad = malloc(len);
    memcpy(bad, png, len);
    unsigned char *idat = memmem(bad, len, "IDAT", 4);
    assert_non_null(idat);
    idat[10] ^= 0x55;
    assert_int_equal(png_decode(bad, len, &img), -EINVAL);
    /* Same damage with a valid CRC: the zlib stream is corrupt. */
    fix_crc(idat);
    assert_int_equal(png_decode(bad, len, &img), -EINVAL);

    /* An IHDR claiming a huge image (with a correct CRC) is refused before allocation. */
    memcpy(bad, png, len);
    unsigned char *ihdr = bad + 12;
    assert_memory_equal(ihdr, "IHDR", 4);
    ihdr[4] = 0x00, ihdr[5] = 0x00, ihdr[6] = 0xff, ihdr[7] = 0xff;   /* width 65535 */
    ihdr[8] = 0x00, ihdr[9] = 0x00, ihdr[10] = 0xff, ihdr[11] = 0xff; /* height 65535 */
    fix_crc(ihdr);
    assert_int_equal(png_decode(bad, len, &img), -E2BIG);
    ihdr[4] = 0x00, ihdr[5] = 0x01, ihdr[6] = 0x00, ihdr[7] = 0x00; /* width 65536 */
    ihdr[8] = 0x00, ihdr[9] = 0x00, ihdr[10] = 0x00, ihdr[11] = 0x01;
    fix_crc(ihdr);
    assert_int_equal(png_decode(bad, len, &img), -E2BIG);
    /* Invalid bit depth for greyscale. */
    memcpy(bad, png, len);
    ihdr[12] = 3;
    fix_crc(ihdr);
    assert_int_equal(png_decode(bad, len, &img), -EINVAL);

    free(bad);
    free(png);
    free(px);
}

static void test_low_bit_gray_expanded(void **state)
{
    /* A 4x1 2-bit greyscale PNG built by hand: samples 0,1,2,3 -> 0,85,170,255. */
    unsigned char raw[2] = {0, 0x1b};
    unsigned char z[64];
    uLongf zlen = sizeof(z);
    assert_int_equal(compress(z, &zlen, raw, 2), Z_OK);
    unsigned char png[128];
    size_t n = 0;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    n = 8;
    unsigned char ihdr[] = {0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 0, 0, 4, 0, 0, 0, 1, 2, 0, 0, 0, 0};
    memcpy(png + n, ihdr, sizeof(ihdr));
    fix_crc(png + n + 4);
    n += sizeof(ihdr) + 4;
    png[n] = 0, png[n + 1] = 0, png[n + 2] = 0, png[n + 3] = (unsigned char)zlen;
    memcpy(png + n + 4, "IDAT", 4);
    memcpy(png + n + 8, z, zlen);
    fix_crc(png + n + 4);
    n += 12 + zlen;
    memcpy(png + n, "\0\0\0\0IEND", 8);
    fix_crc(png + n + 4);
    n += 12;
    png_image img;
    assert_int_equal(png_decode(png, n, &img), 0);
    assert_int_equal(img.bit_depth, 8);
    assert_int_equal(img.file_bit_depth, 2);
    assert_int_equal(img.width, 4);
    const uint8_t *p = img.pixels;
    assert_int_equal(p[0], 0);
    assert_int_equal(p[1], 85);
    assert_int_equal(p[2], 170);
    assert_int_equal(p[3], 255);
    png_image_free(&img);
}

static void test_thumbnail_size(void **state)
{
    uint32_t tw;
    uint32_t th;
    png_thumbnail_size(300, 300, 50, 50, &tw, &th);
    assert_int_equal(tw, 50);
    assert_int_equal(th, 50);
    png_thumbnail_size(300, 400, 60, 80, &tw, &th);
    assert_int_equal(tw, 60);
    assert_int_equal(th, 80);
    png_thumbnail_size(400, 300, 60, 80, &tw, &th);
    assert_int_equal(tw, 60);
    assert_int_equal(th, 45);
    png_thumbnail_size(320, 240, 50, 50, &tw, &th);
    assert_int_equal(tw, 50);
    assert_int_equal(th, 38);
    png_thumbnail_size(3, 1000, 50, 50, &tw, &th);
    assert_int_equal(tw, 1);
    assert_int_equal(th, 50);
    png_thumbnail_size(20, 10, 50, 50, &tw, &th); /* never enlarged */
    assert_int_equal(tw, 20);
    assert_int_equal(th, 10);
}

static void test_thumbnail_pixels(void **state)
{
    /* 16-bit stored form: 12-bit values << 4; left half 0x800 << 4, right half 0xfff << 4. */
    uint32_t w = 100;
    uint32_t h = 60;
    uint16_t *px = malloc((size_t)w * h * 2);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            px[y * w + x] = x < 50 ? (uint16_t)(0x800 << 4) : (uint16_t)(0xfff << 4);
    unsigned char *t = NULL;
    uint32_t tw;
    uint32_t th;
    assert_int_equal(png_thumbnail_gray8(px, w, h, 16, 0, 50, 50, &t, &tw, &th), 0);
    assert_int_equal(tw, 50);
    assert_int_equal(th, 30);
    assert_int_equal(t[0], 128);  /* 32768 / 256 */
    assert_int_equal(t[49], 255); /* 65520 / 256 = 255.9 -> clipped */
    assert_int_equal(t[24], 128);
    assert_int_equal(t[25], 255);
    free(t);

    /* Right-aligned raw 12-bit data: 0x800 -> 128. Odd ratio: area average. */
    for (size_t i = 0; i < (size_t)w * h; i++)
        px[i] = 0x800;
    assert_int_equal(png_thumbnail_gray8(px, w, h, 16, 12, 7, 7, &t, &tw, &th), 0);
    assert_int_equal(tw, 7);
    assert_int_equal(th, 4);
    for (size_t i = 0; i < (size_t)tw * th; i++)
        assert_int_equal(t[i], 128);
    free(t);

    /* 8-bit checkerboard averages to mid grey at exactly half size. */
    uint8_t cb[16 * 16];
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++)
            cb[y * 16 + x] = ((x + y) & 1) ? 200 : 100;
    assert_int_equal(png_thumbnail_gray8(cb, 16, 16, 8, 0, 8, 8, &t, &tw, &th), 0);
    assert_int_equal(tw, 8);
    for (int i = 0; i < 64; i++)
        assert_int_equal(t[i], 150);
    free(t);

    /* Through PNG: decode a 16-bit image and make an 8-bit thumbnail PNG <= 50x50. */
    unsigned char *png = NULL;
    size_t len = 0;
    assert_int_equal(png_encode_gray(px, w, h, 16, 12, 6, &png, &len), 0);
    png_image img;
    assert_int_equal(png_decode(png, len, &img), 0);
    unsigned char *tp = NULL;
    size_t tlen = 0;
    assert_int_equal(png_thumbnail_png(&img, 50, 50, &tp, &tlen), 0);
    png_image ti;
    assert_int_equal(png_decode(tp, tlen, &ti), 0);
    assert_int_equal(ti.width, 50);
    assert_int_equal(ti.height, 30);
    assert_int_equal(ti.bit_depth, 8);
    assert_int_equal(((uint8_t *)ti.pixels)[0], 8); /* 0x800 / 256 = 8 */
    png_image_free(&ti);
    png_image_free(&img);
    free(tp);
    free(png);

    assert_int_equal(png_thumbnail_gray8(px, w, h, 16, 17, 50, 50, &t, &tw, &th), -EINVAL);
    assert_int_equal(png_thumbnail_gray8(px, w, h, 16, 0, 0, 50, &t, &tw, &th), -EINVAL);
    free(px);
}

static void test_base64(void **state)
{
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        size_t n = 0;
        char *e = base64_encode(plain[i], strlen(plain[i]), &n);
        assert_string_equal(e, enc[i]);
        assert_int_equal(n, strlen(enc[i]));
        unsigned char *d = NULL;
        size_t dn = 0;
        assert_int_equal(base64_decode(e, n, &d, &dn), 0);
        assert_int_equal(dn, strlen(plain[i]));
        assert_memory_equal(d, plain[i], dn);
        free(d);
        free(e);
    }
    /* Every byte value, all three tail lengths. */
    unsigned char all[258];
    for (int i = 0; i < 258; i++)
        all[i] = (unsigned char)(i * 13);
    for (size_t n = 255; n <= 258; n++) {
        buf_t b;
        buf_init(&b, 1000);
        assert_int_equal(buf_puts(&b, "x:"), 0);
        assert_int_equal(base64_encode_append(&b, all, n), 0);
        assert_int_equal(b.len, 2 + base64_encoded_len(n));
        assert_string_equal(strchr(b.data, '+') || strchr(b.data, '/') ? "ok" : "no", "ok");
        unsigned char *d = NULL;
        size_t dn = 0;
        assert_int_equal(base64_decode(b.data + 2, b.len - 2, &d, &dn), 0);
        assert_int_equal(dn, n);
        assert_memory_equal(d, all, n);
        free(d);
        buf_free(&b);
    }
    buf_t small;
    buf_init(&small, 8);
    assert_int_equal(base64_encode_append(&small, "foobar", 6), 0);
    assert_int_equal(base64_encode_append(&small, "f", 1), -E2BIG);
    assert_string_equal(small.data, "Zm9vYmFy");
    buf_free(&small);

    const char *bad[] = {"Zg=",  "Zg",   "Z===", "====", "Zm9v=g==", "Zm9vY\n==",
                         "Zm-v", "Zm_v", "Zg=A", "A=AA", "Zm9v Zm9v"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned char *d = (unsigned char *)"sentinel";
        size_t dn = 99;
        assert_int_equal(base64_decode(bad[i], strlen(bad[i]), &d, &dn), -EINVAL);
        assert_null(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gray8_round_trip),
        cmocka_unit_test(test_gray16_sbit_round_trip),
        cmocka_unit_test(test_gray_deflate_round_trip),
        cmocka_unit_test(test_gray_deflate_shift_matches_shifted_copy),
        cmocka_unit_test(test_rgba_and_gray_alpha),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_malformed_and_truncated),
        cmocka_unit_test(test_low_bit_gray_expanded),
        cmocka_unit_test(test_thumbnail_size),
        cmocka_unit_test(test_thumbnail_pixels),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
