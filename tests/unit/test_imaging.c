/*
 * Unit tests for src/imaging/colourmap.c, falsecolour.c and npz.c. Expected pixels were
 * produced by matplotlib (imsave with the same vmin/vmax and map, read back with PIL);
 * the .npz files in data/ were written by numpy.savez_compressed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "imaging/colourmap.h"
#include "imaging/falsecolour.h"
#include "imaging/figure.h"
#include "imaging/npz.h"
#include "imaging/plot.h"
#include "imaging/png.h"

static colourmap map(const char *name)
{
    colourmap cm;
    assert_int_equal(colourmap_find(name, &cm), 0);
    return cm;
}

static void expect_pixels(const uint8_t *rgba, const uint8_t (*want)[4], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (memcmp(rgba + 4 * i, want[i], 4) != 0)
            fail_msg("pixel %zu: got %d,%d,%d,%d want %d,%d,%d,%d", i, rgba[4 * i], rgba[4 * i + 1],
                     rgba[4 * i + 2], rgba[4 * i + 3], want[i][0], want[i][1], want[i][2],
                     want[i][3]);
    }
}

static void test_catalogue(void **state)
{
    colourmap cm;
    assert_int_equal(colourmap_find("viridis", &cm), 0);
    assert_int_equal(colourmap_len(&cm), 256);
    assert_int_equal(colourmap_find("jet_r", &cm), 0);
    assert_string_equal(cm.table->name, "jet_r");
    assert_int_equal(colourmap_find("Viridis", &cm), -ENOENT);
    assert_int_equal(colourmap_find("viridis_r_r", &cm), -ENOENT);
    assert_int_equal(colourmap_find("", &cm), -ENOENT);
    assert_int_equal(colourmap_find("_r", &cm), -ENOENT);
    assert_int_equal(colourmap_find(NULL, &cm), -ENOENT);
    assert_int_equal(colourmap_len(&(colourmap){map("tab10").table}), 10);
    assert_int_equal(colourmap_len(&(colourmap){map("twilight").table}), 510);
    assert_int_equal(colourmap_len(&(colourmap){map("Paired").table}), 12);

    buf_t b;
    buf_init(&b, 1 << 16);
    assert_int_equal(colourmap_catalogue_json(&b), 0);
    assert_int_equal(buf_putc(&b, 0), 0);
    const char *s = b.data;
    assert_non_null(strstr(s, "{\"Cyclic\":[\"hsv\",\"hsv_r\",\"twilight\",\"twilight_r\","
                              "\"twilight_shifted\",\"twilight_shifted_r\"],\"Diverging\":["));
    assert_non_null(strstr(s, "\"gnuplot\",\"gnuplot2\",\"gnuplot2_r\",\"gnuplot_r\""));
    assert_non_null(strstr(s, "\"Perceptually Uniform Sequential\":[\"cividis\",\"cividis_r\","
                              "\"inferno\",\"inferno_r\",\"magma\",\"magma_r\",\"plasma\","
                              "\"plasma_r\",\"viridis\",\"viridis_r\"]"));
    assert_non_null(strstr(s, "\"Sequential (2)\":[\"afmhot\",\"afmhot_r\""));
    /* every name in the JSON resolves, and the count matches */
    json_error_t jerr;
    json_t *doc = json_loads(s, 0, &jerr);
    assert_non_null(doc);
    assert_int_equal(json_object_size(doc), 7);
    size_t names = 0;
    const char *group;
    json_t *list;
    json_object_foreach(doc, group, list)
    {
        size_t i;
        json_t *n;
        json_array_foreach(list, i, n)
        {
            assert_int_equal(colourmap_find(json_string_value(n), &cm), 0);
            names++;
        }
    }
    json_decref(doc);
    assert_int_equal(names, colourmap_catalogue_count());
    assert_int_equal(names, 172); /* docs/imaging.md §3: 86 maps and their _r forms */
    buf_free(&b);
}

