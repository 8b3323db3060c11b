/* Unit tests for src/export/export.c, the export pipeline driven without HTTP: a loop with
 * an SQLite store and a filesystem object store, and a sink that collects what the export
 * answers. A CSV-only export (the whole answer and its Content-Disposition), and failures
 * before the first byte (no records, an unknown channel) as classes and texts.
 *
 * Functions over several batches (FN_BATCH records each): a zip stream whose writes the
 * test completes one at a time, after the loop has drained, so every batch, GET and
 * rendering that can finish has finished before the next write does and the point where
 * each batch starts is fixed. The functions engine's start is wrapped (the test binary is
 * linked with --wrap=fneval_start): the Nth call can fail as fneval_start does when it
 * cannot allocate (-ENOMEM, done never called), or run the real engine on a store that
 * refuses every op, which fails the evaluation inside the call (done runs before
 * fneval_start returns). Either way the export must end once: before the first byte with
 * detach then fail, after it with detach then abort (a cut stream), with nothing left on
 * the loop and nothing leaked (ASan). */
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
#include "objstore/keys.h"

#include "service_harness.h"

typedef svc_fixture fixture;

/* What the sink was told (the sink is further down). */
typedef struct collected {
    int status;
    char content_type[64];
    char *body;
    size_t len;
    char disposition[256];
    export_error error; /* fail: the class, 0 if none */
    fneval_error fn_error;
    char message[512];
    int started, failed, detached, ended, aborted;
    /* the final calls in order: S start, W answer, F fail, E end, A abort, D detach */
    char events[16];
    size_t nevents;
    /* the stream: its bytes, and the write in flight (completed by drive) */
    unsigned char *stream;
    size_t stream_len;
    size_t writes;
    export_written_cb pending;
    void *pending_data;
} collected;

/* ---- failures of the functions engine, injected (--wrap=fneval_start) ---- */

typedef enum inject_how {
    /* fneval_start's own -ENOMEM: the records are released, done is never called */
    INJECT_ENOMEM = 1,
    /* the real engine on a store without a loop: store_submit fails, so the evaluation
     * fails (FNEVAL_EINTERNAL) inside fneval_start */
    INJECT_FAIL_INSIDE,
} inject_how;

static struct injection {
    unsigned calls;   /* fneval_start calls so far */
    unsigned fail_at; /* the call (1-based) that fails; 0: none */
    inject_how how;
    store_t *refusing;   /* a store opened without a loop: every store_submit fails */
    collected *c;        /* the running export's sink */
    int started_then;    /* the sink's start calls when the injected call came */
    int done_inside;     /* done ran inside the injected call */
    fneval_done_cb done; /* the export's done, for the injected call */
} inj;

int __real_fneval_start(const fneval_ctx *ctx, fneval_list *list, json_t *records,
                        const fneval_options *opts, fneval_done_cb done, void *data,
                        fneval **handle);
int __wrap_fneval_start(const fneval_ctx *ctx, fneval_list *list, json_t *records,
                        const fneval_options *opts, fneval_done_cb done, void *data,
                        fneval **handle);

static void done_inside(fneval *ev, void *data)
{
    inj.done_inside++;
    inj.done(ev, data);
}

int __wrap_fneval_start(const fneval_ctx *ctx, fneval_list *list, json_t *records,
                        const fneval_options *opts, fneval_done_cb done, void *data,
                        fneval **handle)
{
    if (++inj.calls != inj.fail_at)
        return __real_fneval_start(ctx, list, records, opts, done, data, handle);
    inj.started_then = inj.c ? inj.c->started : -1;
    if (inj.how == INJECT_ENOMEM) {
        json_decref(records);
        return -ENOMEM;
    }
    fneval_ctx refusing = *ctx;
    refusing.store = inj.refusing;
    inj.done = done;
    int depth = inj.done_inside;
    int rc = __real_fneval_start(&refusing, list, records, opts, done_inside, data, handle);
    /* the path under test: the evaluation ended before the call returned */
    assert_int_equal(inj.done_inside, depth + 1);
    return rc;
}

static void open_refusing_store(fixture *f)
{
    char url[128], err[256];
    snprintf(url, sizeof url, "sqlite://%s/db.sqlite3", f->dir);
    assert_int_equal(store_open(url, NULL, &inj.refusing, err, sizeof err), 0);
}

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
    inj = (struct injection){0};
    *state = f;
    return 0;
}

