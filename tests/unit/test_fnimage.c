/*
 * Unit tests for src/imaging/fnimage.c: the storage form of function images (bit depth
 * rules of docs/functions.md §9.5), the strided thumbnail, the full colouring and the 16-bit
 * original form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imaging/colourmap.h"
#include "imaging/fnimage.h"

static const falsecolour_levels LEVELS8 = {
    .lower = 0, .upper = 255, .limit_bit_depth = 8, .has_lower = true, .has_upper = true};

static void test_storage_bits(void **state)
{
    (void)state;
    assert_int_equal(fnimage_storage_bits(0), 16); /* unknown */
    assert_int_equal(fnimage_storage_bits(4), 8);
    assert_int_equal(fnimage_storage_bits(8), 8);
    assert_int_equal(fnimage_storage_bits(12), 16);
    assert_int_equal(fnimage_storage_bits(16), 16);
    assert_int_equal(fnimage_storage_bits(17), 16);
}

static void test_make_shifts(void **state)
{
    (void)state;
    fnimage img;
    /* 12-bit: truncate to 16 bits, x 16, clamped; NaN and negatives -> 0 */
    const double v12[4] = {1.9, -3, NAN, 5000};
    assert_int_equal(fnimage_make(v12, 2, 2, 12, &img), 0);
    assert_int_equal(img.sample, 16);
    assert_int_equal(img.storage_bits, 16);
    assert_int_equal(img.u16[0], 16);
    assert_int_equal(img.u16[1], 0);
    assert_int_equal(img.u16[2], 0);
    assert_int_equal(img.u16[3], 65535);
    assert_true(fnimage_at(&img, 0, 0) == 16.0);
    fnimage_free(&img);
    /* 4-bit: truncate to 8 bits, x 16 */
    const double v4[3] = {1.5, 15, 300};
    assert_int_equal(fnimage_make(v4, 3, 1, 4, &img), 0);
    assert_int_equal(img.sample, 8);
    assert_int_equal(img.storage_bits, 8);
    assert_int_equal(img.u8[0], 16);
    assert_int_equal(img.u8[1], 240);
    assert_int_equal(img.u8[2], 255);
    fnimage_free(&img);
    /* 8 and 16 (and unknown, taken as 16) keep the values */
    const double vf[2] = {1.25, -7.5};
    for (int bd = 0; bd <= 16; bd += 8) {
        assert_int_equal(fnimage_make(vf, 2, 1, bd, &img), 0);
        assert_int_equal(img.sample, 0);
        assert_int_equal(img.storage_bits, bd == 8 ? 8 : 16);
        assert_true(img.f64[0] == 1.25 && img.f64[1] == -7.5);
        fnimage_free(&img);
    }
    assert_int_equal(fnimage_make(vf, 0, 1, 8, &img), -E2BIG);
}

static void test_thumbnail_is_strided(void **state)
{
    (void)state;
    size_t w = 130, h = 60;
    double *pix = malloc(w * h * sizeof *pix);
    assert_non_null(pix);
    for (size_t i = 0; i < h; i++)
        for (size_t j = 0; j < w; j++)
            pix[i * w + j] = (double)((i * 7 + j * 3) % 256);
    fnimage img;
    assert_int_equal(fnimage_make(pix, w, h, 8, &img), 0);
    colourmap cm;
    assert_int_equal(colourmap_find("viridis", &cm), 0);
    uint8_t *full = NULL, *thumb = NULL;
    uint32_t tw = 0, th = 0;
    assert_int_equal(fnimage_rgba(&img, &LEVELS8, &cm, &full), 0);
    assert_int_equal(fnimage_thumbnail_rgba(pix, w, h, 8, 50, 50, &LEVELS8, &cm, &thumb, &tw, &th),
                     0);
    /* steps 130 / 50 = 2 and 60 / 50 = 1: 65 x 60 pixels, img[::1, ::2] */
    assert_int_equal(tw, 65);
    assert_int_equal(th, 60);
    for (size_t i = 0; i < th; i++)
        for (size_t j = 0; j < tw; j++)
            assert_memory_equal(thumb + 4 * (i * tw + j), full + 4 * (i * w + 2 * j), 4);
    /* value 128 of 0..255 at storage 8: t = 128/255, index floor(t * 256) = 128 */
    size_t k = 0;
    while (pix[k] != 128)
        k++;
    assert_memory_equal(full + 4 * k, colourmap_entry(&cm, 128), 3);
    assert_int_equal(full[4 * k + 3], 255);
    free(full);
    free(thumb);
    /* narrower or shorter than the box: no stride */
    assert_int_equal(fnimage_thumbnail_rgba(pix, w, h, 8, 50, 61, &LEVELS8, &cm, &thumb, &tw, &th),
                     -EDOM);
    assert_null(thumb);
    fnimage_free(&img);
    free(pix);
}

static void test_nan_and_levels(void **state)
{
    (void)state;
    const double v[3] = {NAN, 0, 70000};
    fnimage img;
    assert_int_equal(fnimage_make(v, 3, 1, 16, &img), 0);
    colourmap cm;
    assert_int_equal(colourmap_find("jet", &cm), 0);
    uint8_t *rgba = NULL;
    assert_int_equal(fnimage_rgba(&img, &LEVELS8, &cm, &rgba), 0);
    const uint8_t clear[4] = {0, 0, 0, 0};
    assert_memory_equal(rgba, clear, 4); /* NaN: transparent */
    assert_memory_equal(rgba + 4, colourmap_entry(&cm, 0), 3);
    assert_memory_equal(rgba + 8, colourmap_entry(&cm, colourmap_len(&cm) - 1), 3); /* over */
    free(rgba);
    uint16_t *g = NULL;
    assert_int_equal(fnimage_gray16(&img, &g), 0);
    assert_int_equal(g[0], 0);
    assert_int_equal(g[1], 0);
    assert_int_equal(g[2], 65535);
    free(g);
    fnimage_free(&img);
    const double t[2] = {2.7, 300.9};
    assert_int_equal(fnimage_make(t, 2, 1, 8, &img), 0);
    assert_int_equal(fnimage_gray16(&img, &g), 0);
    assert_int_equal(g[0], 2); /* truncated, and 8-bit sources are not clipped to 255 */
    assert_int_equal(g[1], 300);
    free(g);
    fnimage_free(&img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_storage_bits),
        cmocka_unit_test(test_make_shifts),
        cmocka_unit_test(test_thumbnail_is_strided),
        cmocka_unit_test(test_nan_and_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
