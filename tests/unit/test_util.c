/* Unit tests for src/util (buf, arena, jsonw) and src/store (timestamp, projection). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "store/projection.h"
#include "store/store.h"
#include "store/timestamp.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/jsonw.h"

static void test_buf_cap(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 10);
    assert_int_equal(buf_puts(&b, "hello"), 0);
    assert_int_equal(buf_puts(&b, "world"), 0);
    assert_int_equal(buf_putc(&b, '!'), -E2BIG);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "helloworld");
    assert_int_equal(buf_printf(&b, "%d", 1), -E2BIG);
    char *t = buf_take(&b);
    assert_string_equal(t, "helloworld");
    free(t);
    assert_null(b.data);
    buf_free(&b);
}

static void test_arena(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 20000);
    char *s = arena_strdup(&a, "abc");
    assert_string_equal(s, "abc");
    assert_non_null(arena_alloc(&a, 8000));
    assert_null(arena_alloc(&a, 16000)); /* past the cap */
    assert_int_equal((uintptr_t)arena_alloc(&a, 3) % 16, 0);
    arena_free(&a);
}

static void check_double(double d, const char *want)
{
    char out[40];
    jsonw_format_double(d, out);
    assert_string_equal(out, want);
}

static void test_jsonw_doubles(void **state)
{
    (void)state;
    check_double(645.0, "645.0");
    check_double(9.053426445532069e-5, "9.053426445532069e-5");
    check_double(0.1, "0.1");
    check_double(1e16, "1e16");
    check_double(-2.5, "-2.5");
    check_double(48.761769913881054, "48.761769913881054");
    check_double(0.0, "0.0");
    buf_t b;
    buf_init(&b, 100);
    jsonw_double(&b, NAN);
    jsonw_double(&b, INFINITY);
    assert_string_equal(b.data, "nullnull");
    buf_free(&b);
}

static void test_jsonw_strings_and_values(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 1000);
    jsonw_string(&b, "a\"b\\c\n\x01\xc2\xb5m\xff", 11);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc2\xb5m\xef\xbf\xbd\"");
    buf_free(&b);
    json_t *v = json_pack("{s:i, s:f, s:[b, n], s:s}", "a", 1, "b", 2.0, "c", 1, "d", "µ");
    size_t len;
    char *text = jsonw_dumps(v, &len);
    assert_string_equal(text, "{\"a\":1,\"b\":2.0,\"c\":[true,null],\"d\":\"µ\"}");
    free(text);
    json_decref(v);
}

static void test_timestamps(void **state)
{
    (void)state;
    int64_t us;
    char out[32];
    assert_int_equal(timestamp_parse_iso("2023-06-05T08:00:00", &us), 0);
    store_format_timestamp(us, out);
    assert_string_equal(out, "2023-06-05T08:00:00");
    assert_int_equal(timestamp_parse_iso("2023-06-05 09:00:00+01:00", &us), 0);
    store_format_timestamp(us, out);
    assert_string_equal(out, "2023-06-05T08:00:00");
    assert_int_equal(timestamp_parse_iso("2023-06-05T08:00:00.25Z", &us), 0);
    store_format_timestamp(us, out);
    assert_string_equal(out, "2023-06-05T08:00:00.250000");
    assert_int_equal(timestamp_parse_iso("2023-02-29T00:00:00", &us), -EINVAL);
    assert_int_equal(timestamp_parse_iso("2023-06-05", &us), -EINVAL);
    assert_int_equal(timestamp_parse_iso("2023-06-05T08:00:00junk", &us), -EINVAL);
    json_t *d = json_pack("{s:I}", "$date", (json_int_t)1685952000000);
    assert_int_equal(timestamp_from_json(d, &us), 0);
    store_format_timestamp(us, out);
    assert_string_equal(out, "2023-06-05T08:00:00");
    json_decref(d);
}

static void test_projection(void **state)
{
    (void)state;
    const char *paths[] = {"metadata.shotnum", "channels.A.data", "channels.B"};
    projection_t *p;
    char err[200];
    assert_int_equal(projection_compile(paths, 3, &p, err, sizeof(err)), 0);
    json_error_t e;
    json_t *rec = json_loads("{\"_id\":\"1\",\"version\":2,\"metadata\":{\"shotnum\":5,\"ts\":1},"
                             "\"channels\":{\"A\":{\"metadata\":{},\"data\":1},\"B\":{\"x\":1},"
                             "\"C\":{\"data\":3}}}",
                             0, &e);
    projection_apply(p, rec);
    char *text = jsonw_dumps(rec, NULL);
    assert_string_equal(text, "{\"_id\":\"1\",\"metadata\":{\"shotnum\":5},\"channels\":{\"A\":{"
                              "\"data\":1},\"B\":{\"x\":1}}}");
    free(text);
    json_t *names = projection_channel_names(p);
    assert_int_equal(json_array_size(names), 2);
    json_decref(names);
    assert_true(projection_wants(p, "metadata"));
    assert_false(projection_wants(p, "version"));
    json_decref(rec);
    projection_free(p);

    const char *bad[] = {"metadata", "metadata.shotnum"};
    assert_int_equal(projection_compile(bad, 2, &p, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "collision"));
    const char *bad2[] = {"a..b"};
    assert_int_equal(projection_compile(bad2, 1, &p, err, sizeof(err)), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_cap),       cmocka_unit_test(test_arena),
        cmocka_unit_test(test_jsonw_doubles), cmocka_unit_test(test_jsonw_strings_and_values),
        cmocka_unit_test(test_timestamps),    cmocka_unit_test(test_projection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
