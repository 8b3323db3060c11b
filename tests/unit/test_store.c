/*
 * Unit tests for the store back ends, run synchronously: SQLite (src/store/sqlite.c) here,
 * and the same test bodies against PostgreSQL (src/store/pg.c) when test_store_pg.c
 * includes this file with STORE_TEST_PG set. The PostgreSQL run needs OGD_TEST_PG_URL
 * (see scripts/start-pg.sh) and gives every test its own fresh database, dropped after
 * the test; it also runs the asynchronous tests at the end of test_store_pg.c. Whether both
 * back ends' dispatch tables have an entry for every op kind is checked here once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/backend.h"
#include "store/store.h"

#ifndef STORE_TEST_PG
#define STORE_TEST_PG 0
#endif

typedef struct fixture {
    char dir[64];
    char url[512];
    char dbname[64];
    store_t *store;
} fixture;

#if STORE_TEST_PG
/* The fixture's database URL: OGD_TEST_PG_URL with a database name of its own. */
static void pg_fixture_url(fixture *f);
static void pg_drop_database(const fixture *f);
#endif

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
#if STORE_TEST_PG
    pg_fixture_url(f);
#else
    strcpy(f->dir, "/tmp/ogd-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->url, sizeof(f->url), "sqlite://%s/db.sqlite3", f->dir);
#endif
    char err[256];
    assert_int_equal(store_migrate(f->url, err, sizeof(err)), 0);
    assert_int_equal(store_migrate(f->url, err, sizeof(err)), 0); /* idempotent */
    assert_int_equal(store_open(f->url, NULL, &f->store, err, sizeof(err)), 0);
    const char *docs[] = {
        "{\"_id\":\"20230605080000\",\"metadata\":{\"shotnum\":1,\"timestamp\":"
        "\"2023-06-05T08:00:00\",\"active_area\":\"ea1\"},\"channels\":{\"A\":{\"metadata\":{"
        "\"channel_dtype\":\"scalar\"},\"data\":5},\"B\":{\"metadata\":{\"channel_dtype\":"
        "\"scalar\"},\"data\":\"x\"}}}",
        "{\"_id\":\"20230605090000\",\"version\":2,\"metadata\":{\"shotnum\":2,\"timestamp\":{"
        "\"$date\":\"2023-06-05T09:00:00Z\"}},\"channels\":{\"A\":{\"metadata\":{"
        "\"channel_dtype\":\"scalar\"},\"data\":7.5}}}",
        "{\"_id\":\"20230605100000\",\"metadata\":{\"timestamp\":\"2023-06-05T10:00:00\"},"
        "\"channels\":{}}",
    };
    for (int i = 0; i < 3; i++) {
        store_op_t op;
        store_op_init(&op, STORE_RECORD_PUT);
        op.doc = json_loads(docs[i], 0, NULL);
        assert_non_null(op.doc);
        assert_int_equal(store_run_sync(f->store, &op), 0);
        json_decref(op.doc);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(f->store);
#if STORE_TEST_PG
    pg_drop_database(f);
#else
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
#endif
    free(f);
    return 0;
}

static json_t *find(fixture *f, const char *cond, const char *order, const char **proj,
                    size_t nproj, int expect_status)
{
    store_op_t op;
    store_op_init(&op, STORE_RECORDS_FIND);
    filter_t *flt = NULL;
    char err[256];
    json_t *c = json_loads(cond, 0, NULL);
    assert_int_equal(filter_compile(c, true, &flt, err, sizeof(err)), 0);
    op.filter = flt;
    if (order) {
        op.order = &order;
        op.norder = 1;
    }
    op.projection = proj;
    op.nprojection = nproj;
    assert_int_equal(store_run_sync(f->store, &op), expect_status);
    json_t *r = op.result ? json_incref(op.result) : NULL;
    store_op_cleanup(&op);
    filter_free(flt);
    json_decref(c);
    return r;
}

static void test_find_shapes_documents(void **state)
{
    fixture *f = *state;
    json_t *r = find(f, "{}", NULL, NULL, 0, 0);
    assert_int_equal(json_array_size(r), 3);
    json_t *second = json_array_get(r, 1);
    assert_int_equal(json_integer_value(json_object_get(second, "version")), 2);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(second, "metadata"), "timestamp")),
        "2023-06-05T09:00:00");
    json_decref(r);

    const char *proj[] = {"channels.A.data"};
    r = find(f, "{\"channels.A.data\":{\"$gt\":6}}", NULL, proj, 1, 0);
    char *text = json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(text, "[{\"_id\":\"20230605090000\",\"channels\":{\"A\":{\"data\":7.5}}}]");
    free(text);
    json_decref(r);

    r = find(f, "{}", "metadata.shotnum desc", NULL, 0, 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "_id")),
                        "20230605090000");
    assert_string_equal(json_string_value(json_object_get(json_array_get(r, 2), "_id")),
                        "20230605100000"); /* missing sorts lowest */
    json_decref(r);

    r = find(f, "{}", "metadata.shotnum sideways", NULL, 0, STORE_EBADQUERY);
    assert_null(r);
}

