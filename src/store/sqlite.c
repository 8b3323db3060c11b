/*
 * sqlite.c: the SQLite back end of the store (the embedded default).
 *
 * Runs on libuv thread-pool threads (and in the caller's thread for store_run_sync).
 * Each thread gets its own connection to the database file, opened on first use and kept
 * in a registry so store_close can close them all; statements are prepared once per
 * connection and reused. The database runs in WAL mode, so readers never wait for the
 * single writer; writers wait up to busy_timeout for each other.
 *
 * Data layout: a record is split over `records` (typed, indexed hot fields and the
 * metadata object as JSON) and `record_channels` (one row per channel: its JSON body plus
 * the scalar `data` as typed num/str columns, so channel filters use an index lookup
 * instead of parsing whole documents). Documents are rebuilt from rows and then
 * projected (store/projection.c). Filters and sorts come from store/filter.c and
 * filter_sql.c as SQL text with parameters only, which this file binds.
 *
 * Dispatch: `kinds[]`, indexed by op kind, says how each kind runs: its own function, or
 * SQL text with a shape (get one document, list documents, put a document by _id, delete
 * by id, exec) that one shared helper runs. Every kind has an entry (a static check on
 * the size, store_sqlite_missing_kind for the rest).
 */
#include "store/projection.h"
#include "store/backend.h"
#include "util/buf.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STMT_CACHE 48

typedef struct sqlite_conn {
    sqlite3 *db;
    struct {
        char *sql;
        sqlite3_stmt *stmt;
        uint64_t used;
    } cache[STMT_CACHE];
    uint64_t tick;
    store_op_t *running; /* the read running on this connection (progress handler) */
    struct sqlite_conn *next;
} sqlite_conn;

typedef struct sqlite_store {
    store_t base;
    char *path;
    pthread_key_t key; /* this store's connection for the current thread */
    pthread_mutex_t lock;
    sqlite_conn *conns; /* every connection opened, for close */
} sqlite_store;

static const char *const migrations[] = {
    /* 1: the reference's collections */
    "CREATE TABLE records ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  version INTEGER,"
    "  ts_us INTEGER,"
    "  shotnum INTEGER,"
    "  active_area TEXT,"
    "  active_experiment TEXT,"
    "  epac_ops_data_version TEXT,"
    "  metadata TEXT NOT NULL DEFAULT '{}'"
    ");"
    "CREATE INDEX records_ts ON records(ts_us);"
    "CREATE INDEX records_shotnum ON records(shotnum);"
    "CREATE TABLE record_channels ("
    "  record_id TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  ord INTEGER NOT NULL,"
    "  dtype TEXT,"
    "  num REAL,"
    "  str TEXT,"
    "  body TEXT NOT NULL,"
    "  PRIMARY KEY (record_id, name)"
    ") WITHOUT ROWID;"
    "CREATE INDEX record_channels_name ON record_channels(name, record_id);"
    "CREATE TABLE channel_manifests (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);"
    "CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);"
    "CREATE TABLE sessions ("
    "  id TEXT PRIMARY KEY NOT NULL, username TEXT NOT NULL, name TEXT NOT NULL,"
    "  doc TEXT NOT NULL, UNIQUE (username, name));"
    "CREATE TABLE favourite_filters ("
    "  id TEXT PRIMARY KEY NOT NULL, username TEXT NOT NULL, doc TEXT NOT NULL);"
    "CREATE TABLE experiments (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);",
    /* 2: experiments are unique in every field but _id (the bookkeeping row has no key) */
    "ALTER TABLE experiments ADD COLUMN match_key TEXT;"
    "CREATE UNIQUE INDEX experiments_match ON experiments(match_key);",
    /* 3: objects whose write has an unknown outcome (docs/design.md §6.5) */
    "CREATE TABLE uncertain_objects ("
    "  id TEXT PRIMARY KEY NOT NULL, record_id TEXT NOT NULL, channel TEXT NOT NULL,"
    "  noted_at INTEGER NOT NULL, claim_until INTEGER NOT NULL DEFAULT 0);",
};

static int url_to_path(const char *url, char **path, char *err, size_t errlen)
{
    const char *p = url + strlen("sqlite://");
    if (!*p) {
        snprintf(err, errlen, "database.url: no file path in \"%.60s\"", url);
        return -EINVAL;
    }
    *path = strdup(p);
    return *path ? 0 : -ENOMEM;
}

static int conn_setup(sqlite3 *db, char *err, size_t errlen)
{
    sqlite3_busy_timeout(db, 10000);
    char *msg = NULL;
    int rc = sqlite3_exec(db,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
                          "PRAGMA cache_size=-65536;",
                          NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "sqlite setup: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return STORE_EDB;
    }
    return 0;
}

static int sqlite_migrate(const char *url, char *err, size_t errlen)
{
    char *path = NULL;
    int rc = url_to_path(url, &path, err, errlen);
    if (rc)
        return rc;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path,
                 db ? sqlite3_errmsg(db) : "out of memory");
        rc = STORE_EUNAVAILABLE;
        goto out;
    }
    rc = conn_setup(db, err, errlen);
    if (rc)
        goto out;
    char *msg = NULL;
    if (sqlite3_exec(db,
                     "BEGIN IMMEDIATE;"
                     "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);",
                     NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "migration: %s", msg);
        sqlite3_free(msg);
        rc = STORE_EDB;
        goto out;
    }
    sqlite3_stmt *st = NULL;
    int version = 0;
    if (sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    int target = (int)(sizeof(migrations) / sizeof(migrations[0]));
    if (version > target) {
        snprintf(err, errlen, "database schema version %d is newer than this ogd (%d)", version,
                 target);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        rc = STORE_EDB;
        goto out;
    }
    for (int v = version; v < target; v++) {
        if (sqlite3_exec(db, migrations[v], NULL, NULL, &msg) != SQLITE_OK) {
            snprintf(err, errlen, "migration %d: %s", v + 1, msg);
            sqlite3_free(msg);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            rc = STORE_EDB;
            goto out;
        }
        char sql[96];
        snprintf(sql, sizeof(sql), "INSERT INTO schema_version VALUES (%d)", v + 1);
        sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "migration commit: %s", msg);
        sqlite3_free(msg);
        rc = STORE_EDB;
    }
