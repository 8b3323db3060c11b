/* Unit tests for src/render/render.c, the rendering service driven without HTTP: a loop
 * with an SQLite store and a filesystem object store holding one record with an 8-bit
 * image, a waveform and a float image. What each kind answers, the validator and the
 * "caller already has it" path, the two "not found" texts, the order of the checks (a
 * missing object wins over a bad level), a function's result standing in for the object,
 * and a job cancelled before its object arrives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imaging/png.h"
#include "objstore/keys.h"
#include "render/render.h"

#include "service_harness.h"

typedef svc_fixture fixture;

#define RID "20230605080000"

static void put_done(int status, void *data)
{
    assert_int_equal(status, 0);
    *(bool *)data = true;
}

static void put_object(fixture *f, objstore_kind kind, const char *channel, const void *bytes,
                       size_t len)
{
    char key[OBJSTORE_KEY_MAX];
    assert_int_equal(objstore_key_new(kind, RID, channel, key), 0);
    bool done = false;
    assert_int_equal(objstore_put(f->objstore, key, bytes, len, put_done, &done, NULL), 0);
    while (!done)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static int setup(void **state)
{
    fixture *f = svc_open("render");
    svc_put(f, STORE_RECORD_PUT,
            "{\"_id\":\"" RID "\",\"metadata\":{\"shotnum\":1},\"channels\":{"
            "\"CAM\":{\"metadata\":{\"channel_dtype\":\"image\"},\"image_path\":\"x\"},"
            "\"GONE\":{\"metadata\":{\"channel_dtype\":\"image\"},\"image_path\":\"y\"},"
            "\"W\":{\"metadata\":{\"channel_dtype\":\"waveform\"},\"waveform_path\":\"z\"}}}");
    /* a 5 x 3 image: a bright cross at column 3, row 1 */
    static const uint8_t px[3][5] = {{1, 1, 1, 50, 1}, {10, 20, 60, 200, 40}, {1, 1, 1, 50, 1}};
    unsigned char *png = NULL;
    size_t len = 0;
    assert_int_equal(png_encode_gray(px, 5, 3, 8, 0, 6, &png, &len), 0);
    put_object(f, OBJ_IMAGE, "CAM", png, len);
    free(png);
    static const char wave[] = "{\n  \"x\": [1.0, 2.5],\n  \"y\": [3, null]\n}";
    put_object(f, OBJ_WAVEFORM, "W", wave, strlen(wave));
    *state = f;
    return 0;
}

/* What a job answered, copied out of the callback. */
typedef struct answer {
    bool done;
    render_error error;
    int code;
    char message[512];
    char *body;
    size_t len;
    char content_type[64];
    char etag[32];
    bool not_modified;
} answer;

static void answered(render_result *r, void *data)
{
    answer *a = data;
    assert_false(a->done);
    a->done = true;
    a->error = r->error;
    a->code = r->code;
    snprintf(a->message, sizeof a->message, "%s", r->message ? r->message : "");
    snprintf(a->content_type, sizeof a->content_type, "%s", r->content_type ? r->content_type : "");
    snprintf(a->etag, sizeof a->etag, "%s", r->etag);
    a->not_modified = r->not_modified;
    a->body = r->body; /* taken */
    a->len = r->len;
    r->body = NULL;
}

static render_params params(render_kind kind, const char *channel)
{
    return (render_params){
        .kind = kind,
        .record_id = RID,
        .channel = channel,
        .levels = {.upper = 255, .limit_bit_depth = 8, .has_lower = true, .has_upper = true},
        .colourmap_name = "viridis",
        .bar_height = 4,
        .png_level = 1,
    };
}

