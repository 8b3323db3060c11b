/* Unit tests for src/experiments: the cron evaluator (cron.c) and the user-office and
 * Scheduler wire formats and part selection (scheduler.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/cron.h"
#include "experiments/scheduler.h"

static void use_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

static time_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return timegm(&tm);
}

static void fmt_utc(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
}

static void expect_next(const char *expr, time_t after, const char *want)
{
    cron_expr c;
    char err[160] = "";
    assert_int_equal(cron_parse(expr, &c, err, sizeof(err)), 0);
    char got[32];
    fmt_utc(cron_next(&c, after), got);
    if (strcmp(got, want) != 0)
        fail_msg("%s after %lld: got %s, want %s", expr, (long long)after, got, want);
}

static void test_cron_next_utc(void **state)
{
    (void)state;
    use_tz("UTC");
    time_t fri = utc(2026, 11, 27, 2, 41, 30);                 /* a Friday */
    expect_next("0 9 * * 1", fri, "2026-11-30T09:00:00");      /* the default: Monday 9:00 */
    expect_next("0 9 * * mon", fri, "2026-11-30T09:00:00");    /* names */
    expect_next("* * * * *", fri, "2026-11-27T02:42:00");      /* next whole minute */
    expect_next("*/15 * * * *", fri, "2026-11-27T02:45:00");   /* steps */
    expect_next("5-10/2 3 * * *", fri, "2026-11-27T03:05:00"); /* range with step */
    expect_next("0 0 1 jan *", fri, "2027-01-01T00:00:00");    /* month name */
    expect_next("0 12 29 2 *", fri, "2028-02-29T12:00:00");    /* leap day */
    expect_next("30 2 * * 0,7", fri, "2026-11-29T02:30:00");   /* 7 is Sunday too */
    expect_next("0 0 13 * 5", fri, "2026-12-04T00:00:00");     /* either day field */
    expect_next("0 0 1,15 * *", fri, "2026-12-01T00:00:00");   /* lists */
    expect_next("* * * * * */10", fri, "2026-11-27T02:41:40"); /* seconds, croniter-style */
    expect_next("41 2 27 11 *", utc(2026, 11, 27, 2, 41, 0),
                "2027-11-27T02:41:00"); /* strictly after */
    cron_expr c;
    char err[160];
    assert_int_equal(cron_parse("0 0 31 2 *", &c, err, sizeof(err)), 0);
    assert_int_equal(cron_next(&c, fri), -1); /* never */
}

static void test_cron_timezone(void **state)
{
    (void)state;
    /* Monday 9:00 in London is 09:00 UTC in winter and 08:00 UTC in summer. */
    use_tz("Europe/London");
    expect_next("0 9 * * 1", utc(2026, 11, 27, 0, 0, 0), "2026-11-30T09:00:00");
    expect_next("0 9 * * 1", utc(2026, 6, 3, 0, 0, 0), "2026-06-08T08:00:00");
    /* 01:30 does not exist on 2026-03-29 in London (clocks go 01:00 -> 02:00): that
     * occurrence is skipped; the next is 2027-03-29 01:30 BST = 00:30 UTC. */
    expect_next("30 1 29 3 *", utc(2026, 3, 28, 12, 0, 0), "2027-03-29T00:30:00");
    /* the repeated hour on 2026-10-25 (01:00-02:00 twice): the first 01:30 (BST) runs */
    expect_next("30 1 25 10 *", utc(2026, 10, 24, 12, 0, 0), "2026-10-25T00:30:00");
    use_tz("UTC");
}

