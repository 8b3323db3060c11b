/*
 * test_filter: the Mongo filter -> SQL translator (src/store/filter.c and filter_sql.c),
 * tested by running the emitted SQL.
 *
 * Each test compiles a filter (or sort), splices the fragment into a SELECT over an
 * in-memory SQLite database built here with the store's records/record_channels schema
 * and five records covering numbers, strings, booleans, nulls, missing fields, dates and
 * channels of every data type, binds the parameters, and compares the matching ids (in id
 * order, or in sort order) with the expected list. Compile errors come back as "ERR:<msg>".
 *
 * Records: r1..r5. r4 has nothing but its id. r5 has a channel whose name is an SQL
 * injection attempt, and a metadata key with a quote in it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "store/filter.h"

#define TS_0605_0800 1685952000000000LL
#define TS_0605_0803 1685952180000000LL
#define TS_0606_1200 1686052800000000LL
#define TS_0607_0000 1686096000000000LL

#define EVIL_CHANNEL "x'y\"z) --;DROP TABLE records"

static sqlite3 *db;

static const char *const SCHEMA =
    "CREATE TABLE records(id TEXT PRIMARY KEY, version INTEGER, ts_us INTEGER,"
    " shotnum INTEGER, active_area TEXT, active_experiment TEXT,"
    " epac_ops_data_version TEXT, metadata TEXT);"
    "CREATE TABLE record_channels(record_id TEXT, name TEXT, dtype TEXT, num REAL, str TEXT,"
    " body TEXT, PRIMARY KEY(record_id, name));";

static void exec_sql(const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sql failed: %s: %s", msg ? msg : "?", sql);
}

static void add_record(const char *id, const char *version, const char *ts, const char *shot,
                       const char *area, const char *exp, const char *epac, const char *meta)
{
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db, "INSERT INTO records VALUES(?,?,?,?,?,?,?,?)", -1, &st, NULL),
        SQLITE_OK);
    const char *vals[] = {id, version, ts, shot, area, exp, epac, meta};
    for (int i = 0; i < 8; i++) {
        if (!vals[i])
            sqlite3_bind_null(st, i + 1);
        else if (i == 1 || i == 2 || i == 3)
            sqlite3_bind_int64(st, i + 1, strtoll(vals[i], NULL, 10));
        else
            sqlite3_bind_text(st, i + 1, vals[i], -1, SQLITE_STATIC);
    }
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

/* Adds a channel; num/str are derived from the body's "data" as the store does. */
static void add_channel(const char *id, const char *name, const char *body)
{
    json_error_t je;
    json_t *b = json_loads(body, 0, &je);
    if (!b)
        fail_msg("bad channel body %s: %s", body, je.text);
    json_t *data = json_object_get(b, "data");
    const char *dtype =
        json_string_value(json_object_get(json_object_get(b, "metadata"), "channel_dtype"));
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db, "INSERT INTO record_channels VALUES(?,?,?,?,?,?)", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, dtype ? dtype : "scalar", -1, SQLITE_TRANSIENT);
    if (json_is_number(data))
        sqlite3_bind_double(st, 4, json_number_value(data));
    else
        sqlite3_bind_null(st, 4);
    if (json_is_string(data))
        sqlite3_bind_text(st, 5, json_string_value(data), -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_text(st, 6, body, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    json_decref(b);
}

#define SCALAR(d) "{\"metadata\":{\"channel_dtype\":\"scalar\",\"units\":\"J\"},\"data\":" d "}"

static int setup(void **state)
{
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    exec_sql(SCHEMA);
    add_record("r1", NULL, "1685952000000000", "100", "las", "e1", "1.0",
               "{\"shotnum\":100,\"timestamp\":\"2023-06-05T08:00:00\",\"active_area\":\"las\","
               "\"active_experiment\":\"e1\",\"epac_ops_data_version\":\"1.0\","
               "\"extra\":{\"n\":5,\"s\":\"abc\",\"b\":true,\"z\":null}}");
    add_record("r2", "2", "1685952180000000", "200", "las", NULL, "1.1",
               "{\"shotnum\":200,\"active_area\":\"las\",\"epac_ops_data_version\":\"1.1\","
               "\"extra\":{\"n\":5.0,\"s\":\"abd\",\"b\":false}}");
    add_record("r3", "1", "1686052800000000", NULL, "ea1", "e2", "1.1",
               "{\"active_area\":\"ea1\",\"extra\":{\"n\":\"5\"},\"x y\":{\"q\":1}}");
    add_record("r4", NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    add_record("r5", NULL, "1686096000000000", "300", "las", NULL, "1.1",
               "{\"shotnum\":300,\"extra\":{\"n\":7},\"it's\":\"q\"}");

    add_channel("r1", "A", SCALAR("4.2"));
    add_channel("r1", "B", SCALAR("10"));
    add_channel("r1", "S", SCALAR("\"hello\""));
    add_channel("r1", "N", SCALAR("null"));
    add_channel("r1", "BL", SCALAR("true"));
    add_channel("r1", "IMG",
                "{\"metadata\":{\"channel_dtype\":\"image\",\"exposure_time_s\":0.5},"
                "\"thumbnail\":\"iVBOR\"}");
    add_channel("r1", "SER-209-BI-T-1", SCALAR("20.0"));
    add_channel("r1", "SER-209-BI-RH-1", SCALAR("40"));

    add_channel("r2", "A", SCALAR("10"));
    add_channel("r2", "B", SCALAR("4.2"));
    add_channel("r2", "S", SCALAR("\"world\""));
    add_channel("r2", "BL", SCALAR("false"));
    add_channel("r2", "D", SCALAR("\"2023-06-05T08:00:00\""));
    add_channel("r2", "SER-209-BI-T-1", SCALAR("22.0"));
    add_channel("r2", "SER-209-BI-RH-1", SCALAR("45"));

    add_channel("r3", "A", SCALAR("\"text\""));
    add_channel("r3", "B", SCALAR("null"));
    add_channel("r3", "SER-209-BI-RH-1", SCALAR("50"));

    add_channel("r5", "B", SCALAR("-3"));
    add_channel("r5", EVIL_CHANNEL, SCALAR("1"));
    add_channel("r5", "SER-209-BI-T-1", SCALAR("21.5"));
    *state = NULL;
    return 0;
}

static int teardown(void **state)
{
    sqlite3_close(db);
    db = NULL;
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static char *dupf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    assert_non_null(s);
    return s;
}

/* Runs a prepared fragment (whole statement text) and returns the ids it yields, comma
 * separated. Checks that the statement has exactly as many placeholders as parameters. */
static char *collect(const sql_fragment *q)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, q->text.data, (int)q->text.len, &st, NULL) != SQLITE_OK)
        fail_msg("prepare failed: %s\nSQL: %s", sqlite3_errmsg(db), q->text.data);
    assert_int_equal((size_t)sqlite3_bind_parameter_count(st), q->nparams);
    assert_int_equal(sql_fragment_bind_sqlite(q, st, 1), SQLITE_OK);
    size_t cap = 256, len = 0;
    char *out = calloc(1, cap);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        size_t n = strlen(id);
        if (len + n + 2 > cap) {
            cap = (len + n + 2) * 2;
            out = realloc(out, cap);
        }
        if (len)
            out[len++] = ',';
        memcpy(out + len, id, n + 1);
        len += n;
    }
    if (rc != SQLITE_DONE)
        fail_msg("step failed: %s\nSQL: %s", sqlite3_errmsg(db), q->text.data);
    sqlite3_finalize(st);
    return out;
}

/* Compiles j (borrowed), runs it, returns matching ids or "ERR:<message>". When sql_out is
 * given it receives a copy of the WHERE text. */
static char *run_json(const json_t *j, bool dates, char **sql_out)
{
    filter_t *f = NULL;
    char err[256];
    int rc = filter_compile(j, dates, &f, err, sizeof(err));
    if (rc) {
        assert_true(rc < 0);
        assert_null(f);
        assert_true(err[0] != '\0');
        return dupf("ERR:%s", err);
    }
    sql_fragment where, q;
    sql_fragment_init(&where);
    sql_fragment_init(&q);
    assert_int_equal(filter_emit_sqlite(f, &where), 0);
    filter_free(f);
    if (sql_out)
        *sql_out = strdup(where.text.data);
    buf_puts(&q.text, "SELECT id FROM records r WHERE ");
    assert_int_equal(sql_fragment_append(&q, &where), 0);
    buf_puts(&q.text, " ORDER BY id");
    char *ids = collect(&q);
    sql_fragment_free(&where);
    sql_fragment_free(&q);
    return ids;
}

static char *run_text(const char *json, bool dates)
{
    json_error_t je;
    json_t *j = json_loads(json, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
    if (!j)
        fail_msg("bad test JSON %s: %s", json, je.text);
    char *ids = run_json(j, dates, NULL);
    json_decref(j);
    return ids;
}

static void expect_impl(const char *json, bool dates, const char *want, int line)
{
    char *got = run_text(json, dates);
    if (strcmp(got, want) != 0)
        fail_msg("line %d: filter %s (dates %s)\n   got: %s\n  want: %s", line, json,
                 dates ? "on" : "off", got, want);
    free(got);
}

/* EXPECT: date conversion on (as /records does); EXPECT_ND: off. */
#define EXPECT(json, want) expect_impl(json, true, want, __LINE__)
#define EXPECT_ND(json, want) expect_impl(json, false, want, __LINE__)

static void expect_err_impl(const char *json, const char *needle, int line)
{
    char *got = run_text(json, true);
    if (strncmp(got, "ERR:", 4) != 0 || !strstr(got, needle))
        fail_msg("line %d: filter %s\n   got: %s\n  want an error containing: %s", line, json, got,
                 needle);
    free(got);
}
#define EXPECT_ERR(json, needle) expect_err_impl(json, needle, __LINE__)

static const char *ALL = "r1,r2,r3,r4,r5";

static void assert_table_intact(void)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM records", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 5);
    sqlite3_finalize(st);
}

/* ---------------------------------------------------------------- equality */

