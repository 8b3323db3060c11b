/*
 * objstore.c: the back-end-independent half of the object store (see objstore.h): the
 * back-end table, key validation, requests and their callbacks, the cache in front of
 * reads, single-flight, cancellation, counters and the close sequence.
 *
 * Two objects carry the work. A *request* (objstore_req_t) is what a caller holds: its
 * callback, its result, and where it waits. An *op* is one back-end operation; it owns
 * copies of the key and the put bytes and a list of waiting requests: exactly one for
 * head/put/delete, any number for a GET, since concurrent misses of one key join the
 * registered op (cache.c's flight table). When an op completes (objstore_op_done, on the
 * loop) every waiter gets the result and its callback runs right away; a GET waiter with a
 * fallback key whose first key is missing (-ENOENT, only: a store that is down must not
 * cost a second wait, nor turn into "not found") is re-issued on that key instead.
 *
 * Requests answered without a back end (cache hits, cancellations) go to the *ready
 * queue*, drained by a uv_idle handle on the next loop turn: a callback never runs
 * inside the call that started it. Cancelling a waiting request detaches it from its op
 * (the op goes on: others may wait on it, or it may already be running on a thread) and
 * queues it with -ECANCELED; an op left with no waiter is cancelled in the back end, best
 * effort.
 *
 * Close: pending requests are cancelled, the idle handle is closed, and the close
 * callback of that handle delivers what is queued; the store is freed when that has
 * happened and no op is left in the back end. If a uv_walk already closed the idle
 * handle, its close completion cannot be observed directly, so a spare handle is closed
 * twice in a row: the second close completes only after the loop has finished closing
 * the first one (closing handles are processed in batches, one batch per loop turn).
 */
#include "objstore/backend.h"

#include "util/error.h"
#include "util/list.h"

#include "objstore/cache.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const objstore_backend *const backends[] = {
    &objstore_fs_backend,
    &objstore_s3_backend,
};

typedef enum req_state {
    REQ_WAITING,    /* on an op's waiter list */
    REQ_READY,      /* result set, on the ready queue or a local delivery list */
    REQ_DELIVERING, /* its callback is running */
} req_state;

typedef struct op op;

struct objstore_req {
    objstore_t *os;
    objstore_op_kind kind;
    union {
        objstore_get_cb get;
        objstore_head_cb head;
        objstore_done_cb done;
        objstore_count_cb count;
    } cb;
    void *data;
    req_state state;
    op *op;                      /* REQ_WAITING: the op it waits on */
    objstore_req_t *prev, *next; /* op waiter list (both), ready lists (next only) */
    char *fallback;              /* GET: key to read when the first read fails (owned) */
    bool no_cache;               /* GET: OBJSTORE_GET_NO_CACHE */
    const void *owner;           /* the owner current when it was made */
    /* result */
    int status;
    const objstore_blob_t *blob; /* GET, status 0: one reference */
    uint64_t size;
    size_t removed;
};

struct op {
    objstore_op be; /* first: objstore_op_done casts back */
    objstore_t *os;
    objcache_flight flight;         /* GET */
    bool barrier;                   /* PUT/DELETE*: registered with the write barrier */
    bool abandoned;                 /* back-end cancel asked */
    bool no_store;                  /* GET: only OBJSTORE_GET_NO_CACHE readers wait on it */
    const objstore_blob_t *payload; /* PUT: one reference */
    objstore_req_t *waiters;
    list_node node; /* os->ops */
    char key[];
};

struct objstore {
    const objstore_backend *be;
    void *be_state;
    uv_loop_t *loop;
    objcache_t *cache;
    objstore_stats stats;
    list_node ops; /* op.node: started in the back end, not yet done */
    objstore_req_t *ready_head, *ready_tail;
    uv_idle_t idle;  /* drains the ready queue */
    uv_idle_t guard; /* close sequence when idle was closed by someone else */
    bool closing;
    bool idle_closed; /* the idle handle is closed for good */
    unsigned delivering;
    const void *owner; /* objstore_set_owner */
    objstore_close_cb close_cb;
    void *close_data;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- keys ---- */

#define TMP_SEGMENT ".ogd-tmp-"

int objstore_key_check(const char *key)
{
    if (!key || !*key || key[0] == '/')
        return -EINVAL;
    size_t len = strlen(key);
    if (len >= OBJSTORE_KEY_MAX)
        return -ENAMETOOLONG;
    const char *seg = key;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n == 0)
            return -EINVAL; /* "a//b", trailing '/' */
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return -EINVAL;
        if (strncmp(seg, TMP_SEGMENT, strlen(TMP_SEGMENT)) == 0)
            return -EINVAL;
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)seg[i];
            if (ch == '\\' || ch < 0x20 || ch == 0x7f)
                return -EINVAL;
        }
        if (!end)
            return 0;
        seg = end + 1;
    }
}

