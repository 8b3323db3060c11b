/*
 * pg.c: the PostgreSQL back end of the store.
 *
 * Served ops never block the worker's loop: each store owns a small pool of libpq
 * connections driven with the asynchronous API on the loop itself (PQconnectStart /
 * PQconnectPoll, PQsetnonblocking, pipeline mode, PQsocket watched by a uv_poll_t,
 * PQconsumeInput / PQisBusy / PQgetResult). An op is first built into a "job": the list of
 * parameterised statements it needs (one for reads; several for writes, sent as one
 * pipeline with one sync, so they form one implicit transaction and an error rolls all of
 * them back). Jobs wait in a FIFO queue for an idle connection. Results of record reads
 * (and any op with a post hook) are turned into jansson documents on the libuv thread
 * pool; small results are read on the loop. Which statements an op needs and how its
 * results are read comes from `kinds[]`, a table indexed by op kind: a builder function or
 * one SQL text with its parameters, and a result shape (count, rows changed, one document,
 * a list of documents, nothing) or a finishing function. Every kind has an entry (a static
 * check on the size, store_pg_missing_kind for the rest).
 *
 * Failure handling: a connection that breaks fails its job with STORE_EUNAVAILABLE and
 * reconnects with backoff (100 ms doubling to 5 s, cut short when a new op arrives and
 * nothing is connected). A job waits at most WAIT_MS for a connection, then fails with
 * STORE_EUNAVAILABLE. store_cancel drops a queued job at once; a running read is cancelled
 * in the server (PQcancel, on the thread pool); a running write finishes; either way the
 * result is dropped. The callback always runs once, from the loop (never from inside
 * store_submit or store_cancel).
 *
 * store_run_sync (CLI tools, the jobs process) uses one lazily opened blocking connection
 * in the calling thread and runs the same jobs inside BEGIN/COMMIT.
 *
 * Schema: the SQLite layout with PostgreSQL types (BIGINT, DOUBLE PRECISION, TEXT with
 * the "C" collation so text compares and sorts bytewise as in SQLite, JSONB for the record
 * documents that filters read), plus records.seq and sessions.seq, identity columns that
 * give unordered finds and the sessions list SQLite's rowid (insertion) order, and the
 * documents' original text (metadata_text, body_text; JSON-typed doc columns elsewhere):
 * JSONB does not keep key order, and the API returns keys in the order they were stored.
 * Migrations run in one transaction under an advisory lock; the database itself is created
 * on first migration if it does not exist.
 */
#include "store/projection.h"
#include "store/backend.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/pool.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_POOL 4
#define WAIT_MS 2000
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define MIGRATION_LOCK_KEY 0x6f67640001LL /* arbitrary, fixed: "ogd" + 1 */

static const char *const migrations[] = {
    /* 1: the reference's collections */
    "CREATE TABLE records ("
    "  seq BIGINT GENERATED ALWAYS AS IDENTITY,"
    "  id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
    "  version BIGINT,"
    "  ts_us BIGINT,"
    "  shotnum BIGINT,"
    "  active_area TEXT COLLATE \"C\","
    "  active_experiment TEXT COLLATE \"C\","
    "  epac_ops_data_version TEXT COLLATE \"C\","
    "  metadata JSONB NOT NULL DEFAULT '{}',"
    "  metadata_text TEXT NOT NULL DEFAULT '{}'"
    ");"
    "CREATE INDEX records_ts ON records(ts_us);"
    "CREATE INDEX records_shotnum ON records(shotnum);"
    "CREATE TABLE record_channels ("
    "  record_id TEXT COLLATE \"C\" NOT NULL,"
    "  name TEXT COLLATE \"C\" NOT NULL,"
    "  ord BIGINT NOT NULL,"
    "  dtype TEXT COLLATE \"C\","
    "  num DOUBLE PRECISION,"
    "  str TEXT COLLATE \"C\","
    "  body JSONB NOT NULL,"
    "  body_text TEXT NOT NULL,"
    "  PRIMARY KEY (record_id, name)"
    ");"
    "CREATE INDEX record_channels_name ON record_channels(name, record_id);"
    "CREATE TABLE channel_manifests (id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL, doc JSON NOT "
    "NULL);"
    "CREATE TABLE users (id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL, doc JSON NOT NULL);"
    "CREATE TABLE sessions ("
    "  id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL, username TEXT COLLATE \"C\" NOT NULL,"
    "  name TEXT COLLATE \"C\" NOT NULL, doc JSON NOT NULL, UNIQUE (username, name));"
    "CREATE TABLE favourite_filters ("
    "  id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL, username TEXT COLLATE \"C\" NOT NULL,"
    "  doc JSON NOT NULL);"
    "CREATE TABLE experiments (id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL, doc JSON NOT NULL);",
    /* 2: experiments are unique in every field but _id (the bookkeeping row has no key) */
    "ALTER TABLE experiments ADD COLUMN match_key TEXT COLLATE \"C\";"
    "CREATE UNIQUE INDEX experiments_match ON experiments(match_key);",
    /* 3: sessions.seq, the insertion order SQLite's rowid gives /sessions/list (ids of two
     * workers in the same second are not ordered). Rows already there are numbered in the
     * id order they were listed in before; new ones get the identity's next value. */
    "ALTER TABLE sessions ADD COLUMN seq BIGINT GENERATED BY DEFAULT AS IDENTITY;"
    "UPDATE sessions SET seq = o.n FROM"
    "  (SELECT id, row_number() OVER (ORDER BY id) AS n FROM sessions) o WHERE sessions.id = o.id;"
    "SELECT setval(pg_get_serial_sequence('sessions', 'seq'),"
    "  (SELECT count(*) + 1 FROM sessions), false);"
    "ALTER TABLE sessions ALTER COLUMN seq SET NOT NULL, ALTER COLUMN seq SET GENERATED ALWAYS;"
    "CREATE INDEX sessions_user_seq ON sessions(username, seq);",
    /* 4: objects whose write has an unknown outcome (docs/design.md §6.5) */
    "CREATE TABLE uncertain_objects ("
    "  id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL, record_id TEXT COLLATE \"C\" NOT NULL,"
    "  channel TEXT COLLATE \"C\" NOT NULL, noted_at BIGINT NOT NULL,"
    "  claim_until BIGINT NOT NULL DEFAULT 0);",
};

/* ================================================================ jobs */

typedef struct pg_stmt {
    const char *what; /* for error messages */
    char *sql;
    int nparams;
    char **values; /* NULL entries are SQL NULL */
} pg_stmt;

typedef struct pg_conn pg_conn;
typedef struct pg_store pg_store;

typedef struct pg_job {
    store_op_t *op;
    pg_store *s;
    pg_stmt *stmts;
    int nstmts, cap;
    PGresult **res;  /* one per statement: its first result */
    int next_res;    /* the statement whose results are being read */
    bool broken;     /* the connection failed while running the job */
    bool converting; /* its results wait for (or are read on) the thread pool */
    projection_t *proj;
    uint64_t deadline;
    pg_conn *conn;
    struct pg_job *next; /* waiting or done queue */
} pg_job;

typedef struct job_queue {
    pg_job *head, *tail;
} job_queue;

static void q_push(job_queue *q, pg_job *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
}

static pg_job *q_pop(job_queue *q)
{
    pg_job *j = q->head;
    if (j) {
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
        j->next = NULL;
    }
    return j;
}

static bool q_remove(job_queue *q, pg_job *j)
{
    pg_job *prev = NULL;
    for (pg_job *k = q->head; k; prev = k, k = k->next) {
        if (k != j)
            continue;
        if (prev)
            prev->next = k->next;
        else
            q->head = k->next;
        if (q->tail == k)
            q->tail = prev;
        k->next = NULL;
        return true;
    }
    return false;
}

static pg_stmt *job_add(pg_job *j, const char *what, const char *sql, int nparams)
{
    if (j->nstmts == j->cap) {
        int ncap = j->cap ? j->cap * 2 : 4;
        pg_stmt *ns = realloc(j->stmts, (size_t)ncap * sizeof(*ns));
        if (!ns)
            return NULL;
        j->stmts = ns;
        j->cap = ncap;
    }
    pg_stmt *st = &j->stmts[j->nstmts];
    memset(st, 0, sizeof(*st));
    st->what = what;
    st->sql = strdup(sql);
    st->values = calloc(nparams ? (size_t)nparams : 1, sizeof(char *));
    if (!st->sql || !st->values) {
        free(st->sql);
        free(st->values);
        return NULL;
    }
    st->nparams = nparams;
    j->nstmts++;
    return st;
}

