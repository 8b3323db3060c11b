/*
 * test_store_pg: the store tests of test_store.c run against the PostgreSQL back end
 * (src/store/pg.c), plus tests of what only it has: asynchronous ops on a libuv loop over
 * a small connection pool, cancellation of queued ops, and recovery when the server drops
 * its connections. Needs OGD_TEST_PG_URL (e.g. from scripts/start-pg.sh); without it every
 * test is skipped with a message. Each test gets a fresh database of its own.
 */
#define STORE_TEST_PG 1
#include "test_store.c"

#include <libpq-fe.h>

static unsigned db_counter;

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static const char *base_url(void)
{
    return getenv("OGD_TEST_PG_URL");
}

/* A connection to the server's "postgres" database, for creating and dropping. */
static PGconn *admin_conn(void)
{
    const char *const keys[] = {"dbname", "dbname", NULL};
    const char *const vals[] = {base_url(), "postgres", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect to PostgreSQL: %s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

static void pg_fixture_url(fixture *f)
{
    const char *base = base_url();
    snprintf(f->dbname, sizeof(f->dbname), "ogd_unit_%d_%u", (int)getpid(), ++db_counter);
    /* Replace the database part of postgresql://user@host:port/db[?params]. */
    const char *slash = strchr(strstr(base, "://") + 3, '/');
    size_t keep = slash ? (size_t)(slash - base) : strlen(base);
    const char *params = strchr(base, '?');
    snprintf(f->url, sizeof(f->url), "%.*s/%s%s", (int)keep, base, f->dbname, params ? params : "");
    /* store_migrate creates the database; make sure no leftover of an earlier run is used */
    pg_drop_database(f);
}

static void pg_drop_database(const fixture *f)
{
    PGconn *c = admin_conn();
    char *ident = PQescapeIdentifier(c, f->dbname, strlen(f->dbname));
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", ident);
    PQfreemem(ident);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("drop database: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* ---------------------------------------------------------------- asynchronous use */

typedef struct async_fixture {
    fixture *f;
    uv_loop_t loop;
    store_t *store;
    int done;
} async_fixture;

static int async_setup(void **state)
{
    int rc = setup(state);
    fixture *f = *state;
    async_fixture *a = calloc(1, sizeof(*a));
    a->f = f;
    uv_loop_init(&a->loop);
    char err[256];
    store_options o = {.pool_size = 2};
    assert_int_equal(store_open_ex(f->url, &a->loop, &o, &a->store, err, sizeof(err)), 0);
    *state = a;
    return rc;
}

static int async_teardown(void **state)
{
    async_fixture *a = *state;
    store_close(a->store);
    assert_int_equal(uv_loop_close(&a->loop), 0);
    *state = a->f;
    free(a);
    return teardown(state);
}

static void count_cb(store_op_t *op)
{
    async_fixture *a = op->data;
    a->done++;
}

static void run_until(async_fixture *a, int n)
{
    while (a->done < n)
        uv_run(&a->loop, UV_RUN_ONCE);
}

static void submit(async_fixture *a, store_op_t *op, store_op_kind kind)
{
    store_op_init(op, kind);
    assert_int_equal(store_submit(a->store, op, count_cb, a), 0);
}

/* Many ops at once over a pool of two connections, every one answered. */
static void test_async_many(void **state)
{
    async_fixture *a = *state;
    enum { N = 40 };
    store_op_t *ops = calloc(N, sizeof(*ops));
    for (int i = 0; i < N; i++)
        submit(a, &ops[i], i % 2 ? STORE_RECORDS_COUNT : STORE_RECORDS_FIND);
    assert_int_equal(a->done, 0); /* never called from inside store_submit */
    run_until(a, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ops[i].status, 0);
        if (i % 2)
            assert_int_equal(ops[i].count, 3);
        else
            assert_int_equal(json_array_size(ops[i].result), 3);
        store_op_cleanup(&ops[i]);
    }
    free(ops);
}

/* Queued ops can be canceled: they complete with -ECANCELED, the others normally. */
static void test_async_cancel_queued(void **state)
{
    async_fixture *a = *state;
    enum { N = 10 };
    store_op_t ops[N];
    for (int i = 0; i < N; i++)
        submit(a, &ops[i], STORE_RECORDS_COUNT);
    for (int i = 4; i < N; i++)
        store_cancel(&ops[i]);
    run_until(a, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(ops[i].status, i < 4 ? 0 : -ECANCELED);
    /* the store still works afterwards */
    store_op_t op;
    submit(a, &op, STORE_PING);
    run_until(a, N + 1);
    assert_int_equal(op.status, 0);
}

/* Terminates the database's server processes except the caller's. */
static void terminate_backends(const fixture *f, PGconn *keep)
{
    PGconn *c = admin_conn();
    char keep_pid[16];
    snprintf(keep_pid, sizeof(keep_pid), "%d", keep ? PQbackendPID(keep) : 0);
    const char *vals[] = {f->dbname, keep_pid};
    PGresult *r = PQexecParams(c,
                               "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = $1 AND pid <> $2::int",
                               2, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("terminate: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

typedef struct killer {
    const fixture *f;
    PGconn *keep;
} killer;

static void kill_cb(uv_timer_t *t)
{
    killer *k = t->data;
    terminate_backends(k->f, k->keep);
}

/* An op in flight when its connection is killed fails with STORE_EUNAVAILABLE, idle
 * connections killed at the same time come back, and the next op succeeds. */
static void test_async_reconnect(void **state)
{
    async_fixture *a = *state;
    store_op_t op;
    submit(a, &op, STORE_PING);
    run_until(a, 1);
    assert_int_equal(op.status, 0);

    /* Hold a lock so that the next op blocks in the server, then kill its backend. */
    PGconn *locker = PQconnectdb(a->f->url);
    assert_int_equal(PQstatus(locker), CONNECTION_OK);
    PQclear(PQexec(locker, "BEGIN"));
    PGresult *r = PQexec(locker, "LOCK TABLE records IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    submit(a, &op, STORE_RECORDS_COUNT);
    killer k = {a->f, locker};
    uv_timer_t t;
    uv_timer_init(&a->loop, &t);
    t.data = &k;
    uv_timer_start(&t, kill_cb, 300, 0);
    run_until(a, 2);
    assert_int_equal(op.status, STORE_EUNAVAILABLE);
    PQclear(PQexec(locker, "ROLLBACK"));
    PQfinish(locker);
    uv_close((uv_handle_t *)&t, NULL);

    /* Idle connections too: kill everything, then ask again. */
    terminate_backends(a->f, NULL);
    for (int i = 0; i < 3; i++) {
        submit(a, &op, STORE_RECORDS_COUNT);
        run_until(a, 3 + i);
        assert_int_equal(op.status, 0);
        assert_int_equal(op.count, 3);
    }
}

/* With the server unreachable an op fails within the wait bound instead of hanging. */
static void test_async_unreachable(void **state)
{
    async_fixture *a = *state;
    char err[256];
    store_t *s;
    store_options o = {.pool_size = 1};
    assert_int_equal(
        store_open_ex("postgresql://postgres@127.0.0.1:1/none", &a->loop, &o, &s, err, sizeof(err)),
        0);
    store_op_t op;
    store_op_init(&op, STORE_PING);
    assert_int_equal(store_submit(s, &op, count_cb, a), 0);
    uint64_t t0 = uv_now(&a->loop);
    run_until(a, 1);
    assert_int_equal(op.status, STORE_EUNAVAILABLE);
    assert_true(uv_now(&a->loop) - t0 < 5000);
    store_close(s);
}

/* ---------------------------------------------------------------- migrations */

static void exec_sql(const fixture *f, const char *sql)
{
    PGconn *c = PQconnectdb(f->url);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect to PostgreSQL: %s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* Migration 3 gives the sessions of a database made before it (listed by id then) an
 * insertion order that keeps that id order; sessions stored after it come last. */
static void test_migration_3_orders_old_sessions_by_id(void **state)
{
    fixture *f = *state;
    /* back to a database of version 2: migrations 3 and later run again */
    exec_sql(f, "ALTER TABLE sessions DROP COLUMN seq; DROP TABLE uncertain_objects; "
                "DELETE FROM schema_version WHERE version >= 3");
    put_session(f, "0000000000000000000000c3", "u", "c", false);
    put_session(f, "0000000000000000000000a1", "u", "a", false);
    put_session(f, "0000000000000000000000b2", "u", "b", false);
    char err[256];
    assert_int_equal(store_migrate(f->url, err, sizeof(err)), 0);
    put_session(f, "000000000000000000000000", "u", "new", false);
    char ids[256];
    session_list_ids(f, ids, sizeof(ids));
    assert_string_equal(ids, "0000000000000000000000a1,0000000000000000000000b2,"
                             "0000000000000000000000c3,000000000000000000000000");
}

int main(void)
{
    if (!base_url() || !*base_url()) {
        printf("test_store_pg: skipped: set OGD_TEST_PG_URL (see scripts/start-pg.sh)\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        STORE_BACKEND_TESTS,
        cmocka_unit_test_setup_teardown(test_migration_3_orders_old_sessions_by_id, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_async_many, async_setup, async_teardown),
        cmocka_unit_test_setup_teardown(test_async_cancel_queued, async_setup, async_teardown),
        cmocka_unit_test_setup_teardown(test_async_reconnect, async_setup, async_teardown),
        cmocka_unit_test_setup_teardown(test_async_unreachable, async_setup, async_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