static void test_count_range_delete(void **state)
{
    fixture *f = *state;
    store_op_t op;
    store_op_init(&op, STORE_RECORDS_RANGE);
    op.range_by_shotnum = true;
    op.lo = 1;
    op.hi = 2;
    assert_int_equal(store_run_sync(f->store, &op), 0);
    char *text = json_dumps(op.result, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(text, "{\"from\":\"2023-06-05T08:00:00\",\"to\":\"2023-06-05T09:00:00\"}");
    free(text);
    store_op_cleanup(&op);

    store_op_init(&op, STORE_RECORDS_RANGE);
    op.lo = 5;
    op.hi = 6;
    op.range_by_shotnum = true;
    assert_int_equal(store_run_sync(f->store, &op), -ENOENT);
    store_op_cleanup(&op);

    store_op_init(&op, STORE_CHANNEL_COUNT);
    op.id = "20230605080000";
    op.channel = "B";
    assert_int_equal(store_run_sync(f->store, &op), 0);
    assert_int_equal(op.count, 1);

    store_op_init(&op, STORE_RECORD_DELETE);
    op.id = "20230605080000";
    assert_int_equal(store_run_sync(f->store, &op), 0);
    assert_int_equal(op.count, 1);
    store_op_init(&op, STORE_RECORD_DELETE);
    op.id = "20230605080000";
    assert_int_equal(store_run_sync(f->store, &op), 0);
    assert_int_equal(op.count, 0);

    store_op_init(&op, STORE_CHANNEL_COUNT);
    op.id = "20230605080000";
    op.channel = "B";
    assert_int_equal(store_run_sync(f->store, &op), 0);
    assert_int_equal(op.count, 0);

    store_op_init(&op, STORE_RECORDS_COUNT);
    assert_int_equal(store_run_sync(f->store, &op), 0);
    assert_int_equal(op.count, 2);
}

static void test_put_existing_and_replace(void **state)
{
    fixture *f = *state;
    store_op_t op;
    store_op_init(&op, STORE_RECORD_PUT);
    op.doc = json_loads("{\"_id\":\"20230605100000\",\"metadata\":{},\"channels\":{}}", 0, NULL);
    assert_int_equal(store_run_sync(f->store, &op), -EEXIST);
    op.replace = true;
    assert_int_equal(store_run_sync(f->store, &op), 0);
    json_decref(op.doc);
    store_op_init(&op, STORE_RECORD_PUT);
    op.doc = json_loads("{\"_id\":\"x\",\"metadata\":{\"timestamp\":\"yesterday\"}}", 0, NULL);
    assert_int_equal(store_run_sync(f->store, &op), STORE_EBADQUERY);
    json_decref(op.doc);
}

static void test_batch_put_is_all_or_nothing(void **state)
{
    fixture *f = *state;
    store_op_t op;
    store_op_init(&op, STORE_RECORDS_PUT);
    op.doc = json_loads("[{\"_id\":\"b1\",\"metadata\":{}},{\"_id\":\"b2\",\"metadata\":{"
                        "\"timestamp\":\"not a date\"}}]",
                        0, NULL);
    assert_int_equal(store_run_sync(f->store, &op), STORE_EBADQUERY);
    json_decref(op.doc);
    store_op_init(&op, STORE_RECORDS_COUNT);
    assert_int_equal(store_run_sync(f->store, &op), 0);
    assert_int_equal(op.count, 3); /* b1 was rolled back */

    store_op_init(&op, STORE_RECORDS_PUT);
    op.doc =
        json_loads("[{\"_id\":\"b1\",\"metadata\":{}},{\"_id\":\"b2\",\"metadata\":{}}]", 0, NULL);
    assert_int_equal(store_run_sync(f->store, &op), 0);
    json_decref(op.doc);
    store_op_init(&op, STORE_RECORDS_COUNT);
    assert_int_equal(store_run_sync(f->store, &op), 0);
    assert_int_equal(op.count, 5);
}

static void test_manifest_and_summary(void **state)
{
    fixture *f = *state;
    store_op_t op;
    store_op_init(&op, STORE_MANIFEST_LATEST);
    assert_int_equal(store_run_sync(f->store, &op), -ENOENT);
    const char *m[] = {"{\"_id\":\"20240101000000\",\"channels\":{\"A\":{\"name\":\"a\"}}}",
                       "{\"_id\":\"20230101000000\",\"channels\":{}}"};
    for (int i = 0; i < 2; i++) {
        store_op_init(&op, STORE_MANIFEST_PUT);
        op.doc = json_loads(m[i], 0, NULL);
        assert_int_equal(store_run_sync(f->store, &op), 0);
        json_decref(op.doc);
    }
    store_op_init(&op, STORE_MANIFEST_LATEST);
    assert_int_equal(store_run_sync(f->store, &op), 0);
    assert_string_equal(json_string_value(json_object_get(op.result, "_id")), "20240101000000");
    store_op_cleanup(&op);

    store_op_init(&op, STORE_CHANNEL_SUMMARY);
    op.channel = "A";
    assert_int_equal(store_run_sync(f->store, &op), 0);
    assert_string_equal(json_string_value(json_object_get(op.result, "first_date")),
                        "2023-06-05T08:00:00");
    assert_string_equal(json_string_value(json_object_get(op.result, "most_recent_date")),
                        "2023-06-05T09:00:00");
    assert_int_equal(json_array_size(json_object_get(op.result, "recent")), 2);
    store_op_cleanup(&op);
    store_op_init(&op, STORE_CHANNEL_SUMMARY);
    op.channel = "nope";
    assert_int_equal(store_run_sync(f->store, &op), -ENOENT);
}

static int run_doc(fixture *f, store_op_kind kind, const char *id, const char *doc, bool replace,
                   store_op_t *out)
{
    store_op_init(out, kind);
    out->id = id;
    out->doc = doc ? json_loads(doc, 0, NULL) : NULL;
    out->replace = replace;
    int rc = store_run_sync(f->store, out);
    json_decref(out->doc);
    out->doc = NULL;
    return rc;
}

static void test_users_and_sessions(void **state)
{
    fixture *f = *state;
    store_op_t op;
    assert_int_equal(
        run_doc(f, STORE_USER_PUT, NULL, "{\"_id\":\"b\",\"auth_type\":\"local\"}", false, &op), 0);
    store_op_cleanup(&op);
    assert_int_equal(
        run_doc(f, STORE_USER_PUT, NULL, "{\"_id\":\"a\",\"auth_type\":\"FedID\"}", false, &op), 0);
    store_op_cleanup(&op);
    /* conditional update on the "_rev" counter (absent = 0) */
    store_op_init(&op, STORE_USER_UPDATE);
    op.doc = json_loads("{\"_id\":\"b\",\"auth_type\":\"local\",\"_rev\":1}", 0, NULL);
    op.lo = 0;
    assert_int_equal(store_run_sync(f->store, &op), 0);
    assert_int_equal(op.count, 1);
    op.count = -1;
    assert_int_equal(store_run_sync(f->store, &op), 0); /* stored _rev is 1 now, not 0 */
    assert_int_equal(op.count, 0);
    json_decref(op.doc);
    store_op_cleanup(&op);
    assert_int_equal(run_doc(f, STORE_USERS_LIST, NULL, NULL, false, &op), 0);
    assert_int_equal(json_array_size(op.result), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(op.result, 0), "_id")),
                        "a");
    store_op_cleanup(&op);
    assert_int_equal(run_doc(f, STORE_USER_DELETE, "a", NULL, false, &op), 0);
    assert_int_equal(op.count, 1);
    store_op_cleanup(&op);
    assert_int_equal(run_doc(f, STORE_USER_DELETE, "a", NULL, false, &op), 0);
    assert_int_equal(op.count, 0);
    store_op_cleanup(&op);

    const char *s1 = "{\"_id\":\"000000000000000000000001\",\"username\":\"u\",\"name\":\"n\","
                     "\"session\":{\"k\":1}}";
    const char *s2 = "{\"_id\":\"000000000000000000000002\",\"username\":\"u\",\"name\":\"n\"}";
    const char *s2b = "{\"_id\":\"000000000000000000000002\",\"username\":\"u\",\"name\":\"m\"}";
    assert_int_equal(run_doc(f, STORE_SESSION_PUT, NULL, s1, false, &op), 0);
    store_op_cleanup(&op);
    /* (username, name) is unique */
    assert_int_equal(run_doc(f, STORE_SESSION_PUT, NULL, s2, false, &op), -EEXIST);
    store_op_cleanup(&op);
    assert_int_equal(run_doc(f, STORE_SESSION_PUT, NULL, s2b, false, &op), 0);
    store_op_cleanup(&op);
    /* replacing by id may not take another session's name either */
    assert_int_equal(run_doc(f, STORE_SESSION_PUT, NULL, s2, true, &op), -EEXIST);
    store_op_cleanup(&op);
    assert_int_equal(run_doc(f, STORE_SESSION_GET, "000000000000000000000001", NULL, false, &op),
                     0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(op.result, "session"), "k")), 1);
    store_op_cleanup(&op);
    store_op_init(&op, STORE_SESSIONS_LIST);
    op.id = "u";
    op.max_documents = 1;
    assert_int_equal(store_run_sync(f->store, &op), 0);
    assert_int_equal(json_array_size(op.result), 1);
    store_op_cleanup(&op);
    assert_int_equal(run_doc(f, STORE_SESSION_DELETE, "000000000000000000000001", NULL, false, &op),
                     0);
    assert_int_equal(op.count, 1);
    store_op_cleanup(&op);
    assert_int_equal(run_doc(f, STORE_SESSION_GET, "000000000000000000000001", NULL, false, &op),
                     -ENOENT);
    store_op_cleanup(&op);
}