static void set_text(pg_stmt *st, int i, const char *v)
{
    st->values[i] = v ? strdup(v) : NULL;
}

static void set_int(pg_stmt *st, int i, long long v)
{
    char b[32];
    snprintf(b, sizeof(b), "%lld", v);
    st->values[i] = strdup(b);
}

static void set_json(pg_stmt *st, int i, const json_t *v)
{
    st->values[i] = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
}

static void job_free(pg_job *j)
{
    for (int i = 0; i < j->nstmts; i++) {
        for (int k = 0; k < j->stmts[i].nparams; k++)
            free(j->stmts[i].values[k]);
        free(j->stmts[i].values);
        free(j->stmts[i].sql);
        if (j->res && j->res[i])
            PQclear(j->res[i]);
    }
    free(j->stmts);
    free(j->res);
    projection_free(j->proj);
    free(j);
}

/* Statement text and parameters from a fragment (the filter emitter's output). */
static pg_stmt *job_add_fragment(pg_job *j, const char *what, const sql_fragment *q)
{
    pg_stmt *st = job_add(j, what, q->text.data, (int)q->nparams);
    for (size_t i = 0; st && i < q->nparams; i++) {
        const sql_param *p = &q->params[i];
        char b[40];
        switch (p->type) {
        case SQLP_INT:
            set_int(st, (int)i, (long long)p->i);
            break;
        case SQLP_REAL:
            snprintf(b, sizeof(b), "%.17g", p->d);
            set_text(st, (int)i, b);
            break;
        case SQLP_TEXT:
            set_text(st, (int)i, p->s);
            break;
        default:
            break;
        }
    }
    return st;
}

/* ================================================================ building jobs */

static void bad_query(store_op_t *op, const char *msg)
{
    snprintf(op->err, sizeof(op->err), "%s", msg);
    op->status = STORE_EBADQUERY;
}

static void build_find(pg_job *j, store_op_t *op)
{
    if (op->nprojection &&
        projection_compile(op->projection, op->nprojection, &j->proj, op->err, sizeof(op->err))) {
        op->status = STORE_EBADQUERY;
        return;
    }
    bool want_channels = !j->proj || projection_wants(j->proj, "channels");
    sql_fragment q;
    sql_fragment_init(&q);
    int rc = buf_puts(&q.text, "SELECT r.id, r.version, r.metadata_text, ");
    if (rc == 0 && want_channels) {
        rc = buf_puts(&q.text,
                      "(SELECT json_agg(json_build_array(ch.name, ch.body_text::json, ch.dtype) "
                      "ORDER BY ch.ord)::text FROM record_channels ch WHERE ch.record_id = r.id");
        json_t *names = j->proj ? projection_channel_names(j->proj) : NULL;
        if (rc == 0 && names) {
            char *text = json_dumps(names, JSON_COMPACT);
            sql_param p = {.type = SQLP_TEXT, .s = text, .len = text ? strlen(text) : 0};
            rc = text
                     ? buf_printf(&q.text,
                                  " AND ch.name IN (SELECT jsonb_array_elements_text($%zu::jsonb))",
                                  q.nparams + 1)
                     : -ENOMEM;
            if (rc == 0)
                rc = sql_fragment_param(&q, &p);
            free(text);
        }
        json_decref(names);
        if (rc == 0)
            rc = buf_puts(&q.text, ")");
    } else if (rc == 0) {
        rc = buf_puts(&q.text, "NULL");
    }
    if (rc == 0)
        rc = buf_puts(&q.text, " FROM records r");
    if (rc == 0 && op->filter) {
        rc = buf_puts(&q.text, " WHERE ");
        if (rc == 0)
            rc = filter_emit_pg(op->filter, &q);
    }
    if (rc) {
        bad_query(op, "filter too large");
        goto done;
    }
    buf_puts(&q.text, " ORDER BY ");
    if (op->norder) {
        size_t before = q.text.len;
        if (sort_compile_pg(op->order, op->norder, &q, op->err, sizeof(op->err))) {
            op->status = STORE_EBADQUERY;
            goto done;
        }
        if (q.text.len > before)
            buf_puts(&q.text, ", ");
    }
    int64_t limit = op->limit < 0 ? -op->limit : op->limit;
    if (op->max_documents > 0 && (limit == 0 || limit > op->max_documents))
        limit = op->max_documents;
    /* limit NULL = no limit */
    sql_param lim = {.type = limit > 0 ? SQLP_INT : SQLP_NULL, .i = limit};
    sql_param off = {.type = SQLP_INT, .i = op->skip > 0 ? op->skip : 0};
    if (buf_printf(&q.text, "r.seq LIMIT $%zu::int8 OFFSET $%zu::int8", q.nparams + 1,
                   q.nparams + 2) ||
        sql_fragment_param(&q, &lim) || sql_fragment_param(&q, &off)) {
        bad_query(op, "query too large");
        goto done;
    }
    if (!job_add_fragment(j, "query", &q))
        op->status = -ENOMEM;
done:
    sql_fragment_free(&q);
}

static void build_count(pg_job *j, store_op_t *op)
{
    sql_fragment q;
    sql_fragment_init(&q);
    int rc = buf_puts(&q.text, "SELECT count(*) FROM records r");
    if (rc == 0 && op->filter) {
        rc = buf_puts(&q.text, " WHERE ");
        if (rc == 0)
            rc = filter_emit_pg(op->filter, &q);
    }
    if (rc)
        bad_query(op, "filter too large");
    else if (!job_add_fragment(j, "count", &q))
        op->status = -ENOMEM;
    sql_fragment_free(&q);
}

/* Adds the statements that insert one whole record (after deleting it when replacing).
 * The timestamp in metadata is normalised to the API's text form. */
static void build_put_record(pg_job *j, store_op_t *op, json_t *doc)
{
    const char *id = json_string_value(json_object_get(doc, "_id"));
    if (!id) {
        bad_query(op, "record has no string _id");
        return;
    }
    int64_t ts_us = 0;
    bool has_ts = false;
    json_t *meta_copy = store_record_metadata(op, doc, id, &ts_us, &has_ts);
    if (!meta_copy)
        return;
    pg_stmt *st;
    if (op->replace) {
        st = job_add(j, "replace channels", "DELETE FROM record_channels WHERE record_id = $1", 1);
        if (st)
            set_text(st, 0, id);
        st = st ? job_add(j, "replace record", "DELETE FROM records WHERE id = $1", 1) : NULL;
        if (st)
            set_text(st, 0, id);
        if (!st)
            goto oom;
    }
    st = job_add(j, "insert record",
                 "INSERT INTO records (id, version, ts_us, shotnum, active_area, "
                 "active_experiment, epac_ops_data_version, metadata, metadata_text) VALUES "
                 "($1, $2::int8, $3::int8, $4::int8, $5, $6, $7, $8::text::jsonb, $8::text)",
                 8);
    if (!st)
        goto oom;
    set_text(st, 0, id);
    json_t *ver = json_object_get(doc, "version");
    if (json_is_integer(ver))
        set_int(st, 1, (long long)json_integer_value(ver));
    if (has_ts)
        set_int(st, 2, (long long)ts_us);
    json_t *shot = json_object_get(meta_copy, "shotnum");
    if (json_is_integer(shot))
        set_int(st, 3, (long long)json_integer_value(shot));
    else if (json_is_real(shot))
        set_int(st, 3, (long long)json_real_value(shot));
    static const char *const text_cols[] = {"active_area", "active_experiment",
                                            "epac_ops_data_version"};
    for (int i = 0; i < 3; i++)
        set_text(st, 4 + i, json_string_value(json_object_get(meta_copy, text_cols[i])));
    set_json(st, 7, meta_copy);

    json_t *channels = json_object_get(doc, "channels");
    const char *name;
    json_t *ch;
    long long ord = 0;
    json_object_foreach(channels, name, ch)
    {
        st = job_add(
            j, "insert channel",
            "INSERT INTO record_channels (record_id, name, ord, dtype, num, str, body, "
            "body_text) VALUES ($1, $2, $3::int8, $4, $5::float8, $6, $7::text::jsonb, $7::text)",
            7);
        if (!st)
            goto oom;
        json_t *data = json_object_get(ch, "data");
        set_text(st, 0, id);
        set_text(st, 1, name);
        set_int(st, 2, ord++);
        set_text(
            st, 3,
            json_string_value(json_object_get(json_object_get(ch, "metadata"), "channel_dtype")));
        if (json_is_number(data)) {
            char b[40];
            snprintf(b, sizeof(b), "%.17g", json_number_value(data));
            set_text(st, 4, b);
        }
        set_text(st, 5, json_string_value(data));
        set_json(st, 6, ch);
    }
    json_decref(meta_copy);
    return;
oom:
    op->status = -ENOMEM;
    json_decref(meta_copy);
}

