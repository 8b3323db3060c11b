/*
 * objstore.c: the back-end-independent half of the object store: key validation, the
 * cache, single-flight GETs, deferred completions and statistics. See objstore.h.
 *
 * A GET that misses the cache becomes a "flight" keyed by object key; later GETs of the
 * same key join its waiter list, and all waiters are answered from the one back-end read.
 * Cache hits and cancellations complete from a uv_idle callback on the next loop turn,
 * so no callback runs inside the call that started it.
 */
#include "objstore/objstore.h"

#include "objstore/cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct objstore_req {
    objstore_t *os;
    objstore_get_cb cb;
    void *data;
    struct flight *flight; /* set while waiting on a back-end read */
    int status;
    const objstore_blob_t *blob; /* held reference while ready */
    objstore_req_t *prev, *next;
};

typedef struct flight {
    obj_op op;
    objstore_req_t *waiters;
} flight;

typedef struct simple_op {
    obj_op op;
    objstore_done_cb done;
    objstore_count_cb count;
    objstore_head_cb head;
    void *data;
} simple_op;

struct objstore {
    const objstore_backend *be;
    uv_loop_t *loop;
    objcache_t *cache;
    strmap inflight;
    objstore_stats stats;
    objstore_req_t *ready_head, *ready_tail;
    uv_idle_t idle;
    bool idle_active;
    bool idle_closed;
    size_t outstanding;
    bool closing;
    void *backend_data;
};

void *objstore_backend_data(const objstore_t *os)
{
    return os->backend_data;
}

void objstore_set_backend_data(objstore_t *os, void *data)
{
    os->backend_data = data;
}

uv_loop_t *objstore_loop(const objstore_t *os)
{
    return os->loop;
}

static const objstore_backend *const backends[] = {&objstore_fs_backend};

objstore_blob_t *objstore_blob_new(const void *data, size_t len)
{
    objstore_blob_t *b = malloc(sizeof(*b) + (len ? len : 1));
    if (!b)
        return NULL;
    b->refcount = 1;
    b->len = len;
    if (len && data)
        memcpy(b->data, data, len);
    return b;
}

void objstore_blob_ref(const objstore_blob_t *b)
{
    ((objstore_blob_t *)b)->refcount++;
}

void objstore_blob_unref(const objstore_blob_t *b)
{
    if (b && --((objstore_blob_t *)b)->refcount == 0)
        free((void *)b);
}

bool objstore_key_valid(const char *key)
{
    if (!key || !*key || key[0] == '/' || strchr(key, '\\'))
        return false;
    const char *seg = key;
    for (;;) {
        const char *slash = strchr(seg, '/');
        size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
        if (n == 0 && slash)
            return false; /* empty segment */
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        if (!slash)
            break;
        seg = slash + 1;
    }
    return true;
}

static bool prefix_valid(const char *prefix)
{
    /* A prefix is a key, optionally ending with '/'. */
    size_t n = strlen(prefix);
    if (n == 0 || n >= 4096)
        return false;
    char tmp[4096];
    memcpy(tmp, prefix, n + 1);
    if (tmp[n - 1] == '/')
        tmp[n - 1] = '\0';
    return objstore_key_valid(tmp);
}

static void maybe_free(objstore_t *os)
{
    if (os->closing && os->outstanding == 0 && os->idle_closed) {
        objcache_free(os->cache);
        strmap_free(&os->inflight);
        if (os->be->close)
            os->be->close(os);
        free(os);
    }
}

static void run_ready(uv_idle_t *idle)
{
    objstore_t *os = idle->data;
    objstore_req_t *r = os->ready_head;
    os->ready_head = os->ready_tail = NULL;
    uv_idle_stop(&os->idle);
    os->idle_active = false;
    while (r) {
        objstore_req_t *next = r->next;
        r->cb(r->status, r->status == 0 ? r->blob : NULL, r->data);
        objstore_blob_unref(r->blob);
        free(r);
        r = next;
    }
}

static void make_ready(objstore_t *os, objstore_req_t *r)
{
    r->next = NULL;
    r->prev = NULL;
    if (os->ready_tail)
        os->ready_tail->next = r;
    else
        os->ready_head = r;
    os->ready_tail = r;
    if (!os->idle_active && !os->closing) {
        uv_idle_start(&os->idle, run_ready);
        os->idle_active = true;
    }
}