out:
    sqlite3_close(db);
    free(path);
    return rc;
}

static int sqlite_open(const char *url, const store_options *opts, store_t **out, char *err,
                       size_t errlen)
{
    (void)opts;
    sqlite_store *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    int rc = url_to_path(url, &s->path, err, errlen);
    if (rc) {
        free(s);
        return rc;
    }
    pthread_key_create(&s->key, NULL);
    pthread_mutex_init(&s->lock, NULL);
    *out = &s->base;
    return 0;
}

static void conn_free(sqlite_conn *c)
{
    for (int i = 0; i < STMT_CACHE; i++) {
        if (c->cache[i].stmt)
            sqlite3_finalize(c->cache[i].stmt);
        free(c->cache[i].sql);
    }
    sqlite3_close(c->db);
    free(c);
}

static void sqlite_close(store_t *base)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite_conn *c = s->conns;
    while (c) {
        sqlite_conn *next = c->next;
        conn_free(c);
        c = next;
    }
    pthread_key_delete(s->key);
    pthread_mutex_destroy(&s->lock);
    free(s->path);
    free(s);
}

/* Every few thousand virtual-machine steps: a non-zero answer interrupts the statement
 * (SQLITE_INTERRUPT) when the read running here was cancelled (its client went away). */
static int progress(void *arg)
{
    sqlite_conn *c = arg;
    return c->running && atomic_load_explicit(&c->running->canceled, memory_order_relaxed);
}

static sqlite_conn *conn_get(sqlite_store *s, store_op_t *op)
{
    sqlite_conn *c = pthread_getspecific(s->key);
    if (c)
        return c;
    c = calloc(1, sizeof(*c));
    if (!c) {
        op->status = -ENOMEM;
        return NULL;
    }
    if (sqlite3_open_v2(s->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        conn_setup(c->db, op->err, sizeof(op->err)) != 0) {
        snprintf(op->err, sizeof(op->err), "cannot open database: %s",
                 c->db ? sqlite3_errmsg(c->db) : "out of memory");
        sqlite3_close(c->db);
        free(c);
        op->status = STORE_EUNAVAILABLE;
        return NULL;
    }
    sqlite3_progress_handler(c->db, 4096, progress, c);
    pthread_mutex_lock(&s->lock);
    c->next = s->conns;
    s->conns = c;
    pthread_mutex_unlock(&s->lock);
    pthread_setspecific(s->key, c);
    return c;
}

/* Returns a reset, unbound statement for sql from the connection's cache. */
static sqlite3_stmt *stmt_get(sqlite_conn *c, store_op_t *op, const char *sql)
{
    int victim = 0;
    for (int i = 0; i < STMT_CACHE; i++) {
        if (c->cache[i].sql && strcmp(c->cache[i].sql, sql) == 0) {
            c->cache[i].used = ++c->tick;
            sqlite3_reset(c->cache[i].stmt);
            sqlite3_clear_bindings(c->cache[i].stmt);
            return c->cache[i].stmt;
        }
        if (c->cache[i].used < c->cache[victim].used)
            victim = i;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        snprintf(op->err, sizeof(op->err), "prepare: %s", sqlite3_errmsg(c->db));
        op->status = STORE_EDB;
        return NULL;
    }
    if (c->cache[victim].stmt)
        sqlite3_finalize(c->cache[victim].stmt);
    free(c->cache[victim].sql);
    c->cache[victim].sql = strdup(sql);
    if (!c->cache[victim].sql) {
        sqlite3_finalize(st);
        c->cache[victim].stmt = NULL;
        op->status = -ENOMEM;
        return NULL;
    }
    c->cache[victim].stmt = st;
    c->cache[victim].used = ++c->tick;
    return st;
}

static void db_error(store_op_t *op, sqlite_conn *c, const char *what)
{
    snprintf(op->err, sizeof(op->err), "%s: %s", what, sqlite3_errmsg(c->db));
    op->status = STORE_EDB;
}

static json_t *column_json(sqlite3_stmt *st, int col)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    if (!text)
        return NULL;
    return json_loadb(text, (size_t)sqlite3_column_bytes(st, col), JSON_DECODE_ANY, NULL);
}

/* sql_fragment_bind_sqlite (store/filter.h): the filter code writes SQL text and
 * parameters but makes no SQLite calls; binding them is this back end's job. */