/* STORE_RECORD_MERGE: one pipeline (one transaction). The UPDATE takes the record's row
 * lock first, so concurrent merges of one record run one after the other. */
static void build_merge(pg_job *j, store_op_t *op)
{
    json_t *channels = json_object_get(op->doc, "channels");
    if (!op->id || !json_is_object(channels)) {
        bad_query(op, "a merge needs an id and channels");
        return;
    }
    pg_stmt *st = job_add(j, "merge record",
                          "UPDATE records SET version = COALESCE(version, 1) + 1 WHERE id = $1", 1);
    if (st)
        set_text(st, 0, op->id);
    const char *name;
    json_t *ch;
    json_object_foreach(channels, name, ch)
    {
        if (!st)
            break;
        st = job_add(j, "merge channel",
                     "INSERT INTO record_channels (record_id, name, ord, dtype, num, str, body, "
                     "body_text) SELECT $1, $2, (SELECT COALESCE(max(ord) + 1, 0) FROM "
                     "record_channels WHERE record_id = $1), $3, $4::float8, $5, "
                     "$6::text::jsonb, $6::text WHERE EXISTS (SELECT 1 FROM records WHERE id = "
                     "$1) ON CONFLICT (record_id, name) DO UPDATE SET dtype = EXCLUDED.dtype, "
                     "num = EXCLUDED.num, str = EXCLUDED.str, body = EXCLUDED.body, body_text = "
                     "EXCLUDED.body_text",
                     6);
        if (!st)
            break;
        json_t *data = json_object_get(ch, "data");
        set_text(st, 0, op->id);
        set_text(st, 1, name);
        set_text(
            st, 2,
            json_string_value(json_object_get(json_object_get(ch, "metadata"), "channel_dtype")));
        if (json_is_number(data)) {
            char b[40];
            snprintf(b, sizeof(b), "%.17g", json_number_value(data));
            set_text(st, 3, b);
        }
        set_text(st, 4, json_string_value(data));
        set_json(st, 5, ch);
    }
    if (!st && !op->status)
        op->status = -ENOMEM;
}

static void build_put_doc(pg_job *j, store_op_t *op, const char *table)
{
    const char *id = json_string_value(json_object_get(op->doc, "_id"));
    if (!id) {
        bad_query(op, "document has no string _id");
        return;
    }
    char sql[160];
    snprintf(sql, sizeof(sql), "INSERT INTO %s (id, doc) VALUES ($1, $2::json)%s", table,
             op->replace ? " ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc" : "");
    pg_stmt *st = job_add(j, "put", sql, 2);
    if (!st) {
        op->status = -ENOMEM;
        return;
    }
    set_text(st, 0, id);
    set_json(st, 1, op->doc);
}

static pg_stmt *add1(pg_job *j, const char *what, const char *sql, const char *p1, const char *p2)
{
    pg_stmt *st = job_add(j, what, sql, p2 ? 2 : p1 ? 1 : 0);
    if (st && p1)
        set_text(st, 0, p1);
    if (st && p2)
        set_text(st, 1, p2);
    return st;
}

/* Builders of the kinds whose statements need more than one SQL text with op->id or
 * op->channel as parameters (those are table rows, see kinds[]). Each sets op->status on a
 * bad query or when memory runs out. */

static void build_range(pg_job *j, store_op_t *op)
{
    pg_stmt *st = job_add(j, "range",
                          op->range_by_shotnum
                              ? "SELECT count(*), min(ts_us), max(ts_us), count(ts_us) FROM "
                                "records WHERE shotnum BETWEEN $1::int8 AND $2::int8"
                              : "SELECT count(*), min(shotnum), max(shotnum), count(shotnum) FROM "
                                "records WHERE ts_us BETWEEN $1::int8 AND $2::int8",
                          2);
    if (st) {
        set_int(st, 0, (long long)op->lo);
        set_int(st, 1, (long long)op->hi);
    }
    if (!st && op->status == 0)
        op->status = -ENOMEM;
}

static void build_delete_record(pg_job *j, store_op_t *op)
{
    pg_stmt *st = add1(j, "delete channels", "DELETE FROM record_channels WHERE record_id = $1",
                       op->id, NULL);
    if (st)
        st = add1(j, "delete record", "DELETE FROM records WHERE id = $1", op->id, NULL);
    if (!st && op->status == 0)
        op->status = -ENOMEM;
}

static void build_put_one(pg_job *j, store_op_t *op)
{
    build_put_record(j, op, op->doc);
}

static void build_put_batch(pg_job *j, store_op_t *op)
{
    if (!json_is_array(op->doc)) {
        bad_query(op, "a batch of records must be an array");
        return;
    }
    size_t i;
    json_t *doc;
    json_array_foreach(op->doc, i, doc)
    {
        build_put_record(j, op, doc);
        if (op->status)
            break;
    }
}

static void build_summary(pg_job *j, store_op_t *op)
{
    pg_stmt *st = add1(j, "summary",
                       "SELECT r.ts_us FROM record_channels c JOIN records r ON r.id = c.record_id "
                       "WHERE c.name = $1 ORDER BY c.record_id ASC LIMIT 1",
                       op->channel, NULL);
    if (st)
        st = add1(j, "summary",
                  "SELECT r.ts_us FROM record_channels c JOIN records r ON r.id = "
                  "c.record_id WHERE c.name = $1 ORDER BY c.record_id DESC LIMIT 1",
                  op->channel, NULL);
    if (st)
        st = add1(j, "summary sample",
                  "SELECT r.ts_us, c.body_text FROM record_channels c JOIN records r ON "
                  "r.id = c.record_id WHERE c.name = $1 ORDER BY c.record_id DESC LIMIT 3",
                  op->channel, NULL);
    if (!st && op->status == 0)
        op->status = -ENOMEM;
}

static void build_update_user(pg_job *j, store_op_t *op)
{
    const char *id = json_string_value(json_object_get(op->doc, "_id"));
    if (!id) {
        bad_query(op, "document has no string _id");
        return;
    }
    pg_stmt *st = job_add(j, "update user",
                          "UPDATE users SET doc = $2::json WHERE id = $1 AND "
                          "COALESCE((doc->>'_rev')::bigint, 0) = $3::bigint",
                          3);
    if (st) {
        set_text(st, 0, id);
        set_json(st, 1, op->doc);
        set_int(st, 2, (long long)op->lo);
    }
    if (!st && op->status == 0)
        op->status = -ENOMEM;
}

static void build_put_session(pg_job *j, store_op_t *op)
{
    const char *id = json_string_value(json_object_get(op->doc, "_id"));
    const char *user = json_string_value(json_object_get(op->doc, "username"));
    const char *name = json_string_value(json_object_get(op->doc, "name"));
    if (!id || !user || !name) {
        bad_query(op, "a session needs string _id, username and name");
        return;
    }
    pg_stmt *st =
        job_add(j, "put session",
                op->replace ? "INSERT INTO sessions (id, username, name, doc) VALUES ($1, $2, "
                              "$3, $4::json) ON CONFLICT (id) DO UPDATE SET username = "
                              "EXCLUDED.username, name = EXCLUDED.name, doc = EXCLUDED.doc"
                            : "INSERT INTO sessions (id, username, name, doc) VALUES ($1, $2, "
                              "$3, $4::json)",
                4);
    if (st) {
        set_text(st, 0, id);
        set_text(st, 1, user);
        set_text(st, 2, name);
        set_json(st, 3, op->doc);
    }
    if (!st && op->status == 0)
        op->status = -ENOMEM;
}

static void build_put_experiment(pg_job *j, store_op_t *op)
{
    const char *id = json_string_value(json_object_get(op->doc, "_id"));
    char *key = store_experiment_key(op->doc);
    if (!id || !key) {
        free(key);
        bad_query(op, "an experiment needs _id and every field");
        return;
    }
    /* The insert's row is not visible to the outer SELECT: exactly one branch answers. */
    pg_stmt *st = job_add(j, "put experiment",
                          "WITH ins AS (INSERT INTO experiments (id, match_key, doc) VALUES ($1, "
                          "$2, $3::json) ON CONFLICT (match_key) DO NOTHING RETURNING id) "
                          "SELECT id, 1 FROM ins UNION ALL "
                          "SELECT id, 0 FROM experiments WHERE match_key = $2",
                          3);
    if (st) {
        set_text(st, 0, id);
        set_text(st, 1, key);
        set_json(st, 2, op->doc);
    }
    free(key);
    if (!st && op->status == 0)
        op->status = -ENOMEM;
}

