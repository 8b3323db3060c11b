/*
 * store.c: the back-end-independent half of the store: choosing a back end from the URL,
 * running ops on the libuv thread pool (or synchronously for CLI tools), cancellation,
 * and small shared helpers. The SQL lives in the back ends (sqlite.c, pg.c).
 */
#include "store/backend.h"

#include "store/timestamp.h"
#include "util/pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const store_backend *const backends[] = {&store_sqlite_backend, &store_pg_backend};

static bool scheme_is(const char *url, const char *scheme)
{
    size_t n = scheme ? strlen(scheme) : 0;
    return n && strncmp(url, scheme, n) == 0 && strncmp(url + n, "://", 3) == 0;
}

static const store_backend *backend_for(const char *url)
{
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
        if (scheme_is(url, backends[i]->scheme) || scheme_is(url, backends[i]->scheme2))
            return backends[i];
    }
    return NULL;
}

bool store_url_is_postgresql(const char *url)
{
    return url && backend_for(url) == &store_pg_backend;
}

int store_open(const char *url, uv_loop_t *loop, store_t **out, char *err, size_t errlen)
{
    return store_open_ex(url, loop, NULL, out, err, errlen);
}

int store_open_ex(const char *url, uv_loop_t *loop, const store_options *opts, store_t **out,
                  char *err, size_t errlen)
{
    store_options none = {0};
    const store_backend *be = backend_for(url);
    if (!be) {
        snprintf(err, errlen, "database.url: unsupported database URL scheme in \"%.60s\"", url);
        return -EINVAL;
    }
    int rc = be->open(url, opts ? opts : &none, out, err, errlen);
    if (rc)
        return rc;
    (*out)->backend = be;
    (*out)->loop = loop;
    return 0;
}

int store_migrate(const char *url, char *err, size_t errlen)
{
    const store_backend *be = backend_for(url);
    if (!be) {
        snprintf(err, errlen, "database.url: unsupported database URL scheme in \"%.60s\"", url);
        return -EINVAL;
    }
    return be->migrate(url, err, errlen);
}

void store_close(store_t *s)
{
    if (s)
        s->backend->close(s);
}

void store_op_init(store_op_t *op, store_op_kind kind)
{
    memset(op, 0, sizeof(*op));
    op->kind = kind;
}

void store_op_cleanup(store_op_t *op)
{
    if (op->result) {
        json_decref(op->result);
        op->result = NULL;
    }
    free(op->text);
    op->text = NULL;
    op->text_len = 0;
    json_decref(op->dtypes);
    op->dtypes = NULL;
}

static void op_work(uv_work_t *w)
{
    pool_work_begins();
    store_op_t *op = w->data;
    if (op->canceled) {
        op->status = -ECANCELED;
        return;
    }
    op->store->backend->execute(op->store, op);
    if (op->status == 0 && op->post && !op->canceled)
        op->post(op);
}

static void op_after(uv_work_t *w, int status)
{
    pool_work_ends(status);
    store_op_t *op = w->data;
    if (status == UV_ECANCELED)
        op->canceled = true;
    store_complete(op);
}

int store_submit(store_t *s, store_op_t *op, store_cb cb, void *data)
{
    if (!s->loop)
        return -EINVAL;
    op->store = s;
    op->cb = cb;
    op->data = data;
    op->status = 0;
    op->err[0] = '\0';
    op->work.data = op;
    op->backend_data = NULL;
    if (s->backend->submit)
        return s->backend->submit(s, op);
    int rc = pool_queue_work(s->loop, &op->work, op_work, op_after);
    return rc < 0 ? rc : 0;
}

int store_run_sync(store_t *s, store_op_t *op)
{
    op->store = s;
    op->status = 0;
    op->err[0] = '\0';
    s->backend->execute(s, op);
    return op->status;
}

void store_complete(store_op_t *op)
{
    if (op->canceled) {
        op->status = -ECANCELED;
        store_op_cleanup(op);
    }
    op->cb(op);
}

bool store_op_reads(store_op_kind kind)
{
    switch (kind) {
    case STORE_RECORDS_FIND:
    case STORE_RECORDS_COUNT:
    case STORE_RECORDS_RANGE:
    case STORE_CHANNEL_SUMMARY:
    case STORE_CHANNEL_COUNT:
        return true;
    default:
        return false;
    }
}

void store_cancel(store_op_t *op)
{
    op->canceled = true;
    if (op->store && op->store->backend->cancel) {
        op->store->backend->cancel(op);
        return;
    }
    /* If the work has not started, the pool drops it and op_after sees UV_ECANCELED. */
    uv_cancel((uv_req_t *)&op->work);
}