static void render(fixture *f, const render_params *p, answer *a)
{
    *a = (answer){0};
    render_ctx ctx = {.loop = &f->loop, .store = f->store, .objstore = f->objstore, .owner = f};
    render_job *job = NULL;
    assert_int_equal(render_start(&ctx, p, answered, a, &job), 0);
    assert_non_null(job);
    while (!a->done)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void test_image_and_validator(void **state)
{
    fixture *f = *state;
    render_params p = params(RENDER_IMAGE, "CAM");
    answer a;
    render(f, &p, &a);
    assert_int_equal(a.error, RENDER_OK);
    assert_string_equal(a.content_type, "image/png");
    png_image img;
    assert_int_equal(png_decode(a.body, a.len, &img), 0);
    assert_int_equal(img.width, 5);
    assert_int_equal(img.height, 3);
    assert_int_equal(img.channels, 4);
    png_image_free(&img);
    free(a.body);
    assert_int_equal(strlen(a.etag), 18);
    char etag[32];
    snprintf(etag, sizeof etag, "%s", a.etag);

    /* the caller holds it: nothing is rendered */
    char list[80];
    snprintf(list, sizeof list, "\"other\", %s", etag);
    p.if_none_match = list;
    render(f, &p, &a);
    assert_int_equal(a.error, RENDER_OK);
    assert_true(a.not_modified);
    assert_null(a.body);
    assert_string_equal(a.etag, etag);

    /* another colour map is another answer */
    p.colourmap_name = "magma";
    render(f, &p, &a);
    assert_false(a.not_modified);
    assert_string_not_equal(a.etag, etag);
    free(a.body);

    /* the stored PNG itself */
    p = params(RENDER_ORIGINAL, "CAM");
    render(f, &p, &a);
    assert_int_equal(a.error, RENDER_OK);
    assert_int_equal(png_decode(a.body, a.len, &img), 0);
    assert_int_equal(img.channels, 1);
    assert_int_equal(((const uint8_t *)img.pixels)[8], 200);
    png_image_free(&img);
    free(a.body);
}

static void test_not_found_and_check_order(void **state)
{
    fixture *f = *state;
    answer a;
    render_params p = params(RENDER_IMAGE, "NOPE");
    render(f, &p, &a);
    assert_int_equal(a.error, RENDER_ENOTFOUND);
    assert_string_equal(a.message, "Image with id=" RID ", channel=NOPE could not be found due "
                                   "to invalid id and or channel");
    /* the record has the channel, the object store does not; a bad level loses to it */
    p = params(RENDER_IMAGE, "GONE");
    p.levels.upper = 999;
    render(f, &p, &a);
    assert_int_equal(a.error, RENDER_ENOTFOUND);
    assert_string_equal(a.message,
                        "Image with id=" RID ", channel=GONE could not be found in object "
                        "storage, check deletion policy and age of requested data");
    /* on an object that exists, the checks speak */
    p = params(RENDER_IMAGE, "CAM");
    p.levels.upper = 999;
    render(f, &p, &a);
    assert_int_equal(a.error, RENDER_EINVAL);
    assert_string_equal(a.message, "upper_level must be less than 2**limit_bit_depth");
    p = params(RENDER_IMAGE, "CAM");
    p.colourmap_name = "nope";
    render(f, &p, &a);
    assert_int_equal(a.error, RENDER_EINVAL);
    assert_string_equal(a.message, "nope is not a valid colour map name");
    /* a waveform channel asked for as a float image */
    p = params(RENDER_FLOAT, "W");
    render(f, &p, &a);
    assert_int_equal(a.error, RENDER_ENOTFOUND);
    assert_non_null(strstr(a.message, "FloatImage with id=" RID ", channel=W "));
}

static void test_crosshair_waveform_colour_bar(void **state)
{
    fixture *f = *state;
    answer a;
    render_params p = params(RENDER_CROSSHAIR, "CAM");
    p.has_position = true;
    p.pos_x = -2; /* column 3 */
    p.pos_y = 1;
    render(f, &p, &a);
    assert_int_equal(a.error, RENDER_OK);
    assert_string_equal(a.content_type, "application/json");
    json_t *doc = json_loadb(a.body, a.len, 0, NULL);
    assert_non_null(doc);
    json_t *row = json_object_get(doc, "row"), *col = json_object_get(doc, "column");
    assert_int_equal(json_integer_value(json_object_get(row, "position")), 1);
    assert_int_equal(json_integer_value(json_object_get(col, "position")), 3);
    json_t *ry = json_object_get(json_object_get(row, "intensity"), "y");
    assert_int_equal(json_array_size(ry), 5);
    assert_true(json_real_value(json_array_get(ry, 3)) == 200.0);
    json_t *cy = json_object_get(json_object_get(col, "intensity"), "y");
    assert_true(json_real_value(json_array_get(cy, 0)) == 50.0);
    assert_true(json_is_real(json_object_get(row, "fwhm")));
    json_decref(doc);
    free(a.body);
    /* outside the image */
    p.pos_x = 5;
    render(f, &p, &a);
    assert_int_equal(a.error, RENDER_EINTERNAL);

    p = params(RENDER_WAVEFORM, "W");
    render(f, &p, &a);
    assert_int_equal(a.error, RENDER_OK);
    assert_int_equal(a.len, strlen("{\"x\":[1.0,2.5],\"y\":[3.0,null]}"));
    assert_memory_equal(a.body, "{\"x\":[1.0,2.5],\"y\":[3.0,null]}", a.len);
    free(a.body);

    p = params(RENDER_COLOUR_BAR, "");
    render(f, &p, &a);
    assert_int_equal(a.error, RENDER_OK);
    png_image img;
    assert_int_equal(png_decode(a.body, a.len, &img), 0);
    assert_int_equal(img.width, 256);
    assert_int_equal(img.height, 4);
    png_image_free(&img);
    free(a.body);
    p.colourmap_name = "nope";
    render(f, &p, &a);
    assert_int_equal(a.error, RENDER_EINVAL);
}

/* A function's result stands in for the stored object: nothing is read (the record and
 * channel need not exist) and there is no validator. */
static void test_function_results(void **state)
{
    fixture *f = *state;
    answer a;
    render_params p = params(RENDER_WAVEFORM, "NOT-STORED");
    json_t *data = json_pack("{s[ii] s[fn]}", "x", 1, 2, "y", 0.5);
    assert_non_null(data);
    p.function_data = data;
    render(f, &p, &a);
    assert_int_equal(a.error, RENDER_OK);
    assert_string_equal(a.etag, "");
    json_t *back = json_loadb(a.body, a.len, 0, NULL);
    assert_true(json_equal(back, data));
    json_decref(back);
    json_decref(data);
    free(a.body);

    double pix[6] = {0, 1, 0, 0, 9, 0};
    fnimage img = {.w = 3, .h = 2, .storage_bits = 8, .sample = 0, .f64 = pix};
    p = params(RENDER_CROSSHAIR, "NOT-STORED");
    p.function_image = &img;
    render(f, &p, &a);
    assert_int_equal(a.error, RENDER_OK);
    json_t *doc = json_loadb(a.body, a.len, 0, NULL);
    /* the centroid: x = (1 + 9) / 10 = column 1, y = 9 / 10 -> row 0 */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "row"), "position")),
                     0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(doc, "column"), "position")), 1);
    json_decref(doc);
    free(a.body);
}

/* Cancelled before the object arrives: one answer, an internal failure, nothing leaks. */
static void test_cancel(void **state)
{
    fixture *f = *state;
    answer a = {0};
    render_params p = params(RENDER_IMAGE, "CAM");
    render_ctx ctx = {.loop = &f->loop, .store = f->store, .objstore = f->objstore, .owner = f};
    render_job *job = NULL;
    assert_int_equal(render_start(&ctx, &p, answered, &a, &job), 0);
    assert_false(a.done);
    render_cancel(job);
    while (!a.done)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(a.error, RENDER_EINTERNAL);
    assert_null(a.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_image_and_validator, setup, svc_teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_check_order, setup, svc_teardown),
        cmocka_unit_test_setup_teardown(test_crosshair_waveform_colour_bar, setup, svc_teardown),
        cmocka_unit_test_setup_teardown(test_function_results, setup, svc_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, svc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