/* A statement of the uncertain-object kinds: $1 = op->doc (JSON), $2 = op->lo. */
static bool add_doc_lo(pg_job *j, store_op_t *op, const char *what, const char *sql)
{
    pg_stmt *st = job_add(j, what, sql, 2);
    if (!st) {
        if (op->status == 0)
            op->status = -ENOMEM;
        return false;
    }
    set_json(st, 0, op->doc);
    set_int(st, 1, (long long)op->lo);
    return true;
}

static void build_uncertain_note(pg_job *j, store_op_t *op)
{
    if (!store_uncertain_notes_valid(op->doc)) {
        bad_query(op, "notes need string _id, record_id and channel");
        return;
    }
    add_doc_lo(j, op, "note uncertain objects",
               "INSERT INTO uncertain_objects (id, record_id, channel, noted_at, claim_until) "
               "SELECT e->>'_id', e->>'record_id', e->>'channel', $2::bigint, 0 FROM "
               "json_array_elements($1::json) e ON CONFLICT (id) DO UPDATE SET record_id = "
               "EXCLUDED.record_id, channel = EXCLUDED.channel, noted_at = "
               "EXCLUDED.noted_at, claim_until = 0");
}

static void build_uncertain_touch(pg_job *j, store_op_t *op)
{
    if (!store_uncertain_keys_valid(op->doc)) {
        bad_query(op, "keys must be strings");
        return;
    }
    if (add_doc_lo(j, op, "touch uncertain objects",
                   "UPDATE uncertain_objects SET noted_at = $2::bigint WHERE id IN (SELECT "
                   "json_array_elements_text($1::json)) AND claim_until < $2::bigint"))
        add_doc_lo(j, op, "claimed uncertain objects",
                   "SELECT COALESCE(json_agg(id ORDER BY id), '[]'::json)::text FROM "
                   "uncertain_objects WHERE id IN (SELECT json_array_elements_text($1::json)) "
                   "AND claim_until >= $2::bigint");
}

static void build_uncertain_claim(pg_job *j, store_op_t *op)
{
    pg_stmt *st = job_add(j, "claim uncertain object",
                          "UPDATE uncertain_objects SET claim_until = $3::bigint WHERE id = $1 AND "
                          "noted_at <= $2::bigint AND claim_until < $4::bigint",
                          4);
    if (st) {
        set_text(st, 0, op->id);
        set_int(st, 1, (long long)op->lo);
        set_int(st, 2, (long long)(op->hi + STORE_UNCERTAIN_LEASE_S));
        set_int(st, 3, (long long)op->hi);
    }
    if (!st && op->status == 0)
        op->status = -ENOMEM;
}

/* ================================================================ reading results */

static json_t *load_json(const char *text)
{
    if (!text)
        return NULL;
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    if (!v) /* an integer too large for jansson: PostgreSQL prints numerics in full */
        v = json_loads(text, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
    return v;
}

static int64_t int_at(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static void finish_find(pg_job *j, store_op_t *op, const PGresult *r)
{
    projection_t *proj = j->proj;
    bool want_meta = !proj || projection_wants(proj, "metadata");
    bool want_version = !proj || projection_wants(proj, "version");
    bool want_channels = !proj || projection_wants(proj, "channels");
    json_t *out = json_array();
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        json_t *rec = json_object();
        json_object_set_new(rec, "_id", json_string(PQgetvalue(r, i, 0)));
        if (want_version && !PQgetisnull(r, i, 1))
            json_object_set_new(rec, "version", json_integer(int_at(r, i, 1)));
        if (want_meta) {
            json_t *m = load_json(PQgetvalue(r, i, 2));
            json_object_set_new(rec, "metadata", m ? m : json_object());
        }
        if (want_channels) {
            json_t *channels = json_object();
            json_t *pairs = PQgetisnull(r, i, 3) ? NULL : load_json(PQgetvalue(r, i, 3));
            size_t k;
            json_t *pair;
            json_array_foreach(pairs, k, pair)
            {
                const char *name = json_string_value(json_array_get(pair, 0));
                json_t *body = store_channel_for(op, json_array_get(pair, 1));
                store_note_dtype(op, PQgetvalue(r, i, 0), name,
                                 json_string_value(json_array_get(pair, 2)));
                if (name)
                    json_object_set(channels, name, body ? body : json_object());
            }
            json_decref(pairs);
            json_object_set_new(rec, "channels", channels);
        }
        if (proj)
            projection_apply(proj, rec);
        json_array_append_new(out, rec);
    }
    op->result = out;
}

static void finish_range(pg_job *j, store_op_t *op, const PGresult *r)
{
    (void)j;
    int64_t n = int_at(r, 0, 0), nfield = int_at(r, 0, 3);
    int64_t lo = int_at(r, 0, 1), hi = int_at(r, 0, 2);
    store_range_result(op, n, lo, hi, nfield);
}

static json_t *ts_json(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    char text[32];
    store_format_timestamp(int_at(r, row, col), text);
    return json_string(text);
}

static void finish_summary(pg_job *j, store_op_t *op, const PGresult *first)
{
    (void)first;
    if (PQntuples(j->res[0]) == 0 || PQntuples(j->res[1]) == 0) {
        op->status = -ENOENT;
        return;
    }
    json_t *res = json_object();
    json_object_set_new(res, "first_date", ts_json(j->res[0], 0, 0));
    json_object_set_new(res, "most_recent_date", ts_json(j->res[1], 0, 0));
    json_t *recent = json_array();
    json_object_set_new(res, "recent", recent);
    const PGresult *r = j->res[2];
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *item = json_object();
        json_object_set_new(item, "timestamp", ts_json(r, i, 0));
        json_t *body = store_channel_for(op, load_json(PQgetvalue(r, i, 1)));
        json_object_set_new(item, "channel", body ? body : json_object());
        json_array_append_new(recent, item);
    }
    op->result = res;
}

/* Whether a failed result means the server or the connection went away. */
static bool unavailable(const PGresult *r, PGconn *c)
{
    if (c && PQstatus(c) == CONNECTION_BAD)
        return true;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!state)
        return true; /* no SQLSTATE: a client-side (connection) failure */
    return strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
           strcmp(state, "53300") == 0;
}

static void finish_merge(pg_job *j, store_op_t *op, const PGresult *r)
{
    (void)r;
    if (strtoll(PQcmdTuples(j->res[0]), NULL, 10) == 0)
        op->status = -ENOENT;
}

static void finish_uncertain_touch(pg_job *j, store_op_t *op, const PGresult *r)
{
    (void)r;
    op->result = load_json(PQgetvalue(j->res[1], 0, 0));
    if (!json_is_array(op->result)) {
        op->status = STORE_EDB;
        snprintf(op->err, sizeof(op->err), "claimed uncertain objects: not an array");
    }
}

static void finish_put_experiment(pg_job *j, store_op_t *op, const PGresult *r)
{
    (void)j;
    if (PQntuples(r) < 1) {
        op->status = STORE_EDB;
        snprintf(op->err, sizeof(op->err), "put experiment: no row");
    } else {
        op->result = json_string(PQgetvalue(r, 0, 0));
        op->count = int_at(r, 0, 1);
    }
}

static void finish_stamp_get(pg_job *j, store_op_t *op, const PGresult *r)
{
    (void)j;
    if (PQntuples(r) < 1 || PQgetisnull(r, 0, 0))
        op->status = -ENOENT;
    else
        op->result = json_string(PQgetvalue(r, 0, 0));
}

static void finish_ping(pg_job *j, store_op_t *op, const PGresult *r)
{
    (void)j;
    if (PQntuples(r) == 0) {
        op->status = STORE_EDB;
        snprintf(op->err, sizeof(op->err), "ping: no schema version");
    }
}

/* ================================================================ the kinds */

/* How a kind's statements are built. */
typedef enum pg_build {
    PB_MISSING, /* no entry (never in a complete table) */
    PB_FN,      /* build(j, op) */
    PB_SQL,     /* one statement: sql, named what, with the parameters `params` */
    PB_PUT_DOC, /* build_put_doc: doc by its _id into `table` */
} pg_build;

/* The parameters of a PB_SQL statement (add1: a NULL one is left out). */
typedef enum pg_params {
    PP_NONE,
    PP_ID,          /* $1 = op->id */
    PP_CHANNEL,     /* $1 = op->channel */
    PP_ID_CHANNEL,  /* $1 = op->id, $2 = op->channel */
    PP_ID_OR_EMPTY, /* $1 = op->id, or "" without one */
} pg_params;

