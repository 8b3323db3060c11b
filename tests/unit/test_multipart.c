/* Unit tests for src/http/multipart.c: finding a form field's file part in a
 * multipart/form-data body, and each way a body or its boundary can be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>

#include "http/multipart.h"

static void test_multipart(void **state)
{
    (void)state;
    const char *ct = "multipart/form-data; boundary=XyZ";
    const char body[] = "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
                        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
                        "filename=\"a.h5\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                        "AB\r\nCD\r\n--XyZ--\r\n";
    const char *d;
    size_t n;
    assert_int_equal(multipart_find_file(ct, body, sizeof(body) - 1, "file", &d, &n), MULTIPART_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(d, "AB\r\nCD", 6);
    assert_int_equal(multipart_find_file(ct, body, sizeof(body) - 1, "note", &d, &n),
                     MULTIPART_NOT_FILE);
    assert_int_equal(multipart_find_file(ct, body, sizeof(body) - 1, "other", &d, &n),
                     MULTIPART_MISSING);
    assert_int_equal(
        multipart_find_file("application/json", body, sizeof(body) - 1, "file", &d, &n),
        MULTIPART_NOT_MULTIPART);
    assert_int_equal(multipart_find_file("multipart/form-data; boundary=\"XyZ\"", body,
                                         sizeof(body) - 1, "file", &d, &n),
                     MULTIPART_OK);
    /* truncated: no closing delimiter */
    assert_int_equal(multipart_find_file(ct, body, 120, "file", &d, &n), MULTIPART_MALFORMED);
    assert_int_equal(multipart_find_file(ct, "", 0, "file", &d, &n), MULTIPART_MALFORMED);
    /* boundaries of 1..70 characters (RFC 2046); longer or empty ones are named as such */
    char long_ct[160];
    snprintf(long_ct, sizeof(long_ct), "multipart/form-data; boundary=%0*d", 71, 0);
    assert_int_equal(multipart_find_file(long_ct, body, sizeof(body) - 1, "file", &d, &n),
                     MULTIPART_BAD_BOUNDARY);
    assert_int_equal(multipart_find_file("multipart/form-data; boundary=", body, sizeof(body) - 1,
                                         "file", &d, &n),
                     MULTIPART_BAD_BOUNDARY);
    assert_int_equal(
        multipart_find_file("multipart/form-data", body, sizeof(body) - 1, "file", &d, &n),
        MULTIPART_NOT_MULTIPART);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multipart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