int sql_fragment_bind_sqlite(const sql_fragment *f, struct sqlite3_stmt *st, int first)
{
    for (size_t i = 0; i < f->nparams; i++) {
        const sql_param *p = &f->params[i];
        int idx = first + (int)i;
        int rc;
        switch (p->type) {
        case SQLP_INT:
            rc = sqlite3_bind_int64(st, idx, p->i);
            break;
        case SQLP_REAL:
            rc = sqlite3_bind_double(st, idx, p->d);
            break;
        case SQLP_TEXT:
            rc = sqlite3_bind_text64(st, idx, p->s, p->len, SQLITE_TRANSIENT, SQLITE_UTF8);
            break;
        default:
            rc = sqlite3_bind_null(st, idx);
            break;
        }
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

/* Appends " WHERE <filter>" (or nothing) to q, text and parameters. */
static int where_clause(store_op_t *op, sql_fragment *q)
{
    if (!op->filter)
        return 0;
    int rc = buf_puts(&q->text, " WHERE ");
    if (rc == 0)
        rc = filter_emit_sqlite(op->filter, q);
    if (rc) {
        snprintf(op->err, sizeof(op->err), "filter too large");
        op->status = STORE_EBADQUERY;
    }
    return rc;
}

/* Loads the channels of every record in recs (an array of documents with "_id") in one
 * statement and attaches them as "channels" objects, in stored order. names: NULL = all
 * channels, else a JSON array of the channel names wanted. */
static int load_channels(sqlite_conn *c, store_op_t *op, json_t *recs, const char *names)
{
    json_t *ids = json_array();
    json_t *by_id = json_object();
    size_t i;
    json_t *rec;
    json_array_foreach(recs, i, rec)
    {
        json_t *channels = json_object();
        json_object_set_new(rec, "channels", channels);
        json_t *id = json_object_get(rec, "_id");
        json_array_append(ids, id);
        json_object_set(by_id, json_string_value(id), channels);
    }
    char *ids_text = json_dumps(ids, JSON_COMPACT);
    const char *sql =
        names ? "SELECT record_id, name, body, dtype FROM record_channels WHERE "
                "record_id IN (SELECT value FROM json_each(?1)) AND name IN (SELECT "
                "value FROM json_each(?2)) ORDER BY record_id, ord"
              : "SELECT record_id, name, body, dtype FROM record_channels WHERE "
                "record_id IN (SELECT value FROM json_each(?1)) ORDER BY record_id, ord";
    int rc = SQLITE_DONE;
    sqlite3_stmt *st = ids_text ? stmt_get(c, op, sql) : NULL;
    if (st) {
        sqlite3_bind_text(st, 1, ids_text, -1, SQLITE_STATIC);
        if (names)
            sqlite3_bind_text(st, 2, names, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            json_t *channels = json_object_get(by_id, (const char *)sqlite3_column_text(st, 0));
            json_t *body = store_channel_for(op, column_json(st, 2));
            json_object_set_new(channels, (const char *)sqlite3_column_text(st, 1),
                                body ? body : json_object());
            store_note_dtype(op, (const char *)sqlite3_column_text(st, 0),
                             (const char *)sqlite3_column_text(st, 1),
                             (const char *)sqlite3_column_text(st, 3));
        }
        sqlite3_reset(st);
    } else if (!ids_text) {
        op->status = -ENOMEM;
    }
    free(ids_text);
    json_decref(ids);
    json_decref(by_id);
    if (op->status)
        return op->status;
    if (rc != SQLITE_DONE) {
        db_error(op, c, "reading channels");
        return op->status;
    }
    return 0;
}

static void op_find(sqlite_conn *c, store_op_t *op)
{
    projection_t *proj = NULL;
    sql_fragment q;
    sql_fragment_init(&q);
    char *names = NULL;
    json_t *out = json_array();

    if (op->nprojection) {
        if (projection_compile(op->projection, op->nprojection, &proj, op->err, sizeof(op->err))) {
            op->status = STORE_EBADQUERY;
            goto done;
        }
    }
    buf_puts(&q.text, "SELECT r.id, r.version, r.metadata FROM records r");
    if (where_clause(op, &q))
        goto done;
    if (op->norder) {
        sql_fragment order;
        sql_fragment_init(&order);
        if (sort_compile_sqlite(op->order, op->norder, &order, op->err, sizeof(op->err))) {
            sql_fragment_free(&order);
            op->status = STORE_EBADQUERY;
            goto done;
        }
        if (order.text.len) {
            buf_puts(&q.text, " ORDER BY ");
            sql_fragment_append(&q, &order);
        }
        sql_fragment_free(&order);
    }
    int64_t limit = op->limit < 0 ? -op->limit : op->limit;
    if (op->max_documents > 0 && (limit == 0 || limit > op->max_documents))
        limit = op->max_documents;
    if (limit == 0)
        limit = -1;
    if (buf_printf(&q.text, " LIMIT %lld OFFSET %lld", (long long)limit, (long long)op->skip)) {
        snprintf(op->err, sizeof(op->err), "query too large");
        op->status = STORE_EBADQUERY;
        goto done;
    }

    sqlite3_stmt *st = stmt_get(c, op, q.text.data);
    if (!st)
        goto done;
    if (sql_fragment_bind_sqlite(&q, st, 1) != SQLITE_OK) {
        db_error(op, c, "binding");
        goto done;
    }
    bool want_meta = !proj || projection_wants(proj, "metadata");
    bool want_version = !proj || projection_wants(proj, "version");
    bool want_channels = !proj || projection_wants(proj, "channels");
    if (proj && want_channels) {
        json_t *list = projection_channel_names(proj);
        if (list) {
            names = json_dumps(list, JSON_COMPACT);
            json_decref(list);
        }
    }
    /* Collect the rows first: the channel loads reuse statements. */
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *rec = json_object();
        json_object_set_new(rec, "_id", json_string((const char *)sqlite3_column_text(st, 0)));
        if (want_version && sqlite3_column_type(st, 1) != SQLITE_NULL)
            json_object_set_new(rec, "version", json_integer(sqlite3_column_int64(st, 1)));
        if (want_meta) {
            json_t *m = column_json(st, 2);
            json_object_set_new(rec, "metadata", m ? m : json_object());
        }
        json_array_append_new(out, rec);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        db_error(op, c, "query");
        goto done;
    }
    if (want_channels && json_array_size(out) && load_channels(c, op, out, names))
        goto done;
    if (proj) {
        size_t i;
        json_t *rec;
        json_array_foreach(out, i, rec) projection_apply(proj, rec);
    }
    op->result = out;
    out = NULL;
done:
    json_decref(out);
    free(names);
    projection_free(proj);
    sql_fragment_free(&q);
}

static void op_count(sqlite_conn *c, store_op_t *op)
{
    sql_fragment q;
    sql_fragment_init(&q);
    buf_puts(&q.text, "SELECT count(*) FROM records r");
    if (where_clause(op, &q))
        goto done;
    sqlite3_stmt *st = stmt_get(c, op, q.text.data);
    if (!st)
        goto done;
    if (sql_fragment_bind_sqlite(&q, st, 1) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        db_error(op, c, "count");
        goto done;
    }
    op->count = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
done:
    sql_fragment_free(&q);
}

static void op_range(sqlite_conn *c, store_op_t *op)
{
    const char *sql = op->range_by_shotnum
                          ? "SELECT count(*), min(ts_us), max(ts_us), count(ts_us) FROM records "
                            "WHERE shotnum BETWEEN ?1 AND ?2"
                          : "SELECT count(*), min(shotnum), max(shotnum), count(shotnum) FROM "
                            "records WHERE ts_us BETWEEN ?1 AND ?2";
    sqlite3_stmt *st = stmt_get(c, op, sql);
    if (!st)
        return;
    sqlite3_bind_int64(st, 1, op->lo);
    sqlite3_bind_int64(st, 2, op->hi);
    if (sqlite3_step(st) != SQLITE_ROW) {
        db_error(op, c, "range");
        return;
    }
    int64_t n = sqlite3_column_int64(st, 0);
    int64_t nfield = sqlite3_column_int64(st, 3);
    int64_t lo = sqlite3_column_int64(st, 1), hi = sqlite3_column_int64(st, 2);
    sqlite3_reset(st);
    store_range_result(op, n, lo, hi, nfield);
}

static int exec_simple(sqlite_conn *c, store_op_t *op, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(op->err, sizeof(op->err), "%s: %s", sql, msg ? msg : "");
        sqlite3_free(msg);
        op->status = STORE_EDB;
        return op->status;
    }
    return 0;
}