static void test_equality(void **state)
{
    EXPECT("{}", ALL);
    EXPECT("{\"_id\": \"r1\"}", "r1");
    EXPECT("{\"_id\": {\"$eq\": \"r3\"}}", "r3");
    EXPECT("{\"_id\": 1}", "");
    EXPECT("{\"metadata.shotnum\": 100}", "r1");
    EXPECT("{\"metadata.shotnum\": 100.0}", "r1");
    /* SQLite affinity would turn '100' into 100: a string never equals a number. */
    EXPECT("{\"metadata.shotnum\": \"100\"}", "");
    EXPECT("{\"metadata.shotnum\": true}", "");
    EXPECT("{\"metadata.active_area\": \"las\"}", "r1,r2,r5");
    EXPECT("{\"metadata.active_area\": 5}", "");
    EXPECT("{\"metadata.epac_ops_data_version\": \"1.1\"}", "r2,r3,r5");
    EXPECT("{\"metadata.epac_ops_data_version\": 1.1}", "");
    EXPECT("{\"version\": 2}", "r2");
    EXPECT("{\"version\": \"2\"}", "");
    /* Several fields in one document: AND. */
    EXPECT("{\"metadata.active_area\": \"las\", \"metadata.shotnum\": 200}", "r2");
    EXPECT("{\"metadata.active_area\": \"las\", \"version\": 1}", "");
    /* JSON metadata: numbers across int/real, strings, booleans. */
    EXPECT("{\"metadata.extra.n\": 5}", "r1,r2");
    EXPECT("{\"metadata.extra.n\": 5.0}", "r1,r2");
    EXPECT("{\"metadata.extra.n\": \"5\"}", "r3");
    EXPECT("{\"metadata.extra.s\": \"abc\"}", "r1");
    EXPECT("{\"metadata.extra.b\": true}", "r1");
    EXPECT("{\"metadata.extra.b\": false}", "r2");
    EXPECT("{\"metadata.extra.b\": 1}", "");
    EXPECT("{\"metadata.x y.q\": 1}", "r3");
    /* Channels: numbers through num, strings through str, booleans through the body. */
    EXPECT("{\"channels.A.data\": 10}", "r2");
    EXPECT("{\"channels.A.data\": 4.2}", "r1");
    EXPECT("{\"channels.B.data\": 10.0}", "r1");
    EXPECT("{\"channels.A.data\": \"text\"}", "r3");
    EXPECT("{\"channels.A.data\": \"10\"}", "");
    EXPECT("{\"channels.S.data\": \"hello\"}", "r1");
    EXPECT("{\"channels.BL.data\": true}", "r1");
    EXPECT("{\"channels.BL.data\": false}", "r2");
    EXPECT("{\"channels.BL.data\": 1}", "");
    EXPECT("{\"channels.B.data\": 0}", "");
    EXPECT("{\"channels.A.metadata.units\": \"J\"}", "r1,r2,r3");
    EXPECT("{\"channels.IMG.metadata.channel_dtype\": \"image\"}", "r1");
    EXPECT("{\"channels.IMG.metadata.exposure_time_s\": 0.5}", "r1");
    EXPECT("{\"channels.A.data.x\": 1}", "");
    /* Unknown top-level fields and sub-fields of scalars are always missing. */
    EXPECT("{\"foo\": 1}", "");
    EXPECT("{\"foo.bar\": \"x\"}", "");
    EXPECT("{\"metadata.shotnum.x\": 100}", "");
    EXPECT("{\"_id.x\": \"r1\"}", "");
}

/* ---------------------------------------------------------------- null and missing */

static void test_null_and_missing(void **state)
{
    EXPECT("{\"metadata.shotnum\": null}", "r3,r4");
    EXPECT("{\"metadata.shotnum\": {\"$eq\": null}}", "r3,r4");
    EXPECT("{\"metadata.shotnum\": {\"$ne\": null}}", "r1,r2,r5");
    EXPECT("{\"metadata.active_experiment\": null}", "r2,r4,r5");
    EXPECT("{\"metadata.timestamp\": null}", "r4");
    EXPECT("{\"version\": null}", "r1,r4,r5");
    EXPECT("{\"_id\": null}", "");
    EXPECT("{\"_id\": {\"$ne\": null}}", ALL);
    EXPECT("{\"metadata.extra.z\": null}", ALL); /* null in r1, missing elsewhere */
    EXPECT("{\"metadata.extra.z\": {\"$exists\": true}}", "r1");
    EXPECT("{\"metadata.extra.b\": null}", "r3,r4,r5");
    EXPECT("{\"metadata.extra.b\": {\"$ne\": null}}", "r1,r2");
    EXPECT("{\"channels.N.data\": null}", ALL);
    EXPECT("{\"channels.N.data\": {\"$exists\": true}}", "r1");
    EXPECT("{\"channels.N.data\": {\"$ne\": null}}", "");
    EXPECT("{\"channels.B.data\": null}", "r3,r4");
    EXPECT("{\"channels.B.data\": {\"$ne\": null}}", "r1,r2,r5");
    EXPECT("{\"channels.IMG.data\": null}", ALL);
    EXPECT("{\"channels.IMG\": null}", "r2,r3,r4,r5");
    EXPECT("{\"channels.IMG\": {\"$ne\": null}}", "r1");
    EXPECT("{\"metadata\": null}", "r4");
    EXPECT("{\"foo\": null}", ALL);
    EXPECT("{\"foo\": {\"$ne\": null}}", "");
    /* $gte/$lte null are "null or missing"; $gt/$lt null match nothing. */
    EXPECT("{\"metadata.shotnum\": {\"$gte\": null}}", "r3,r4");
    EXPECT("{\"metadata.shotnum\": {\"$lte\": null}}", "r3,r4");
    EXPECT("{\"metadata.shotnum\": {\"$gt\": null}}", "");
    EXPECT("{\"metadata.shotnum\": {\"$lt\": null}}", "");
    EXPECT("{\"channels.B.data\": {\"$gte\": null}}", "r3,r4");
    EXPECT("{\"metadata.shotnum\": {\"$not\": {\"$gt\": null}}}", ALL);
}

/* ---------------------------------------------------------------- negation on missing */

static void test_negation_matches_missing(void **state)
{
    EXPECT("{\"metadata.shotnum\": {\"$ne\": 100}}", "r2,r3,r4,r5");
    EXPECT("{\"channels.A.data\": {\"$ne\": 10}}", "r1,r3,r4,r5");
    EXPECT("{\"channels.A.data\": {\"$nin\": [10, 4.2]}}", "r3,r4,r5");
    EXPECT("{\"channels.A.data\": {\"$not\": {\"$gt\": 5}}}", "r1,r3,r4,r5");
    EXPECT("{\"metadata.extra.n\": {\"$not\": {\"$gte\": 5}}}", "r3,r4");
    EXPECT("{\"metadata.active_area\": {\"$ne\": \"las\"}}", "r3,r4");
    EXPECT("{\"metadata.timestamp\": {\"$not\": {\"$lt\": \"2023-06-06T00:00:00\"}}}", "r3,r4,r5");
    EXPECT("{\"version\": {\"$nin\": [1, 2]}}", "r1,r4,r5");
    EXPECT("{\"channels.BL.data\": {\"$ne\": true}}", "r2,r3,r4,r5");
    EXPECT("{\"foo\": {\"$ne\": 1}}", ALL);
    EXPECT("{\"foo\": {\"$nin\": [1, \"a\"]}}", ALL);
    EXPECT("{\"metadata.shotnum\": {\"$exists\": false}}", "r3,r4");
    EXPECT("{\"channels.A\": {\"$exists\": false}}", "r4,r5");
    /* Double negation. */
    EXPECT("{\"channels.A.data\": {\"$not\": {\"$ne\": 10}}}", "r2");
    EXPECT("{\"channels.A.data\": {\"$not\": {\"$not\": {\"$gt\": 5}}}}", "r2");
    /* Several operators under one $not: NOT (a AND b). */
    EXPECT("{\"metadata.shotnum\": {\"$not\": {\"$gt\": 150, \"$lt\": 250}}}", "r1,r3,r4,r5");
}

/* ---------------------------------------------------------------- ranges */

static void test_ranges_and_type_bracketing(void **state)
{
    EXPECT("{\"channels.A.data\": {\"$gt\": 5}}", "r2");
    EXPECT("{\"channels.A.data\": {\"$gte\": 4.2}}", "r1,r2");
    EXPECT("{\"channels.A.data\": {\"$lt\": 100}}", "r1,r2");
    EXPECT("{\"channels.A.data\": {\"$lt\": \"z\"}}", "r3");
    EXPECT("{\"channels.A.data\": {\"$gt\": \"\"}}", "r3");
    EXPECT("{\"channels.B.data\": {\"$lt\": 10}}", "r2,r5");
    EXPECT("{\"channels.B.data\": {\"$lte\": 10}}", "r1,r2,r5");
    EXPECT("{\"channels.B.data\": {\"$gt\": -3.5, \"$lt\": 5}}", "r2,r5");
    EXPECT("{\"channels.S.data\": {\"$gt\": \"hello\"}}", "r2");
    EXPECT("{\"channels.S.data\": {\"$gte\": \"hello\"}}", "r1,r2");
    EXPECT("{\"metadata.shotnum\": {\"$gt\": 100}}", "r2,r5");
    EXPECT("{\"metadata.shotnum\": {\"$gte\": 100, \"$lte\": 200}}", "r1,r2");
    EXPECT("{\"metadata.shotnum\": {\"$gt\": \"1\"}}", "");
    EXPECT("{\"metadata.shotnum\": {\"$lt\": \"999\"}}", "");
    EXPECT("{\"metadata.shotnum\": {\"$lt\": 150.5}}", "r1");
    EXPECT("{\"metadata.extra.n\": {\"$gte\": 5}}", "r1,r2,r5");
    EXPECT("{\"metadata.extra.n\": {\"$gt\": 5}}", "r5");
    EXPECT("{\"metadata.extra.n\": {\"$gte\": \"0\"}}", "r3");
    EXPECT("{\"metadata.extra.s\": {\"$gt\": \"abc\"}}", "r2");
    EXPECT("{\"metadata.extra.s\": {\"$gt\": 0}}", "");
    EXPECT("{\"metadata.active_area\": {\"$gt\": \"f\"}}", "r1,r2,r5");
    EXPECT("{\"metadata.active_area\": {\"$lt\": \"las\"}}", "r3");
    EXPECT("{\"_id\": {\"$gt\": \"r3\"}}", "r4,r5");
    EXPECT("{\"_id\": {\"$lte\": \"r2\"}}", "r1,r2");
    EXPECT("{\"version\": {\"$gte\": 1}}", "r2,r3");
    /* Booleans bracket with booleans: false < true. */
    EXPECT("{\"metadata.extra.b\": {\"$gt\": false}}", "r1");
    EXPECT("{\"metadata.extra.b\": {\"$gte\": false}}", "r1,r2");
    EXPECT("{\"metadata.extra.b\": {\"$lte\": true}}", "r1,r2");
    EXPECT("{\"metadata.extra.b\": {\"$lt\": true}}", "r2");
    EXPECT("{\"metadata.extra.b\": {\"$lt\": false}}", "");
    EXPECT("{\"metadata.extra.b\": {\"$gt\": true}}", "");
    EXPECT("{\"metadata.extra.b\": {\"$gt\": 0}}", "");
    EXPECT("{\"channels.BL.data\": {\"$gte\": false}}", "r1,r2");
    EXPECT("{\"channels.BL.data\": {\"$lt\": true}}", "r2");
    /* Strings order by UTF-8 bytes. */
    EXPECT("{\"channels.S.data\": {\"$lt\": \"\\u00e9\"}}", "r1,r2");
}