/* How a kind's results become the op's outputs. */
typedef enum pg_reading {
    PR_NONE,    /* nothing to read (writes) */
    PR_FN,      /* finish(j, op, first result) */
    PR_COUNT,   /* count = the first result's first value */
    PR_CHANGED, /* count = rows changed by statement `changed` */
    PR_GET,     /* result = the one document of the first result, or -ENOENT */
    PR_LIST,    /* result = the documents of the first result, at most max_documents */
} pg_reading;

typedef struct pg_kind {
    pg_build build;
    void (*build_fn)(pg_job *j, store_op_t *op); /* PB_FN */
    const char *what;                            /* PB_SQL: the statement's name in messages */
    const char *sql;                             /* PB_SQL */
    pg_params params;                            /* PB_SQL */
    const char *table;                           /* PB_PUT_DOC */
    pg_reading result;
    void (*finish)(pg_job *j, store_op_t *op, const PGresult *r); /* PR_FN */
    int changed;  /* PR_CHANGED: index of the statement counted */
    bool on_pool; /* results are turned into documents on the thread pool */
} pg_kind;

static const pg_kind kinds[] = {
    [STORE_PING] = {PB_SQL, .what = "ping", .sql = "SELECT 1 FROM schema_version LIMIT 1",
                    .result = PR_FN, .finish = finish_ping},
    [STORE_RECORDS_FIND] = {PB_FN, .build_fn = build_find, .result = PR_FN, .finish = finish_find,
                            .on_pool = true},
    [STORE_RECORDS_COUNT] = {PB_FN, .build_fn = build_count, .result = PR_COUNT},
    [STORE_RECORDS_RANGE] = {PB_FN, .build_fn = build_range, .result = PR_FN,
                             .finish = finish_range},
    [STORE_RECORD_DELETE] = {PB_FN, .build_fn = build_delete_record, .result = PR_CHANGED,
                             .changed = 1},
    [STORE_RECORD_PUT] = {PB_FN, .build_fn = build_put_one},
    [STORE_RECORDS_PUT] = {PB_FN, .build_fn = build_put_batch},
    [STORE_CHANNEL_COUNT] = {PB_SQL, .what = "channel count",
                             .sql = "SELECT count(*) FROM record_channels WHERE record_id = $1 "
                                    "AND name = $2",
                             .params = PP_ID_CHANNEL, .result = PR_COUNT},
    [STORE_MANIFEST_LATEST] = {PB_SQL, .what = "get",
                               .sql = "SELECT doc::text FROM channel_manifests ORDER BY id DESC "
                                      "LIMIT 1",
                               .result = PR_GET},
    [STORE_MANIFEST_PUT] = {PB_PUT_DOC, .table = "channel_manifests"},
    [STORE_CHANNEL_SUMMARY] = {PB_FN, .build_fn = build_summary, .result = PR_FN,
                               .finish = finish_summary},
    [STORE_USER_GET] = {PB_SQL, .what = "get", .sql = "SELECT doc::text FROM users WHERE id = $1",
                        .params = PP_ID, .result = PR_GET},
    [STORE_USER_PUT] = {PB_PUT_DOC, .table = "users"},
    /* Refresh planner statistics (autovacuum does the rest). */
    [STORE_MAINTENANCE] = {PB_SQL, .what = "maintenance", .sql = "ANALYZE"},
    [STORE_RECORD_MERGE] = {PB_FN, .build_fn = build_merge, .result = PR_FN,
                            .finish = finish_merge},
    [STORE_USER_DELETE] = {PB_SQL, .what = "delete user", .sql = "DELETE FROM users WHERE id = $1",
                           .params = PP_ID, .result = PR_CHANGED},
    [STORE_USERS_LIST] = {PB_SQL, .what = "list users",
                          .sql = "SELECT doc::text FROM users ORDER BY id", .result = PR_LIST},
    [STORE_SESSION_GET] = {PB_SQL, .what = "get",
                           .sql = "SELECT doc::text FROM sessions WHERE id = $1", .params = PP_ID,
                           .result = PR_GET},
    [STORE_SESSION_PUT] = {PB_FN, .build_fn = build_put_session},
    [STORE_SESSION_DELETE] = {PB_SQL, .what = "delete session",
                              .sql = "DELETE FROM sessions WHERE id = $1", .params = PP_ID,
                              .result = PR_CHANGED},
    /* Creation order (the reference's natural order): seq, as SQLite's rowid. */
    [STORE_SESSIONS_LIST] = {PB_SQL, .what = "list sessions",
                             .sql = "SELECT doc::text FROM sessions WHERE username = $1 ORDER BY "
                                    "seq",
                             .params = PP_ID, .result = PR_LIST},
    [STORE_USER_BY_EMAIL] = {PB_SQL, .what = "get",
                             .sql = "SELECT doc::text FROM users WHERE doc->>'email' = $1 ORDER "
                                    "BY id LIMIT 1",
                             .params = PP_ID, .result = PR_GET},
    [STORE_USER_UPDATE] = {PB_FN, .build_fn = build_update_user, .result = PR_CHANGED},
    [STORE_EXPERIMENTS_LIST] = {PB_SQL, .what = "list experiments",
                                .sql = "SELECT doc::text FROM experiments WHERE match_key IS NOT "
                                       "NULL ORDER BY id",
                                .result = PR_LIST},
    [STORE_EXPERIMENT_PUT] = {PB_FN, .build_fn = build_put_experiment, .result = PR_FN,
                              .finish = finish_put_experiment},
    [STORE_EXPERIMENTS_STAMP_GET] = {PB_SQL, .what = "get experiments stamp",
                                     .sql = "SELECT doc->>'collection_last_updated' FROM "
                                            "experiments WHERE id = 'collection_last_updated'",
                                     .result = PR_FN, .finish = finish_stamp_get},
    [STORE_EXPERIMENTS_STAMP_PUT] = {PB_SQL, .what = "stamp experiments",
                                     .sql = "INSERT INTO experiments (id, match_key, doc) VALUES "
                                            "('collection_last_updated', NULL, "
                                            "json_build_object('collection_last_updated', "
                                            "$1::text)) ON CONFLICT (id) DO UPDATE SET doc = "
                                            "EXCLUDED.doc",
                                     .params = PP_ID_OR_EMPTY},
    [STORE_UNCERTAIN_NOTE] = {PB_FN, .build_fn = build_uncertain_note},
    [STORE_UNCERTAIN_TOUCH] = {PB_FN, .build_fn = build_uncertain_touch, .result = PR_FN,
                               .finish = finish_uncertain_touch},
    [STORE_UNCERTAIN_LIST] = {PB_SQL, .what = "list uncertain objects",
                              .sql = "SELECT json_build_object('_id', id, 'record_id', record_id, "
                                     "'channel', channel, 'noted_at', noted_at)::text FROM "
                                     "uncertain_objects ORDER BY noted_at, id",
                              .result = PR_LIST},
    [STORE_UNCERTAIN_CLAIM] = {PB_FN, .build_fn = build_uncertain_claim, .result = PR_CHANGED},
    [STORE_UNCERTAIN_DELETE] = {PB_SQL, .what = "delete uncertain object",
                                .sql = "DELETE FROM uncertain_objects WHERE id = $1",
                                .params = PP_ID, .result = PR_CHANGED},
};
_Static_assert(sizeof(kinds) / sizeof(kinds[0]) == STORE_OP_KINDS,
               "every op kind needs an entry in pg.c's kinds[]");

int store_pg_missing_kind(void)
{
    for (int k = 0; k < STORE_OP_KINDS; k++) {
        const pg_kind *e = &kinds[k];
        bool ok = e->build == PB_FN    ? e->build_fn != NULL
                  : e->build == PB_SQL ? e->what && e->sql
                                       : e->build == PB_PUT_DOC && e->table;
        if (!ok || (e->result == PR_FN && !e->finish))
            return k;
    }
    return -1;
}

/* Whether the op's results are turned into documents on the thread pool. */
static bool kind_on_pool(store_op_kind kind)
{
    return (unsigned)kind < STORE_OP_KINDS && kinds[kind].on_pool;
}

