/* Unit tests for src/store/timestamp.c and store_format_timestamp: the date forms a
 * record's metadata.timestamp arrives in, and the API's text form, over the years
 * microseconds since the epoch reach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/timestamp.h"

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
    /* years before 1000 in four digits, as Python's isoformat (found by fuzzing: the
     * ingest record id is cut out of this text) */
    assert_int_equal(timestamp_parse_iso("0326-06-05T08:00:00", &us), 0);
    store_format_timestamp(us, out);
    assert_string_equal(out, "0326-06-05T08:00:00");
    store_format_timestamp(-62135596800000000LL, out); /* 0001-01-01 */
    assert_string_equal(out, "0001-01-01T00:00:00");
    assert_int_equal(timestamp_parse_iso("2023-02-29T00:00:00", &us), -EINVAL);
    assert_int_equal(timestamp_parse_iso("2023-06-05", &us), -EINVAL);
    assert_int_equal(timestamp_parse_iso("2023-06-05T08:00:00junk", &us), -EINVAL);
    json_t *d = json_pack("{s:I}", "$date", (json_int_t)1685952000000);
    assert_int_equal(timestamp_from_json(d, &us), 0);
    store_format_timestamp(us, out);
    assert_string_equal(out, "2023-06-05T08:00:00");
    json_decref(d);
}

/* Years below 1000 are padded to four digits (as Python's isoformat; glibc's strftime %Y
 * gave "1-01-01T00:00:00", which the store then refused to parse back). */
static void test_timestamp_years(void **state)
{
    (void)state;
    const char *texts[] = {"0001-01-01T00:00:00", "0099-03-01T00:00:00", "0999-06-05T08:00:00",
                           "1969-12-31T23:59:59.999999", "9999-12-31T23:59:59"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        int64_t us;
        char out[32];
        assert_int_equal(timestamp_parse_iso(texts[i], &us), 0);
        store_format_timestamp(us, out);
        assert_string_equal(out, texts[i]);
    }
    char out[32];
    store_format_timestamp(-1, out);
    assert_string_equal(out, "1969-12-31T23:59:59.999999");
    store_format_timestamp(timestamp_days_from_civil(1, 1, 1) * 86400 * INT64_C(1000000), out);
    assert_string_equal(out, "0001-01-01T00:00:00");
    /* civil_from_days inverts days_from_civil over years -1..10001, every day */
    int64_t first = timestamp_days_from_civil(-1, 1, 1),
            last = timestamp_days_from_civil(10001, 12, 31);
    for (int64_t days = first; days <= last; days++) {
        int64_t y;
        int m, d;
        timestamp_civil_from_days(days, &y, &m, &d);
        if (timestamp_days_from_civil(y, m, d) != days || m < 1 || m > 12 || d < 1 || d > 31)
            fail_msg("days %lld -> %lld-%d-%d", (long long)days, (long long)y, m, d);
    }
    int64_t y;
    int m, d;
    timestamp_civil_from_days(timestamp_days_from_civil(0, 2, 29), &y, &m, &d);
    assert_true(y == 0 && m == 2 && d == 29);
    timestamp_civil_from_days(timestamp_days_from_civil(9999, 12, 31) + 1, &y, &m, &d);
    assert_true(y == 10000 && m == 1 && d == 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_timestamp_years),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