/* ---------------------------------------------------------------- $in */

static void test_in(void **state)
{
    EXPECT("{\"_id\": {\"$in\": [\"r1\", \"r3\"]}}", "r1,r3");
    EXPECT("{\"_id\": {\"$in\": [\"r2\"]}}", "r2");
    EXPECT("{\"_id\": {\"$in\": []}}", "");
    EXPECT("{\"_id\": {\"$nin\": []}}", ALL);
    EXPECT("{\"_id\": {\"$nin\": [\"r1\", \"r3\"]}}", "r2,r4,r5");
    EXPECT("{\"metadata.shotnum\": {\"$in\": [100, 300, \"200\"]}}", "r1,r5");
    EXPECT("{\"metadata.shotnum\": {\"$in\": [null, 200]}}", "r2,r3,r4");
    EXPECT("{\"metadata.shotnum\": {\"$nin\": [null, 200]}}", "r1,r5");
    EXPECT("{\"channels.A.data\": {\"$in\": [10, \"text\"]}}", "r2,r3");
    EXPECT("{\"channels.A.data\": {\"$in\": [4.2, 10.0]}}", "r1,r2");
    EXPECT("{\"channels.BL.data\": {\"$in\": [false, 7]}}", "r2");
    EXPECT("{\"channels.BL.data\": {\"$in\": [false, true]}}", "r1,r2");
    EXPECT("{\"metadata.extra.b\": {\"$in\": [false]}}", "r2");
    EXPECT("{\"metadata.extra.n\": {\"$in\": [5, \"5\"]}}", "r1,r2,r3");
    EXPECT("{\"metadata.extra.n\": {\"$in\": [7, 8, 9]}}", "r5");
    EXPECT("{\"metadata.active_area\": {\"$in\": [\"ea1\", \"nope\", 3]}}", "r3");
    EXPECT("{\"foo\": {\"$in\": [null]}}", ALL);
    EXPECT("{\"channels.IMG\": {\"$in\": [null]}}", "r2,r3,r4,r5");
    EXPECT_ERR("{\"_id\": {\"$in\": \"r1\"}}", "$in needs an array");
    EXPECT_ERR("{\"_id\": {\"$nin\": {\"a\": 1}}}", "$nin needs an array");
    EXPECT_ERR("{\"_id\": {\"$in\": [{\"a\": 1}]}}", "unsupported");
    EXPECT_ERR("{\"_id\": {\"$in\": [[1]]}}", "unsupported");
}

/* ---------------------------------------------------------------- $exists */

static void test_exists(void **state)
{
    EXPECT("{\"metadata.shotnum\": {\"$exists\": true}}", "r1,r2,r5");
    EXPECT("{\"metadata.shotnum\": {\"$exists\": 1}}", "r1,r2,r5");
    EXPECT("{\"metadata.shotnum\": {\"$exists\": \"yes\"}}", "r1,r2,r5");
    EXPECT("{\"metadata.shotnum\": {\"$exists\": 0}}", "r3,r4");
    EXPECT("{\"metadata.shotnum\": {\"$exists\": 0.0}}", "r3,r4");
    EXPECT("{\"metadata.shotnum\": {\"$exists\": null}}", "r3,r4");
    EXPECT("{\"metadata.timestamp\": {\"$exists\": true}}", "r1,r2,r3,r5");
    EXPECT("{\"metadata.active_experiment\": {\"$exists\": true}}", "r1,r3");
    EXPECT("{\"metadata.extra\": {\"$exists\": true}}", "r1,r2,r3,r5");
    EXPECT("{\"metadata.extra.s\": {\"$exists\": true}}", "r1,r2");
    EXPECT("{\"metadata\": {\"$exists\": true}}", "r1,r2,r3,r5");
    EXPECT("{\"metadata\": {\"$exists\": false}}", "r4");
    EXPECT("{\"channels\": {\"$exists\": true}}", "r1,r2,r3,r5");
    EXPECT("{\"channels\": {\"$exists\": false}}", "r4");
    EXPECT("{\"channels.IMG\": {\"$exists\": true}}", "r1");
    EXPECT("{\"channels.IMG.data\": {\"$exists\": true}}", "");
    EXPECT("{\"channels.IMG.thumbnail\": {\"$exists\": true}}", "r1");
    EXPECT("{\"channels.B.data\": {\"$exists\": true}}", "r1,r2,r3,r5");
    EXPECT("{\"channels.B\": {\"$exists\": true}}", "r1,r2,r3,r5");
    EXPECT("{\"version\": {\"$exists\": true}}", "r2,r3");
    EXPECT("{\"_id\": {\"$exists\": true}}", ALL);
    EXPECT("{\"_id\": {\"$exists\": false}}", "");
    EXPECT("{\"foo\": {\"$exists\": false}}", ALL);
    EXPECT("{\"foo\": {\"$exists\": true}}", "");
    EXPECT("{\"channels.NOPE\": {\"$exists\": true}}", "");

    /* An $or of channel existence tests (the frontend's projection list) is one subquery. */
    json_t *j =
        json_loads("{\"$or\": [{\"$or\": [{\"channels.A\": {\"$exists\": true}}, "
                   "{\"channels.IMG\": {\"$exists\": 1}}]}, {\"channels.D\": {\"$ne\": null}}, "
                   "{\"_id\": \"r4\"}, {\"channels.NOPE\": {\"$exists\": true}}]}",
                   0, NULL);
    assert_non_null(j);
    char *sql = NULL;
    char *got = run_json(j, true, &sql);
    json_decref(j);
    assert_string_equal(got, "r1,r2,r3,r4");
    const char *first = strstr(sql, "record_channels");
    assert_non_null(first);
    assert_null(strstr(first + 1, "record_channels"));
    free(sql);
    free(got);
}

/* ---------------------------------------------------------------- $and $or $nor $not */

static void test_logical(void **state)
{
    EXPECT("{\"$and\": [{\"metadata.active_area\": \"las\"}, {\"channels.A.data\": {\"$gt\": 5}}]}",
           "r2");
    EXPECT("{\"$or\": [{\"_id\": \"r1\"}, {\"channels.B.data\": -3}]}", "r1,r5");
    EXPECT("{\"$nor\": [{\"_id\": \"r1\"}, {\"channels.B.data\": -3}]}", "r2,r3,r4");
    EXPECT("{\"$or\": [{\"$and\": [{\"_id\": \"r1\"}, {\"version\": null}]}, "
           "{\"$nor\": [{\"metadata\": {\"$exists\": true}}]}]}",
           "r1,r4");
    EXPECT("{\"$and\": [{}]}", ALL);
    EXPECT("{\"$or\": [{}, {\"_id\": \"r1\"}]}", ALL);
    EXPECT("{\"$nor\": [{}]}", "");
    EXPECT("{\"$and\": [{\"_id\": \"r1\"}], \"$or\": [{\"_id\": \"r1\"}, {\"_id\": \"r2\"}]}",
           "r1");
    EXPECT("{\"$comment\": \"ignored\", \"_id\": \"r2\"}", "r2");
    EXPECT_ERR("{\"$and\": []}", "$and must be a nonempty array");
    EXPECT_ERR("{\"$or\": {}}", "$or must be a nonempty array");
    EXPECT_ERR("{\"$nor\": \"x\"}", "$nor must be a nonempty array");
    EXPECT_ERR("{\"$and\": [1]}", "$and entries must be");
    EXPECT_ERR("{\"a\": {\"$not\": 5}}", "$not needs a non-empty operator document");
    EXPECT_ERR("{\"a\": {\"$not\": {}}}", "$not needs a non-empty operator document");
    EXPECT_ERR("{\"a\": {\"$not\": {\"b\": 1}}}", "$not needs a non-empty operator document");
    EXPECT_ERR("{\"a\": {\"$not\": {\"$gt\": 1, \"b\": 1}}}", "$not needs");
    EXPECT_ERR("{\"a\": {\"$not\": {\"$bogus\": 1}}}", "unknown operator: $bogus");
}

/* ---------------------------------------------------------------- $expr */