static int step_done(sqlite_conn *c, store_op_t *op, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        if (rc == SQLITE_CONSTRAINT) {
            op->status = -EEXIST;
            snprintf(op->err, sizeof(op->err), "%s: already exists", what);
        } else {
            db_error(op, c, what);
        }
        return op->status;
    }
    return 0;
}

static void op_delete(sqlite_conn *c, store_op_t *op)
{
    if (exec_simple(c, op, "BEGIN IMMEDIATE"))
        return;
    sqlite3_stmt *st = stmt_get(c, op, "DELETE FROM record_channels WHERE record_id = ?1");
    if (!st)
        goto fail;
    sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
    if (step_done(c, op, st, "delete channels"))
        goto fail;
    st = stmt_get(c, op, "DELETE FROM records WHERE id = ?1");
    if (!st)
        goto fail;
    sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
    if (step_done(c, op, st, "delete record"))
        goto fail;
    op->count = sqlite3_changes(c->db);
    if (exec_simple(c, op, "COMMIT"))
        goto fail;
    return;
fail:
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

static void bind_opt_text(sqlite3_stmt *st, int idx, json_t *v)
{
    if (json_is_string(v))
        sqlite3_bind_text(st, idx, json_string_value(v), -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, idx);
}

/* Inserts one whole record inside the caller's transaction. The timestamp in metadata is
 * normalised to the API's text form. */
static void put_record(sqlite_conn *c, store_op_t *op, json_t *doc)
{
    const char *id = json_string_value(json_object_get(doc, "_id"));
    if (!id) {
        snprintf(op->err, sizeof(op->err), "record has no string _id");
        op->status = STORE_EBADQUERY;
        return;
    }
    int64_t ts_us = 0;
    bool has_ts = false;
    json_t *meta_copy = store_record_metadata(op, doc, id, &ts_us, &has_ts);
    if (!meta_copy)
        return;
    char *meta_text = json_dumps(meta_copy, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_t *shot = json_object_get(meta_copy, "shotnum");
    sqlite3_stmt *st;
    if (op->replace) {
        st = stmt_get(c, op, "DELETE FROM record_channels WHERE record_id = ?1");
        if (!st)
            goto fail;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (step_done(c, op, st, "replace channels"))
            goto fail;
        st = stmt_get(c, op, "DELETE FROM records WHERE id = ?1");
        if (!st)
            goto fail;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (step_done(c, op, st, "replace record"))
            goto fail;
    }
    st = stmt_get(c, op,
                  "INSERT INTO records (id, version, ts_us, shotnum, active_area, "
                  "active_experiment, epac_ops_data_version, metadata) VALUES "
                  "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    if (!st)
        goto fail;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    json_t *ver = json_object_get(doc, "version");
    if (json_is_integer(ver))
        sqlite3_bind_int64(st, 2, json_integer_value(ver));
    if (has_ts)
        sqlite3_bind_int64(st, 3, ts_us);
    if (json_is_integer(shot))
        sqlite3_bind_int64(st, 4, json_integer_value(shot));
    else if (json_is_real(shot))
        sqlite3_bind_int64(st, 4, (int64_t)json_real_value(shot));
    bind_opt_text(st, 5, json_object_get(meta_copy, "active_area"));
    bind_opt_text(st, 6, json_object_get(meta_copy, "active_experiment"));
    bind_opt_text(st, 7, json_object_get(meta_copy, "epac_ops_data_version"));
    sqlite3_bind_text(st, 8, meta_text, -1, SQLITE_STATIC);
    if (step_done(c, op, st, "insert record"))
        goto fail;

    json_t *channels = json_object_get(doc, "channels");
    const char *name;
    json_t *ch;
    int64_t ord = 0;
    json_object_foreach(channels, name, ch)
    {
        st = stmt_get(c, op,
                      "INSERT INTO record_channels (record_id, name, ord, dtype, num, str, "
                      "body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
        if (!st)
            goto fail;
        char *body = json_dumps(ch, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        json_t *data = json_object_get(ch, "data");
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, ord++);
        bind_opt_text(st, 4, json_object_get(json_object_get(ch, "metadata"), "channel_dtype"));
        if (json_is_number(data))
            sqlite3_bind_double(st, 5, json_number_value(data));
        if (json_is_string(data))
            sqlite3_bind_text(st, 6, json_string_value(data), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, body, -1, SQLITE_STATIC);
        int rc = step_done(c, op, st, "insert channel");
        free(body);
        if (rc)
            goto fail;
    }
fail:
    free(meta_text);
    json_decref(meta_copy);
}

/* STORE_RECORD_PUT (one record) and STORE_RECORDS_PUT (an array): all or nothing. */
static void op_put(sqlite_conn *c, store_op_t *op)
{
    if (op->kind == STORE_RECORDS_PUT && !json_is_array(op->doc)) {
        snprintf(op->err, sizeof(op->err), "a batch of records must be an array");
        op->status = STORE_EBADQUERY;
        return;
    }
    if (exec_simple(c, op, "BEGIN IMMEDIATE"))
        return;
    if (op->kind == STORE_RECORDS_PUT) {
        size_t i;
        json_t *doc;
        json_array_foreach(op->doc, i, doc)
        {
            put_record(c, op, doc);
            if (op->status)
                break;
        }
    } else {
        put_record(c, op, op->doc);
    }
    if (op->status == 0 && exec_simple(c, op, "COMMIT") == 0)
        return;
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

/* STORE_RECORD_MERGE: bump the version and upsert channel rows, in one transaction. */
static void op_merge(sqlite_conn *c, store_op_t *op)
{
    if (!op->id || !json_is_object(json_object_get(op->doc, "channels"))) {
        snprintf(op->err, sizeof(op->err), "a merge needs an id and channels");
        op->status = STORE_EBADQUERY;
        return;
    }
    if (exec_simple(c, op, "BEGIN IMMEDIATE"))
        return;
    sqlite3_stmt *st =
        stmt_get(c, op, "UPDATE records SET version = COALESCE(version, 1) + 1 WHERE id = ?1");
    if (st) {
        sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
        if (step_done(c, op, st, "merge record") == 0 && sqlite3_changes(c->db) == 0)
            op->status = -ENOENT;
    }
    const char *name;
    json_t *ch;
    json_object_foreach(json_object_get(op->doc, "channels"), name, ch)
    {
        if (op->status)
            break;
        st = stmt_get(c, op,
                      "INSERT INTO record_channels (record_id, name, ord, dtype, num, str, body) "
                      "VALUES (?1, ?2, (SELECT COALESCE(max(ord) + 1, 0) FROM record_channels "
                      "WHERE record_id = ?1), ?3, ?4, ?5, ?6) ON CONFLICT (record_id, name) DO "
                      "UPDATE SET dtype = excluded.dtype, num = excluded.num, str = excluded.str, "
                      "body = excluded.body");
        if (!st)
            break;
        char *body = json_dumps(ch, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        json_t *data = json_object_get(ch, "data");
        sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        bind_opt_text(st, 3, json_object_get(json_object_get(ch, "metadata"), "channel_dtype"));
        if (json_is_number(data))
            sqlite3_bind_double(st, 4, json_number_value(data));
        if (json_is_string(data))
            sqlite3_bind_text(st, 5, json_string_value(data), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, body, -1, SQLITE_STATIC);
        step_done(c, op, st, "merge channel");
        free(body);
    }
    if (op->status == 0 && exec_simple(c, op, "COMMIT") == 0)
        return;
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

static void op_channel_count(sqlite_conn *c, store_op_t *op)
{
    sqlite3_stmt *st =
        stmt_get(c, op, "SELECT count(*) FROM record_channels WHERE record_id = ?1 AND name = ?2");
    if (!st)
        return;
    sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, op->channel, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        db_error(op, c, "channel count");
        return;
    }
    op->count = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
}

/* Fetches one document column by a single text key; -ENOENT when no row. */
static void get_doc(sqlite_conn *c, store_op_t *op, const char *sql, const char *key)
{
    sqlite3_stmt *st = stmt_get(c, op, sql);
    if (!st)
        return;
    if (key)
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        op->result = column_json(st, 0);
        if (!op->result)
            db_error(op, c, "stored document is not JSON");
    } else if (rc == SQLITE_DONE) {
        op->status = -ENOENT;
    } else {
        db_error(op, c, "get");
    }
    sqlite3_reset(st);
}

static void put_doc(sqlite_conn *c, store_op_t *op, const char *sql_insert, const char *sql_upsert)
{
    const char *id = json_string_value(json_object_get(op->doc, "_id"));
    if (!id) {
        snprintf(op->err, sizeof(op->err), "document has no string _id");
        op->status = STORE_EBADQUERY;
        return;
    }
    sqlite3_stmt *st = stmt_get(c, op, op->replace ? sql_upsert : sql_insert);
    if (!st)
        return;
    char *text = json_dumps(op->doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
    step_done(c, op, st, "put");
    free(text);
}

/* All documents of one text-keyed query (optional key bound to ?1), in row order. */
static void list_docs(sqlite_conn *c, store_op_t *op, const char *sql, const char *key)
{
    sqlite3_stmt *st = stmt_get(c, op, sql);
    if (!st)
        return;
    if (key)
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    json_t *out = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (op->max_documents > 0 && (int64_t)json_array_size(out) >= op->max_documents)
            break;
        json_t *d = column_json(st, 0);
        if (d)
            json_array_append_new(out, d);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref(out);
        db_error(op, c, "list");
        return;
    }
    op->result = out;
}

/* DELETE by a text key; count = rows removed. */
static void delete_by_id(sqlite_conn *c, store_op_t *op, const char *sql)
{
    sqlite3_stmt *st = stmt_get(c, op, sql);
    if (!st)
        return;
    sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
    if (step_done(c, op, st, "delete") == 0)
        op->count = sqlite3_changes(c->db);
}

/* ---- uncertain objects (store.h, STORE_UNCERTAIN_*) ---- */

static void uncertain_note(sqlite_conn *c, store_op_t *op)
{
    if (!store_uncertain_notes_valid(op->doc)) {
        snprintf(op->err, sizeof(op->err), "notes need string _id, record_id and channel");
        op->status = STORE_EBADQUERY;
        return;
    }
    sqlite3_stmt *st =
        stmt_get(c, op,
                 "INSERT INTO uncertain_objects (id, record_id, channel, noted_at, claim_until) "
                 "SELECT json_extract(value, '$._id'), json_extract(value, '$.record_id'), "
                 "json_extract(value, '$.channel'), ?2, 0 FROM json_each(?1) WHERE true "
                 "ON CONFLICT (id) DO UPDATE SET record_id = excluded.record_id, channel = "
                 "excluded.channel, noted_at = excluded.noted_at, claim_until = 0");
    if (!st)
        return;
    char *text = json_dumps(op->doc, JSON_COMPACT);
    sqlite3_bind_text(st, 1, text ? text : "[]", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, op->lo);
    step_done(c, op, st, "note uncertain objects");
    free(text);
}

static void uncertain_touch(sqlite_conn *c, store_op_t *op)
{
    if (!store_uncertain_keys_valid(op->doc)) {
        snprintf(op->err, sizeof(op->err), "keys must be strings");
        op->status = STORE_EBADQUERY;
        return;
    }
    char *text = json_dumps(op->doc, JSON_COMPACT);
    if (!text) {
        op->status = -ENOMEM;
        return;
    }
    if (exec_simple(c, op, "BEGIN IMMEDIATE")) {
        free(text);
        return;
    }
    sqlite3_stmt *st = stmt_get(c, op,
                                "UPDATE uncertain_objects SET noted_at = ?2 WHERE id IN "
                                "(SELECT value FROM json_each(?1)) AND claim_until < ?2");
    if (!st)
        goto fail;
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, op->lo);
    if (step_done(c, op, st, "touch uncertain objects"))
        goto fail;
    st = stmt_get(c, op,
                  "SELECT json_group_array(id) FROM (SELECT id FROM uncertain_objects WHERE id IN "
                  "(SELECT value FROM json_each(?1)) AND claim_until >= ?2 ORDER BY id)");
    if (!st)
        goto fail;
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, op->lo);
    if (sqlite3_step(st) != SQLITE_ROW) {
        db_error(op, c, "claimed uncertain objects");
        sqlite3_reset(st);
        goto fail;
    }
    op->result = column_json(st, 0);
    sqlite3_reset(st);
    if (!json_is_array(op->result)) {
        db_error(op, c, "claimed uncertain objects");
        goto fail;
    }
    if (exec_simple(c, op, "COMMIT"))
        goto fail;
    free(text);
    return;
fail:
    json_decref(op->result);
    op->result = NULL;
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    free(text);
}

static void uncertain_claim(sqlite_conn *c, store_op_t *op)
{
    sqlite3_stmt *st = stmt_get(c, op,
                                "UPDATE uncertain_objects SET claim_until = ?3 WHERE id = ?1 AND "
                                "noted_at <= ?2 AND claim_until < ?4");
    if (!st)
        return;
    sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, op->lo);
    sqlite3_bind_int64(st, 3, op->hi + STORE_UNCERTAIN_LEASE_S);
    sqlite3_bind_int64(st, 4, op->hi);
    if (step_done(c, op, st, "claim uncertain object") == 0)
        op->count = sqlite3_changes(c->db);
}

static void put_experiment(sqlite_conn *c, store_op_t *op)
{
    const char *id = json_string_value(json_object_get(op->doc, "_id"));
    char *key = store_experiment_key(op->doc);
    if (!id || !key) {
        free(key);
        snprintf(op->err, sizeof(op->err), "an experiment needs _id and every field");
        op->status = STORE_EBADQUERY;
        return;
    }
    sqlite3_stmt *st = stmt_get(c, op,
                                "INSERT INTO experiments (id, match_key, doc) VALUES (?1, ?2, ?3) "
                                "ON CONFLICT (match_key) DO NOTHING");
    if (!st) {
        free(key);
        return;
    }
    char *text = json_dumps(op->doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
    int rc = step_done(c, op, st, "put experiment");
    free(text);
    if (rc == 0 && sqlite3_changes(c->db) == 1) {
        op->count = 1;
        op->result = json_string(id);
    } else if (rc == 0) {
        st = stmt_get(c, op, "SELECT id FROM experiments WHERE match_key = ?1");
        if (st) {
            sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW)
                op->result = json_string((const char *)sqlite3_column_text(st, 0));
            else
                db_error(op, c, "put experiment");
            sqlite3_reset(st);
        }
    }
    free(key);
}

static void experiments_stamp_get(sqlite_conn *c, store_op_t *op)
{
    get_doc(c, op, "SELECT doc FROM experiments WHERE id = 'collection_last_updated'", NULL);
    if (op->status == 0) {
        json_t *v = json_incref(json_object_get(op->result, "collection_last_updated"));
        json_decref(op->result);
        op->result = v;
        if (!json_is_string(v))
            op->status = -ENOENT;
    }
}

static void experiments_stamp_put(sqlite_conn *c, store_op_t *op)
{
    sqlite3_stmt *st = stmt_get(c, op,
                                "INSERT OR REPLACE INTO experiments (id, match_key, doc) VALUES "
                                "('collection_last_updated', NULL, ?1)");
    if (!st)
        return;
    json_t *d = json_pack("{ss}", "collection_last_updated", op->id ? op->id : "");
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    step_done(c, op, st, "stamp experiments");
    free(text);
}

static void update_user(sqlite_conn *c, store_op_t *op)
{
    const char *id = json_string_value(json_object_get(op->doc, "_id"));
    if (!id) {
        snprintf(op->err, sizeof(op->err), "document has no string _id");
        op->status = STORE_EBADQUERY;
        return;
    }
    sqlite3_stmt *st = stmt_get(c, op,
                                "UPDATE users SET doc = ?2 WHERE id = ?1 AND "
                                "COALESCE(json_extract(doc, '$._rev'), 0) = ?3");
    if (!st)
        return;
    char *text = json_dumps(op->doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, op->lo);
    if (step_done(c, op, st, "update user") == 0)
        op->count = sqlite3_changes(c->db);
    free(text);
}

static void put_session(sqlite_conn *c, store_op_t *op)
{
    const char *id = json_string_value(json_object_get(op->doc, "_id"));
    const char *user = json_string_value(json_object_get(op->doc, "username"));
    const char *name = json_string_value(json_object_get(op->doc, "name"));
    if (!id || !user || !name) {
        snprintf(op->err, sizeof(op->err), "a session needs string _id, username and name");
        op->status = STORE_EBADQUERY;
        return;
    }
    sqlite3_stmt *st = stmt_get(
        c, op,
        op->replace ? "INSERT INTO sessions (id, username, name, doc) VALUES (?1, ?2, ?3, ?4) "
                      "ON CONFLICT (id) DO UPDATE SET username = excluded.username, "
                      "name = excluded.name, doc = excluded.doc"
                    : "INSERT INTO sessions (id, username, name, doc) VALUES (?1, ?2, ?3, ?4)");
    if (!st)
        return;
    char *text = json_dumps(op->doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
    step_done(c, op, st, "put session");
    free(text);
}

static void op_summary(sqlite_conn *c, store_op_t *op)
{
    static const char *const edge[2] = {
        "SELECT r.ts_us FROM record_channels c JOIN records r ON r.id = c.record_id "
        "WHERE c.name = ?1 ORDER BY c.record_id ASC LIMIT 1",
        "SELECT r.ts_us FROM record_channels c JOIN records r ON r.id = c.record_id "
        "WHERE c.name = ?1 ORDER BY c.record_id DESC LIMIT 1",
    };
    static const char *const keys[2] = {"first_date", "most_recent_date"};
    json_t *res = json_object();
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *st = stmt_get(c, op, edge[i]);
        if (!st)
            goto fail;
        sqlite3_bind_text(st, 1, op->channel, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
            sqlite3_reset(st);
            op->status = -ENOENT;
            goto fail;
        }
        if (rc != SQLITE_ROW) {
            db_error(op, c, "summary");
            goto fail;
        }
        if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
            json_object_set_new(res, keys[i], json_null());
        } else {
            char text[32];
            store_format_timestamp(sqlite3_column_int64(st, 0), text);
            json_object_set_new(res, keys[i], json_string(text));
        }
        sqlite3_reset(st);
    }
    sqlite3_stmt *st = stmt_get(c, op,
                                "SELECT r.ts_us, c.body FROM record_channels c JOIN records r "
                                "ON r.id = c.record_id WHERE c.name = ?1 "
                                "ORDER BY c.record_id DESC LIMIT 3");
    if (!st)
        goto fail;
    sqlite3_bind_text(st, 1, op->channel, -1, SQLITE_STATIC);
    json_t *recent = json_array();
    json_object_set_new(res, "recent", recent);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *item = json_object();
        if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
            json_object_set_new(item, "timestamp", json_null());
        } else {
            char text[32];
            store_format_timestamp(sqlite3_column_int64(st, 0), text);
            json_object_set_new(item, "timestamp", json_string(text));
        }
        json_t *body = store_channel_for(op, column_json(st, 1));
        json_object_set_new(item, "channel", body ? body : json_object());
        json_array_append_new(recent, item);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        db_error(op, c, "summary sample");
        goto fail;
    }
    op->result = res;
    return;