/* Fills j with the op's statements, or sets op->status (bad query, out of memory). */
static void build_job(pg_job *j, store_op_t *op)
{
    const pg_kind *k = (unsigned)op->kind < STORE_OP_KINDS ? &kinds[op->kind] : NULL;
    switch (k ? k->build : PB_MISSING) {
    case PB_FN:
        k->build_fn(j, op);
        break;
    case PB_SQL: {
        const char *p1 = NULL, *p2 = NULL;
        switch (k->params) {
        case PP_NONE:
            break;
        case PP_ID:
            p1 = op->id;
            break;
        case PP_CHANNEL:
            p1 = op->channel;
            break;
        case PP_ID_CHANNEL:
            p1 = op->id;
            p2 = op->channel;
            break;
        case PP_ID_OR_EMPTY:
            p1 = op->id ? op->id : "";
            break;
        }
        if (!add1(j, k->what, k->sql, p1, p2) && op->status == 0)
            op->status = -ENOMEM;
        break;
    }
    case PB_PUT_DOC:
        build_put_doc(j, op, k->table);
        break;
    case PB_MISSING:
        break;
    }
    if (op->status == 0 && j->nstmts == 0 && op->kind == STORE_RECORDS_PUT)
        return; /* an empty batch: nothing to do */
    if (op->status == 0) {
        j->res = calloc((size_t)j->nstmts, sizeof(PGresult *));
        if (!j->res && j->nstmts)
            op->status = -ENOMEM;
    }
}

/* Turns the collected results into the op's outputs. Runs on the loop or a pool thread. */
static void finish_job(pg_job *j, store_op_t *op)
{
    if (j->broken) {
        op->status = STORE_EUNAVAILABLE;
        snprintf(op->err, sizeof(op->err), "database connection lost");
        return;
    }
    for (int i = 0; i < j->nstmts; i++) {
        PGresult *r = j->res[i];
        ExecStatusType rs = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (rs == PGRES_TUPLES_OK || rs == PGRES_COMMAND_OK)
            continue;
        if (rs == PGRES_PIPELINE_ABORTED)
            continue; /* skipped after an earlier statement's error */
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        if (state && strcmp(state, "23505") == 0) {
            op->status = -EEXIST;
            snprintf(op->err, sizeof(op->err), "%s: already exists", j->stmts[i].what);
        } else if (!r || unavailable(r, NULL)) {
            op->status = STORE_EUNAVAILABLE;
            snprintf(op->err, sizeof(op->err), "%s: database unavailable", j->stmts[i].what);
        } else {
            const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
            op->status = STORE_EDB;
            snprintf(op->err, sizeof(op->err), "%s: %s", j->stmts[i].what, msg ? msg : "error");
        }
        return;
    }
    const PGresult *r = j->nstmts ? j->res[0] : NULL;
    const pg_kind *k = (unsigned)op->kind < STORE_OP_KINDS ? &kinds[op->kind] : NULL;
    switch (k ? k->result : PR_NONE) {
    case PR_NONE:
        break;
    case PR_FN:
        k->finish(j, op, r);
        break;
    case PR_COUNT:
        op->count = int_at(r, 0, 0);
        break;
    case PR_CHANGED:
        op->count = strtoll(PQcmdTuples(j->res[k->changed]), NULL, 10);
        break;
    case PR_LIST: {
        json_t *out = json_array();
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            if (op->max_documents > 0 && (int64_t)json_array_size(out) >= op->max_documents)
                break;
            json_t *d = load_json(PQgetvalue(r, i, 0));
            if (d)
                json_array_append_new(out, d);
        }
        op->result = out;
        break;
    }
    case PR_GET:
        if (PQntuples(r) == 0) {
            op->status = -ENOENT;
        } else {
            op->result = load_json(PQgetvalue(r, 0, 0));
            if (!op->result) {
                op->status = STORE_EDB;
                snprintf(op->err, sizeof(op->err), "get: stored document is not JSON");
            }
        }
        break;
    }
}

/* ================================================================ the pool */

typedef enum conn_state { C_DOWN, C_WAIT, C_CONNECTING, C_IDLE, C_BUSY } conn_state;

struct pg_conn {
    pg_store *s;
    PGconn *pc;
    conn_state state;
    uv_poll_t *poll; /* heap: replaced when the socket changes */
    int poll_fd;
    int poll_events;
    uv_timer_t retry;
    uint64_t backoff;
    uint64_t last_attempt;
    pg_job *job;
    bool cancel_pending; /* a cancel request for its job is on its way: no new job yet */
};

struct pg_store {
    store_t base;
    char *url;
    int npool;
    pg_conn *conns;
    job_queue waiting, done;
    uv_timer_t kick;     /* delivers done jobs on the next loop turn */
    uv_timer_t deadline; /* fails jobs that waited too long for a connection */
    bool handles;        /* the timers above and the conns' retry timers exist */
    PGconn *sync;        /* store_run_sync's connection */
};

static void conn_start(pg_conn *c);
static void dispatch(pg_store *s);
static void on_kick(uv_timer_t *t);
static void on_retry(uv_timer_t *t);

static void quiet_notices(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static void poll_closed(uv_handle_t *h)
{
    free(h);
}

static void poll_drop(pg_conn *c)
{
    if (c->poll) {
        uv_poll_stop(c->poll);
        if (!uv_is_closing((uv_handle_t *)c->poll))
            uv_close((uv_handle_t *)c->poll, poll_closed);
        c->poll = NULL;
    }
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Watches the connection's socket for events (re-creating the watcher if the socket
 * changed); ref'd only while a job runs, so an idle pool does not keep the loop alive. */
static void poll_watch(pg_conn *c, int events)
{
    int fd = PQsocket(c->pc);
    if (c->poll && c->poll_fd != fd)
        poll_drop(c);
    if (!c->poll) {
        c->poll = malloc(sizeof(*c->poll));
        if (!c->poll || uv_poll_init(c->s->base.loop, c->poll, fd) != 0) {
            free(c->poll);
            c->poll = NULL;
            return;
        }
        c->poll->data = c;
        c->poll_fd = fd;
        c->poll_events = 0;
    }
    if (c->poll_events != events || !uv_is_active((uv_handle_t *)c->poll)) {
        uv_poll_start(c->poll, events, on_poll);
        c->poll_events = events;
    }
    if (c->state == C_BUSY)
        uv_ref((uv_handle_t *)c->poll);
    else
        uv_unref((uv_handle_t *)c->poll);
}

static void deliver_later(pg_store *s, pg_job *j)
{
    q_push(&s->done, j);
    if (!uv_is_active((uv_handle_t *)&s->kick))
        uv_timer_start(&s->kick, on_kick, 0, 0);
}

static void convert_work(uv_work_t *w)
{
    pool_work_begins();
    store_op_t *op = w->data;
    pg_job *j = op->backend_data;
    if (op->canceled)
        return;
    finish_job(j, op);
    if (op->status == 0 && op->post && !op->canceled)
        op->post(op);
}

static void complete(store_op_t *op, pg_job *j)
{
    op->backend_data = NULL;
    job_free(j);
    store_complete(op);
}

static void convert_after(uv_work_t *w, int status)
{
    pool_work_ends(status);
    store_op_t *op = w->data;
    complete(op, op->backend_data);
}

/* A job's results are all in: read them (on the pool for record reads) and deliver. */
static void job_done(pg_store *s, pg_job *j)
{
    store_op_t *op = j->op;
    j->conn = NULL;
    if (!op->canceled && op->status == 0 && !j->broken && (kind_on_pool(op->kind) || op->post)) {
        op->work.data = op;
        if (pool_queue_work(s->base.loop, &op->work, convert_work, convert_after) == 0) {
            j->converting = true;
            return;
        }
    }
    if (!op->canceled && op->status == 0) {
        finish_job(j, op);
        if (op->status == 0 && op->post)
            op->post(op);
    }
    deliver_later(s, j);
}

static void conn_fail(pg_conn *c)
{
    pg_store *s = c->s;
    poll_drop(c);
    if (!c->backoff) { /* the first failure of a streak: say so once (libpq's text has no
                          password in it) */
        const char *msg = c->pc ? PQerrorMessage(c->pc) : "out of memory";
        size_t n = strcspn(msg, "\n");
        log_warn("database: connection %s: %.*s", c->job ? "lost" : "failed", (int)n, msg);
    }
    if (c->pc) {
        PQfinish(c->pc);
        c->pc = NULL;
    }
    if (c->job) {
        pg_job *j = c->job;
        c->job = NULL;
        j->broken = true;
        job_done(s, j);
    }
    c->backoff = c->backoff ? c->backoff * 2 : BACKOFF_FIRST_MS;
    if (c->backoff > BACKOFF_MAX_MS)
        c->backoff = BACKOFF_MAX_MS;
    c->state = C_WAIT;
    uv_timer_start(&c->retry, on_retry, c->backoff, 0);
    uv_unref((uv_handle_t *)&c->retry);
}

/* Reads whatever the server sent; collects the running job's results. */
static void conn_read(pg_conn *c)
{
    if (!PQconsumeInput(c->pc)) {
        conn_fail(c);
        return;
    }
    pg_job *j = c->job;
    int nulls = 0;
    while (j && !PQisBusy(c->pc)) {
        PGresult *r = PQgetResult(c->pc);
        if (!r) {
            /* the end of one statement's results; twice in a row: nothing more for now */
            if (nulls++)
                break;
            if (j->next_res < j->nstmts)
                j->next_res++;
            continue;
        }
        nulls = 0;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            PQexitPipelineMode(c->pc);
            c->job = NULL;
            c->state = C_IDLE;
            c->backoff = 0;
            bool bad = j->next_res < j->nstmts; /* a result went missing */
            if (bad)
                j->broken = true;
            job_done(c->s, j);
            poll_watch(c, UV_READABLE);
            dispatch(c->s);
            return;
        }
        if (j->next_res < j->nstmts && !j->res[j->next_res]) {
            if (st == PGRES_FATAL_ERROR && unavailable(r, c->pc))
                j->broken = true;
            j->res[j->next_res] = r;
        } else {
            PQclear(r);
        }
    }
    if (PQstatus(c->pc) == CONNECTION_BAD) {
        conn_fail(c);
        return;
    }
    if (!j) {
        /* idle: drop notices and notifications */
        PGnotify *nt;
        while ((nt = PQnotifies(c->pc)))
            PQfreemem(nt);
    }
}