int objstore_open(const char *url, const objstore_options *opts, uv_loop_t *loop,
                  objstore_t **out, char *err, size_t errlen)
{
    const objstore_backend *be = NULL;
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
        size_t n = strlen(backends[i]->scheme);
        if (strncmp(url, backends[i]->scheme, n) == 0 && strncmp(url + n, "://", 3) == 0)
            be = backends[i];
    }
    if (!be) {
        if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0)
            snprintf(err, errlen,
                     "echo.url: the S3 back end is not part of this build yet (use file://)");
        else
            snprintf(err, errlen, "echo.url: unsupported object store URL \"%.80s\"", url);
        return -EINVAL;
    }
    objstore_t *os = calloc(1, sizeof(*os));
    if (!os)
        return -ENOMEM;
    os->be = be;
    os->loop = loop;
    strmap_init(&os->inflight);
    size_t max_bytes = opts && opts->cache_max_bytes ? opts->cache_max_bytes : (256u << 20);
    os->cache = objcache_new(opts ? opts->cache_max_entries : 0, max_bytes);
    if (!os->cache) {
        free(os);
        return -ENOMEM;
    }
    int rc = be->open(os, url, opts, err, errlen);
    if (rc != 0) {
        objcache_free(os->cache);
        free(os);
        return rc;
    }
    uv_idle_init(loop, &os->idle);
    os->idle.data = os;
    *out = os;
    return 0;
}

static void idle_closed(uv_handle_t *h)
{
    objstore_t *os = h->data;
    os->idle_closed = true;
    maybe_free(os);
}

void objstore_close(objstore_t *os)
{
    if (!os || os->closing)
        return;
    os->closing = true;
    /* Deferred completions still owed: deliver them as canceled. */
    objstore_req_t *r = os->ready_head;
    os->ready_head = os->ready_tail = NULL;
    while (r) {
        objstore_req_t *next = r->next;
        r->cb(-ECANCELED, NULL, r->data);
        objstore_blob_unref(r->blob);
        free(r);
        r = next;
    }
    uv_close((uv_handle_t *)&os->idle, idle_closed);
}

/* Called by back ends on the loop thread when op has finished. */
void objstore_backend_done(obj_op *op)
{
    op->complete(op);
}

static int submit(objstore_t *os, obj_op *op)
{
    op->os = os;
    int rc = os->be->submit(os, op);
    if (rc == 0) {
        os->outstanding++;
        os->stats.in_flight++;
    }
    return rc;
}

static void op_finished(objstore_t *os)
{
    os->outstanding--;
    os->stats.in_flight--;
}

static void flight_complete(obj_op *op)
{
    flight *f = (flight *)op;
    objstore_t *os = op->os;
    op_finished(os);
    strmap_remove(&os->inflight, op->key);
    if (op->status == 0) {
        os->stats.bytes_read += op->blob->len;
        if (!os->closing)
            objcache_put(os->cache, op->key, op->blob);
    } else if (op->status != -ENOENT) {
        os->stats.errors++;
    }
    objstore_req_t *w = f->waiters;
    while (w) {
        objstore_req_t *next = w->next;
        w->cb(op->status, op->status == 0 ? op->blob : NULL, w->data);
        free(w);
        w = next;
    }
    objstore_blob_unref(op->blob);
    free(op->key);
    free(f);
    maybe_free(os);
}

int objstore_get(objstore_t *os, const char *key, objstore_get_cb cb, void *data,
                 objstore_req_t **reqp)
{
    if (os->closing)
        return -ECANCELED;
    if (!objstore_key_valid(key))
        return -EINVAL;
    objstore_req_t *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->os = os;
    r->cb = cb;
    r->data = data;
    os->stats.gets++;
    const objstore_blob_t *hit = objcache_get(os->cache, key);
    if (hit) {
        os->stats.hits++;
        objstore_blob_ref(hit);
        r->blob = hit;
        make_ready(os, r);
    } else {
        flight *f = strmap_get(&os->inflight, key);
        if (f) {
            os->stats.shared++;
        } else {
            f = calloc(1, sizeof(*f));
            char *k = strdup(key);
            if (!f || !k || strmap_put(&os->inflight, key, f) != 0) {
                free(f);
                free(k);
                free(r);
                return -ENOMEM;
            }
            f->op.kind = OBJ_OP_GET;
            f->op.key = k;
            f->op.complete = flight_complete;
            int rc = submit(os, &f->op);
            if (rc != 0) {
                strmap_remove(&os->inflight, key);
                free(k);
                free(f);
                free(r);
                return rc;
            }
            os->stats.misses++;
        }
        r->flight = f;
        r->next = f->waiters;
        if (f->waiters)
            f->waiters->prev = r;
        f->waiters = r;
    }
    if (reqp)
        *reqp = r;
    return 0;
}