/* The ids of the sessions of user u that STORE_SESSIONS_LIST returns, joined by ",". */
static void session_list_ids(fixture *f, char *out, size_t len)
{
    store_op_t op;
    store_op_init(&op, STORE_SESSIONS_LIST);
    op.id = "u";
    assert_int_equal(store_run_sync(f->store, &op), 0);
    out[0] = '\0';
    size_t i;
    json_t *d;
    json_array_foreach(op.result, i, d)
    {
        size_t n = strlen(out);
        snprintf(out + n, len - n, "%s%s", i ? "," : "",
                 json_string_value(json_object_get(d, "_id")));
    }
    store_op_cleanup(&op);
}

static void put_session(fixture *f, const char *id, const char *user, const char *name,
                        bool replace)
{
    char doc[256];
    snprintf(doc, sizeof(doc), "{\"_id\":\"%s\",\"username\":\"%s\",\"name\":\"%s\"}", id, user,
             name);
    store_op_t op;
    assert_int_equal(run_doc(f, STORE_SESSION_PUT, NULL, doc, replace, &op), 0);
    store_op_cleanup(&op);
}

/* Sessions are listed in the order they were first stored (the reference's natural
 * order), whatever their ids; a replaced one keeps its place. */
static void test_sessions_list_in_insertion_order(void **state)
{
    fixture *f = *state;
    put_session(f, "0000000000000000000000c3", "u", "first", false);
    put_session(f, "0000000000000000000000a1", "u", "second", false);
    put_session(f, "0000000000000000000000f0", "v", "other user", false);
    put_session(f, "0000000000000000000000b2", "u", "third", false);
    char ids[256];
    session_list_ids(f, ids, sizeof(ids));
    assert_string_equal(ids, "0000000000000000000000c3,0000000000000000000000a1,"
                             "0000000000000000000000b2");
    put_session(f, "0000000000000000000000a1", "u", "second, renamed", true);
    store_op_t op;
    assert_int_equal(run_doc(f, STORE_SESSION_DELETE, "0000000000000000000000b2", NULL, false, &op),
                     0);
    store_op_cleanup(&op);
    put_session(f, "000000000000000000000000", "u", "fourth", false);
    session_list_ids(f, ids, sizeof(ids));
    assert_string_equal(ids, "0000000000000000000000c3,0000000000000000000000a1,"
                             "000000000000000000000000");
}