int objstore_prefix_check(const char *prefix)
{
    if (!prefix)
        return -EINVAL;
    size_t len = strlen(prefix);
    if (len == 0 || prefix[len - 1] != '/')
        return objstore_key_check(prefix);
    if (len >= OBJSTORE_KEY_MAX)
        return -ENAMETOOLONG;
    char key[OBJSTORE_KEY_MAX];
    memcpy(key, prefix, len - 1);
    key[len - 1] = '\0';
    return objstore_key_check(key);
}

/* ---- delivery ---- */

static void maybe_finish(objstore_t *os);

static void deliver(objstore_t *os, objstore_req_t *r)
{
    r->state = REQ_DELIVERING;
    if (r->status == -ECANCELED)
        os->stats.canceled++;
    const void *owner = os->owner;
    os->owner = r->owner; /* continuations keep their request's owner */
    switch (r->kind) {
    case OBJSTORE_OP_GET:
        r->cb.get(r->status, r->status == 0 ? r->blob : NULL, r->data);
        break;
    case OBJSTORE_OP_HEAD:
        r->cb.head(r->status, r->status == 0 ? r->size : 0, r->data);
        break;
    case OBJSTORE_OP_DELETE_PREFIX:
        r->cb.count(r->status, r->status == 0 ? r->removed : 0, r->data);
        break;
    case OBJSTORE_OP_PUT:
    case OBJSTORE_OP_DELETE:
        r->cb.done(r->status, r->data);
        break;
    }
    os->owner = owner;
    objstore_blob_unref(r->blob);
    free(r->fallback);
    free(r);
}

/* Delivers a list linked through next. Callbacks may cancel requests of the list (that
 * only changes their status) and start new ones (those go to the ready queue). */
static void deliver_list(objstore_t *os, objstore_req_t *list)
{
    os->delivering++;
    while (list) {
        objstore_req_t *r = list;
        list = r->next;
        deliver(os, r);
    }
    os->delivering--;
}

static void flush_ready(objstore_t *os)
{
    objstore_req_t *list = os->ready_head;
    os->ready_head = os->ready_tail = NULL;
    deliver_list(os, list);
}

static void on_idle(uv_idle_t *h)
{
    objstore_t *os = h->data;
    uv_idle_stop(h);
    flush_ready(os); /* requests queued meanwhile restart the handle */
}

static void ready_push(objstore_t *os, objstore_req_t *r)
{
    r->state = REQ_READY;
    r->op = NULL;
    r->prev = r->next = NULL;
    if (os->ready_tail)
        os->ready_tail->next = r;
    else
        os->ready_head = r;
    os->ready_tail = r;
    uv_handle_t *h = (uv_handle_t *)&os->idle;
    if (!os->closing && !uv_is_closing(h) && !uv_is_active(h))
        uv_idle_start(&os->idle, on_idle);
}

static void set_canceled(objstore_req_t *r)
{
    r->status = -ECANCELED;
    objstore_blob_unref(r->blob);
    r->blob = NULL;
}

/* ---- ops ---- */

static void waiter_add(op *o, objstore_req_t *r)
{
    r->state = REQ_WAITING;
    r->op = o;
    r->prev = NULL;
    r->next = o->waiters;
    if (o->waiters)
        o->waiters->prev = r;
    o->waiters = r;
}

static void waiter_unlink(op *o, objstore_req_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        o->waiters = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    r->op = NULL;
}

static op *op_new(objstore_t *os, objstore_op_kind kind, const char *key)
{
    size_t klen = strlen(key);
    op *o = calloc(1, sizeof(*o) + klen + 1);
    if (!o)
        return NULL;
    memcpy(o->key, key, klen + 1);
    o->os = os;
    o->be.kind = kind;
    o->be.key = o->key;
    o->be.owner = os->owner;
    return o;
}