void objstore_cancel(objstore_req_t *r)
{
    objstore_t *os = r->os;
    flight *f = r->flight;
    if (f) {
        /* Leave the shared read running (it may fill the cache); answer this one now. */
        if (r->prev)
            r->prev->next = r->next;
        else
            f->waiters = r->next;
        if (r->next)
            r->next->prev = r->prev;
        r->flight = NULL;
        r->status = -ECANCELED;
        make_ready(os, r);
        return;
    }
    if (r->status == 0) {
        r->status = -ECANCELED; /* already queued as ready: its callback reports cancel */
        objstore_blob_unref(r->blob);
        r->blob = NULL;
    }
}

static void simple_complete(obj_op *op)
{
    simple_op *s = (simple_op *)op;
    objstore_t *os = op->os;
    op_finished(os);
    if (op->status != 0 && op->status != -ENOENT)
        os->stats.errors++;
    switch (op->kind) {
    case OBJ_OP_HEAD:
        s->head(op->status, op->size, s->data);
        break;
    case OBJ_OP_DELETE_PREFIX:
        s->count(op->status, op->count, s->data);
        break;
    default:
        if (op->kind == OBJ_OP_PUT && op->status == 0)
            os->stats.bytes_written += op->len;
        s->done(op->status, s->data);
        break;
    }
    free((void *)op->bytes);
    free(op->key);
    free(s);
    maybe_free(os);
}

static int simple_submit(objstore_t *os, obj_op_kind kind, const char *key, const void *bytes,
                         size_t len, simple_op **out)
{
    if (os->closing)
        return -ECANCELED;
    bool ok = kind == OBJ_OP_DELETE_PREFIX ? prefix_valid(key) : objstore_key_valid(key);
    if (!ok)
        return -EINVAL;
    simple_op *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->op.kind = kind;
    s->op.key = strdup(key);
    s->op.complete = simple_complete;
    if (bytes) {
        unsigned char *copy = malloc(len ? len : 1);
        if (copy && len)
            memcpy(copy, bytes, len);
        s->op.bytes = copy;
        s->op.len = len;
    }
    if (!s->op.key || (bytes && !s->op.bytes)) {
        free(s->op.key);
        free((void *)s->op.bytes);
        free(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

static int simple_start(objstore_t *os, simple_op *s)
{
    int rc = submit(os, &s->op);
    if (rc != 0) {
        free(s->op.key);
        free((void *)s->op.bytes);
        free(s);
    }
    return rc;
}

int objstore_head(objstore_t *os, const char *key, objstore_head_cb cb, void *data)
{
    simple_op *s;
    int rc = simple_submit(os, OBJ_OP_HEAD, key, NULL, 0, &s);
    if (rc)
        return rc;
    s->head = cb;
    s->data = data;
    return simple_start(os, s);
}

int objstore_put(objstore_t *os, const char *key, const void *bytes, size_t len,
                 objstore_done_cb cb, void *data)
{
    simple_op *s;
    int rc = simple_submit(os, OBJ_OP_PUT, key, bytes ? bytes : "", len, &s);
    if (rc)
        return rc;
    s->done = cb;
    s->data = data;
    os->stats.puts++;
    objcache_remove(os->cache, key);
    return simple_start(os, s);
}

int objstore_delete(objstore_t *os, const char *key, objstore_done_cb cb, void *data)
{
    simple_op *s;
    int rc = simple_submit(os, OBJ_OP_DELETE, key, NULL, 0, &s);
    if (rc)
        return rc;
    s->done = cb;
    s->data = data;
    os->stats.deletes++;
    objcache_remove(os->cache, key);
    return simple_start(os, s);
}

int objstore_delete_prefix(objstore_t *os, const char *prefix, objstore_count_cb cb,
                           void *data)
{
    simple_op *s;
    int rc = simple_submit(os, OBJ_OP_DELETE_PREFIX, prefix, NULL, 0, &s);
    if (rc)
        return rc;
    s->count = cb;
    s->data = data;
    os->stats.deletes++;
    objcache_remove_prefix(os->cache, prefix);
    return simple_start(os, s);
}

void objstore_cache_clear(objstore_t *os)
{
    objcache_clear(os->cache);
}

void objstore_stats_get(const objstore_t *os, objstore_stats *out)
{
    *out = os->stats;
    out->cache_entries = objcache_entries(os->cache);
    out->cache_bytes = objcache_bytes(os->cache);
}