static void test_experiments(void **state)
{
    fixture *f = *state;
    store_op_t op;
    const char *e1 = "{\"_id\":\"000000000000000000000009\",\"experiment_id\":\"20310000\","
                     "\"part\":1,\"start_date\":\"2023-06-05T00:00:00\","
                     "\"end_date\":\"2023-06-21T23:59:59\"}";
    /* the same in every field but _id */
    const char *e1b = "{\"_id\":\"000000000000000000000001\",\"experiment_id\":\"20310000\","
                      "\"part\":1,\"start_date\":\"2023-06-05T00:00:00\","
                      "\"end_date\":\"2023-06-21T23:59:59\"}";
    /* a changed date makes a new document */
    const char *e2 = "{\"_id\":\"000000000000000000000002\",\"experiment_id\":\"20310000\","
                     "\"part\":1,\"start_date\":\"2023-06-06T00:00:00\","
                     "\"end_date\":\"2023-06-21T23:59:59\"}";
    assert_int_equal(run_doc(f, STORE_EXPERIMENTS_STAMP_GET, NULL, NULL, false, &op), -ENOENT);
    store_op_cleanup(&op);
    assert_int_equal(run_doc(f, STORE_EXPERIMENT_PUT, NULL, e1, false, &op), 0);
    assert_int_equal(op.count, 1);
    assert_string_equal(json_string_value(op.result), "000000000000000000000009");
    store_op_cleanup(&op);
    assert_int_equal(run_doc(f, STORE_EXPERIMENT_PUT, NULL, e1b, false, &op), 0);
    assert_int_equal(op.count, 0);
    assert_string_equal(json_string_value(op.result), "000000000000000000000009");
    store_op_cleanup(&op);
    assert_int_equal(run_doc(f, STORE_EXPERIMENT_PUT, NULL, e2, false, &op), 0);
    assert_int_equal(op.count, 1);
    store_op_cleanup(&op);
    assert_int_equal(
        run_doc(f, STORE_EXPERIMENT_PUT, NULL, "{\"_id\":\"x\",\"part\":1}", false, &op),
        STORE_EBADQUERY);
    store_op_cleanup(&op);
    assert_int_equal(
        run_doc(f, STORE_EXPERIMENTS_STAMP_PUT, "2026-11-27T02:00:00", NULL, false, &op), 0);
    store_op_cleanup(&op);
    assert_int_equal(
        run_doc(f, STORE_EXPERIMENTS_STAMP_PUT, "2026-11-27T03:00:00", NULL, false, &op), 0);
    store_op_cleanup(&op);
    assert_int_equal(run_doc(f, STORE_EXPERIMENTS_STAMP_GET, NULL, NULL, false, &op), 0);
    assert_string_equal(json_string_value(op.result), "2026-11-27T03:00:00");
    store_op_cleanup(&op);
    /* the list: by _id, without the bookkeeping row, capped */
    assert_int_equal(run_doc(f, STORE_EXPERIMENTS_LIST, NULL, NULL, false, &op), 0);
    assert_int_equal(json_array_size(op.result), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(op.result, 0), "_id")),
                        "000000000000000000000002");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(op.result, 1), "part")), 1);
    store_op_cleanup(&op);
    store_op_init(&op, STORE_EXPERIMENTS_LIST);
    op.max_documents = 1;
    assert_int_equal(store_run_sync(f->store, &op), 0);
    assert_int_equal(json_array_size(op.result), 1);
    store_op_cleanup(&op);
}

