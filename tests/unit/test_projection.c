/* Unit tests for src/store/projection.c: applying a projection to a record document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/projection.h"
#include "util/jsonw.h"

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

/* The obvious search dtoa_shortest must agree with: print at 15, 16, 17 digits (from
 * min_prec) and keep the first that strtod reads back as d. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_projection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