static void conn_flush(pg_conn *c)
{
    int f = PQflush(c->pc);
    if (f < 0) {
        conn_fail(c);
        return;
    }
    poll_watch(c, f == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

static void connect_step(pg_conn *c)
{
    PostgresPollingStatusType ps = PQconnectPoll(c->pc);
    if (ps == PGRES_POLLING_FAILED) {
        conn_fail(c);
        return;
    }
    if (ps == PGRES_POLLING_OK) {
        if (PQsetnonblocking(c->pc, 1) != 0) {
            conn_fail(c);
            return;
        }
        c->state = C_IDLE;
        if (c->backoff)
            log_info("database: connected again");
        c->backoff = 0;
        poll_watch(c, UV_READABLE);
        dispatch(c->s);
        return;
    }
    poll_watch(c, ps == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    pg_conn *c = h->data;
    if (h != c->poll)
        return;
    if (c->state == C_CONNECTING) {
        connect_step(c);
        return;
    }
    if (status < 0) {
        conn_fail(c);
        return;
    }
    if (events & UV_WRITABLE && c->state == C_BUSY) {
        conn_flush(c);
        if (c->state != C_BUSY)
            return;
    }
    if (events & UV_READABLE)
        conn_read(c);
}

static void on_retry(uv_timer_t *t)
{
    pg_conn *c = t->data;
    if (c->state == C_WAIT)
        conn_start(c);
}

static void conn_start(pg_conn *c)
{
    c->last_attempt = uv_now(c->s->base.loop);
    c->pc = PQconnectStart(c->s->url);
    if (!c->pc || PQstatus(c->pc) == CONNECTION_BAD) {
        conn_fail(c);
        return;
    }
    PQsetNoticeProcessor(c->pc, quiet_notices, NULL);
    c->state = C_CONNECTING;
    /* PQconnectStart leaves the connection as if PQconnectPoll had said "writing". */
    poll_watch(c, UV_WRITABLE);
    if (!c->poll)
        conn_fail(c);
}

/* Sends a job's statements as one pipeline with one sync. */
static void conn_run(pg_conn *c, pg_job *j)
{
    c->job = j;
    j->conn = c;
    c->state = C_BUSY;
    bool ok = PQenterPipelineMode(c->pc) == 1;
    for (int i = 0; ok && i < j->nstmts; i++) {
        pg_stmt *st = &j->stmts[i];
        ok = PQsendQueryParams(c->pc, st->sql, st->nparams, NULL, (const char *const *)st->values,
                               NULL, NULL, 0) == 1;
    }
    if (ok)
        ok = PQpipelineSync(c->pc) == 1;
    if (!ok) {
        conn_fail(c);
        return;
    }
    conn_flush(c);
}

static uint64_t now_ms(pg_store *s)
{
    return uv_now(s->base.loop);
}

static void on_deadline(uv_timer_t *t)
{
    pg_store *s = t->data;
    uint64_t now = now_ms(s);
    bool up = false;
    for (int i = 0; i < s->npool; i++)
        up = up || s->conns[i].state == C_IDLE || s->conns[i].state == C_BUSY;
    if (up) {
        /* a busy pool, not a missing server: keep waiting */
        for (pg_job *k = s->waiting.head; k; k = k->next)
            k->deadline = now + WAIT_MS;
    }
    pg_job *j = s->waiting.head;
    while (j && j->deadline <= now) {
        q_pop(&s->waiting);
        j->op->status = STORE_EUNAVAILABLE;
        snprintf(j->op->err, sizeof(j->op->err), "no database connection");
        deliver_later(s, j);
        j = s->waiting.head;
    }
    if (s->waiting.head)
        uv_timer_start(&s->deadline, on_deadline, s->waiting.head->deadline - now, 0);
}

static void dispatch(pg_store *s)
{
    bool connecting = false;
    for (int i = 0; i < s->npool; i++) {
        pg_conn *c = &s->conns[i];
        if (c->state == C_IDLE && !c->cancel_pending && s->waiting.head)
            conn_run(c, q_pop(&s->waiting));
        if (c->state == C_CONNECTING)
            connecting = true;
    }
    if (!s->waiting.head)
        return;
    /* Jobs are waiting: open connections that are down, and if none is on its way, cut
     * one backoff short (at most one attempt per BACKOFF_FIRST_MS). */
    int want = 0;
    for (pg_job *j = s->waiting.head; j; j = j->next)
        want++;
    for (int i = 0; i < s->npool && want > 0; i++) {
        pg_conn *c = &s->conns[i];
        if (c->state == C_DOWN) {
            conn_start(c);
            connecting = true;
            want--;
        }
    }
    for (int i = 0; i < s->npool && !connecting; i++) {
        pg_conn *c = &s->conns[i];
        if (c->state == C_WAIT && now_ms(s) - c->last_attempt >= BACKOFF_FIRST_MS) {
            uv_timer_stop(&c->retry);
            conn_start(c);
            connecting = true;
        }
    }
    if (!uv_is_active((uv_handle_t *)&s->deadline)) {
        uint64_t now = now_ms(s);
        uint64_t d = s->waiting.head->deadline;
        uv_timer_start(&s->deadline, on_deadline, d > now ? d - now : 0, 0);
    }
}

static void on_kick(uv_timer_t *t)
{
    pg_store *s = t->data;
    pg_job *j;
    while ((j = q_pop(&s->done)))
        complete(j->op, j);
}

static int pg_submit(store_t *base, store_op_t *op)
{
    pg_store *s = (pg_store *)base;
    pg_job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->op = op;
    j->s = s;
    op->backend_data = j;
    build_job(j, op);
    if (op->status || j->nstmts == 0) {
        deliver_later(s, j);
        return 0;
    }
    uv_update_time(base->loop);
    j->deadline = now_ms(s) + WAIT_MS;
    q_push(&s->waiting, j);
    dispatch(s);
    return 0;
}

/* A cancel request for a running read: PQcancel opens its own connection to the server
 * and waits for it, so it runs on the thread pool. The connection takes no new job until
 * the request has been delivered: a cancel that arrives late then finds the backend idle
 * (where PostgreSQL ignores it) instead of in the next job's statement. */
typedef struct pg_cancel_work {
    uv_work_t work;
    PGcancel *key;
    pg_conn *conn;
} pg_cancel_work;

static void cancel_run(uv_work_t *w)
{
    pool_work_begins();
    pg_cancel_work *cw = w->data;
    char err[256];
    PQcancel(cw->key, err, sizeof(err)); /* no effect if the statement has just ended */
    PQfreeCancel(cw->key);
}

static void cancel_done(uv_work_t *w, int status)
{
    pool_work_ends(status);
    pg_cancel_work *cw = w->data;
    pg_conn *c = cw->conn;
    free(cw);
    c->cancel_pending = false;
    dispatch(c->s);
}

static void pg_cancel(store_op_t *op)
{
    pg_job *j = op->backend_data;
    if (!j)
        return;
    pg_store *s = j->s;
    if (q_remove(&s->waiting, j)) {
        deliver_later(s, j); /* store_complete turns it into -ECANCELED */
        return;
    }
    /* Converting: not begun yet, the pool drops it (convert_after sees UV_ECANCELED); begun,
     * it stops at its next check and the result is dropped. */
    if (j->converting) {
        uv_cancel((uv_req_t *)&op->work);
        return;
    }
    /* Running: a read is interrupted by the server (its error result is dropped as the
     * result would be); a write finishes. */
    pg_conn *c = j->conn;
    if (!c || c->job != j || !c->pc || c->cancel_pending || !store_op_reads(op->kind))
        return;
    pg_cancel_work *cw = calloc(1, sizeof(*cw));
    if (!cw)
        return;
    cw->key = PQgetCancel(c->pc);
    cw->conn = c;
    cw->work.data = cw;
    if (!cw->key || pool_queue_work(s->base.loop, &cw->work, cancel_run, cancel_done) != 0) {
        if (cw->key)
            PQfreeCancel(cw->key);
        free(cw);
        return;
    }
    c->cancel_pending = true;
}

/* ================================================================ open, close, migrate */

static int pg_open(const char *url, const store_options *opts, store_t **out, char *err,
                   size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *info = PQconninfoParse(url, &perr);
    if (!info) {
        snprintf(err, errlen, "database.url: %s", perr ? perr : "invalid PostgreSQL URL");
        PQfreemem(perr);
        return -EINVAL;
    }
    PQconninfoFree(info);
    pg_store *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->url = strdup(url);
    s->npool = opts->pool_size > 0 ? opts->pool_size : DEFAULT_POOL;
    s->conns = calloc((size_t)s->npool, sizeof(*s->conns));
    if (!s->url || !s->conns) {
        free(s->url);
        free(s->conns);
        free(s);
        return -ENOMEM;
    }
    *out = &s->base;
    return 0;
}

/* Handles need the loop, which store_open sets after the back end's open. */
static void init_handles(pg_store *s)
{
    if (s->handles || !s->base.loop)
        return;
    uv_timer_init(s->base.loop, &s->kick);
    s->kick.data = s;
    uv_timer_init(s->base.loop, &s->deadline);
    s->deadline.data = s;
    for (int i = 0; i < s->npool; i++) {
        pg_conn *c = &s->conns[i];
        c->s = s;
        uv_timer_init(s->base.loop, &c->retry);
        c->retry.data = c;
        uv_unref((uv_handle_t *)&c->retry);
    }
    s->handles = true;
}

static void close_if_open(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void pg_close(store_t *base)
{
    pg_store *s = (pg_store *)base;
    if (s->handles) {
        for (int i = 0; i < s->npool; i++) {
            pg_conn *c = &s->conns[i];
            if (c->poll) {
                /* still ours unless a uv_walk closed it already (with no callback) */
                if (uv_is_closing((uv_handle_t *)c->poll)) {
                    uv_poll_t *p = c->poll;
                    c->poll = NULL;
                    uv_run(s->base.loop, UV_RUN_NOWAIT);
                    free(p);
                } else {
                    poll_drop(c);
                }
            }
            if (c->pc)
                PQfinish(c->pc);
            close_if_open((uv_handle_t *)&c->retry);
        }
        close_if_open((uv_handle_t *)&s->kick);
        close_if_open((uv_handle_t *)&s->deadline);
        uv_run(s->base.loop, UV_RUN_NOWAIT); /* finish the closes before freeing */
    }
    pg_job *j;
    while ((j = q_pop(&s->waiting)))
        job_free(j);
    while ((j = q_pop(&s->done)))
        job_free(j);
    if (s->sync)
        PQfinish(s->sync);
    free(s->conns);
    free(s->url);
    free(s);
}

static bool exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, errlen, "migration: %s", PQerrorMessage(c));
    PQclear(r);
    return ok;
}

/* Creates the URL's database if it does not exist, through the "postgres" database. */
static int create_database(const char *url, char *err, size_t errlen)
{
    PQconninfoOption *info = PQconninfoParse(url, NULL);
    const char *dbname = NULL;
    for (PQconninfoOption *o = info; o && o->keyword; o++) {
        if (strcmp(o->keyword, "dbname") == 0)
            dbname = o->val;
    }
    int rc = STORE_EUNAVAILABLE;
    if (!dbname || !*dbname || strcmp(dbname, "postgres") == 0) {
        PQconninfoFree(info);
        return rc;
    }
    const char *const keys[] = {"dbname", "dbname", NULL};
    const char *const vals[] = {url, "postgres", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(c));
    } else {
        char *ident = PQescapeIdentifier(c, dbname, strlen(dbname));
        char sql[600];
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", ident ? ident : "\"\"");
        PQfreemem(ident);
        PGresult *r = PQexec(c, sql);
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (PQresultStatus(r) == PGRES_COMMAND_OK || (state && strcmp(state, "42P04") == 0))
            rc = 0; /* created, or another process was faster */
        else
            snprintf(err, errlen, "cannot create database: %s", PQerrorMessage(c));
        PQclear(r);
    }
    PQfinish(c);
    PQconninfoFree(info);
    return rc;
}