/* One STORE_UNCERTAIN_* op: id, doc (JSON text or NULL), lo, hi. */
static int run_uncertain(fixture *f, store_op_kind kind, const char *id, const char *doc,
                         int64_t lo, int64_t hi, store_op_t *out)
{
    store_op_init(out, kind);
    out->id = id;
    out->doc = doc ? json_loads(doc, JSON_DECODE_ANY, NULL) : NULL;
    out->lo = lo;
    out->hi = hi;
    int rc = store_run_sync(f->store, out);
    json_decref(out->doc);
    out->doc = NULL;
    return rc;
}

static void assert_json_text(const json_t *v, const char *text)
{
    char *got = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    assert_string_equal(got, text);
    free(got);
}

/* The notes of writes with an unknown outcome, their claims and renewals (store.h). */
static void test_uncertain_objects(void **state)
{
    fixture *f = *state;
    store_op_t op;
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_NOTE, NULL,
                                   "[{\"_id\":\"images/k2.png\",\"record_id\":\"r2\","
                                   "\"channel\":\"C2\"}]",
                                   200, 0, &op),
                     0);
    store_op_cleanup(&op);
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_NOTE, NULL,
                                   "[{\"_id\":\"images/k1.png\",\"record_id\":\"r1\","
                                   "\"channel\":\"C1\"}]",
                                   100, 0, &op),
                     0);
    store_op_cleanup(&op);
    /* oldest first */
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_LIST, NULL, NULL, 0, 0, &op), 0);
    assert_json_text(op.result, "[{\"_id\":\"images/k1.png\",\"channel\":\"C1\",\"noted_at\":100,"
                                "\"record_id\":\"r1\"},{\"_id\":\"images/k2.png\",\"channel\":"
                                "\"C2\",\"noted_at\":200,\"record_id\":\"r2\"}]");
    store_op_cleanup(&op);
    /* a claim needs a note old enough (noted at or before lo) and no live claim */
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_CLAIM, "images/k2.png", NULL, 150, 300, &op),
                     0);
    assert_int_equal(op.count, 0);
    store_op_cleanup(&op);
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_CLAIM, "images/k1.png", NULL, 150, 300, &op),
                     0);
    assert_int_equal(op.count, 1);
    store_op_cleanup(&op);
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_CLAIM, "images/k1.png", NULL, 150, 301, &op),
                     0);
    assert_int_equal(op.count, 0); /* claimed until 300 + the lease */
    store_op_cleanup(&op);
    /* an ingest about to write: the claimed key is reported, the other one renewed */
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_TOUCH, NULL,
                                   "[\"images/k1.png\",\"images/k2.png\",\"images/none.png\"]", 400,
                                   0, &op),
                     0);
    assert_json_text(op.result, "[\"images/k1.png\"]");
    store_op_cleanup(&op);
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_LIST, NULL, NULL, 0, 0, &op), 0);
    assert_int_equal(json_array_size(op.result), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(op.result, 0), "noted_at")),
                     100);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(op.result, 1), "noted_at")),
                     400);
    store_op_cleanup(&op);
    /* renewed: no longer old enough for a claim with the old cutoff */
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_CLAIM, "images/k2.png", NULL, 250, 500, &op),
                     0);
    assert_int_equal(op.count, 0);
    store_op_cleanup(&op);
    /* once the lease has passed, the key can be touched (and so renewed) again */
    int64_t after = 300 + STORE_UNCERTAIN_LEASE_S + 1;
    assert_int_equal(
        run_uncertain(f, STORE_UNCERTAIN_TOUCH, NULL, "[\"images/k1.png\"]", after, 0, &op), 0);
    assert_json_text(op.result, "[]");
    store_op_cleanup(&op);
    /* a new note of the same key drops the claim and renews it */
    assert_int_equal(
        run_uncertain(f, STORE_UNCERTAIN_CLAIM, "images/k1.png", NULL, after, after, &op), 0);
    assert_int_equal(op.count, 1);
    store_op_cleanup(&op);
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_NOTE, NULL,
                                   "[{\"_id\":\"images/k1.png\",\"record_id\":\"r1\","
                                   "\"channel\":\"C1\"}]",
                                   after + 1, 0, &op),
                     0);
    store_op_cleanup(&op);
    assert_int_equal(
        run_uncertain(f, STORE_UNCERTAIN_TOUCH, NULL, "[\"images/k1.png\"]", after + 2, 0, &op), 0);
    assert_json_text(op.result, "[]");
    store_op_cleanup(&op);
    /* delete */
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_DELETE, "images/k1.png", NULL, 0, 0, &op), 0);
    assert_int_equal(op.count, 1);
    store_op_cleanup(&op);
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_DELETE, "images/k1.png", NULL, 0, 0, &op), 0);
    assert_int_equal(op.count, 0);
    store_op_cleanup(&op);
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_LIST, NULL, NULL, 0, 0, &op), 0);
    assert_json_text(op.result, "[{\"_id\":\"images/k2.png\",\"channel\":\"C2\",\"noted_at\":400,"
                                "\"record_id\":\"r2\"}]");
    store_op_cleanup(&op);
    /* malformed input is a bad query, nothing stored */
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_NOTE, NULL, "[{\"_id\":\"x\"}]", 1, 0, &op),
                     STORE_EBADQUERY);
    store_op_cleanup(&op);
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_TOUCH, NULL, "[1]", 1, 0, &op),
                     STORE_EBADQUERY);
    store_op_cleanup(&op);
    assert_int_equal(run_uncertain(f, STORE_UNCERTAIN_LIST, NULL, NULL, 0, 0, &op), 0);
    assert_int_equal(json_array_size(op.result), 1);
    store_op_cleanup(&op);
}

