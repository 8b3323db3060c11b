/*
 * test_prefs.c: the pure parts of src/api/prefs.c and src/api/vector_thumbs.c: Python's
 * int() of a stored preference, the text of a colour-map preference, and Python's slice
 * bounds data[skip:limit].
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/prefs.h"
#include "api/vector_thumbs.h"

static bool int_of(const char *json, int64_t *out)
{
    json_error_t e;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &e);
    assert_non_null(v);
    bool ok = api_prefs_int(v, out);
    json_decref(v);
    return ok;
}

static void test_int_cast_accepts_what_python_int_accepts(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int64_t want;
    } ok[] = {
        {"3", 3},
        {"-4", -4},
        {"true", 1},
        {"false", 0},
        {"2.9", 2},
        {"-2.9", -2},
        {"1e3", 1000},
        {"\"17\"", 17},
        {"\" +17 \"", 17},
        {"\"-0\"", 0},
        {"\"1_000\"", 1000},
        {"\"007\"", 7},
        {"\"9223372036854775807\"", INT64_MAX},
        {"\"-9223372036854775808\"", INT64_MIN},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t v = 12345;
        assert_true(int_of(ok[i].json, &v));
        assert_int_equal(v, ok[i].want);
    }
}

static void test_int_cast_refuses_the_rest(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\"abc\"",
        "\"1.5\"",
        "\"\"",
        "\" \"",
        "\"1_\"",
        "\"_1\"",
        "\"1__0\"",
        "\"+\"",
        "\"1 2\"",
        "\"9223372036854775808\"",
        "\"-9223372036854775809\"",
        "[1]",
        "{\"a\":1}",
        "null",
        "1e300",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 0;
        assert_false(int_of(bad[i], &v));
    }
}

static void test_text_of_a_colour_map_preference(void **state)
{
    (void)state;
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"\"magma\"", "magma"}, {"12", "12"},   {"true", "True"},
        {"false", "False"},     {"1.5", "1.5"}, {"[1,2]", "[1,2]"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_error_t e;
        json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, &e);
        char *text = api_prefs_text(v);
        assert_string_equal(text, cases[i].want);
        free(text);
        json_decref(v);
    }
}

static void test_slice_bounds_are_pythons(void **state)
{
    (void)state;
    static const struct {
        size_t n;
        bool has_skip;
        int64_t skip;
        bool has_limit;
        int64_t limit;
        size_t start, stop;
    } cases[] = {
        {5, true, 1, true, 3, 1, 3},   /* limit is an end index */
        {5, true, 1, false, 0, 1, 5},  /* unset = open end */
        {5, false, 0, true, 2, 0, 2},  /* [:2] */
        {5, true, -2, false, 0, 3, 5}, /* negatives count from the end */
        {5, true, 1, true, -1, 1, 4},  /* [1:-1] */
        {5, true, 4, true, 2, 4, 4},   /* stop before start: empty */
        {5, true, 9, true, 20, 5, 5},  /* clamped */
        {5, true, -9, true, -7, 0, 0}, /* clamped at 0 */
        {0, true, 1, true, 3, 0, 0},   /* empty data */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t a = 99, b = 99;
        api_vector_slice(cases[i].n, cases[i].has_skip, cases[i].skip, cases[i].has_limit,
                         cases[i].limit, &a, &b);
        assert_int_equal(a, cases[i].start);
        assert_int_equal(b, cases[i].stop);
    }
}

static void test_redraw_only_for_non_zero_skip_or_limit(void **state)
{
    (void)state;
    api_prefs p = {0};
    assert_false(api_vector_thumbs_wanted(&p));
    p.has_skip = true;
    assert_false(api_vector_thumbs_wanted(&p)); /* 0 is falsy */
    p.has_limit = true;
    p.limit = -1;
    assert_true(api_vector_thumbs_wanted(&p));
    p = (api_prefs){.has_skip = true, .skip = 2};
    assert_true(api_vector_thumbs_wanted(&p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_cast_accepts_what_python_int_accepts),
        cmocka_unit_test(test_int_cast_refuses_the_rest),
        cmocka_unit_test(test_text_of_a_colour_map_preference),
        cmocka_unit_test(test_slice_bounds_are_pythons),
        cmocka_unit_test(test_redraw_only_for_non_zero_skip_or_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