static void op_free(op *o)
{
    objstore_blob_unref(o->be.blob);
    objstore_blob_unref(o->payload);
    free(o);
}

static int op_start(objstore_t *os, op *o)
{
    int rc = os->be->start(os->be_state, &o->be);
    if (rc != 0)
        return rc;
    list_insert_head(&os->ops, &o->node);
    os->stats.in_flight++;
    return 0;
}

/* Nobody waits on o any more: stop new readers joining it and ask the back end to stop. */
static void op_abandon(objstore_t *os, op *o)
{
    if (o->be.kind == OBJSTORE_OP_GET)
        objcache_flight_detach(os->cache, &o->flight);
    if (!o->abandoned && os->be->cancel) {
        o->abandoned = true;
        os->be->cancel(os->be_state, &o->be);
    }
}

static objstore_req_t *req_new(objstore_t *os, objstore_op_kind kind, void *data)
{
    objstore_req_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->os = os;
    r->kind = kind;
    r->data = data;
    r->owner = os->owner;
    return r;
}

/* Answers r (a GET) for key: from the cache, by joining the read in flight, or by
 * starting one. On error r is untouched. */
static int get_attach(objstore_t *os, objstore_req_t *r, const char *key)
{
    const objstore_blob_t *hit = objcache_get(os->cache, key);
    if (hit) {
        os->stats.gets++;
        os->stats.hits++;
        r->status = 0;
        r->blob = objstore_blob_ref(hit);
        ready_push(os, r);
        return 0;
    }
    objcache_flight *f = objcache_flight_find(os->cache, key);
    op *o;
    if (f) {
        o = (op *)((char *)f - offsetof(op, flight));
        os->stats.shared++;
        if (!r->no_cache)
            o->no_store = false; /* a reader that wants it cached joined */
    } else {
        o = op_new(os, OBJSTORE_OP_GET, key);
        if (!o)
            return -ENOMEM;
        o->no_store = r->no_cache;
        int rc = objcache_flight_begin(os->cache, &o->flight, o->key);
        if (rc == 0) {
            rc = op_start(os, o);
            if (rc != 0)
                objcache_flight_detach(os->cache, &o->flight);
        }
        if (rc != 0) {
            op_free(o);
            return rc;
        }
        os->stats.misses++;
    }
    os->stats.gets++;
    waiter_add(o, r);
    return 0;
}

void objstore_op_done(objstore_op *bop)
{
    op *o = (op *)bop;
    objstore_t *os = o->os;
    int status = bop->status;

    list_remove(&o->node);
    os->stats.in_flight--;
    if (status != 0 && status != -ENOENT && status != -ECANCELED)
        os->stats.errors++;

    switch (bop->kind) {
    case OBJSTORE_OP_GET:
        if (status == 0 && !bop->blob)
            status = -EIO; /* a back end that forgot its result */
        if (status == 0)
            os->stats.bytes_read += bop->blob->len;
        objcache_flight_end(os->cache, &o->flight,
                            status == 0 && !os->closing && !o->no_store ? bop->blob : NULL);
        break;
    case OBJSTORE_OP_PUT:
        if (status == 0)
            os->stats.bytes_written += bop->len;
        /* fall through */
    case OBJSTORE_OP_DELETE:
    case OBJSTORE_OP_DELETE_PREFIX:
        if (o->barrier)
            objcache_write_end(os->cache, o->key, bop->kind == OBJSTORE_OP_DELETE_PREFIX);
        break;
    case OBJSTORE_OP_HEAD:
        break;
    }

    objstore_req_t *list = NULL, *tail = NULL;
    while (o->waiters) {
        objstore_req_t *r = o->waiters;
        waiter_unlink(o, r);
        if (bop->kind == OBJSTORE_OP_GET && status == -ENOENT && r->fallback) {
            char *fallback = r->fallback;
            r->fallback = NULL;
            const void *owner = objstore_set_owner(os, r->owner);
            int rc = get_attach(os, r, fallback);
            objstore_set_owner(os, owner);
            free(fallback);
            if (rc == 0)
                continue;
        }
        r->status = status;
        if (status == 0) {
            if (bop->kind == OBJSTORE_OP_GET)
                r->blob = objstore_blob_ref(bop->blob);
            r->size = bop->size;
            r->removed = bop->removed;
        }
        r->state = REQ_READY;
        r->next = NULL;
        if (tail)
            tail->next = r;
        else
            list = r;
        tail = r;
    }
    op_free(o);
    deliver_list(os, list);
    maybe_finish(os);
}