static void test_expr(void **state)
{
    /* r1: A 4.2 B 10; r2: A 10 B 4.2; r3: A "text" B null; r4: none; r5: B -3. */
    EXPECT("{\"$expr\": {\"$gt\": [\"$channels.A.data\", \"$channels.B.data\"]}}", "r2,r3");
    EXPECT("{\"$expr\": {\"$not\": {\"$gt\": [\"$channels.A.data\", \"$channels.B.data\"]}}}",
           "r1,r4,r5");
    EXPECT("{\"$expr\": {\"$not\": [{\"$gt\": [\"$channels.A.data\", \"$channels.B.data\"]}]}}",
           "r1,r4,r5");
    EXPECT("{\"$expr\": {\"$lt\": [\"$channels.A.data\", \"$channels.B.data\"]}}", "r1,r5");
    EXPECT("{\"$expr\": {\"$lte\": [\"$channels.A.data\", \"$channels.B.data\"]}}", "r1,r4,r5");
    EXPECT("{\"$expr\": {\"$gte\": [\"$channels.A.data\", \"$channels.B.data\"]}}", "r2,r3,r4");
    EXPECT("{\"$expr\": {\"$eq\": [\"$channels.A.data\", \"$channels.B.data\"]}}", "r4");
    EXPECT("{\"$expr\": {\"$ne\": [\"$channels.A.data\", \"$channels.B.data\"]}}", "r1,r2,r3,r5");
    /* Missing equals missing, not null; missing sorts below null. */
    EXPECT("{\"$expr\": {\"$eq\": [\"$channels.A.data\", \"$channels.Z.data\"]}}", "r4,r5");
    EXPECT("{\"$expr\": {\"$eq\": [\"$channels.Z.data\", null]}}", "");
    EXPECT("{\"$expr\": {\"$lt\": [\"$channels.Z.data\", null]}}", ALL);
    EXPECT("{\"$expr\": {\"$eq\": [\"$channels.B.data\", null]}}", "r3");
    EXPECT("{\"$expr\": {\"$eq\": [null, null]}}", ALL);
    EXPECT("{\"$expr\": {\"$eq\": [\"$channels.A.data\", 10]}}", "r2");
    EXPECT("{\"$expr\": {\"$eq\": [\"$channels.A.data\", 10.0]}}", "r2");
    EXPECT("{\"$expr\": {\"$ne\": [\"$channels.A.data\", 10]}}", "r1,r3,r4,r5");
    EXPECT("{\"$expr\": {\"$gte\": [\"$metadata.shotnum\", 200]}}", "r2,r5");
    /* Across types: numbers < strings < booleans < dates; missing below all. */
    EXPECT("{\"$expr\": {\"$lt\": [\"$metadata.shotnum\", \"a\"]}}", ALL);
    EXPECT("{\"$expr\": {\"$gt\": [\"$metadata.shotnum\", \"a\"]}}", "");
    EXPECT("{\"$expr\": {\"$lt\": [\"$metadata.timestamp\", true]}}", "r4");
    EXPECT("{\"$expr\": {\"$gt\": [\"$channels.BL.data\", 1000]}}", "r1,r2");
    EXPECT("{\"$expr\": {\"$gt\": [\"$channels.BL.data\", false]}}", "r1");
    EXPECT("{\"$expr\": {\"$lt\": [\"$channels.B.data\", \"$metadata.shotnum\"]}}", "r1,r2,r5");
    EXPECT("{\"$expr\": {\"$gt\": [\"$metadata.extra.n\", 4]}}", "r1,r2,r3,r5");
    EXPECT("{\"$expr\": {\"$eq\": [\"$metadata.extra.n\", \"$metadata.shotnum\"]}}", "r4");
    EXPECT("{\"$expr\": {\"$eq\": [\"$_id\", \"r3\"]}}", "r3");
    EXPECT("{\"$expr\": {\"$gt\": [\"$version\", 1]}}", "r2");
    EXPECT("{\"$expr\": {\"$eq\": [\"$foo\", \"$bar\"]}}", ALL);
    EXPECT("{\"$expr\": {\"$eq\": [\"$metadata.active_area\", {\"$literal\": \"las\"}]}}",
           "r1,r2,r5");
    /* $literal's value is an object entry, so it is date-converted. */
    EXPECT("{\"$expr\": {\"$gte\": [\"$metadata.timestamp\", "
           "{\"$literal\": \"2023-06-06T00:00:00\"}]}}",
           "r3,r5");
    EXPECT("{\"$expr\": {\"$and\": [{\"$eq\": [\"$metadata.active_area\", \"las\"]}, "
           "{\"$gt\": [\"$metadata.shotnum\", 150]}]}}",
           "r2,r5");
    EXPECT("{\"$expr\": {\"$or\": [{\"$eq\": [\"$_id\", \"r1\"]}, "
           "{\"$lt\": [\"$channels.B.data\", 0]}]}}",
           "r1,r3,r4,r5");
    EXPECT("{\"$expr\": {\"$and\": []}}", ALL);
    EXPECT("{\"$expr\": {\"$or\": []}}", "");
    /* Truthiness of a bare operand. */
    EXPECT("{\"$expr\": \"$channels.BL.data\"}", "r1");
    EXPECT("{\"$expr\": \"$channels.B.data\"}", "r1,r2,r5");
    EXPECT("{\"$expr\": \"$metadata.active_area\"}", "r1,r2,r3,r5");
    EXPECT("{\"$expr\": true}", ALL);
    EXPECT("{\"$expr\": 0}", "");
    EXPECT("{\"$and\": [{\"$expr\": {\"$eq\": [\"$_id\", \"r1\"]}}, {\"_id\": \"r1\"}]}", "r1");
    /* Strings in $expr arrays are not dates. */
    EXPECT("{\"$expr\": {\"$eq\": [\"$channels.D.data\", \"2023-06-05T08:00:00\"]}}", "r2");
    EXPECT("{\"$expr\": {\"$lt\": [\"$metadata.timestamp\", \"2023-06-06T00:00:00\"]}}", "r4");

    EXPECT_ERR("{\"$expr\": {\"$add\": [1, 2]}}", "operator $add is not supported");
    EXPECT_ERR("{\"$expr\": {\"$gt\": [\"$a\"]}}", "exactly two operands");
    EXPECT_ERR("{\"$expr\": {\"$gt\": \"$a\"}}", "exactly two operands");
    EXPECT_ERR("{\"$expr\": {\"$eq\": [\"$$ROOT\", 1]}}", "variables");
    EXPECT_ERR("{\"$expr\": {\"$eq\": [\"$channels.A\", 1]}}", "whole channel");
    EXPECT_ERR("{\"$expr\": {\"$eq\": [\"$metadata\", 1]}}", "not supported");
    EXPECT_ERR("{\"$expr\": {\"$eq\": [{\"a\": 1}, 1]}}", "not supported");
    EXPECT_ERR("{\"$expr\": {\"$eq\": [{\"$add\": [1, 1]}, 2]}}", "$add");
    EXPECT_ERR("{\"$expr\": {\"$eq\": [\"$a..b\", 1]}}", "empty field name");
    EXPECT_ERR("{\"$expr\": {\"$not\": [1, 2]}}", "exactly one argument");
    EXPECT_ERR("{\"$expr\": {\"$eq\": [1, 1], \"$gt\": [1, 1]}}", "exactly one operator");
    EXPECT_ERR("{\"a\": {\"$expr\": {\"$eq\": [1, 1]}}}", "unknown operator: $expr");
}

/* ---------------------------------------------------------------- dates */