static void test_tables_match_matplotlib(void **state)
{
    colourmap v = map("viridis"), r = map("viridis_r"), j = map("jet");
    assert_memory_equal(colourmap_entry(&v, 0), "\x44\x01\x54", 3);   /* 68,1,84 */
    assert_memory_equal(colourmap_entry(&v, 255), "\xfd\xe7\x24", 3); /* 253,231,36 */
    assert_memory_equal(colourmap_entry(&r, 0), "\xfd\xe7\x24", 3);
    assert_memory_equal(colourmap_entry(&j, 0), "\x00\x00\x7f", 3); /* 0,0,127 */
    colourmap t = map("tab10");
    assert_memory_equal(colourmap_entry(&t, 1), "\xff\x7f\x0e", 3); /* 255,127,14 */
}

/* The matplotlib 3.10 listed maps: trunc(255 * c) of the first, middle and last rows of
 * the colour data, 256 entries, _r the reversed list. */
static void test_tables_310_listed(void **state)
{
    static const struct {
        const char *name;
        uint8_t first[3], mid[3], last[3];
    } want[] = {
        /* [0.62108, 0.69018, 0.99951] ... [0.098319, 0.047041, 0.034683] ...
         * [0.99987, 0.68007, 0.67995] */
        {"berlin", {158, 175, 254}, {25, 11, 8}, {254, 173, 173}},
        /* [1, 0.81263, 0.40424] ... [0.50411, 0.90708, 0.99978] */
        {"managua", {255, 207, 103}, {86, 41, 73}, {128, 231, 254}},
        /* [1, 0.80346, 0.99215] ... [0.74458, 0.99141, 0.64748] */
        {"vanimo", {255, 204, 252}, {25, 21, 18}, {189, 252, 165}},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char rname[32];
        snprintf(rname, sizeof(rname), "%s_r", want[i].name);
        colourmap m = map(want[i].name), r = map(rname);
        assert_int_equal(m.table->n, 256);
        assert_int_equal(r.table->n, 256);
        assert_memory_equal(colourmap_entry(&m, 0), want[i].first, 3);
        assert_memory_equal(colourmap_entry(&m, 128), want[i].mid, 3);
        assert_memory_equal(colourmap_entry(&m, 255), want[i].last, 3);
        assert_memory_equal(colourmap_entry(&r, 0), want[i].last, 3);
        assert_memory_equal(colourmap_entry(&r, 127), want[i].mid, 3);
        assert_memory_equal(colourmap_entry(&r, 255), want[i].first, 3);
        for (int k = 0; k < 256; k++)
            assert_memory_equal(colourmap_entry(&r, k), colourmap_entry(&m, 255 - k), 3);
    }
}

static void test_levels_errors(void **state)
{
    falsecolour_levels lv = {.lower = 0, .upper = 256, .limit_bit_depth = 8, true, true};
    assert_string_equal(falsecolour_check(&lv), "upper_level must be less than 2**limit_bit_depth");
    lv.upper = 255;
    assert_null(falsecolour_check(&lv));
    lv.lower = 100;
    lv.upper = 99;
    assert_string_equal(falsecolour_check(&lv),
                        "lower_level must be less than or equal to upperlevel");
    lv = (falsecolour_levels){.lower = 0, .upper = 0, .limit_bit_depth = 0, true, true};
    assert_null(falsecolour_check(&lv)); /* 0 < 2**0 */
    lv.upper = 1;
    assert_non_null(falsecolour_check(&lv));
}