/* Records for the batches: NREC records (several batches of FN_BATCH = 16: 7), each with
 * a scalar A; the first `nobj` also with a float image F (4 stored bytes, its size
 * recorded), which the export packs as is. */
#define NREC 100
#define NBATCHES 7
#define F_BYTES "npz!"

static void put_done(int status, void *data)
{
    assert_int_equal(status, 0);
    (*(int *)data)--;
}

static fixture *open_records(int nobj)
{
    fixture *f = svc_open("export");
    svc_put(f, STORE_MANIFEST_PUT,
            "{\"_id\":\"20240101000000\",\"channels\":{\"A\":{\"name\":\"a\",\"type\":\"scalar\"},"
            "\"F\":{\"name\":\"f\",\"type\":\"float_image\"}}}");
    int pending = 0;
    for (int i = 0; i < NREC; i++) {
        char id[32], doc[512], key[OBJSTORE_KEY_MAX];
        int t = i + 1;
        snprintf(id, sizeof id, "20240101%02d%02d%02d", t / 3600, t / 60 % 60, t % 60);
        const char *fdoc = ",\"F\":{\"metadata\":{\"channel_dtype\":\"float_image\"},"
                           "\"object_size\":4}";
        snprintf(doc, sizeof doc,
                 "{\"_id\":\"%s\",\"metadata\":{\"shotnum\":%d},\"channels\":{\"A\":{"
                 "\"metadata\":{\"channel_dtype\":\"scalar\"},\"data\":%d}%s}}",
                 id, t, t, i < nobj ? fdoc : "");
        svc_put(f, STORE_RECORD_PUT, doc);
        if (i >= nobj)
            continue;
        assert_int_equal(objstore_key_new(OBJ_FLOAT_IMAGE, id, "F", key), 0);
        pending++;
        assert_int_equal(objstore_put(f->objstore, key, F_BYTES, 4, put_done, &pending, NULL), 0);
    }
    while (pending)
        uv_run(&f->loop, UV_RUN_ONCE);
    inj = (struct injection){0};
    open_refusing_store(f);
    return f;
}

static int setup_objects(void **state)
{
    *state = open_records(NREC);
    return 0;
}

/* Only the first record has an object: every entry is written long before the last
 * batches may start. */
static int setup_one_object(void **state)
{
    *state = open_records(1);
    return 0;
}

static int teardown(void **state)
{
    if (inj.refusing)
        store_close(inj.refusing);
    inj = (struct injection){0};
    return svc_teardown(state);
}

/* ---- the sink: collects the answer ---- */

static void event(collected *c, char e)
{
    if (c->nevents + 1 < sizeof c->events)
        c->events[c->nevents++] = e;
}

static void c_answer(void *data, int status, const char *content_type, char *body, size_t len)
{
    collected *c = data;
    event(c, 'W');
    c->status = status;
    snprintf(c->content_type, sizeof c->content_type, "%s", content_type);
    c->body = body;
    c->len = len;
}

static void c_fail(void *data, const export_failure *f)
{
    collected *c = data;
    event(c, 'F');
    c->failed++;
    c->error = f->error;
    c->fn_error = f->fn_error;
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
    event(c, 'S');
    c->started++;
    c->status = status;
    snprintf(c->content_type, sizeof c->content_type, "%s", content_type);
}

/* Keeps the bytes; the write completes when drive() says so (one in flight). */
static int c_write_take(void *data, char *bytes, size_t len, export_written_cb done,
                        void *done_data)
{
    collected *c = data;
    assert_null(c->pending);
    assert_int_equal(c->detached, 0);
    unsigned char *more = realloc(c->stream, c->stream_len + len + 1);
    assert_non_null(more);
    memcpy(more + c->stream_len, bytes, len);
    c->stream = more;
    c->stream_len += len;
    c->writes++;
    free(bytes);
    c->pending = done;
    c->pending_data = done_data;
    return 0;
}

static void c_end(void *data)
{
    collected *c = data;
    event(c, 'E');
    c->ended++;
}

static void c_abort(void *data)
{
    collected *c = data;
    event(c, 'A');
    c->aborted++;
}

static void c_detach(void *data)
{
    collected *c = data;
    event(c, 'D');
    c->detached++;
}