static void test_cron_errors(void **state)
{
    (void)state;
    struct {
        const char *expr, *want;
    } bad[] = {
        {"", "expected 5 fields, got 0"},
        {"* * * *", "expected 5 fields, got 4"},
        {"* * * * * * *", "expected 5 fields, got more"},
        {"60 * * * *", "minute field: 60 is outside 0-59"},
        {"* 24 * * *", "hour field: 24 is outside 0-23"},
        {"* * 0 * *", "day of month field: 0 is outside 1-31"},
        {"* * * 13 *", "month field: 13 is outside 1-12"},
        {"* * * * 8", "day of week field: 8 is outside 0-7"},
        {"5-1 * * * *", "range 5-1 goes backwards"},
        {"*/0 * * * *", "minute field: cannot read"},
        {"a * * * *", "minute field: cannot read"},
        {"1,,2 * * * *", "minute field: cannot read"},
        {"* * * foo *", "month field: cannot read"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cron_expr c;
        char err[160] = "";
        assert_int_equal(cron_parse(bad[i].expr, &c, err, sizeof(err)), -1);
        if (!strstr(err, bad[i].want))
            fail_msg("\"%s\": got \"%s\", want \"%s\"", bad[i].expr, err, bad[i].want);
    }
}

static void test_login(void **state)
{
    (void)state;
    char *sid = NULL;
    char err[512];
    const char ok[] = "{\"sessionId\": \"abc-123\", \"other\": 1}";
    assert_int_equal(sched_parse_login(201, ok, strlen(ok), &sid, err, sizeof(err)), 0);
    assert_string_equal(sid, "abc-123");
    free(sid);
    assert_int_equal(sched_parse_login(401, "{}", 2, &sid, err, sizeof(err)), -1);
    assert_string_equal(err, "Logging in to retrieve experiments wasn't successful. %s recieved");
    assert_null(sid);
    assert_int_equal(sched_parse_login(201, "{\"x\":1}", 7, &sid, err, sizeof(err)), -1);
    assert_string_equal(err, "Session ID cannot be found from User Office API login endpoint");
    assert_int_equal(sched_parse_login(201, "<html>", 6, &sid, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "Something went wrong when accessing /sessions"));
}

static const char wsdl[] =
    "<?xml version=\"1.0\"?>"
    "<wsdl:definitions xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\" "
    "xmlns:soap=\"http://schemas.xmlsoap.org/wsdl/soap/\" "
    "targetNamespace=\"http://example.test/sched\">"
    "<wsdl:service name=\"S\"><wsdl:port name=\"P\" binding=\"b\">"
    "<soap:address location=\"http://127.0.0.1:9/soap\"/></wsdl:port></wsdl:service>"
    "</wsdl:definitions>";

static void test_wsdl(void **state)
{
    (void)state;
    char *loc, *tns, err[512];
    assert_int_equal(sched_parse_wsdl(wsdl, strlen(wsdl), &loc, &tns, err, sizeof(err)), 0);
    assert_string_equal(loc, "http://127.0.0.1:9/soap");
    assert_string_equal(tns, "http://example.test/sched");
    free(loc);
    free(tns);
    const char noaddr[] = "<definitions targetNamespace=\"x\"/>";
    assert_int_equal(sched_parse_wsdl(noaddr, strlen(noaddr), &loc, &tns, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "the WSDL names no service address"));
    const char broken[] = "<definitions";
    assert_int_equal(sched_parse_wsdl(broken, strlen(broken), &loc, &tns, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "Problem parsing XML during communication with Scheduler: "));
    const char dtd[] = "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY e \"x\">]><definitions/>";
    assert_int_equal(sched_parse_wsdl(dtd, strlen(dtd), &loc, &tns, err, sizeof(err)), -1);
    assert_string_equal(err, "Document Type Declaration error while contacting Scheduler");
}

static void test_requests(void **state)
{
    (void)state;
    char *b = sched_dates_request("urn:t", "s<1>", "Gem&ini", "2019-01-02T00:00:00Z",
                                  "2026-11-30T09:00:00Z");
    assert_non_null(strstr(b, "<ns0:getExperimentDatesForInstrument xmlns:ns0=\"urn:t\">"));
    assert_non_null(strstr(b, "<arg0>s&lt;1&gt;</arg0><arg1>Gem&amp;ini</arg1>"));
    assert_non_null(strstr(b, "<arg2><startDate>2019-01-02T00:00:00Z</startDate>"
                              "<endDate>2026-11-30T09:00:00Z</endDate></arg2>"));
    free(b);
    json_t *pairs = json_pack("[{sIss},{sIss}]", "key", (json_int_t)7, "value", "Gemini", "key",
                              (json_int_t)9, "value", "Gemini");
    b = sched_experiments_request("urn:t", "s", pairs);
    assert_non_null(strstr(b, "<arg1><key>7</key><value>Gemini</value></arg1>"
                              "<arg1><key>9</key><value>Gemini</value></arg1>"));
    free(b);
    json_decref(pairs);
}

#define ENV_OPEN "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body>"
#define ENV_CLOSE "</S:Body></S:Envelope>"

static void test_dates(void **state)
{
    (void)state;
    const char ok[] = ENV_OPEN "<ns2:getExperimentDatesForInstrumentResponse xmlns:ns2=\"urn:t\">"
                               "<return><instrument>Gemini</instrument><part>1</part>"
                               "<rbNumber> 20310000 </rbNumber></return>"
                               "<return><part>2</part><rbNumber>20310000</rbNumber></return>"
                               "</ns2:getExperimentDatesForInstrumentResponse>" ENV_CLOSE;
    json_t *out = NULL;
    char err[512];
    assert_int_equal(sched_parse_dates(200, ok, strlen(ok), &out, err, sizeof(err)), 0);
    char *text = json_dumps(out, JSON_COMPACT);
    assert_string_equal(text, "[{\"rb\":20310000,\"part\":1},{\"rb\":20310000,\"part\":2}]");
    free(text);
    json_decref(out);

    const char fault[] = ENV_OPEN "<S:Fault><faultcode>S:Server</faultcode>"
                                  "<faultstring>Session expired</faultstring></S:Fault>" ENV_CLOSE;
    assert_int_equal(sched_parse_dates(500, fault, strlen(fault), &out, err, sizeof(err)), -1);
    assert_string_equal(err, "Problem processing current Scheduler call "
                             "(getExperimentDatesForInstrument): Session expired");
    const char norb[] = ENV_OPEN "<r><return><part>1</part></return></r>" ENV_CLOSE;
    assert_int_equal(sched_parse_dates(200, norb, strlen(norb), &out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "an experiment date has no rbNumber"));
    const char badrb[] =
        ENV_OPEN "<r><return><part>1</part><rbNumber>x</rbNumber></return></r>" ENV_CLOSE;
    assert_int_equal(sched_parse_dates(200, badrb, strlen(badrb), &out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a non-negative integer"));
    assert_int_equal(sched_parse_dates(200, "oops", 4, &out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "Problem parsing XML during communication with Scheduler"));
    const char http[] = ENV_OPEN "<r/>" ENV_CLOSE;
    assert_int_equal(sched_parse_dates(503, http, strlen(http), &out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "HTTP status 503"));
    assert_null(out);
}

static void test_experiments_and_select(void **state)
{
    (void)state;
    const char ok[] = ENV_OPEN
        "<ns2:getExperimentsResponse xmlns:ns2=\"urn:t\"><return>"
        "<experimentPartList><experimentStartDate>2023-06-05T00:00:00+01:00</experimentStartDate>"
        "<experimentEndDate>2023-06-21T23:59:59Z</experimentEndDate><partNumber>2</partNumber>"
        "<referenceNumber>20310000</referenceNumber><status>Cancelled</status></experimentPartList>"
        "<experimentPartList><experimentStartDate>2023-07-01T08:00:00.000Z</experimentStartDate>"
        "<experimentEndDate>2023-07-02T08:00:00</experimentEndDate><partNumber>2</partNumber>"
        "<referenceNumber>20310000</referenceNumber><status>Published</status></experimentPartList>"
        "<experimentPartList><experimentStartDate>2023-06-05T00:00:00+01:00</experimentStartDate>"
        "<experimentEndDate>2023-06-21T23:59:59Z</experimentEndDate><partNumber>1</partNumber>"
        "<referenceNumber>20310000</referenceNumber><status>Tentative</status></experimentPartList>"
        "<experimentPartList><experimentStartDate>2023-06-05T00:00:00Z</experimentStartDate>"
        "<experimentEndDate>2023-06-06T00:00:00Z</experimentEndDate><partNumber>3</partNumber>"
        "<referenceNumber>20310000</referenceNumber><status>Delivered</status></experimentPartList>"
        "</return></ns2:getExperimentsResponse>" ENV_CLOSE;
    json_t *parts = NULL, *out = NULL;
    char err[512];
    assert_int_equal(sched_parse_experiments(200, ok, strlen(ok), &parts, err, sizeof(err)), 0);
    assert_int_equal(json_array_size(parts), 4);
    json_t *mapping = json_pack("{s[ii]}", "20310000", 1, 2); /* part 3 was not listed */
    assert_int_equal(sched_select(parts, mapping, &out, err, sizeof(err)), 0);
    char *text = json_dumps(out, JSON_COMPACT);
    /* part 1 occurs once: kept whatever its status; part 2: Published beats Cancelled. */
    assert_string_equal(
        text, "[{\"experiment_id\":\"20310000\",\"part\":1,\"start_date\":\"2023-06-04T23:00:00\","
              "\"end_date\":\"2023-06-21T23:59:59\"},"
              "{\"experiment_id\":\"20310000\",\"part\":2,\"start_date\":\"2023-07-01T08:00:00\","
              "\"end_date\":\"2023-07-02T08:00:00\"}]");
    free(text);
    json_decref(out);
    json_decref(mapping);

    mapping = json_pack("{s[i]}", "999", 1);
    assert_int_equal(sched_select(parts, mapping, &out, err, sizeof(err)), -1);
    assert_string_equal(err, "Lookup of part mapping 20310000 failed");
    json_decref(mapping);
    json_decref(parts);

    /* duplicated parts that are all dropped */
    parts = json_pack("[{sisissssss},{sisissssss}]", "rb", 5, "part", 1, "status", "Cancelled",
                      "start_date", "a", "end_date", "b", "rb", 5, "part", 1, "status", "postponed",
                      "start_date", "a", "end_date", "b");
    mapping = json_pack("{s[i]}", "5", 1);
    assert_int_equal(sched_select(parts, mapping, &out, err, sizeof(err)), -1);
    assert_string_equal(
        err, "No experiment parts to choose, likely that duplicate parts are all cancelled");
    json_object_set_new(json_array_get(parts, 1), "status", json_string("Mystery"));
    assert_int_equal(sched_select(parts, mapping, &out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown experiment part status 'Mystery'"));
    json_decref(mapping);
    json_decref(parts);

    const char nodate[] = ENV_OPEN "<r><return><experimentPartList><partNumber>1</partNumber>"
                                   "<referenceNumber>5</referenceNumber><status>Delivered</status>"
                                   "<experimentStartDate>soon</experimentStartDate>"
                                   "<experimentEndDate>2023-01-01T00:00:00Z</experimentEndDate>"
                                   "</experimentPartList></return></r>" ENV_CLOSE;
    assert_int_equal(sched_parse_experiments(200, nodate, strlen(nodate), &parts, err, sizeof(err)),
                     -1);
    assert_non_null(
        strstr(err, "experiment 5 part 1 has a missing or malformed start or end date"));
    const char nostatus[] =
        ENV_OPEN "<r><return><experimentPartList><partNumber>1</partNumber>"
                 "<referenceNumber>5</referenceNumber></experimentPartList></return></r>" ENV_CLOSE;
    assert_int_equal(
        sched_parse_experiments(200, nostatus, strlen(nostatus), &parts, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "lacks an integer referenceNumber or partNumber, or a status"));
    const char empty[] = ENV_OPEN "<r/>" ENV_CLOSE;
    assert_int_equal(sched_parse_experiments(200, empty, strlen(empty), &parts, err, sizeof(err)),
                     0);
    assert_int_equal(json_array_size(parts), 0);
    json_decref(parts);
}

static void test_utc_naive(void **state)
{
    (void)state;
    char out[32];
    assert_true(sched_utc_naive("2023-06-05T00:30:00-02:30", out));
    assert_string_equal(out, "2023-06-05T03:00:00");
    assert_true(sched_utc_naive("2023-12-31T23:59:59.123456Z", out));
    assert_string_equal(out, "2023-12-31T23:59:59");
    assert_false(sched_utc_naive("2023-06-05", out));
    assert_false(sched_utc_naive("2023-06-05T00:00:00+1", out));
    assert_false(sched_utc_naive("2023-06-05T00:00:00 junk", out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cron_next_utc), cmocka_unit_test(test_cron_timezone),
        cmocka_unit_test(test_cron_errors),   cmocka_unit_test(test_login),
        cmocka_unit_test(test_wsdl),          cmocka_unit_test(test_requests),
        cmocka_unit_test(test_dates),         cmocka_unit_test(test_experiments_and_select),
        cmocka_unit_test(test_utc_naive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