static void test_limits(void **state)
{
    double lo, hi;
    falsecolour_levels lv = {.lower = 1, .upper = 64, .limit_bit_depth = 8, true, true};
    falsecolour_limits(&lv, 16, &lo, &hi);
    assert_true(lo == 256 && hi == 16639);
    lv = (falsecolour_levels){.lower = 0, .upper = 255, .limit_bit_depth = 8, true, true};
    falsecolour_limits(&lv, 16, &lo, &hi);
    assert_true(lo == 0 && hi == 65535);
    lv.upper = 254;
    falsecolour_limits(&lv, 16, &lo, &hi);
    assert_true(hi == 65279);
    lv.upper = 191;
    falsecolour_limits(&lv, 16, &lo, &hi);
    assert_true(hi == 49151);
    /* 12-bit data in 16-bit storage: both settings give 8192..16383 */
    lv = (falsecolour_levels){.lower = 32, .upper = 63, .limit_bit_depth = 8, true, true};
    falsecolour_limits(&lv, 16, &lo, &hi);
    assert_true(lo == 8192 && hi == 16383);
    lv = (falsecolour_levels){.lower = 512, .upper = 1023, .limit_bit_depth = 12, true, true};
    falsecolour_limits(&lv, 16, &lo, &hi);
    assert_true(lo == 8192 && hi == 16383);
    /* B > S: fractional multiplier */
    lv = (falsecolour_levels){.lower = 0, .upper = 4000, .limit_bit_depth = 12, true, true};
    falsecolour_limits(&lv, 8, &lo, &hi);
    assert_true(lo == 0 && hi == 4001.0 / 16 - 1);
    /* None levels */
    lv = (falsecolour_levels){.limit_bit_depth = 8};
    falsecolour_limits(&lv, 8, &lo, &hi);
    assert_true(lo == 0 && hi == 255);
}

static void test_gray8_full_range(void **state)
{
    uint8_t px[] = {0, 1, 127, 128, 254, 255};
    static const uint8_t want[][4] = {{68, 1, 84, 255},    {68, 2, 85, 255},
                                      {32, 143, 140, 255}, {32, 144, 140, 255},
                                      {250, 230, 34, 255}, {253, 231, 36, 255}};
    uint8_t out[sizeof(px) * 4];
    colourmap cm = map("viridis");
    falsecolour_gray(px, sizeof(px), 8, 0, 255, &cm, out);
    expect_pixels(out, want, sizeof(px));
}

static void test_gray16_levels_under_over(void **state)
{
    uint16_t px[] = {0, 255, 256, 8000, 16639, 16640, 65535};
    static const uint8_t want[][4] = {{68, 1, 84, 255},    {68, 1, 84, 255},    {68, 1, 84, 255},
                                      {34, 137, 141, 255}, {253, 231, 36, 255}, {253, 231, 36, 255},
                                      {253, 231, 36, 255}};
    uint8_t out[7 * 4];
    colourmap cm = map("viridis");
    falsecolour_levels lv = {.lower = 1, .upper = 64, .limit_bit_depth = 8, true, true};
    double lo, hi;
    falsecolour_limits(&lv, 16, &lo, &hi);
    falsecolour_gray(px, 7, 16, lo, hi, &cm, out);
    expect_pixels(out, want, 7);
}

static void test_gray16_limit12_reversed(void **state)
{
    uint16_t px[] = {0, 8191, 8192, 12000, 16383, 16384};
    static const uint8_t want[][4] = {{127, 0, 0, 255},    {127, 0, 0, 255}, {127, 0, 0, 255},
                                      {150, 255, 95, 255}, {0, 0, 127, 255}, {0, 0, 127, 255}};
    uint8_t out[6 * 4];
    colourmap cm = map("jet_r");
    falsecolour_levels lv = {.lower = 512, .upper = 1023, .limit_bit_depth = 12, true, true};
    double lo, hi;
    falsecolour_limits(&lv, 16, &lo, &hi);
    falsecolour_gray(px, 6, 16, lo, hi, &cm, out);
    expect_pixels(out, want, 6);
}

static void test_flat_levels(void **state)
{
    uint8_t px[] = {0, 5, 200};
    static const uint8_t want[][4] = {{68, 1, 84, 255}, {68, 1, 84, 255}, {68, 1, 84, 255}};
    uint8_t out[3 * 4];
    colourmap cm = map("viridis");
    falsecolour_gray(px, 3, 8, 5, 5, &cm, out);
    expect_pixels(out, want, 3);
}