void objstore_cancel(objstore_req_t *r)
{
    if (!r)
        return;
    objstore_t *os = r->os;
    if (r->state == REQ_WAITING) {
        op *o = r->op;
        waiter_unlink(o, r);
        r->status = -ECANCELED;
        ready_push(os, r);
        if (!o->waiters)
            op_abandon(os, o);
    } else if (r->state == REQ_READY) {
        set_canceled(r);
    }
}

/* ---- lifecycle ---- */

static const objstore_backend *find_backend(const char *url, size_t schemelen)
{
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
        for (const char *const *s = backends[i]->schemes; *s; s++)
            if (strlen(*s) == schemelen && strncasecmp(url, *s, schemelen) == 0)
                return backends[i];
    return NULL;
}

/* The back end serving url, or NULL with err set. */
static const objstore_backend *backend_for_url(const char *url, char *err, size_t errlen)
{
    const char *sep = url ? strstr(url, "://") : NULL;
    if (!sep) {
        set_err(err, errlen, "echo.url: not a URL: \"%.200s\"", url ? url : "");
        return NULL;
    }
    const objstore_backend *be = find_backend(url, (size_t)(sep - url));
    if (!be)
        set_err(err, errlen,
                "echo.url: unsupported scheme in \"%.200s\" (use file://, http:// or https://)",
                url);
    return be;
}

int objstore_prepare(const char *url, const objstore_options *opts, char *err, size_t errlen)
{
    static const objstore_options no_options;
    if (!err)
        errlen = 0;
    const objstore_backend *be = backend_for_url(url, err, errlen);
    if (!be)
        return -EINVAL;
    return be->prepare ? be->prepare(url, opts ? opts : &no_options, err, errlen) : 0;
}

