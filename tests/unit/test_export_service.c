/* Unit tests for src/export/export.c, the export pipeline driven without HTTP: a loop with
 * an SQLite store and a filesystem object store, and a sink that collects what the export
 * answers. A CSV-only export (the whole answer and its Content-Disposition), and failures
 * before the first byte (no records, an unknown channel) as classes and texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/export.h"

#include "service_harness.h"

typedef svc_fixture fixture;

static int setup(void **state)
{
    fixture *f = svc_open("export");
    svc_put(
        f, STORE_MANIFEST_PUT,
        "{\"_id\":\"20240101000000\",\"channels\":{\"A\":{\"name\":\"a\",\"type\":\"scalar\"}}}");
    svc_put(f, STORE_RECORD_PUT,
            "{\"_id\":\"20240101000001\",\"metadata\":{\"shotnum\":1},\"channels\":{\"A\":{"
            "\"metadata\":{\"channel_dtype\":\"scalar\"},\"data\":5}}}");
    svc_put(f, STORE_RECORD_PUT,
            "{\"_id\":\"20240101000002\",\"metadata\":{\"shotnum\":2},\"channels\":{\"A\":{"
            "\"metadata\":{\"channel_dtype\":\"scalar\"},\"data\":7.5}}}");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    svc_close(*state);
    return 0;
}

/* ---- the sink: collects the answer ---- */

typedef struct collected {
    int status;
    char content_type[64];
    char *body;
    size_t len;
    char disposition[256];
    export_error error; /* fail: the class, 0 if none */
    char message[512];
    int detached;
    int started;
} collected;

static void c_answer(void *data, int status, const char *content_type, char *body, size_t len)
{
    collected *c = data;
    c->status = status;
    snprintf(c->content_type, sizeof c->content_type, "%s", content_type);
    c->body = body;
    c->len = len;
}

static void c_fail(void *data, const export_failure *f)
{
    collected *c = data;
    c->error = f->error;
    snprintf(c->message, sizeof c->message, "%s", f->message ? f->message : "");
}

static void c_disposition(void *data, const char *value)
{
    collected *c = data;
    snprintf(c->disposition, sizeof c->disposition, "%s", value);
}

static void c_start(void *data, int status, const char *content_type)
{
    collected *c = data;
    c->started++;
    c->status = status;
}

static int c_write_take(void *data, char *bytes, size_t len, export_written_cb done,
                        void *done_data)
{
    free(bytes);
    return -EIO; /* these tests never stream */
}

static void c_end(void *data) {}

static void c_abort(void *data) {}

static void c_detach(void *data)
{
    ((collected *)data)->detached++;
}

/* Runs an export of `projection` (n entries) with `skip` and collects what it answers. */
static void run(fixture *f, const char *const *projection, size_t n, int64_t skip, collected *c)
{
    *c = (collected){0};
    export_ctx ctx = {.loop = &f->loop,
                      .store = f->store,
                      .objstore = f->objstore,
                      .cfg = &f->cfg,
                      .arena = &f->arena,
                      .owner = f};
    export_params p = {.projection = projection,
                       .nprojection = n,
                       .skip = skip,
                       .upper_level = 255,
                       .limit_bit_depth = 8,
                       .export_scalars = true,
                       .export_images = true,
                       .export_float_images = true,
                       .export_waveform_csvs = true,
                       .export_vector_csvs = true};
    export_sink sink = {.data = c,
                        .answer = c_answer,
                        .fail = c_fail,
                        .disposition = c_disposition,
                        .start = c_start,
                        .write_take = c_write_take,
                        .end = c_end,
                        .abort = c_abort,
                        .detach = c_detach};
    export_job *x = export_new(&ctx, &p, &sink);
    assert_non_null(x);
    export_run(x);
    while (!c->detached)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(c->detached, 1);
    assert_int_equal(c->started, 0);
}

static void test_csv_only(void **state)
{
    fixture *f = *state;
    static const char *const proj[] = {"metadata.shotnum", "channels.A"};
    collected c;
    run(f, proj, 2, 0, &c);
    assert_int_equal(c.error, 0);
    assert_int_equal(c.status, 200);
    assert_string_equal(c.content_type, "text/plain; charset=utf-8");
    assert_string_equal(c.disposition,
                        "attachment; filename=\"20240101000001_to_20240101000002.csv\"");
    assert_non_null(c.body);
    const char want[] = "\"shotnum\",\"A\",\n1,5,\n2,7.5,\n";
    assert_int_equal(c.len, strlen(want));
    assert_memory_equal(c.body, want, c.len);
    free(c.body);
}

static void test_no_records(void **state)
{
    fixture *f = *state;
    static const char *const proj[] = {"channels.A"};
    collected c;
    run(f, proj, 1, 5, &c);
    assert_null(c.body);
    assert_int_equal(c.error, EXPORT_EINVAL);
    assert_string_equal(c.message, "No records found to export");
}

static void test_unknown_channel(void **state)
{
    fixture *f = *state;
    static const char *const proj[] = {"channels.Z"};
    collected c;
    run(f, proj, 1, 0, &c);
    assert_null(c.body);
    assert_int_equal(c.error, EXPORT_EINVAL);
    assert_string_equal(c.message, "'Z' is not a recognised channel or function name");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_csv_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_channel, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