static void test_limit_above_storage(void **state)
{
    uint8_t px[] = {0, 100, 249, 250};
    static const uint8_t want[][4] = {
        {0, 0, 0, 255}, {102, 102, 102, 255}, {255, 255, 255, 255}, {255, 255, 255, 255}};
    uint8_t out[4 * 4];
    colourmap cm = map("gray");
    falsecolour_levels lv = {.lower = 0, .upper = 4000, .limit_bit_depth = 12, true, true};
    double lo, hi;
    falsecolour_limits(&lv, 8, &lo, &hi);
    falsecolour_gray(px, 4, 8, lo, hi, &cm, out);
    expect_pixels(out, want, 4);
}

static void test_short_tables(void **state)
{
    uint8_t px[] = {0, 25, 26, 128, 255};
    static const uint8_t tab10[][4] = {{31, 119, 180, 255},
                                       {31, 119, 180, 255},
                                       {255, 127, 14, 255},
                                       {140, 86, 75, 255},
                                       {23, 190, 207, 255}};
    uint8_t out[5 * 4];
    colourmap cm = map("tab10");
    falsecolour_gray(px, 5, 8, 0, 255, &cm, out);
    expect_pixels(out, tab10, 5);
    uint8_t px2[] = {0, 1, 2, 100, 255};
    static const uint8_t twilight[][4] = {{225, 216, 226, 255},
                                          {224, 217, 226, 255},
                                          {223, 217, 225, 255},
                                          {85, 33, 130, 255},
                                          {225, 216, 225, 255}};
    cm = map("twilight");
    falsecolour_gray(px2, 5, 8, 0, 255, &cm, out);
    expect_pixels(out, twilight, 5);
}

static void test_float_symmetric_nan(void **state)
{
    float v[] = {-2.0f, 0.0f, NAN, 1.0f, 2.0f, 0.3f};
    static const uint8_t want[][4] = {{0, 0, 255, 255}, {255, 254, 254, 255},
                                      {0, 0, 0, 0},     {255, 126, 126, 255},
                                      {255, 0, 0, 255}, {255, 216, 216, 255}};
    uint8_t out[6 * 4];
    colourmap cm = map("bwr");
    falsecolour_float_f32(v, 6, &cm, out);
    expect_pixels(out, want, 6);
    float zeros[] = {0, 0, NAN};
    assert_true(falsecolour_absmax_f32(zeros, 3) == 1.0);
    double d[] = {NAN, NAN};
    assert_true(falsecolour_absmax_f64(d, 2) == 1.0);
}

/* Infinities do not set the scale: the finite values keep theirs, +inf is "over" and -inf
 * "under"; a span past the largest double colours by sign instead of by an undefined cast. */
static void test_float_infinities(void **state)
{
    (void)state;
    float v[] = {-2.0f, INFINITY, 0.0f, -INFINITY, 2.0f, 1.0f};
    static const uint8_t want[][4] = {{0, 0, 255, 255}, {255, 0, 0, 255}, {255, 254, 254, 255},
                                      {0, 0, 255, 255}, {255, 0, 0, 255}, {255, 126, 126, 255}};
    uint8_t out[6 * 4];
    colourmap cm = map("bwr");
    falsecolour_float_f32(v, 6, &cm, out);
    expect_pixels(out, want, 6);
    assert_true(falsecolour_absmax_f32(v, 6) == 2.0);
    double d[] = {-INFINITY, 1.5, INFINITY};
    assert_true(falsecolour_absmax_f64(d, 3) == 1.5);
    double only_inf[] = {INFINITY, -INFINITY, NAN};
    assert_true(falsecolour_absmax_f64(only_inf, 3) == 1.0);
    double huge[] = {-1.5e308, 1.5e308, 1e308, -1e308};
    static const uint8_t want_huge[][4] = {
        {0, 0, 255, 255}, {255, 0, 0, 255}, {255, 0, 0, 255}, {0, 0, 255, 255}};
    falsecolour_float_f64(huge, 4, &cm, out);
    expect_pixels(out, want_huge, 4);
}