void store_format_timestamp(int64_t us, char *out)
{
    int64_t secs = us / 1000000;
    int64_t frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    /* By hand rather than gmtime_r + strftime: glibc's %Y does not pad years below 1000
     * ("1-01-01"), which timestamp_parse_iso (and any client) then refuses. */
    int64_t days = secs / 86400, rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days -= 1;
    }
    int64_t y;
    int m, d;
    timestamp_civil_from_days(days, &y, &m, &d);
    int n = snprintf(out, 32, "%04lld-%02d-%02dT%02d:%02d:%02d", (long long)y, m, d,
                     (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
    if (frac && n > 0 && n < 32)
        snprintf(out + n, 32 - (size_t)n, ".%06lld", (long long)frac);
}

void store_range_result(store_op_t *op, int64_t n, int64_t lo, int64_t hi, int64_t nfield)
{
    op->count = n;
    if (n == 0) {
        op->status = -ENOENT;
        return;
    }
    json_t *r = json_object();
    if (op->range_by_shotnum) {
        char a[32], b[32];
        store_format_timestamp(lo, a);
        store_format_timestamp(hi, b);
        json_object_set_new(r, "from", nfield ? json_string(a) : json_null());
        json_object_set_new(r, "to", nfield ? json_string(b) : json_null());
    } else {
        json_object_set_new(r, "min", nfield ? json_integer(lo) : json_null());
        json_object_set_new(r, "max", nfield ? json_integer(hi) : json_null());
    }
    op->result = r;
}

const char *const STORE_PRIVATE_CHANNEL_FIELDS[] = {"object_size", NULL};

json_t *store_channel_for(const store_op_t *op, json_t *body)
{
    if (body && !op->private_fields)
        for (const char *const *f = STORE_PRIVATE_CHANNEL_FIELDS; *f; f++)
            json_object_del(body, *f);
    return body;
}

void store_note_dtype(store_op_t *op, const char *record_id, const char *channel, const char *dtype)
{
    if (!op->channel_dtypes || !op->nprojection || !dtype || !record_id || !channel)
        return;
    if (!op->dtypes)
        op->dtypes = json_object();
    json_t *rec = json_object_get(op->dtypes, record_id);
    if (!rec) {
        rec = json_object();
        json_object_set_new(op->dtypes, record_id, rec);
    }
    json_object_set_new(rec, channel, json_string(dtype));
}

json_t *store_record_metadata(store_op_t *op, const json_t *doc, const char *id, int64_t *ts_us,
                              bool *has_ts)
{
    json_t *meta = json_object_get(doc, "metadata");
    json_t *copy = json_is_object(meta) ? json_deep_copy(meta) : json_object();
    if (!copy) {
        op->status = -ENOMEM;
        return NULL;
    }
    *has_ts = false;
    json_t *ts = json_object_get(copy, "timestamp");
    if (!ts)
        return copy;
    if (timestamp_from_json(ts, ts_us) != 0) {
        snprintf(op->err, sizeof(op->err), "record %s: metadata.timestamp is not a date", id);
        op->status = STORE_EBADQUERY;
        json_decref(copy);
        return NULL;
    }
    char text[32];
    store_format_timestamp(*ts_us, text);
    json_object_set_new(copy, "timestamp", json_string(text));
    *has_ts = true;
    return copy;
}

char *store_experiment_key(const json_t *doc)
{
    static const char *const fields[] = {"experiment_id", "part", "start_date", "end_date"};
    json_t *k = json_object();
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_object_get(doc, fields[i]);
        if (!v) {
            json_decref(k);
            return NULL;
        }
        json_object_set(k, fields[i], v);
    }
    char *text = json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(k);
    return text;
}

bool store_uncertain_notes_valid(const json_t *doc)
{
    if (!json_is_array(doc))
        return false;
    size_t i;
    json_t *n;
    json_array_foreach(doc, i, n)
    {
        if (!json_is_string(json_object_get(n, "_id")) ||
            !json_is_string(json_object_get(n, "record_id")) ||
            !json_is_string(json_object_get(n, "channel")))
            return false;
    }
    return true;
}

bool store_uncertain_keys_valid(const json_t *doc)
{
    if (!json_is_array(doc))
        return false;
    size_t i;
    json_t *k;
    json_array_foreach(doc, i, k)
    {
        if (!json_is_string(k))
            return false;
    }
    return true;
}