fail:
    json_decref(res);
}

static void op_ping(sqlite_conn *c, store_op_t *op)
{
    sqlite3_stmt *st = stmt_get(c, op, "SELECT 1 FROM schema_version LIMIT 1");
    if (st) {
        if (sqlite3_step(st) != SQLITE_ROW)
            db_error(op, c, "ping");
        sqlite3_reset(st);
    }
}

/* One read transaction: one snapshot for the rows and their channels, and one lock/unlock
 * of the database instead of one per statement. */
static void op_find_tx(sqlite_conn *c, store_op_t *op)
{
    if (exec_simple(c, op, "BEGIN") == 0) {
        op_find(c, op);
        sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    }
}

/* ---- dispatch: one table entry per op kind ---- */

/* How a kind is run: its own function, or one of the simple shapes over SQL text. */
typedef enum sqlite_shape {
    SQ_MISSING, /* no entry (never in a complete table) */
    SQ_CALL,    /* fn(c, op) */
    SQ_GET,     /* get_doc: one document from sql, or -ENOENT */
    SQ_LIST,    /* list_docs: the documents of sql, at most max_documents */
    SQ_PUT,     /* put_doc: doc by its _id, sql to insert, sql_replace with replace */
    SQ_DELETE,  /* delete_by_id: sql with ?1 = id -> count */
    SQ_EXEC,    /* exec_simple: sql, no parameters or rows */
} sqlite_shape;