/* The tests every back end runs; test_store_pg.c adds them to its own list. */
#define STORE_BACKEND_TESTS                                                                        \
    cmocka_unit_test_setup_teardown(test_find_shapes_documents, setup, teardown),                  \
        cmocka_unit_test_setup_teardown(test_count_range_delete, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_put_existing_and_replace, setup, teardown),           \
        cmocka_unit_test_setup_teardown(test_manifest_and_summary, setup, teardown),               \
        cmocka_unit_test_setup_teardown(test_batch_put_is_all_or_nothing, setup, teardown),        \
        cmocka_unit_test_setup_teardown(test_users_and_sessions, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_sessions_list_in_insertion_order, setup, teardown),   \
        cmocka_unit_test_setup_teardown(test_experiments, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_uncertain_objects, setup, teardown)

#if !STORE_TEST_PG
/* A read whose op is cancelled while it runs stops inside SQLite (the progress handler)
 * instead of reading on: here the op is marked cancelled before it starts, as the loop
 * does when the client leaves during the query, and a query that would return thousands
 * of documents ends at once with SQLite's interrupt. Writes are never interrupted. */
static void test_cancelled_read_is_interrupted(void **state)
{
    fixture *f = *state;
    store_op_t op;
    store_op_init(&op, STORE_RECORDS_PUT);
    op.doc = json_array();
    for (int i = 0; i < 3000; i++) {
        char id[32], ts[32];
        snprintf(id, sizeof(id), "2024%010d", i);
        snprintf(ts, sizeof(ts), "2024-01-01T%02d:%02d:%02d", i / 3600, i / 60 % 60, i % 60);
        json_array_append_new(op.doc, json_pack("{ss s{sIss} s{s{s{ss}si}}}", "_id", id, "metadata",
                                                "shotnum", (json_int_t)(100 + i), "timestamp", ts,
                                                "channels", "A", "metadata", "channel_dtype",
                                                "scalar", "data", i));
    }
    assert_int_equal(store_run_sync(f->store, &op), 0);
    json_decref(op.doc);

    store_op_init(&op, STORE_RECORDS_FIND);
    assert_int_equal(store_run_sync(f->store, &op), 0); /* not cancelled: everything */
    assert_int_equal(json_array_size(op.result), 3003);
    store_op_cleanup(&op);

    store_op_init(&op, STORE_RECORDS_FIND);
    atomic_store(&op.canceled, true);
    assert_int_equal(store_run_sync(f->store, &op), STORE_EDB);
    assert_non_null(strstr(op.err, "interrupt"));
    assert_null(op.result);
    store_op_cleanup(&op);

    /* a cancelled write still completes (only reads are interrupted) */
    store_op_init(&op, STORE_RECORD_DELETE);
    op.id = "20240000000007";
    atomic_store(&op.canceled, true);
    assert_int_equal(store_run_sync(f->store, &op), 0);
    assert_int_equal(op.count, 1);
    store_op_cleanup(&op);
}

/* Each back end runs an op through a table indexed by its kind (sqlite.c, pg.c: kinds[]);
 * every kind from the first to the last has an entry in both. Needs no database, so it runs
 * here for both back ends. */
static void test_dispatch_tables_complete(void **state)
{
    (void)state;
    assert_int_equal(store_sqlite_missing_kind(), -1);
    assert_int_equal(store_pg_missing_kind(), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_BACKEND_TESTS,
        cmocka_unit_test_setup_teardown(test_cancelled_read_is_interrupted, setup, teardown),
        cmocka_unit_test(test_dispatch_tables_complete)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