/* Runs the loop until nothing is left on it, then completes the write in flight (the
 * client took the bytes), and again until no write is left: a slow client, made
 * deterministic. An export that never detaches leaves this with c->detached == 0
 * instead of hanging. */
static void drive(fixture *f, collected *c)
{
    for (;;) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
        if (!c->pending)
            break;
        export_written_cb done = c->pending;
        c->pending = NULL;
        done(0, c->pending_data);
    }
}

/* Runs an export of `projection` (n entries) with `skip` and the functions `fns` (may be
 * NULL) and collects what it answers, until the loop has nothing left to run. */
static void run_fns(fixture *f, const char *const *projection, size_t n, int64_t skip,
                    fneval_list *fns, collected *c)
{
    *c = (collected){0};
    inj.c = c;
    export_ctx ctx = {.loop = &f->loop,
                      .store = f->store,
                      .objstore = f->objstore,
                      .cfg = &f->cfg,
                      .arena = &f->arena,
                      .owner = f};
    export_params p = {.projection = projection,
                       .nprojection = n,
                       .skip = skip,
                       .fns = fns,
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
    drive(f, c);
    inj.c = NULL;
}

static void run(fixture *f, const char *const *projection, size_t n, int64_t skip, collected *c)
{
    run_fns(f, projection, n, skip, NULL, c);
    assert_int_equal(c->detached, 1);
    assert_int_equal(c->started, 0);
}

static void collected_free(collected *c)
{
    free(c->body);
    free(c->stream);
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
    collected_free(&c);
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
    collected_free(&c);
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
    collected_free(&c);
}

/* ---- functions over several batches ---- */

/* The function "twice" = A * 2 (scalar: CSV cells, evaluated batch by batch). */
static fneval_list *twice(fixture *f)
{
    fneval_list *fns = fneval_list_new(&f->arena, 1);
    assert_non_null(fns);
    char err[FN_ERR_MAX];
    assert_int_equal(fneval_list_add(fns, &f->arena, "twice", "A * 2", err), 0);
    return fns;
}

/* The zip: F of every record that has one, and the CSV. */
static const char *const ZIP_PROJ[] = {"_id", "channels.F", "channels.twice"};
/* The CSV alone: no object channel. */
static const char *const CSV_PROJ[] = {"_id", "channels.twice"};

/* The number of members the zip's end record gives (a complete archive). */
static unsigned zip_members(const collected *c)
{
    assert_true(c->stream_len >= 22);
    const unsigned char *end = c->stream + c->stream_len - 22;
    assert_memory_equal(end, "PK\x05\x06", 4);
    return (unsigned)end[10] | (unsigned)end[11] << 8;
}

/* The control: the whole stream with functions, batch after batch (FN_AHEAD past the
 * entry being written), ends once with the complete archive. */
static void test_stream_functions(void **state)
{
    fixture *f = *state;
    collected c;
    run_fns(f, ZIP_PROJ, 3, 0, twice(f), &c);
    assert_string_equal(c.events, "SED");
    assert_int_equal(inj.calls, NBATCHES);
    assert_int_equal(c.status, 200);
    assert_string_equal(c.content_type, "application/zip");
    assert_int_equal(zip_members(&c), NREC + 1);
    collected_free(&c);
}

/* The entries all lie in the first batch, and the client is slower than the functions:
 * by the time the last entry is written, the batches the window allowed are done and the
 * rest (FN_AHEAD past the first batch) have not started. Writing the last entry moves
 * the window: they start, and the stream ends with the CSV of every record. */
static void test_stream_window_moves_with_writes(void **state)
{
    fixture *f = *state;
    collected c;
    run_fns(f, ZIP_PROJ, 3, 0, twice(f), &c);
    assert_string_equal(c.events, "SED");
    assert_int_equal(inj.calls, NBATCHES);
    assert_int_equal(zip_members(&c), 2);
    collected_free(&c);
}

/* The first batch (before the answer is chosen) cannot be started at all: the plain 500
 * of an internal failure, after detach, and the export is freed. */
static void test_first_batch_enomem(void **state)
{
    fixture *f = *state;
    inj.fail_at = 1;
    inj.how = INJECT_ENOMEM;
    collected c;
    run_fns(f, ZIP_PROJ, 3, 0, twice(f), &c);
    assert_int_equal(inj.calls, 1);
    assert_string_equal(c.events, "DF");
    assert_int_equal(c.error, EXPORT_EINTERNAL);
    assert_string_equal(c.message, "Unknown error");
    collected_free(&c);
}

/* The first batch fails inside fneval_start (done runs before it returns): the
 * functions' failure is the answer, and the export, freed by that failure, is not
 * touched again. */
static void test_first_batch_fails_inside(void **state)
{
    fixture *f = *state;
    inj.fail_at = 1;
    inj.how = INJECT_FAIL_INSIDE;
    collected c;
    run_fns(f, ZIP_PROJ, 3, 0, twice(f), &c);
    assert_int_equal(inj.done_inside, 1);
    assert_int_equal(inj.calls, 1);
    assert_string_equal(c.events, "DF");
    assert_int_equal(c.error, EXPORT_EFUNCTIONS);
    assert_int_equal(c.fn_error, FNEVAL_EINTERNAL);
    collected_free(&c);
}

/* The CSV alone waits for every batch; the second one (started when the first is done,
 * with nothing else outstanding) cannot be started: one failure, after detach. */
static void test_csv_batch_enomem(void **state)
{
    fixture *f = *state;
    inj.fail_at = 2;
    inj.how = INJECT_ENOMEM;
    collected c;
    run_fns(f, CSV_PROJ, 2, 0, twice(f), &c);
    assert_int_equal(inj.started_then, 0);
    assert_string_equal(c.events, "DF");
    assert_int_equal(c.error, EXPORT_EINTERNAL);
    assert_null(c.body);
    collected_free(&c);
}

/* The same second batch fails inside fneval_start: that failure finishes the export
 * while the batches are being started. */
static void test_csv_batch_fails_inside(void **state)
{
    fixture *f = *state;
    inj.fail_at = 2;
    inj.how = INJECT_FAIL_INSIDE;
    collected c;
    run_fns(f, CSV_PROJ, 2, 0, twice(f), &c);
    assert_int_equal(inj.done_inside, 1);
    assert_string_equal(c.events, "DF");
    assert_int_equal(c.error, EXPORT_EFUNCTIONS);
    assert_null(c.body);
    collected_free(&c);
}

/* A batch past the window's first (the sixth: FN_AHEAD batches after the first one, it
 * starts once the entries of the first batch are written) cannot be started, after the
 * head went out: the stream is cut (abort, never end), detach once, no plain failure. */
static void test_stream_batch_enomem(void **state)
{
    fixture *f = *state;
    inj.fail_at = 6;
    inj.how = INJECT_ENOMEM;
    collected c;
    run_fns(f, ZIP_PROJ, 3, 0, twice(f), &c);
    assert_int_equal(inj.started_then, 1);
    assert_string_equal(c.events, "SDA");
    assert_int_equal(c.failed, 0);
    assert_int_equal(c.ended, 0);
    collected_free(&c);
}

/* The same batch fails inside fneval_start, with nothing else outstanding (the loop had
 * drained and the write that moved the window is done): the failure cuts the stream and
 * finishes the export inside the call. */
static void test_stream_batch_fails_inside(void **state)
{
    fixture *f = *state;
    inj.fail_at = 6;
    inj.how = INJECT_FAIL_INSIDE;
    collected c;
    run_fns(f, ZIP_PROJ, 3, 0, twice(f), &c);
    assert_int_equal(inj.done_inside, 1);
    assert_int_equal(inj.started_then, 1);
    assert_string_equal(c.events, "SDA");
    assert_int_equal(c.failed, 0);
    assert_int_equal(c.ended, 0);
    collected_free(&c);
}

/* An argument runs only the tests it names (a cmocka pattern: '*' and '?'), e.g. one at
 * a time under ASan, which stops at the first error. */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_csv_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_functions, setup_objects, teardown),
        cmocka_unit_test_setup_teardown(test_stream_window_moves_with_writes, setup_one_object,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_first_batch_enomem, setup_objects, teardown),
        cmocka_unit_test_setup_teardown(test_first_batch_fails_inside, setup_objects, teardown),
        cmocka_unit_test_setup_teardown(test_csv_batch_enomem, setup_objects, teardown),
        cmocka_unit_test_setup_teardown(test_csv_batch_fails_inside, setup_objects, teardown),
        cmocka_unit_test_setup_teardown(test_stream_batch_enomem, setup_objects, teardown),
        cmocka_unit_test_setup_teardown(test_stream_batch_fails_inside, setup_objects, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