static int pg_migrate(const char *url, char *err, size_t errlen)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        bool missing = strstr(PQerrorMessage(c), "does not exist") != NULL;
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(c));
        PQfinish(c);
        if (!missing || create_database(url, err, errlen) != 0)
            return STORE_EUNAVAILABLE;
        c = PQconnectdb(url);
        if (PQstatus(c) != CONNECTION_OK) {
            snprintf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(c));
            PQfinish(c);
            return STORE_EUNAVAILABLE;
        }
    }
    int rc = STORE_EDB;
    char lock[96];
    snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%lld)", MIGRATION_LOCK_KEY);
    if (!exec_ok(c, "SET client_min_messages = warning", err, errlen) ||
        !exec_ok(c, "BEGIN", err, errlen) || !exec_ok(c, lock, err, errlen) ||
        !exec_ok(c, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", err,
                 errlen))
        goto out;
    PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM schema_version");
    int version = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    int target = (int)(sizeof(migrations) / sizeof(migrations[0]));
    if (version < 0) {
        snprintf(err, errlen, "migration: %s", PQerrorMessage(c));
        goto out;
    }
    if (version > target) {
        snprintf(err, errlen, "database schema version %d is newer than this ogd (%d)", version,
                 target);
        goto out;
    }
    for (int v = version; v < target; v++) {
        char sql[96];
        snprintf(sql, sizeof(sql), "INSERT INTO schema_version VALUES (%d)", v + 1);
        if (!exec_ok(c, migrations[v], err, errlen) || !exec_ok(c, sql, err, errlen))
            goto out;
    }
    if (exec_ok(c, "COMMIT", err, errlen))
        rc = 0;
out:
    if (rc)
        PQclear(PQexec(c, "ROLLBACK"));
    PQfinish(c);
    return rc;
}

/* ================================================================ synchronous use */

static void sync_run(pg_store *s, pg_job *j)
{
    if (s->sync && PQstatus(s->sync) != CONNECTION_OK) {
        PQfinish(s->sync);
        s->sync = NULL;
    }
    if (!s->sync) {
        s->sync = PQconnectdb(s->url);
        if (PQstatus(s->sync) != CONNECTION_OK) {
            PQfinish(s->sync);
            s->sync = NULL;
            j->broken = true;
            return;
        }
        PQsetNoticeProcessor(s->sync, quiet_notices, NULL);
    }
    bool tx = j->nstmts > 1;
    if (tx)
        PQclear(PQexec(s->sync, "BEGIN"));
    bool failed = false;
    for (int i = 0; i < j->nstmts && !failed; i++) {
        pg_stmt *st = &j->stmts[i];
        PGresult *r = PQexecParams(s->sync, st->sql, st->nparams, NULL,
                                   (const char *const *)st->values, NULL, NULL, 0);
        ExecStatusType rs = PQresultStatus(r);
        failed = rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK;
        j->res[i] = r;
    }
    if (PQstatus(s->sync) != CONNECTION_OK) {
        j->broken = true;
        return;
    }
    if (tx)
        PQclear(PQexec(s->sync, failed ? "ROLLBACK" : "COMMIT"));
}

static void pg_execute(store_t *base, store_op_t *op)
{
    pg_store *s = (pg_store *)base;
    pg_job *j = calloc(1, sizeof(*j));
    if (!j) {
        op->status = -ENOMEM;
        return;
    }
    j->op = op;
    build_job(j, op);
    if (op->status == 0 && j->nstmts) {
        sync_run(s, j);
        finish_job(j, op);
    }
    job_free(j);
}

static int pg_submit_entry(store_t *base, store_op_t *op)
{
    init_handles((pg_store *)base);
    return pg_submit(base, op);
}

const store_backend store_pg_backend = {
    .scheme = "postgresql",
    .scheme2 = "postgres",
    .open = pg_open,
    .migrate = pg_migrate,
    .close = pg_close,
    .execute = pg_execute,
    .submit = pg_submit_entry,
    .cancel = pg_cancel,
};