int objstore_open(const char *url, const objstore_options *opts, uv_loop_t *loop, objstore_t **out,
                  char *err, size_t errlen)
{
    static const objstore_options no_options;
    if (!opts)
        opts = &no_options;
    if (!err)
        errlen = 0;
    const objstore_backend *be = backend_for_url(url, err, errlen);
    if (!be)
        return -EINVAL;
    objstore_t *os = calloc(1, sizeof(*os));
    if (!os) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    os->be = be;
    os->loop = loop;
    list_init(&os->ops);
    os->cache =
        objcache_new(opts->cache_max_entries,
                     opts->cache_max_bytes ? opts->cache_max_bytes : OBJSTORE_DEFAULT_CACHE_BYTES);
    if (!os->cache) {
        free(os);
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = be->open(loop, url, opts, &os->be_state, err, errlen);
    if (rc == 0)
        rc = uv_idle_init(loop, &os->idle);
    if (rc != 0) {
        if (os->be_state)
            be->close(os->be_state);
        objcache_free(os->cache);
        free(os);
        return rc;
    }
    os->idle.data = os;
    *out = os;
    return 0;
}

static void maybe_finish(objstore_t *os)
{
    if (!os->closing || !os->idle_closed || os->delivering || !list_empty(&os->ops))
        return;
    if (os->ready_head) {
        flush_ready(os);
        if (!list_empty(&os->ops))
            return;
    }
    objstore_close_cb cb = os->close_cb;
    void *data = os->close_data;
    os->be->close(os->be_state);
    objcache_free(os->cache);
    free(os);
    if (cb)
        cb(data);
}

static void on_idle_closed(uv_handle_t *h)
{
    objstore_t *os = h->data;
    os->idle_closed = true;
    flush_ready(os);
    maybe_finish(os);
}

static void on_guard_second(uv_handle_t *h)
{
    on_idle_closed(h);
}

static void on_guard_first(uv_handle_t *h)
{
    objstore_t *os = h->data;
    flush_ready(os);
    /* The foreign close of os->idle was in this batch or an earlier one: one more close
     * lands in the next batch, after it. */
    uv_idle_init(os->loop, &os->guard);
    os->guard.data = os;
    uv_close((uv_handle_t *)&os->guard, on_guard_second);
}

void objstore_close(objstore_t *os, objstore_close_cb cb, void *data)
{
    if (!os || os->closing)
        return;
    os->closing = true;
    os->close_cb = cb;
    os->close_data = data;
    list_node *n, *tmp;
    list_foreach_safe(n, tmp, &os->ops)
    {
        op *o = list_entry(n, op, node);
        while (o->waiters) {
            objstore_req_t *r = o->waiters;
            waiter_unlink(o, r);
            r->status = -ECANCELED;
            ready_push(os, r);
        }
        op_abandon(os, o);
    }
    for (objstore_req_t *r = os->ready_head; r; r = r->next)
        set_canceled(r);
    if (!uv_is_closing((uv_handle_t *)&os->idle)) {
        uv_close((uv_handle_t *)&os->idle, on_idle_closed);
    } else {
        uv_idle_init(os->loop, &os->guard);
        os->guard.data = os;
        uv_close((uv_handle_t *)&os->guard, on_guard_first);
    }
}

/* ---- operations ---- */

int objstore_get_fallback(objstore_t *os, const char *key, const char *fallback_key,
                          objstore_get_cb cb, void *data, objstore_req_t **reqp)
{
    return objstore_get_ex(os, key, fallback_key, 0, cb, data, reqp);
}

int objstore_get_ex(objstore_t *os, const char *key, const char *fallback_key, unsigned flags,
                    objstore_get_cb cb, void *data, objstore_req_t **reqp)
{
    if (os->closing)
        return -ESHUTDOWN;
    int rc = objstore_key_check(key);
    if (rc != 0)
        return rc;
    if (fallback_key && strcmp(fallback_key, key) == 0)
        fallback_key = NULL;
    if (fallback_key) {
        rc = objstore_key_check(fallback_key);
        if (rc != 0)
            return rc;
    }
    objstore_req_t *r = req_new(os, OBJSTORE_OP_GET, data);
    if (!r)
        return -ENOMEM;
    r->cb.get = cb;
    r->no_cache = (flags & OBJSTORE_GET_NO_CACHE) != 0;
    if (fallback_key) {
        r->fallback = strdup(fallback_key);
        if (!r->fallback) {
            free(r);
            return -ENOMEM;
        }
    }
    rc = get_attach(os, r, key);
    if (rc != 0) {
        free(r->fallback);
        free(r);
        return rc;
    }
    if (reqp)
        *reqp = r;
    return 0;
}

int objstore_get(objstore_t *os, const char *key, objstore_get_cb cb, void *data,
                 objstore_req_t **reqp)
{
    return objstore_get_fallback(os, key, NULL, cb, data, reqp);
}

int objstore_head(objstore_t *os, const char *key, objstore_head_cb cb, void *data,
                  objstore_req_t **reqp)
{
    if (os->closing)
        return -ESHUTDOWN;
    int rc = objstore_key_check(key);
    if (rc != 0)
        return rc;
    objstore_req_t *r = req_new(os, OBJSTORE_OP_HEAD, data);
    if (!r)
        return -ENOMEM;
    r->cb.head = cb;
    const objstore_blob_t *hit = objcache_get(os->cache, key);
    if (hit) {
        r->status = 0;
        r->size = hit->len;
        ready_push(os, r);
    } else {
        op *o = op_new(os, OBJSTORE_OP_HEAD, key);
        rc = o ? op_start(os, o) : -ENOMEM;
        if (rc != 0) {
            if (o)
                op_free(o);
            free(r);
            return rc;
        }
        waiter_add(o, r);
    }
    if (reqp)
        *reqp = r;
    return 0;
}

/* Starts a put/delete/delete_prefix behind the write barrier; takes ownership of o. */
static int write_start(objstore_t *os, op *o, objstore_req_t *r)
{
    bool is_prefix = o->be.kind == OBJSTORE_OP_DELETE_PREFIX;
    int rc = objcache_write_begin(os->cache, o->key, is_prefix);
    if (rc == 0) {
        o->barrier = true;
        rc = op_start(os, o);
        if (rc != 0)
            objcache_write_end(os->cache, o->key, is_prefix);
    }
    if (rc != 0) {
        op_free(o);
        return rc;
    }
    waiter_add(o, r);
    if (o->be.kind == OBJSTORE_OP_PUT)
        os->stats.puts++;
    else
        os->stats.deletes++;
    return 0;
}

int objstore_put_blob(objstore_t *os, const char *key, const objstore_blob_t *blob,
                      objstore_done_cb cb, void *data, objstore_req_t **reqp)
{
    if (os->closing)
        return -ESHUTDOWN;
    if (!blob)
        return -EINVAL;
    int rc = objstore_key_check(key);
    if (rc != 0)
        return rc;
    objstore_req_t *r = req_new(os, OBJSTORE_OP_PUT, data);
    op *o = op_new(os, OBJSTORE_OP_PUT, key);
    if (!r || !o) {
        free(r);
        free(o);
        return -ENOMEM;
    }
    r->cb.done = cb;
    o->payload = objstore_blob_ref(blob);
    o->be.bytes = blob->data;
    o->be.len = blob->len;
    rc = write_start(os, o, r);
    if (rc != 0) {
        free(r);
        return rc;
    }
    if (reqp)
        *reqp = r;
    return 0;
}

int objstore_put(objstore_t *os, const char *key, const void *bytes, size_t len,
                 objstore_done_cb cb, void *data, objstore_req_t **reqp)
{
    if (os->closing)
        return -ESHUTDOWN;
    if (!bytes && len)
        return -EINVAL;
    int rc = objstore_key_check(key);
    if (rc != 0)
        return rc;
    objstore_blob_t *blob = objstore_blob_copy(bytes, len);
    if (!blob)
        return -ENOMEM;
    rc = objstore_put_blob(os, key, blob, cb, data, reqp);
    objstore_blob_unref(blob);
    return rc;
}

static int delete_common(objstore_t *os, objstore_op_kind kind, const char *key,
                         objstore_done_cb done, objstore_count_cb count, void *data,
                         objstore_req_t **reqp)
{
    if (os->closing)
        return -ESHUTDOWN;
    int rc = kind == OBJSTORE_OP_DELETE ? objstore_key_check(key) : objstore_prefix_check(key);
    if (rc != 0)
        return rc;
    objstore_req_t *r = req_new(os, kind, data);
    op *o = op_new(os, kind, key);
    if (!r || !o) {
        free(r);
        free(o);
        return -ENOMEM;
    }
    if (kind == OBJSTORE_OP_DELETE)
        r->cb.done = done;
    else
        r->cb.count = count;
    rc = write_start(os, o, r);
    if (rc != 0) {
        free(r);
        return rc;
    }
    if (reqp)
        *reqp = r;
    return 0;
}

int objstore_delete(objstore_t *os, const char *key, objstore_done_cb cb, void *data,
                    objstore_req_t **reqp)
{
    return delete_common(os, OBJSTORE_OP_DELETE, key, cb, NULL, data, reqp);
}

int objstore_delete_prefix(objstore_t *os, const char *prefix, objstore_count_cb cb, void *data,
                           objstore_req_t **reqp)
{
    return delete_common(os, OBJSTORE_OP_DELETE_PREFIX, prefix, NULL, cb, data, reqp);
}

void objstore_cache_clear(objstore_t *os)
{
    objcache_clear(os->cache);
}

const void *objstore_set_owner(objstore_t *os, const void *owner)
{
    const void *prev = os->owner;
    os->owner = owner;
    return prev;
}

void objstore_stats_get(const objstore_t *os, objstore_stats *out)
{
    *out = os->stats;
    if (os->be->stats)
        os->be->stats(os->be_state, out);
    out->cache_entries = objcache_entries(os->cache);
    out->cache_bytes = objcache_bytes(os->cache);
}

const char *objstore_error_code(int status)
{
    switch (status) {
    case -ENOENT:
        return "NoSuchKey";
    case -EACCES:
        return "AccessDenied";
    case -ETIMEDOUT:
        return "RequestTimeout";
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -EHOSTUNREACH:
    case OGD_EOBJ_UNAVAILABLE:
        return "ServiceUnavailable";
    case -EFBIG:
        return "EntityTooLarge";
    default:
        return "InternalError";
    }
}

const char *objstore_backend_name(const objstore_t *os)
{
    return os->be->name;
}