typedef struct sqlite_kind {
    sqlite_shape shape;
    void (*fn)(sqlite_conn *c, store_op_t *op); /* SQ_CALL */
    const char *sql;
    const char *sql_replace; /* SQ_PUT with op->replace */
    bool by_id;              /* SQ_GET, SQ_LIST: ?1 = op->id */
} sqlite_kind;

static const sqlite_kind kinds[] = {
    [STORE_PING] = {SQ_CALL, .fn = op_ping},
    [STORE_RECORDS_FIND] = {SQ_CALL, .fn = op_find_tx},
    [STORE_RECORDS_COUNT] = {SQ_CALL, .fn = op_count},
    [STORE_RECORDS_RANGE] = {SQ_CALL, .fn = op_range},
    [STORE_RECORD_DELETE] = {SQ_CALL, .fn = op_delete},
    [STORE_RECORD_PUT] = {SQ_CALL, .fn = op_put},
    [STORE_RECORDS_PUT] = {SQ_CALL, .fn = op_put},
    [STORE_CHANNEL_COUNT] = {SQ_CALL, .fn = op_channel_count},
    [STORE_MANIFEST_LATEST] = {SQ_GET,
                               .sql = "SELECT doc FROM channel_manifests ORDER BY id DESC LIMIT 1"},
    [STORE_MANIFEST_PUT] = {SQ_PUT,
                            .sql = "INSERT INTO channel_manifests (id, doc) VALUES (?1, ?2)",
                            .sql_replace = "INSERT OR REPLACE INTO channel_manifests (id, doc) "
                                           "VALUES (?1, ?2)"},
    [STORE_CHANNEL_SUMMARY] = {SQ_CALL, .fn = op_summary},
    [STORE_USER_GET] = {SQ_GET, .sql = "SELECT doc FROM users WHERE id = ?1", .by_id = true},
    [STORE_USER_PUT] = {SQ_PUT, .sql = "INSERT INTO users (id, doc) VALUES (?1, ?2)",
                        .sql_replace = "INSERT OR REPLACE INTO users (id, doc) VALUES (?1, ?2)"},
    /* Fold the WAL back into the database file and refresh planner statistics. */
    [STORE_MAINTENANCE] = {SQ_EXEC, .sql = "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA optimize;"},
    [STORE_RECORD_MERGE] = {SQ_CALL, .fn = op_merge},
    [STORE_USER_DELETE] = {SQ_DELETE, .sql = "DELETE FROM users WHERE id = ?1"},
    [STORE_USERS_LIST] = {SQ_LIST, .sql = "SELECT doc FROM users ORDER BY id"},
    [STORE_SESSION_GET] = {SQ_GET, .sql = "SELECT doc FROM sessions WHERE id = ?1", .by_id = true},
    [STORE_SESSION_PUT] = {SQ_CALL, .fn = put_session},
    [STORE_SESSION_DELETE] = {SQ_DELETE, .sql = "DELETE FROM sessions WHERE id = ?1"},
    /* Creation order, the reference's natural order: rowid, which only grows for new rows
     * (max + 1) and is kept by the PATCH upsert. Not by id: ids made by two workers in the
     * same second are not ordered (util/objectid.h). */
    [STORE_SESSIONS_LIST] = {SQ_LIST,
                             .sql = "SELECT doc FROM sessions WHERE username = ?1 ORDER BY rowid",
                             .by_id = true},
    [STORE_USER_BY_EMAIL] = {SQ_GET,
                             .sql = "SELECT doc FROM users WHERE json_extract(doc, '$.email') = ?1 "
                                    "ORDER BY id LIMIT 1",
                             .by_id = true},
    [STORE_USER_UPDATE] = {SQ_CALL, .fn = update_user},
    [STORE_EXPERIMENTS_LIST] = {SQ_LIST, .sql = "SELECT doc FROM experiments WHERE match_key IS "
                                                "NOT NULL ORDER BY id"},
    [STORE_EXPERIMENT_PUT] = {SQ_CALL, .fn = put_experiment},
    [STORE_EXPERIMENTS_STAMP_GET] = {SQ_CALL, .fn = experiments_stamp_get},
    [STORE_EXPERIMENTS_STAMP_PUT] = {SQ_CALL, .fn = experiments_stamp_put},
    [STORE_UNCERTAIN_NOTE] = {SQ_CALL, .fn = uncertain_note},
    [STORE_UNCERTAIN_TOUCH] = {SQ_CALL, .fn = uncertain_touch},
    [STORE_UNCERTAIN_LIST] = {SQ_LIST, .sql =
                                           "SELECT json_object('_id', id, 'record_id', record_id, "
                                           "'channel', channel, 'noted_at', noted_at) FROM "
                                           "uncertain_objects ORDER BY noted_at, id"},
    [STORE_UNCERTAIN_CLAIM] = {SQ_CALL, .fn = uncertain_claim},
    [STORE_UNCERTAIN_DELETE] = {SQ_DELETE, .sql = "DELETE FROM uncertain_objects WHERE id = ?1"},
};
_Static_assert(sizeof(kinds) / sizeof(kinds[0]) == STORE_OP_KINDS,
               "every op kind needs an entry in sqlite.c's kinds[]");