static void test_la_thumbnail(void **state)
{
    uint8_t la[] = {0, 255, 255, 255, 128, 0, 40, 1};
    uint8_t out[4 * 4];
    colourmap cm = map("viridis");
    falsecolour_la_thumbnail(la, 4, &cm, out);
    static const uint8_t want[][4] = {
        {68, 1, 84, 255}, {253, 231, 36, 255}, {32, 144, 140, 0}, {0, 0, 0, 255}};
    expect_pixels(out, want, 2);
    assert_memory_equal(out + 8, want[2], 4);
    assert_int_equal(out[15], 255); /* any non-zero alpha becomes opaque */
    cm = map("tab10");
    falsecolour_la_thumbnail(la, 2, &cm, out);
    assert_memory_equal(out + 4, "\x17\xbe\xcf\xff", 4); /* past the end: last entry */
}

static void test_colour_bar(void **state)
{
    falsecolour_levels lv = {.limit_bit_depth = 8};
    colourmap cm = map("viridis");
    uint8_t *rgba = NULL;
    assert_int_equal(falsecolour_colour_bar(&lv, &cm, 16, &rgba), 0);
    assert_memory_equal(rgba, "\x44\x01\x54\xff", 4);
    assert_memory_equal(rgba + 255 * 4, "\xfd\xe7\x24\xff", 4);
    assert_memory_equal(rgba + 15 * 256 * 4, rgba, 256 * 4);
    free(rgba);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char *b = malloc(1 << 16);
    *len = fread(b, 1, 1 << 16, f);
    fclose(f);
    return b;
}

