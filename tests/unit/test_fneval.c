/* Unit tests for src/fneval, driven without HTTP: the list of functions (parse errors, the
 * names they use, the widened projection), the validate-style check, and evaluations over
 * records on a loop with an SQLite store and a filesystem object store: a scalar result,
 * an unknown name (a client mistake), a record the store does not know. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fneval/fneval.h"

#include "service_harness.h"

/* ---- the list ---- */

static void test_list(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 1 << 24);
    fneval_list *list = fneval_list_new(&a, 3);
    assert_non_null(list);
    char err[FN_ERR_MAX];
    assert_int_equal(fneval_list_add(list, &a, "x", "A + B", err), 0);
    assert_int_equal(fneval_list_add(list, &a, "y", "x * 2", err), 0);
    assert_int_equal(fneval_list_add(list, &a, "z", "A +", err), -EINVAL);
    assert_true(err[0] != '\0');
    assert_int_equal(fneval_list_count(list), 2);
    assert_int_equal(fneval_list_find(list, "y"), 1);
    assert_int_equal(fneval_list_find(list, "A"), -1);
    assert_string_equal(fneval_list_get(list, 0)->expression, "A + B");
    assert_false(fneval_list_too_many_names(list));

    /* the projection asks for every named channel whole */
    const char *proj[] = {"metadata.shotnum", "channels.A.data"};
    const char *const *p = proj;
    size_t n = 2;
    fneval_projection(&a, list, &p, &n);
    bool has_a = false, has_b = false, has_sub = false;
    for (size_t i = 0; i < n; i++) {
        has_a |= strcmp(p[i], "channels.A") == 0;
        has_b |= strcmp(p[i], "channels.B") == 0;
        has_sub |= strcmp(p[i], "channels.A.data") == 0;
    }
    assert_true(has_a && has_b && !has_sub);
    /* no projection: unchanged */
    const char *const *none = NULL;
    size_t zero = 0;
    fneval_projection(&a, list, &none, &zero);
    assert_int_equal(zero, 0);
    arena_free(&a);
}

static void test_check(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 1 << 24);
    json_t *channels = json_pack("{s{ss}}", "A", "type", "scalar");
    fneval_function fns[] = {{.name = "x", .expression = "A * 2"},
                             {.name = "A", .expression = "1"}};
    size_t bad = 99;
    char err[FN_ERR_MAX];
    assert_int_equal(fneval_check(&a, channels, fns, 1, &bad, err), 0);
    assert_int_equal(fns[0].type, FN_SCALAR);
    assert_int_equal(fneval_check(&a, channels, fns, 2, &bad, err), -EINVAL);
    assert_int_equal(bad, 1);
    assert_string_equal(err, "name 'A' is already a channel name");
    json_decref(channels);
    arena_free(&a);
}

/* ---- evaluation ---- */

typedef svc_fixture fixture;

static int setup(void **state)
{
    fixture *f = svc_open("fneval");
    svc_put(
        f, STORE_MANIFEST_PUT,
        "{\"_id\":\"20240101000000\",\"channels\":{\"A\":{\"name\":\"a\",\"type\":\"scalar\"}}}");
    svc_put(f, STORE_RECORD_PUT,
            "{\"_id\":\"20240101000001\",\"metadata\":{\"shotnum\":1},\"channels\":{\"A\":{"
            "\"metadata\":{\"channel_dtype\":\"scalar\"},\"data\":5}}}");
    *state = f;
    return 0;
}

typedef struct outcome {
    bool done;
    fneval_error error;
    char message[512];
    json_t *records;
} outcome;

static void evaluated(fneval *ev, void *data)
{
    outcome *o = data;
    const char *msg;
    int code;
    o->done = true;
    o->error = fneval_status(ev, &msg, &code);
    snprintf(o->message, sizeof o->message, "%s", msg);
    o->records = json_incref(fneval_records(ev));
    fneval_free(ev);
}

/* Evaluates `expression` as function "x" over the records of records_json. */
static void evaluate(fixture *f, const char *expression, const char *records_json, outcome *o)
{
    fneval_list *list = fneval_list_new(&f->arena, 1);
    char err[FN_ERR_MAX];
    assert_int_equal(fneval_list_add(list, &f->arena, "x", expression, err), 0);
    fneval_ctx ctx = {.loop = &f->loop,
                      .store = f->store,
                      .objstore = f->objstore,
                      .cfg = &f->cfg,
                      .arena = &f->arena,
                      .owner = f};
    fneval_options opts = {.mode = FNEVAL_FULL};
    *o = (outcome){0};
    fneval *handle = NULL;
    assert_int_equal(
        fneval_start(&ctx, list, json_loads(records_json, 0, NULL), &opts, evaluated, o, &handle),
        0);
    assert_non_null(handle);
    while (!o->done)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void test_scalar_result(void **state)
{
    fixture *f = *state;
    outcome o;
    /* the record comes without A: the engine looks it up in the store */
    evaluate(f, "A * 2 + 1", "[{\"_id\":\"20240101000001\"}]", &o);
    assert_int_equal(o.error, FNEVAL_OK);
    json_t *x = json_object_get(json_object_get(json_array_get(o.records, 0), "channels"), "x");
    assert_non_null(x);
    assert_true(json_number_value(json_object_get(x, "data")) == 11.0);
    json_decref(o.records);
}

static void test_unknown_name(void **state)
{
    fixture *f = *state;
    outcome o;
    evaluate(f, "Q + 1", "[{\"_id\":\"20240101000001\"}]", &o);
    assert_int_equal(o.error, FNEVAL_EINVAL);
    assert_string_equal(o.message, "{'Q'} are not recognised channels/functions");
    json_decref(o.records);
}

static void test_unknown_record(void **state)
{
    fixture *f = *state;
    outcome o;
    evaluate(f, "A", "[{\"_id\":\"20990101000000\"}]", &o);
    assert_int_equal(o.error, FNEVAL_ENOTFOUND);
    assert_string_equal(o.message, "Record cannot be found");
    json_decref(o.records);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_check),
        cmocka_unit_test_setup_teardown(test_scalar_result, setup, svc_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_name, setup, svc_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_record, setup, svc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