int store_sqlite_missing_kind(void)
{
    for (int k = 0; k < STORE_OP_KINDS; k++) {
        const sqlite_kind *e = &kinds[k];
        bool ok = e->shape == SQ_CALL  ? e->fn != NULL
                  : e->shape == SQ_PUT ? e->sql && e->sql_replace
                                       : e->shape != SQ_MISSING && e->sql;
        if (!ok)
            return k;
    }
    return -1;
}

static void execute_on(sqlite_conn *c, store_op_t *op)
{
    if ((unsigned)op->kind >= STORE_OP_KINDS)
        return;
    const sqlite_kind *k = &kinds[op->kind];
    const char *key = k->by_id ? op->id : NULL;
    switch (k->shape) {
    case SQ_CALL:
        k->fn(c, op);
        break;
    case SQ_GET:
        get_doc(c, op, k->sql, key);
        break;
    case SQ_LIST:
        list_docs(c, op, k->sql, key);
        break;
    case SQ_PUT:
        put_doc(c, op, k->sql, k->sql_replace);
        break;
    case SQ_DELETE:
        delete_by_id(c, op, k->sql);
        break;
    case SQ_EXEC:
        exec_simple(c, op, k->sql);
        break;
    case SQ_MISSING:
        break;
    }
}

static void sqlite_execute(store_t *base, store_op_t *op)
{
    sqlite_store *s = (sqlite_store *)base;
    sqlite_conn *c = conn_get(s, op);
    if (!c)
        return;
    c->running = store_op_reads(op->kind) ? op : NULL;
    execute_on(c, op);
    c->running = NULL;
}

const store_backend store_sqlite_backend = {
    .scheme = "sqlite",
    .open = sqlite_open,
    .migrate = sqlite_migrate,
    .close = sqlite_close,
    .execute = sqlite_execute,
};