static void test_npz(void **state)
{
    size_t len;
    char err[128];
    npz_array a;
    unsigned char *b = slurp("data/float_f4.npz", &len);
    assert_int_equal(npz_read(b, len, &a, err, sizeof(err)), 0);
    assert_int_equal(a.rows, 2);
    assert_int_equal(a.cols, 3);
    assert_int_equal(a.itemsize, 4);
    const float *f = a.data;
    assert_true(f[0] == -2.0f && f[1] == 0.0f && isnan(f[2]) && f[5] == 0.3f);
    npz_array_free(&a);
    /* every truncation is refused, never read past the end */
    for (size_t cut = 0; cut < len; cut += 7)
        assert_int_not_equal(npz_read(b, cut, &a, err, sizeof(err)), 0);
    /* a corrupted payload does not inflate */
    b[60] ^= 0x55;
    assert_int_not_equal(npz_read(b, len, &a, err, sizeof(err)), 0);
    free(b);

    b = slurp("data/float_f8.npz", &len);
    assert_int_equal(npz_read(b, len, &a, err, sizeof(err)), 0);
    assert_int_equal(a.rows, 3);
    assert_int_equal(a.cols, 2);
    assert_int_equal(a.itemsize, 8);
    const double *d = a.data;
    assert_true(d[0] == 0.5 && d[1] == -0.25 && isnan(d[2]) && d[4] == 1e-3 && d[5] == -1.0);
    npz_array_free(&a);
    free(b);
    assert_int_not_equal(npz_read("PK\x05\x06", 4, &a, err, sizeof(err)), 0);
    /* found by tests/fuzz/fuzz_npz: a Zip64 locator in an archive shorter than a Zip64
     * end record (56 bytes) made the bounds check wrap; the record offset (here ~2^62)
     * was then read */
    static const unsigned char short_zip64[] = {
        'V',  'P',  'K',  0x06, 0x07, ' ',  0,    0,    8,    0,   0, 0, '!', 0,    0x93, 'N',
        'U',  'M',  'P',  'Y',  'y',  'P',  'K',  0x05, 0x06, 0,   0, 0, 0,   0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '3', 0, 0, '{', 0};
    unsigned char *sz = malloc(sizeof short_zip64);
    memcpy(sz, short_zip64, sizeof short_zip64);
    assert_int_equal(npz_read(sz, sizeof short_zip64, &a, err, sizeof(err)), -EINVAL);
    assert_null(a.data);
    free(sz);
    /* a 3-D array is refused */
    b = slurp("data/float_3d.npz", &len);
    assert_int_equal(npz_read(b, len, &a, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "array is not 2-D");
    free(b);
}

static void test_png_encode_rgba_deflate(void **state)
{
    uint32_t w = 33, h = 7;
    uint8_t *px = malloc((size_t)w * h * 4);
    for (size_t i = 0; i < (size_t)w * h * 4; i++)
        px[i] = (uint8_t)(i * 31 + i / 97);
    for (int level = 0; level <= 12; level += 6) {
        unsigned char *png = NULL;
        size_t len = 0;
        assert_int_equal(png_encode_rgba_deflate(px, w, h, level, &png, &len), 0);
        png_image img;
        assert_int_equal(png_decode(png, len, &img), 0);
        assert_int_equal(img.width, w);
        assert_int_equal(img.height, h);
        assert_int_equal(img.color_type, PNG_COLOR_RGBA);
        assert_int_equal(img.bit_depth, 8);
        assert_memory_equal(img.pixels, px, (size_t)w * h * 4);
        png_image_free(&img);
        free(png);
    }
    unsigned char *png = NULL;
    size_t len = 0;
    assert_int_equal(png_encode_rgba_deflate(px, 0, 1, 1, &png, &len), -EINVAL);
    assert_int_equal(png_encode_rgba_deflate(px, 70000, 1, 1, &png, &len), -E2BIG);
    free(px);
}

static void test_falsecolour_png(void **state)
{
    uint16_t px[] = {0, 255, 256, 8000, 16639, 16640, 65535};
    unsigned char *in = NULL, *out = NULL;
    size_t inlen = 0, outlen = 0;
    assert_int_equal(png_encode_gray(px, 7, 1, 16, 12, 6, &in, &inlen), 0);
    falsecolour_levels lv = {.lower = 1, .upper = 64, .limit_bit_depth = 8, true, true};
    colourmap cm = map("viridis");
    const char *mode = "x";
    assert_int_equal(falsecolour_png(in, inlen, &lv, &cm, 1, &out, &outlen, &mode), 0);
    assert_null(mode);
    png_image img;
    assert_int_equal(png_decode(out, outlen, &img), 0);
    uint8_t want[7 * 4];
    falsecolour_gray(px, 7, 16, 256, 16639, &cm, want);
    assert_memory_equal(img.pixels, want, sizeof(want));
    png_image_free(&img);
    free(out);
    free(in);
    uint8_t rgb[4] = {1, 2, 3, 4};
    assert_int_equal(png_encode_rgba(rgb, 1, 1, 6, &in, &inlen), 0);
    assert_int_equal(falsecolour_png(in, inlen, &lv, &cm, 1, &out, &outlen, &mode), -EINVAL);
    assert_string_equal(mode, "RGBA");
    free(in);
}

static bool is_white(const uint8_t *p)
{
    return p[0] == 255 && p[1] == 255 && p[2] == 255;
}

static void test_plot_waveform(void **state)
{
    enum { N = 200, W = 100, H = 80 };
    double x[N], y[N];
    for (int i = 0; i < N; i++) {
        x[i] = i * 0.5;
        y[i] = sin(i * 0.05);
    }
    y[100] = NAN; /* breaks the line */
    uint8_t *rgba = malloc(W * H * 4);
    plot_waveform_rgba(x, y, N, W, H, 0.3, rgba);
    int inked_cols = 0;
    for (int c = 0; c < W; c++) {
        bool inked = false;
        for (int r = 0; r < H; r++) {
            const uint8_t *p = rgba + 4 * (r * W + c);
            assert_int_equal(p[3], 255); /* opaque */
            /* every pixel lies between white and the blue #1f77b4 */
            assert_true(p[0] >= 0x1f && p[1] >= 0x77 && p[2] >= 0xb4);
            assert_true(p[0] <= p[1] && p[1] <= p[2]);
            inked |= !is_white(p);
        }
        inked_cols += inked;
    }
    /* the 5 % margins stay empty; the line crosses (almost) every column in between */
    assert_true(inked_cols >= 85 && inked_cols <= 93);
    for (int r = 0; r < H; r++) {
        assert_true(is_white(rgba + 4 * (r * W + 0)));
        assert_true(is_white(rgba + 4 * (r * W + W - 1)));
    }
    /* the top of the sine (y = 1 near x = 31) is drawn near the top margin (row ~4) */
    bool top = false;
    for (int c = 0; c < W; c++)
        for (int r = 2; r <= 6; r++)
            top |= !is_white(rgba + 4 * (r * W + c));
    assert_true(top);
    unsigned char *png = NULL;
    size_t len = 0;
    assert_int_equal(plot_waveform_png(x, y, N, W, H, 0.3, &png, &len), 0);
    png_image img;
    assert_int_equal(png_decode(png, len, &img), 0);
    assert_int_equal(img.width, W);
    assert_int_equal(img.height, H);
    assert_int_equal(img.color_type, PNG_COLOR_RGBA);
    assert_memory_equal(img.pixels, rgba, W * H * 4);
    png_image_free(&img);
    free(png);
    assert_int_equal(plot_waveform_png(x, y, N, 0, H, 0.3, &png, &len), -EINVAL);
    /* nothing finite: a white square */
    double nan2[2] = {NAN, NAN};
    plot_waveform_rgba(nan2, nan2, 2, W, H, 0.3, rgba);
    for (int i = 0; i < W * H; i++)
        assert_true(is_white(rgba + 4 * i));
    /* found by tests/fuzz/fuzz_hdf5_desc (an uploaded waveform): values near +-DBL_MAX
     * overflow the limits, and pixel coordinates became infinite or NaN before their
     * conversion to int (undefined: caught by the UBSan build, make test-asan). Also
     * limits too narrow: a span of one subnormal. Whatever is drawn, it stays opaque. */
    double big[3] = {-1.7e308, 0, 1.7e308}, tiny[3] = {0, 5e-324, 1e-323};
    plot_waveform_rgba(big, x, 3, W, H, 0.3, rgba);
    plot_waveform_rgba(x, big, 3, W, H, 0.3, rgba);
    plot_waveform_rgba(tiny, tiny, 3, W, H, 0.3, rgba);
    for (int i = 0; i < W * H; i++)
        assert_int_equal(rgba[4 * i + 3], 255);
    plot_vector_rgba(big, 3, W, H, rgba);
    plot_vector_rgba(tiny, 3, W, H, rgba);
    free(rgba);
}

static void test_plot_vector(void **state)
{
    enum { W = 100, H = 100 };
    double v[] = {2, 1, -1};
    uint8_t *rgba = malloc(W * H * 4);
    plot_vector_rgba(v, 3, W, H, rgba);
    /* y limits -1.15..2.15: zero line at row 100 - 1.15 / 3.3 * 100 = 65.2 */
    const uint8_t *zero = rgba + 4 * (65 * W + 50);
    assert_true(zero[0] < 40 && zero[1] < 40 && zero[2] < 40);
    /* x limits -0.54..2.54: bar 0 spans columns 4.5..30.5; its centre column is blue from
     * the top of the bar (2.15 - 2) / 3.3 * 100 = 4.5 down to the zero line */
    const uint8_t *bar0 = rgba + 4 * (30 * W + 17);
    assert_memory_equal(bar0, "\x1f\x77\xb4\xff", 4);
    assert_true(is_white(rgba + 4 * (2 * W + 17)));
    /* the negative bar hangs below the zero line; the gap between bars is white */
    assert_memory_equal(rgba + 4 * (80 * W + 82), "\x1f\x77\xb4\xff", 4);
    assert_true(is_white(rgba + 4 * (30 * W + 33)));
    free(rgba);
}

/* Counts pixels of a decoded RGBA figure: the default blue, and dark grey or black
 * (spines, ticks, text). */
static void figure_pixels(const unsigned char *png, size_t len, png_image *img, size_t *blue,
                          size_t *dark)
{
    assert_int_equal(png_decode(png, len, img), 0);
    assert_int_equal(img->channels, 4);
    *blue = *dark = 0;
    for (uint32_t y = 0; y < img->height; y++)
        for (uint32_t x = 0; x < img->width; x++) {
            const uint8_t *p = (const uint8_t *)img->pixels + y * img->stride + 4 * x;
            if (p[0] == 0x1f && p[1] == 0x77 && p[2] == 0xb4)
                (*blue)++;
            else if (p[0] < 60 && p[1] < 60 && p[2] < 60)
                (*dark)++;
        }
}

static void test_figures(void **state)
{
    (void)state;
    double x[50], y[50];
    for (int i = 0; i < 50; i++) {
        x[i] = 645 + i;
        y[i] = 1000 + 900 * sin(i / 3.0);
    }
    unsigned char *png = NULL;
    size_t len = 0;
    assert_int_equal(figure_waveform_png(x, y, 50, "ns", "mJ", &png, &len), 0);
    png_image img;
    size_t blue, dark;
    figure_pixels(png, len, &img, &blue, &dark);
    /* an 8 x 6 in figure at 130 dpi, cropped to what was drawn */
    assert_true(img.width > 700 && img.width <= 1040);
    assert_true(img.height > 500 && img.height <= 780);
    assert_true(blue > 1000); /* the 1.5 pt line */
    assert_true(dark > 3000); /* the axes box, ticks and their labels */
    png_image_free(&img);
    free(png);
    /* the axis labels take room: without them the crop is narrower and lower */
    assert_int_equal(figure_waveform_png(x, y, 50, NULL, "", &png, &len), 0);
    png_image bare;
    figure_pixels(png, len, &bare, &blue, &dark);
    assert_true(bare.width < img.width && bare.height < img.height);
    png_image_free(&bare);
    free(png);

    double v[] = {-2, -1, 0.5, 2};
    const char *labels[] = {"Tilt X", "Tilt Y", "Defocus", "Astig 0"};
    assert_int_equal(figure_vector_png(v, 4, labels, &png, &len), 0);
    figure_pixels(png, len, &img, &blue, &dark);
    assert_true(blue > 50000); /* four wide bars */
    png_image_free(&img);
    free(png);
    assert_int_equal(figure_vector_png(v, 4, NULL, &png, &len), 0);
    free(png);
    /* nothing to draw */
    double nan_only[] = {NAN};
    assert_int_equal(figure_waveform_png(nan_only, nan_only, 1, NULL, NULL, &png, &len), -EINVAL);
    assert_int_equal(figure_vector_png(v, 0, NULL, &png, &len), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catalogue),
        cmocka_unit_test(test_tables_match_matplotlib),
        cmocka_unit_test(test_tables_310_listed),
        cmocka_unit_test(test_levels_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_gray8_full_range),
        cmocka_unit_test(test_gray16_levels_under_over),
        cmocka_unit_test(test_gray16_limit12_reversed),
        cmocka_unit_test(test_flat_levels),
        cmocka_unit_test(test_limit_above_storage),
        cmocka_unit_test(test_short_tables),
        cmocka_unit_test(test_float_symmetric_nan),
        cmocka_unit_test(test_float_infinities),
        cmocka_unit_test(test_la_thumbnail),
        cmocka_unit_test(test_colour_bar),
        cmocka_unit_test(test_npz),
        cmocka_unit_test(test_png_encode_rgba_deflate),
        cmocka_unit_test(test_falsecolour_png),
        cmocka_unit_test(test_plot_waveform),
        cmocka_unit_test(test_plot_vector),
        cmocka_unit_test(test_figures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