static void test_parse_datetime(void **state)
{
    struct {
        const char *s;
        int ok;
        long long us;
    } cases[] = {
        {"2023-06-05T08:00:00", 1, TS_0605_0800},
        {"2023-6-5T8:0:0", 1, TS_0605_0800},
        {"2023-06-5T08:0:00", 1, TS_0605_0800},
        {"2023-06- 5T08:00:00", 1, TS_0605_0800},
        {"2023-06-05t08:00:00", 1, TS_0605_0800},
        {"2023-06-05T08:03:00", 1, TS_0605_0803},
        {"1970-01-01T00:00:00", 1, 0},
        {"1969-12-31T23:59:59", 1, -1000000},
        {"2024-02-29T23:59:59", 1, 1709251199000000LL},
        {"0001-01-01T00:00:00", 1, -62135596800000000LL},
        {"9999-12-31T23:59:59", 1, 253402300799000000LL},
        {"2023-02-29T00:00:00", 0, 0},
        {"2100-02-29T00:00:00", 0, 0},
        {"2023-04-31T00:00:00", 0, 0},
        {"2023-13-01T00:00:00", 0, 0},
        {"2023-00-01T00:00:00", 0, 0},
        {"2023-01-00T00:00:00", 0, 0},
        {"2023-01-32T00:00:00", 0, 0},
        {"2023-06-005T08:00:00", 0, 0},
        {"2023-06-05T24:00:00", 0, 0},
        {"2023-06-05T008:00:00", 0, 0},
        {"2023-06-05T23:60:00", 0, 0},
        {"2023-06-05T23:59:60", 0, 0},
        {"2023-06-05T23:59:61", 0, 0},
        {"0000-01-01T00:00:00", 0, 0},
        {"2023-06-05T08:00:00.5", 0, 0},
        {"2023-06-05T08:00:00.000000", 0, 0},
        {"2023-06-05T08:00:00Z", 0, 0},
        {"2023-06-05T08:00:00+00:00", 0, 0},
        {"2023-06-05T08:00:00 ", 0, 0},
        {" 2023-06-05T08:00:00", 0, 0},
        {"2023-06-05 08:00:00", 0, 0},
        {"2023-06-05T08:00", 0, 0},
        {"23-06-05T08:00:00", 0, 0},
        {"02023-06-05T08:00:00", 0, 0},
        {"2023-06-05", 0, 0},
        {"", 0, 0},
        {"2023-06-15 T08:00:00", 0, 0},
        {"2023-06- 15T08:00:00", 0, 0},
        {"+023-06-05T08:00:00", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t us = 12345;
        int rc = filter_parse_datetime(cases[i].s, &us);
        if (cases[i].ok) {
            if (rc != 0 || us != cases[i].us)
                fail_msg("\"%s\": rc %d us %lld, want %lld", cases[i].s, rc, (long long)us,
                         cases[i].us);
        } else if (rc == 0) {
            fail_msg("\"%s\" should not parse", cases[i].s);
        }
    }
}

static void test_date_conversion(void **state)
{
    /* The frontend's range, padded. */
    EXPECT("{\"metadata.timestamp\": {\"$gte\": \"2023-06-05T08:00:00\", "
           "\"$lte\": \"2023-06-05T08:03:00\"}}",
           "r1,r2");
    EXPECT("{\"metadata.timestamp\": \"2023-06-05T08:00:00\"}", "r1");
    EXPECT("{\"metadata.timestamp\": {\"$eq\": \"2023-6-5T8:0:0\"}}", "r1");
    EXPECT("{\"metadata.timestamp\": {\"$gt\": \"2023-6-5T8:0:0\"}}", "r2,r3,r5");
    EXPECT("{\"metadata.timestamp\": {\"$ne\": \"2023-06-05T08:00:00\"}}", "r2,r3,r4,r5");
    /* Not dates: fraction, Z, offset. A string never matches the date-typed field. */
    EXPECT("{\"metadata.timestamp\": \"2023-06-05T08:00:00.000\"}", "");
    EXPECT("{\"metadata.timestamp\": {\"$gte\": \"2023-06-05T08:00:00Z\"}}", "");
    EXPECT("{\"metadata.timestamp\": {\"$lt\": \"2023-06-05T08:00:00+00:00\"}}", "");
    /* Direct array elements are not converted... */
    EXPECT("{\"metadata.timestamp\": {\"$in\": [\"2023-06-05T08:00:00\"]}}", "");
    EXPECT("{\"metadata.timestamp\": {\"$nin\": [\"2023-06-05T08:00:00\"]}}", ALL);
    EXPECT("{\"channels.D.data\": {\"$in\": [\"2023-06-05T08:00:00\"]}}", "r2");
    /* ...but object entries inside arrays are. */
    EXPECT("{\"$and\": [{\"metadata.timestamp\": {\"$lt\": \"2023-06-06T00:00:00\"}}]}", "r1,r2");
    EXPECT("{\"$or\": [{\"metadata.timestamp\": \"2023-06-07T00:00:00\"}, {\"_id\": \"r1\"}]}",
           "r1,r5");
    EXPECT("{\"metadata.timestamp\": {\"$not\": {\"$gte\": \"2023-06-06T00:00:00\"}}}", "r1,r2,r4");
    /* A converted date never matches a field that is not date-typed. */
    EXPECT("{\"channels.D.data\": \"2023-06-05T08:00:00\"}", "");
    EXPECT("{\"channels.D.data\": {\"$ne\": \"2023-06-05T08:00:00\"}}", ALL);
    EXPECT("{\"metadata.active_area\": {\"$gt\": \"2023-06-05T08:00:00\"}}", "");
    EXPECT("{\"_id\": \"2023-06-05T08:00:00\"}", "");
    /* Without conversion the field is compared with a string: nothing matches it. */
    EXPECT_ND("{\"metadata.timestamp\": \"2023-06-05T08:00:00\"}", "");
    EXPECT_ND("{\"metadata.timestamp\": {\"$gte\": \"2023-06-04T00:00:00\"}}", "");
    EXPECT_ND("{\"metadata.timestamp\": {\"$ne\": \"2023-06-05T08:00:00\"}}", ALL);
    EXPECT_ND("{\"channels.D.data\": \"2023-06-05T08:00:00\"}", "r2");
    /* Numbers against the date field never match. */
    EXPECT("{\"metadata.timestamp\": 1685952000000000}", "");
    EXPECT("{\"metadata.timestamp\": {\"$gt\": 0}}", "");
}

/* ---------------------------------------------------------------- frontend examples */

static void test_frontend_examples(void **state)
{
    const char *exists_or = "\"$or\": [{\"channels.SER-209-BI-T-1\": {\"$exists\": true}},"
                            " {\"channels.SER-209-BI-RH-1\": {\"$exists\": true}}]";
    char *q;

    /* Date range + projection $or (captured from the browser). */
    q = dupf("{\"$and\": [{\"metadata.timestamp\": {\"$gte\": \"2023-06-04T00:00:00\", "
             "\"$lte\": \"2023-06-05T08:00:59\"}}], %s}",
             exists_or);
    EXPECT(q, "r1");
    free(q);
    /* With filters: RH < 42 and not (T > 21.5). */
    q = dupf("{\"$and\": [{\"metadata.timestamp\": {\"$gte\": \"2023-06-04T00:00:00\", "
             "\"$lte\": \"2023-06-07T00:00:59\"}}, {\"$and\": ["
             "{\"channels.SER-209-BI-RH-1.data\": {\"$lt\": 42}}, "
             "{\"channels.SER-209-BI-T-1.data\": {\"$not\": {\"$gt\": 21.5}}}]}], %s}",
             exists_or);
    EXPECT(q, "r1");
    free(q);
    q = dupf("{\"$and\": [{\"channels.SER-209-BI-T-1.data\": {\"$not\": {\"$gt\": 21.5}}}], %s}",
             exists_or);
    EXPECT(q, "r1,r3,r5");
    free(q);
    /* Exists only. */
    q = dupf("{%s}", exists_or);
    EXPECT(q, "r1,r2,r3,r5");
    free(q);
    /* Search only, with "Selected Rows". */
    EXPECT("{\"$and\": [{\"metadata.timestamp\": {\"$gte\": \"2023-06-04T00:00:00\", "
           "\"$lte\": \"2023-06-06T12:00:59\"}}, {\"_id\": {\"$in\": [\"r2\", \"r3\", \"r5\"]}}]}",
           "r2,r3");
    /* Every operator of the filter grammar. */
    EXPECT("{\"$and\": [{\"channels.SER-209-BI-T-1.data\": {\"$eq\": 20}}]}", "r1");
    EXPECT("{\"$and\": [{\"channels.SER-209-BI-T-1.data\": {\"$ne\": 20}}]}", "r2,r3,r4,r5");
    EXPECT("{\"$and\": [{\"channels.SER-209-BI-T-1.data\": {\"$lt\": 21.5}}]}", "r1");
    EXPECT("{\"$and\": [{\"channels.SER-209-BI-T-1.data\": {\"$lte\": 21.5}}]}", "r1,r5");
    EXPECT("{\"$and\": [{\"channels.SER-209-BI-T-1.data\": {\"$gt\": 21.5}}]}", "r2");
    EXPECT("{\"$and\": [{\"channels.SER-209-BI-T-1.data\": {\"$gte\": 21.5}}]}", "r2,r5");
    EXPECT("{\"$and\": [{\"channels.SER-209-BI-T-1.data\": {\"$eq\": null}}]}", "r3,r4");
    EXPECT("{\"$and\": [{\"channels.SER-209-BI-T-1.data\": {\"$ne\": null}}]}", "r1,r2,r5");
    EXPECT("{\"$and\": [{\"$or\": [{\"channels.SER-209-BI-T-1.data\": {\"$lt\": 21}}, "
           "{\"channels.SER-209-BI-RH-1.data\": {\"$gt\": 45}}]}]}",
           "r1,r3");
    /* not (a or b) pushed down by De Morgan. */
    EXPECT("{\"$and\": [{\"$and\": [{\"channels.SER-209-BI-T-1.data\": {\"$not\": {\"$lt\": 21}}}, "
           "{\"channels.SER-209-BI-RH-1.data\": {\"$not\": {\"$gt\": 45}}}]}]}",
           "r2,r4,r5");
    /* Static channels map to metadata. */
    EXPECT("{\"$and\": [{\"metadata.shotnum\": {\"$gt\": 150}}, "
           "{\"metadata.active_area\": {\"$eq\": \"las\"}}]}",
           "r2,r5");
    EXPECT("{\"$and\": [{\"metadata.active_experiment\": {\"$eq\": \"e2\"}}]}", "r3");
    EXPECT("{\"$and\": [{\"metadata.timestamp\": {\"$gt\": \"2023-06-05T08:00:59\"}}]}",
           "r2,r3,r5");
    /* Channel vs channel, and under not. r1: T 20 RH 40, r2: 22/45, r3: -/50, r5: 21.5/-. */
    EXPECT("{\"$and\": [{\"$expr\": {\"$lt\": [\"$channels.SER-209-BI-T-1.data\", "
           "\"$channels.SER-209-BI-RH-1.data\"]}}]}",
           "r1,r2,r3");
    EXPECT("{\"$and\": [{\"$expr\": {\"$not\": {\"$lt\": [\"$channels.SER-209-BI-T-1.data\", "
           "\"$channels.SER-209-BI-RH-1.data\"]}}}]}",
           "r4,r5");
    EXPECT("{\"$and\": [{\"$expr\": {\"$gte\": [\"$channels.SER-209-BI-T-1.data\", "
           "\"$channels.SER-209-BI-RH-1.data\"]}}]}",
           "r4,r5");
}

/* ---------------------------------------------------------------- sorting */

static char *run_sort(const char *filter_json, const char *const *entries, size_t n)
{
    sql_fragment q, order;
    sql_fragment_init(&q);
    sql_fragment_init(&order);
    char err[256];
    int rc = sort_compile_sqlite(entries, n, &order, err, sizeof(err));
    if (rc) {
        sql_fragment_free(&q);
        sql_fragment_free(&order);
        return dupf("ERR:%s", err);
    }
    json_error_t je;
    json_t *j = json_loads(filter_json, 0, &je);
    assert_non_null(j);
    filter_t *f;
    assert_int_equal(filter_compile(j, true, &f, err, sizeof(err)), 0);
    json_decref(j);
    buf_puts(&q.text, "SELECT id FROM records r WHERE ");
    assert_int_equal(filter_emit_sqlite(f, &q), 0);
    filter_free(f);
    buf_puts(&q.text, " ORDER BY ");
    if (order.text.len) {
        assert_int_equal(sql_fragment_append(&q, &order), 0);
        buf_puts(&q.text, ", ");
    }
    buf_puts(&q.text, "r.id"); /* tie-breaker for a deterministic test */
    char *ids = collect(&q);
    sql_fragment_free(&q);
    sql_fragment_free(&order);
    return ids;
}

static void expect_sort_impl(const char *filter_json, const char *const *entries, size_t n,
                             const char *want, int line)
{
    char *got = run_sort(filter_json, entries, n);
    bool ok = strncmp(want, "ERR:", 4) == 0
                  ? strncmp(got, "ERR:", 4) == 0 && strstr(got, want + 4) != NULL
                  : strcmp(got, want) == 0;
    if (!ok)
        fail_msg("line %d: sort %s...\n   got: %s\n  want: %s", line, n ? entries[0] : "-", got,
                 want);
    free(got);
}

#define EXPECT_SORT(want, ...)                                                                     \
    do {                                                                                           \
        const char *const e_[] = {__VA_ARGS__};                                                    \
        expect_sort_impl("{}", e_, sizeof(e_) / sizeof(e_[0]), want, __LINE__);                    \
    } while (0)

static void test_sort(void **state)
{
    EXPECT_SORT("r4,r1,r2,r3,r5", "metadata.timestamp asc");
    EXPECT_SORT("r5,r3,r2,r1,r4", "metadata.timestamp DESC");
    EXPECT_SORT("r5,r4,r3,r2,r1", "_id desc");
    EXPECT_SORT("r1,r2,r3,r4,r5", "_id Asc");
    EXPECT_SORT("r3,r4,r1,r2,r5", "metadata.shotnum asc");
    EXPECT_SORT("r5,r2,r1,r3,r4", "metadata.shotnum desc");
    /* channels.X alone sorts by its data: missing, then numbers, then strings. */
    EXPECT_SORT("r4,r5,r1,r2,r3", "channels.A asc");
    EXPECT_SORT("r3,r2,r1,r4,r5", "channels.A desc");
    EXPECT_SORT("r4,r5,r1,r2,r3", "channels.A.data asc");
    /* null and missing tie, then -3 < 4.2 < 10 (int and real together). */
    EXPECT_SORT("r3,r4,r5,r2,r1", "channels.B.data asc");
    EXPECT_SORT("r1,r2,r5,r3,r4", "channels.B.data desc");
    /* JSON metadata: missing, numbers (5 == 5.0), strings. */
    EXPECT_SORT("r4,r1,r2,r5,r3", "metadata.extra.n asc");
    EXPECT_SORT("r3,r5,r1,r2,r4", "metadata.extra.n desc");
    /* Booleans after numbers and strings: false < true. */
    EXPECT_SORT("r3,r4,r5,r2,r1", "metadata.extra.b asc");
    EXPECT_SORT("r3,r4,r5,r2,r1", "channels.BL.data asc");
    EXPECT_SORT("r4,r5,r1,r2,r3", "channels.A.metadata.units asc"); /* "J" or missing */
    EXPECT_SORT("r1,r2,r3,r4,r5", "channels.A.metadata.units desc");
    /* Compound. */
    EXPECT_SORT("r4,r3,r5,r2,r1", "metadata.active_area asc", "metadata.shotnum desc");
    EXPECT_SORT("r1,r2,r5,r3,r4", "metadata.active_area desc", "metadata.timestamp asc");
    /* Always-missing fields add nothing. */
    EXPECT_SORT("r1,r2,r3,r4,r5", "foo asc");
    EXPECT_SORT("r5,r4,r3,r2,r1", "foo asc", "_id desc");
    EXPECT_SORT("r1,r2,r3,r4,r5", "channels.x'y\"z);DROP/**/TABLE/**/records;-- asc");
    EXPECT_SORT("ERR:" EVIL_CHANNEL, "channels." EVIL_CHANNEL " asc"); /* has spaces */
    /* Errors name the entry. */
    EXPECT_SORT("ERR:metadata.timestamp", "metadata.timestamp");
    EXPECT_SORT("ERR:a  asc", "a  asc");
    EXPECT_SORT("ERR:a asc ", "a asc ");
    EXPECT_SORT("ERR:direction", "a up");
    EXPECT_SORT("ERR:direction", "a ");
    EXPECT_SORT("ERR:invalid field", " asc");
    EXPECT_SORT("ERR:invalid field", "$a asc");
    EXPECT_SORT("ERR:empty field name", "a..b asc");
    EXPECT_SORT("ERR:metadata", "metadata asc");
    EXPECT_SORT("ERR:channels", "channels desc");
    EXPECT_SORT("ERR:b c", "_id asc", "b c");
    /* Sort and filter parameters in one statement. */
    {
        const char *const e[] = {"channels.B.data desc"};
        expect_sort_impl("{\"channels.A.data\": {\"$exists\": true}}", e, 1, "r1,r2,r3", __LINE__);
    }
    {
        const char *const e[] = {"channels.B.data desc", "metadata.extra.n asc"};
        expect_sort_impl("{\"metadata.extra.n\": {\"$gte\": 5}}", e, 2, "r1,r2,r5", __LINE__);
    }
    /* Too many entries. */
    {
        const char *e[SORT_MAX_ENTRIES + 1];
        for (size_t i = 0; i < SORT_MAX_ENTRIES + 1; i++)
            e[i] = "_id asc";
        expect_sort_impl("{}", e, SORT_MAX_ENTRIES + 1, "ERR:too many", __LINE__);
        expect_sort_impl("{}", e, SORT_MAX_ENTRIES, ALL, __LINE__);
    }
}

/* ---------------------------------------------------------------- errors */

static void test_errors(void **state)
{
    EXPECT_ERR("{\"a\": {\"$foo\": 1}}", "unknown operator: $foo");
    EXPECT_ERR("{\"$foo\": 1}", "unknown operator: $foo");
    EXPECT_ERR("{\"$where\": \"this.a == 1\"}", "operator $where is not supported");
    EXPECT_ERR("{\"$text\": {\"$search\": \"x\"}}", "operator $text is not supported");
    EXPECT_ERR("{\"a\": {\"$regex\": \"^x\"}}", "operator $regex is not supported");
    EXPECT_ERR("{\"a\": {\"$elemMatch\": {\"b\": 1}}}", "operator $elemMatch is not supported");
    EXPECT_ERR("{\"a\": {\"$size\": 1}}", "operator $size is not supported");
    EXPECT_ERR("{\"a\": {\"$type\": \"string\"}}", "operator $type is not supported");
    EXPECT_ERR("{\"a\": {\"$mod\": [2, 0]}}", "operator $mod is not supported");
    EXPECT_ERR("{\"a\": {\"$all\": [1]}}", "operator $all is not supported");
    EXPECT_ERR("{\"a\": {\"$where\": \"1\"}}", "operator $where is not supported");
    EXPECT_ERR("{\"a\": {\"$and\": [{}]}}", "unknown operator: $and");
    EXPECT_ERR("{\"a\": {\"$gt\": 1, \"b\": 2}}", "cannot mix operators");
    EXPECT_ERR("{\"a\": {\"b\": 2, \"$gt\": 1}}", "cannot mix operators");
    EXPECT_ERR("{\"metadata.extra\": {\"n\": 5}}", "unsupported");
    EXPECT_ERR("{\"metadata.extra\": {}}", "unsupported");
    EXPECT_ERR("{\"a\": [1, 2]}", "unsupported");
    EXPECT_ERR("{\"a\": {\"$eq\": {\"x\": 1}}}", "field \"a\"");
    EXPECT_ERR("{\"a\": {\"$gt\": [1]}}", "unsupported value for $gt");
    EXPECT_ERR("{\"channels.A\": 5}", "comparison with a whole channel is not supported");
    EXPECT_ERR("{\"channels.A\": {\"$gt\": 5}}", "whole channel");
    EXPECT_ERR("{\"channels.A\": {\"$in\": [5]}}", "whole channel");
    EXPECT_ERR("{\"channels.A\": {\"$in\": [true, null]}}", "whole channel");
    EXPECT_ERR("{\"metadata\": {\"$gt\": 1}}", "whole metadata");
    EXPECT_ERR("{\"channels\": \"x\"}", "whole channels");
    EXPECT_ERR("{\"a..b\": 1}", "empty field name");
    EXPECT_ERR("{\".a\": 1}", "empty field name");
    EXPECT_ERR("{\"channels.\": 1}", "empty field name");
    EXPECT_ERR("{\"\": 1}", "empty field name");
    EXPECT_ERR("{\"metadata.a\\\"b\": 1}", "quotes, backslashes");
    EXPECT_ERR("{\"metadata.a\\\\b\": 1}", "quotes, backslashes");
    EXPECT_ERR("{\"channels.A.x\\nb\": 1}", "quotes, backslashes");
    EXPECT_ERR("[1]", "conditions must be a JSON object");
    EXPECT_ERR("\"x\"", "conditions must be a JSON object");

    /* A NULL document matches everything. */
    char *ids = run_json(NULL, true, NULL);
    assert_string_equal(ids, ALL);
    free(ids);

    /* Error messages stay short and printable even for hostile names. */
    char xs[2900];
    memset(xs, 'x', sizeof(xs) - 1);
    xs[sizeof(xs) - 1] = '\0';
    char *big = dupf("{\"a%s\": {\"$bad\\u0001\": 1}}", xs);
    char *got = run_text(big, true);
    assert_string_equal(got, "ERR:unknown operator: $bad?");
    free(got);
    free(big);
    big = dupf("{\"%s\": {\"$gt\": {}}}", xs);
    got = run_text(big, true);
    if (strlen(got) > 200 || !strstr(got, "xxx...\""))
        fail_msg("long field name in a message: %s", got);
    free(got);
    free(big);
    got = run_text("{\"a\": {\"$\\u00e9\\u00e9\": 1}}", true);
    assert_string_equal(got, "ERR:unknown operator: $\xc3\xa9\xc3\xa9");
    free(got);
}

static char *nest(const char *open, const char *leaf, const char *close, int levels)
{
    size_t n = strlen(open) * levels + strlen(leaf) + strlen(close) * levels + 1;
    char *s = malloc(n);
    s[0] = '\0';
    for (int i = 0; i < levels; i++)
        strcat(s, open);
    strcat(s, leaf);
    for (int i = 0; i < levels; i++)
        strcat(s, close);
    return s;
}

static void test_limits(void **state)
{
    /* Depth: $and nesting. */
    char *s = nest("{\"$and\": [", "{\"_id\": \"r1\"}", "]}", 40);
    EXPECT(s, "r1");
    free(s);
    s = nest("{\"$and\": [", "{\"_id\": \"r1\"}", "]}", 70);
    EXPECT_ERR(s, "nested too deeply");
    free(s);
    /* Depth: $not nesting on a field. */
    char *inner = nest("{\"$not\": ", "{\"$gt\": 5}", "}", 70);
    s = dupf("{\"channels.A.data\": %s}", inner);
    EXPECT_ERR(s, "nested too deeply");
    free(s);
    free(inner);
    inner = nest("{\"$not\": ", "{\"$gt\": 5}", "}", 21); /* odd: NOT (A > 5) */
    s = dupf("{\"channels.A.data\": %s}", inner);
    EXPECT(s, "r1,r3,r4,r5");
    free(s);
    free(inner);
    /* Depth: $expr nesting. */
    s = nest("{\"$not\": [", "{\"$eq\": [\"$_id\", \"r1\"]}", "]}", 70);
    inner = dupf("{\"$expr\": %s}", s);
    EXPECT_ERR(inner, "nested too deeply");
    free(s);
    free(inner);

    char *got;
    /* The SQL itself must stay parseable: SQLite's parser stack is small, so deep
     * alternating $and/$or trees are refused before they reach it. Realistic depths run. */
    json_t *deep = json_pack("{s:{s:i}}", "channels.A.data", "$gt", 5);
    for (int i = 0; i < 12; i++) /* $and with an always-true, $or with a never-true peer */
        deep = json_pack("{s:[{s:{s:f}},o]}", i % 2 ? "$or" : "$and", "channels.B.data", "$lt",
                         i % 2 ? -1e9 : 1e9, deep);
    got = run_json(deep, true, NULL);
    assert_string_equal(got, "r2");
    free(got);
    for (int i = 0; i < 20; i++)
        deep = json_pack("{s:[{s:{s:f}},o]}", i % 2 ? "$and" : "$or", "channels.B.data", "$lt",
                         -1e9, deep);
    got = run_json(deep, true, NULL);
    if (!strstr(got, "ERR:filter is too complex"))
        fail_msg("deep alternating lists: %s", got);
    free(got);
    json_decref(deep);
    /* Nested lists of one kind are flattened, and lone members unwrapped, so they cost
     * nothing. */
    s = nest("{\"$or\": [{\"_id\": \"r2\"}, ", "{\"_id\": \"r1\"}", "]}", 60);
    EXPECT(s, "r1,r2");
    free(s);

    /* Node count: a huge $or. */
    json_t *ors = json_array();
    for (int i = 0; i < FILTER_MAX_NODES + 5; i++)
        json_array_append_new(ors, json_pack("{s:i}", "metadata.shotnum", i));
    json_t *doc = json_pack("{s:o}", "$or", ors);
    got = run_json(doc, true, NULL);
    if (!strstr(got, "ERR:filter is too complex"))
        fail_msg("huge $or: %s", got);
    free(got);
    json_decref(doc);
    /* ...and a huge $in. */
    json_t *vals = json_array();
    for (int i = 0; i < FILTER_MAX_NODES + 5; i++)
        json_array_append_new(vals, json_integer(i));
    doc = json_pack("{s:{s:o}}", "metadata.shotnum", "$in", vals);
    got = run_json(doc, true, NULL);
    if (!strstr(got, "ERR:filter is too complex"))
        fail_msg("huge $in: %s", got);
    free(got);
    json_decref(doc);
    /* A large but acceptable $in (export "Selected Rows") runs. */
    vals = json_array();
    for (int i = 0; i < 5000; i++) {
        char id[16];
        snprintf(id, sizeof(id), "x%d", i);
        json_array_append_new(vals, json_string(id));
    }
    json_array_append_new(vals, json_string("r4"));
    doc = json_pack("{s:{s:o}}", "_id", "$in", vals);
    got = run_json(doc, true, NULL);
    assert_string_equal(got, "r4");
    free(got);
    json_decref(doc);
    /* Many channel predicates: parameters stay within budget or are refused cleanly. */
    ors = json_array();
    for (int i = 0; i < 9000; i++)
        json_array_append_new(ors, json_pack("{s:{s:i}}", "channels.A.metadata.x", "$gt", i));
    doc = json_pack("{s:o}", "$or", ors);
    got = run_json(doc, true, NULL);
    if (strcmp(got, "") != 0 && !strstr(got, "ERR:filter is too complex"))
        fail_msg("many channel predicates: %s", got);
    free(got);
    json_decref(doc);
    ors = json_array();
    for (int i = 0; i < 3000; i++)
        json_array_append_new(
            ors, json_pack("{s:{s:[s,s]}}", "$expr", "$lt", "$channels.A.x", "$channels.B.y"));
    doc = json_pack("{s:o}", "$or", ors);
    got = run_json(doc, true, NULL);
    if (!strstr(got, "ERR:filter is too complex"))
        fail_msg("many $expr: %s", got);
    free(got);
    json_decref(doc);
}

/* Builds one of a family of hostile shapes: `depth` levels of lists (kinds cycling
 * through `ops`), each nesting the next level in its last, most expensive position after
 * `fan - 1` $expr peers, around a leaf of kind `leaf`. */
static json_t *hostile_shape(int depth, int fan, int leaf, const char *const *ops, int nops)
{
    json_t *doc;
    switch (leaf) {
    case 0:
        doc = json_pack("{s:{s:[s,s]}}", "$expr", "$lt", "$channels.A.x", "$channels.B.data");
        break;
    case 1:
        doc = json_pack("{s:s}", "$expr", "$channels.A.x");
        break;
    case 2:
        doc = json_pack("{s:{s:{s:i}}}", "channels.A.x.y", "$not", "$gt", 1);
        break;
    case 3:
        doc = json_pack("{s:{s:[i,s,n,b]}}", "channels.A.data", "$nin", 1, "a", 1);
        break;
    default:
        doc = json_pack("{s:{s:n}}", "metadata.a", "$ne");
        break;
    }
    for (int i = 0; i < depth; i++) {
        json_t *arr = json_array();
        for (int k = 0; k < fan - 1; k++)
            json_array_append_new(
                arr, json_pack("{s:{s:[s,i]}}", "$expr", "$gt", "$channels.C.data", k));
        json_array_append_new(arr, doc);
        doc = json_pack("{s:o}", ops[i % nops], arr);
    }
    return doc;
}

/* Every filter filter_compile accepts must prepare in SQLite, even wrapped in a few more
 * levels by the store; the size model in filter.c promises this. */
static void test_sql_size_model(void **state)
{
    static const char *const opsets[][2] = {{"$and", "$and"}, {"$or", "$or"},  {"$nor", "$nor"},
                                            {"$and", "$or"},  {"$nor", "$or"}, {"$and", "$nor"}};
    static const int fans[] = {2, 3, 17, 40};
    int accepted = 0, refused = 0;
    for (int depth = 1; depth < 30; depth += 2) {
        for (size_t fi = 0; fi < sizeof(fans) / sizeof(fans[0]); fi++) {
            for (int leaf = 0; leaf < 5; leaf++) {
                for (size_t oi = 0; oi < sizeof(opsets) / sizeof(opsets[0]); oi++) {
                    json_t *doc = hostile_shape(depth, fans[fi], leaf, opsets[oi], 2);
                    filter_t *f;
                    char err[256];
                    int rc = filter_compile(doc, true, &f, err, sizeof(err));
                    json_decref(doc);
                    if (rc) {
                        assert_int_equal(rc, -E2BIG);
                        refused++;
                        continue;
                    }
                    accepted++;
                    sql_fragment q;
                    sql_fragment_init(&q);
                    buf_puts(&q.text, "SELECT id FROM records r WHERE (r.id IS NOT NULL AND "
                                      "(1 AND (1 AND (1 AND (");
                    assert_int_equal(filter_emit_sqlite(f, &q), 0);
                    buf_puts(&q.text, ")))))");
                    filter_free(f);
                    free(collect(&q)); /* fails the test if SQLite refuses it */
                    sql_fragment_free(&q);
                }
            }
        }
    }
    assert_true(accepted > 100);
    assert_true(refused > 100);
}

/* ---------------------------------------------------------------- injection */

static void expect_sql_clean(const char *json, const char *want, const char *const *banned)
{
    json_error_t je;
    json_t *j = json_loads(json, JSON_ALLOW_NUL, &je);
    if (!j)
        fail_msg("bad JSON %s: %s", json, je.text);
    char *sql = NULL;
    char *got = run_json(j, true, &sql);
    json_decref(j);
    if (strcmp(got, want) != 0)
        fail_msg("filter %s\n   got: %s\n  want: %s", json, got, want);
    for (size_t i = 0; sql && banned[i]; i++) {
        if (strstr(sql, banned[i]))
            fail_msg("client text \"%s\" reached the SQL: %s", banned[i], sql);
    }
    free(sql);
    free(got);
    assert_table_intact();
}

static void test_injection(void **state)
{
    const char *const banned[] = {"DROP", "'1'='1", "--", "x'y", "it's", "las", "r1'", NULL};
    /* Keys. */
    expect_sql_clean("{\"channels.x'y\\\"z) --;DROP TABLE records.data\": 1}", "r5", banned);
    expect_sql_clean("{\"channels.x'y\\\"z) --;DROP TABLE records\": {\"$exists\": true}}", "r5",
                     banned);
    expect_sql_clean("{\"channels.x'y\\\"z) --;DROP TABLE records.data\": {\"$ne\": 1}}",
                     "r1,r2,r3,r4", banned);
    expect_sql_clean("{\"metadata.it's\": \"q\"}", "r5", banned);
    expect_sql_clean("{\"metadata.x'); DROP TABLE records; --\": 1}", "", banned);
    expect_sql_clean("{\"metadata.x'); DROP TABLE records; --\": {\"$exists\": false}}", ALL,
                     banned);
    expect_sql_clean("{\"channels.A'); DROP TABLE records; --.y\": {\"$gt\": 0}}", "", banned);
    expect_sql_clean("{\"x'); DROP TABLE records; --\": 1}", "", banned);
    expect_sql_clean("{\"$expr\": {\"$eq\": [\"$metadata.x'); DROP TABLE records; --\", "
                     "\"$channels.x'y\\\"z) --;DROP TABLE records.data\"]}}",
                     "r1,r2,r3,r4", banned);
    /* Values. */
    expect_sql_clean("{\"_id\": \"r1' OR '1'='1\"}", "", banned);
    expect_sql_clean("{\"metadata.active_area\": \"las'); DROP TABLE records; --\"}", "", banned);
    expect_sql_clean("{\"channels.S.data\": {\"$in\": [\"') OR 1=1 --\", \"hello\"]}}", "r1",
                     banned);
    expect_sql_clean("{\"metadata.extra.s\": {\"$gt\": \"'; DROP TABLE records; --\"}}", "r1,r2",
                     banned);
    expect_sql_clean("{\"$expr\": {\"$eq\": [\"$_id\", \"r1' --\"]}}", "", banned);
    /* NUL bytes in values: bound with their length, so "r1\0x" is not "r1". */
    expect_sql_clean("{\"_id\": \"r1\\u0000' OR 1=1 --\"}", "", banned);
    expect_sql_clean("{\"_id\": {\"$in\": [\"r1\\u0000\", \"r2\\u0000\"]}}", "", banned);
    expect_sql_clean("{\"channels.S.data\": \"hello\\u0000\"}", "", banned);
    /* NUL bytes in keys (jansson's parser refuses them, so build the objects directly). */
    {
        json_t *j = json_object();
        json_object_setn_new_nocheck(j, "channels.A\0x.data", 17, json_integer(10));
        char *got = run_json(j, true, NULL);
        assert_string_equal(got, "");
        free(got);
        json_decref(j);

        j = json_object();
        json_object_setn_new_nocheck(j, "channels.A\0x", 12, json_pack("{s:b}", "$exists", 0));
        got = run_json(j, true, NULL);
        assert_string_equal(got, ALL);
        free(got);
        json_decref(j);

        j = json_object();
        json_object_setn_new_nocheck(j, "_id\0", 4, json_string("r1"));
        got = run_json(j, true, NULL);
        assert_string_equal(got, "");
        free(got);
        json_decref(j);

        j = json_object();
        json_object_setn_new_nocheck(j, "metadata.extra\0.n", 17, json_integer(5));
        got = run_json(j, true, NULL);
        if (strncmp(got, "ERR:", 4) != 0)
            fail_msg("NUL in a JSON path key: %s", got);
        free(got);
        json_decref(j);

        j = json_object();
        json_object_setn_new_nocheck(j, "$and\0", 5, json_array());
        got = run_json(j, true, NULL);
        if (!strstr(got, "ERR:unknown operator: $and?"))
            fail_msg("NUL in an operator: %s", got);
        free(got);
        json_decref(j);
    }
    /* Sort entries. */
    {
        const char *const e[] = {"channels.x');DROP/**/TABLE/**/records;-- asc"};
        char *got = run_sort("{}", e, 1);
        assert_string_equal(got, ALL);
        free(got);
        assert_table_intact();
        const char *const e2[] = {"metadata.a'b desc"};
        got = run_sort("{}", e2, 1);
        assert_string_equal(got, ALL);
        free(got);
        assert_table_intact();
    }
}

/* ---------------------------------------------------------------- small APIs */

static void test_helpers(void **state)
{
    buf_t b;
    buf_init(&b, 1024);
    const char *const k1[] = {"a", "b c", "it's", "d.e"};
    assert_int_equal(sql_json_path(&b, k1, 4), 0);
    assert_string_equal(b.data, "$.\"a\".\"b c\".\"it's\".\"d.e\"");
    buf_reset(&b);
    assert_int_equal(sql_json_path(&b, NULL, 0), 0);
    assert_string_equal(b.data, "$");
    buf_reset(&b);
    const char *const k2[] = {"a\"b"};
    assert_int_equal(sql_json_path(&b, k2, 1), -EINVAL);
    const char *const k3[] = {"a\\b"};
    assert_int_equal(sql_json_path(&b, k3, 1), -EINVAL);
    const char *const k4[] = {"a\nb"};
    assert_int_equal(sql_json_path(&b, k4, 1), -EINVAL);
    buf_free(&b);

    /* Fragments: append concatenates text and copies parameters. */
    sql_fragment a, c;
    sql_fragment_init(&a);
    sql_fragment_init(&c);
    json_t *j = json_loads("{\"_id\": \"r2\"}", 0, NULL);
    filter_t *f;
    char err[128];
    assert_int_equal(filter_compile(j, true, &f, err, sizeof(err)), 0);
    json_decref(j);
    assert_int_equal(filter_emit_sqlite(f, &a), 0);
    assert_int_equal(filter_emit_sqlite(f, &a), 0); /* emitting twice appends twice */
    filter_free(f);
    assert_int_equal(a.nparams, 2);
    assert_int_equal(sql_fragment_append(&c, &a), 0);
    assert_int_equal(c.nparams, 2);
    assert_int_equal(c.params[1].type, SQLP_TEXT);
    assert_string_equal(c.params[1].s, "r2");
    assert_ptr_not_equal(c.params[1].s, a.params[1].s);
    assert_string_equal(c.text.data, a.text.data);
    sql_fragment_free(&a);
    sql_fragment_free(&c);
    sql_fragment_free(&c); /* idempotent */

    /* Negation is emitted as IS NOT TRUE so NULL leaves count as false. */
    char *sql = NULL;
    j = json_loads("{\"metadata.shotnum\": {\"$ne\": 1}}", 0, NULL);
    char *got = run_json(j, true, &sql);
    json_decref(j);
    assert_non_null(strstr(sql, "IS NOT TRUE"));
    free(sql);
    free(got);
    filter_free(NULL);
}

/* The PostgreSQL dialect of a filter (cond) or a sort entry (order): "<sql> | <params>",
 * parameters written as i:<int>, d:<real> or t:<text>. */
static char *pg_sql(const char *cond, const char *order)
{
    sql_fragment q;
    sql_fragment_init(&q);
    char err[256];
    if (cond) {
        filter_t *f;
        json_t *j = json_loads(cond, 0, NULL);
        assert_non_null(j);
        assert_int_equal(filter_compile(j, true, &f, err, sizeof(err)), 0);
        assert_int_equal(filter_emit_pg(f, &q), 0);
        filter_free(f);
        json_decref(j);
    } else {
        assert_int_equal(sort_compile_pg(&order, 1, &q, err, sizeof(err)), 0);
    }
    buf_t b;
    buf_init(&b, 1 << 20);
    buf_printf(&b, "%s |", q.text.data ? q.text.data : "");
    for (size_t i = 0; i < q.nparams; i++) {
        const sql_param *p = &q.params[i];
        if (p->type == SQLP_INT)
            buf_printf(&b, " i:%lld", (long long)p->i);
        else if (p->type == SQLP_REAL)
            buf_printf(&b, " d:%g", p->d);
        else
            buf_printf(&b, " t:%s", p->s);
    }
    sql_fragment_free(&q);
    char *out = strdup(b.data);
    buf_free(&b);
    return out;
}

static void expect_pg(const char *cond, const char *order, const char *want)
{
    char *got = pg_sql(cond, order);
    if (strcmp(got, want) != 0)
        fail_msg("PostgreSQL SQL for %s:\n got  %s\n want %s", cond ? cond : order, got, want);
    free(got);
}

/* The PostgreSQL dialect: numbered, typed placeholders; jsonb access with the path bound
 * once as a text[] literal; CASE guards so a JSON value is only cast when its type fits;
 * TRUE/FALSE literals; NULLS FIRST/LAST to sort missing values first. */
static void test_pg_dialect(void **state)
{
    (void)state;
    expect_pg("{\"metadata.shotnum\": {\"$gt\": 5}, \"_id\": \"r1\"}", NULL,
              "(r.shotnum > $1::int8 AND r.id = $2::text) | i:5 t:r1");
    expect_pg("{\"metadata.timestamp\": {\"$lt\": \"2023-06-05T08:00:00\"}}", NULL,
              "r.ts_us < $1::int8 | i:1685952000000000");
    expect_pg("{\"metadata.x.y\": {\"$gte\": 1.5}}", NULL,
              "(CASE WHEN jsonb_typeof((r.metadata #> $1::text[])) = 'number' THEN (r.metadata "
              "#> $1::text[])::float8 END) >= $2::float8 | t:{\"x\",\"y\"} d:1.5");
    expect_pg("{\"metadata.x\": \"s\"}", NULL,
              "(CASE WHEN jsonb_typeof((r.metadata #> $1::text[])) = 'string' THEN (r.metadata "
              "#> $1::text[]) #>> '{}' END) COLLATE \"C\" = $2::text | t:{\"x\"} t:s");
    expect_pg("{\"channels.A.data\": {\"$in\": [1, 2]}}", NULL,
              "EXISTS (SELECT 1 FROM record_channels c1 WHERE c1.record_id = r.id AND c1.name = "
              "$1::text AND c1.num IN ($2::int8, $3::int8)) | t:A i:1 i:2");
    expect_pg("{\"channels.A.metadata.units\": true}", NULL,
              "EXISTS (SELECT 1 FROM record_channels c1 WHERE c1.record_id = r.id AND c1.name = "
              "$1::text AND (c1.body #> $2::text[]) = 'true'::jsonb) | t:A "
              "t:{\"metadata\",\"units\"}");
    expect_pg("{\"channels.A.data\": null}", NULL,
              "(EXISTS (SELECT 1 FROM record_channels c1 WHERE c1.record_id = r.id AND c1.name = "
              "$1::text AND jsonb_typeof((c1.body -> 'data')) <> 'null')) IS NOT TRUE | t:A");
    expect_pg("{\"$or\": [{\"channels.A\": {\"$exists\": true}}, {\"channels.B\": "
              "{\"$exists\": true}}]}",
              NULL,
              "EXISTS (SELECT 1 FROM record_channels c1 WHERE c1.record_id = r.id AND c1.name IN "
              "($1::text, $2::text)) | t:A t:B");
    expect_pg("{\"$expr\": {\"$gt\": [\"$metadata.shotnum\", 3]}}", NULL,
              "(ROW((CASE WHEN r.shotnum IS NULL THEN 0 ELSE 2 END), COALESCE(CAST(r.shotnum AS "
              "float8), 0::float8), COALESCE(NULL, ''::text)) > ROW(2, CAST($1::int8 AS float8), "
              "''::text)) | i:3");
    expect_pg("{\"nothing\": 1}", NULL, "FALSE |");
    expect_pg("{}", NULL, "TRUE |");
    expect_pg(NULL, "metadata.shotnum desc", "r.shotnum DESC NULLS LAST |");
    expect_pg(NULL, "_id asc", "r.id ASC NULLS FIRST |");
    expect_pg(NULL, "channels.A desc",
              "COALESCE((SELECT CASE jsonb_typeof((c1.body -> 'data')) WHEN 'null' THEN 1 WHEN "
              "'number' THEN 2 WHEN 'string' THEN 3 WHEN 'object' THEN 4 WHEN 'array' THEN 5 WHEN "
              "'boolean' THEN 8 ELSE 1 END FROM record_channels c1 WHERE c1.record_id = r.id AND "
              "c1.name = $1::text), 1) DESC, (SELECT (CASE jsonb_typeof((c2.body -> 'data')) WHEN "
              "'number' THEN (c2.body -> 'data')::float8 WHEN 'boolean' THEN (c2.body -> "
              "'data')::bool::int::float8 END) FROM record_channels c2 WHERE c2.record_id = r.id "
              "AND c2.name = $2::text) DESC, (SELECT (CASE WHEN jsonb_typeof((c3.body -> 'data')) "
              "IN ('string', 'object', 'array') THEN (c3.body -> 'data') #>> '{}' END) COLLATE "
              "\"C\" FROM record_channels c3 WHERE c3.record_id = r.id AND c3.name = $3::text) "
              "DESC | t:A t:A t:A");
    /* Client text never reaches the SQL text. */
    char *got = pg_sql("{\"channels.x'y\\\"z) --.data\": \"'; DROP TABLE records; --\"}", NULL);
    assert_null(strstr(got, "DROP TABLE records |"));
    assert_non_null(strstr(got, "| t:x'y\"z) -- t:'; DROP TABLE records; --"));
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equality),
        cmocka_unit_test(test_null_and_missing),
        cmocka_unit_test(test_negation_matches_missing),
        cmocka_unit_test(test_ranges_and_type_bracketing),
        cmocka_unit_test(test_in),
        cmocka_unit_test(test_exists),
        cmocka_unit_test(test_logical),
        cmocka_unit_test(test_expr),
        cmocka_unit_test(test_parse_datetime),
        cmocka_unit_test(test_date_conversion),
        cmocka_unit_test(test_frontend_examples),
        cmocka_unit_test(test_sort),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_sql_size_model),
        cmocka_unit_test(test_injection),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_pg_dialect),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
