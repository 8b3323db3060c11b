/*
 * vector_thumbs.c: vector thumbnails re-drawn with the user's skip/limit
 * (api/vector_thumbs.h). Loop side: scan the page, one task group of object GETs owned
 * by the request; pool side: parse, slice, plot, base64; loop side again: hand the page
 * back. Object bytes held at once are capped (MAX_VECTOR_BYTES).
 */
#include "api/vector_thumbs.h"

#include "imaging/plot.h"
#include "objstore/keys.h"
#include "util/taskgroup.h"
#include "util/base64.h"
#include "util/log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VECTOR_BYTES ((size_t)256 * 1024 * 1024)

typedef struct vt_ctx vt_ctx;

typedef struct vt_item {
    vt_ctx *ctx;
    const char *record_id; /* borrowed from the records */
    const char *channel;
    json_t *ch; /* the channel document whose thumbnail is replaced */
    objstore_req_t *handle;
    const objstore_blob_t *blob;
} vt_item;

struct vt_ctx {
    http_request_t *req;
    json_t *records;
    api_prefs prefs;
    bool one_record;
    api_vector_thumbs_cb cb;
    void *data;
    vt_item *items;
    size_t nitems;
    size_t bytes;
    uint32_t w, h;
    taskgroup_t tg;
    work_t *work;
    int status; /* HTTP status of a failure, 0 while all is well */
    char err[512];
};

void api_vector_slice(size_t n, bool has_skip, int64_t skip, bool has_limit, int64_t limit,
                      size_t *start, size_t *stop)
{
    int64_t len = (int64_t)n, a = 0, b = len;
    if (has_skip) {
        a = skip < 0 ? skip + len : skip;
        a = a < 0 ? 0 : a > len ? len : a;
    }
    if (has_limit) {
        b = limit < 0 ? limit + len : limit;
        b = b < 0 ? 0 : b > len ? len : b;
    }
    if (b < a)
        b = a;
    *start = (size_t)a;
    *stop = (size_t)b;
}

bool api_vector_thumbs_wanted(const api_prefs *p)
{
    return (p->has_skip && p->skip != 0) || (p->has_limit && p->limit != 0);
}

static void fail(vt_ctx *c, int status, const char *msg)
{
    if (c->status)
        return;
    c->status = status;
    snprintf(c->err, sizeof(c->err), "%s", msg);
}

static void finish(vt_ctx *c)
{
    http_request_t *req = c->req;
    http_set_abort(req, NULL, NULL);
    for (size_t i = 0; i < c->nitems; i++)
        objstore_blob_unref(c->items[i].blob);
    free(c->items);
    c->items = NULL;
    if (c->status) {
        json_decref(c->records);
        http_respond_error(req, c->status, c->err);
        return;
    }
    c->cb(req, c->records, c->data);
}

/* ---- pool: slice, plot, encode ---- */

static int redraw(vt_ctx *c, vt_item *it)
{
    json_error_t e;
    json_t *doc = json_loadb((const char *)it->blob->data, it->blob->len, 0, &e);
    const json_t *arr = json_object_get(doc, "data");
    if (!json_is_array(arr)) {
        json_decref(doc);
        return -EINVAL;
    }
    size_t n = json_array_size(arr), start, stop;
    api_vector_slice(n, c->prefs.has_skip, c->prefs.skip, c->prefs.has_limit, c->prefs.limit,
                     &start, &stop);
    double *v = malloc((stop - start + 1) * sizeof(double));
    if (!v) {
        json_decref(doc);
        return -ENOMEM;
    }
    int rc = 0;
    for (size_t i = start; i < stop; i++) {
        const json_t *x = json_array_get(arr, i);
        if (json_is_number(x))
            v[i - start] = json_number_value(x);
        else if (json_is_null(x))
            v[i - start] = NAN;
        else
            rc = -EINVAL;
    }
    json_decref(doc);
    unsigned char *png = NULL;
    size_t pnglen = 0;
    if (rc == 0)
        rc = plot_vector_png(v, stop - start, c->w, c->h, &png, &pnglen);
    free(v);
    if (rc != 0)
        return rc;
    size_t tlen = 0;
    char *text = base64_encode(png, pnglen, &tlen);
    free(png);
    if (!text)
        return -ENOMEM;
    rc = json_object_set_new(it->ch, "thumbnail", json_stringn_nocheck(text, tlen)) ? -ENOMEM : 0;
    free(text);
    return rc;
}

static void redraw_all(void *data)
{
    vt_ctx *c = data;
    for (size_t i = 0; i < c->nitems; i++) {
        int rc = redraw(c, &c->items[i]);
        if (rc != 0) {
            char msg[512];
            snprintf(msg, sizeof(msg), "vector %s/%s: cannot re-draw its thumbnail (%s)",
                     c->items[i].record_id, c->items[i].channel, strerror(-rc));
            log_warn("%s", msg);
            fail(c, 500, "Unknown error");
            return;
        }
    }
}

static void redrawn(void *data, int status)
{
    vt_ctx *c = data;
    c->work = NULL;
    if (status != 0)
        fail(c, 500, "Unknown error");
    finish(c);
}

/* ---- loop: the fan-out ---- */

static void item_got(int status, const objstore_blob_t *blob, void *data)
{
    task_t *t = data;
    vt_item *it = t->arg;
    vt_ctx *c = it->ctx;
    it->handle = NULL;
    if (status == 0) {
        c->bytes += blob->len;
        if (c->bytes > MAX_VECTOR_BYTES) {
            log_warn("vector thumbnails: the page's vectors exceed %zu MB", MAX_VECTOR_BYTES >> 20);
            fail(c, 500, "Unknown error");
            taskgroup_task_done(t, -E2BIG);
            return;
        }
        it->blob = objstore_blob_ref(blob);
    } else if (status != -ECANCELED) {
        char msg[512];
        if (c->one_record) /* the record holds the channel: the object is what is missing */
            snprintf(msg, sizeof(msg),
                     "Vector with id=%.150s, channel=%.150s could not be found in object "
                     "storage, check deletion policy and age of requested data",
                     it->record_id, it->channel);
        else
            snprintf(msg, sizeof(msg), "Unknown error");
        if (!c->status) /* the first failure says it for the page */
            log_warn("vector %s/%s: %s (%d)", it->record_id, it->channel, ogd_strerror(status),
                     status);
        const char *detail;
        int st = api_error_answer(status, c->one_record ? msg : NULL, "Unknown error", &detail);
        fail(c, st, detail);
    }
    taskgroup_task_done(t, status);
}

static int item_start(task_t *t)
{
    vt_item *it = t->arg;
    vt_ctx *c = it->ctx;
    app_t *app = c->req->app;
    const void *owner = objstore_set_owner(app->objstore, c->req);
    int rc = objstore_get_channel(app->objstore, OBJ_VECTOR, it->record_id, it->channel, item_got,
                                  t, &it->handle);
    objstore_set_owner(app->objstore, owner);
    if (rc != 0) {
        it->handle = NULL;
        fail(c, 500, "Unknown error");
    }
    return rc;
}

static void item_cancel(task_t *t)
{
    vt_item *it = t->arg;
    if (it->handle)
        objstore_cancel(it->handle);
}

static void fetched(taskgroup_t *tg, int status, void *data)
{
    vt_ctx *c = data;
    (void)tg;
    if (status != 0 || c->req->aborted) {
        fail(c, 500, "Unknown error");
        finish(c);
        return;
    }
    app_t *app = c->req->app;
    if (work_submit(app->loop, redraw_all, redrawn, c, &c->work) != 0) {
        fail(c, 500, "Unknown error");
        finish(c);
    }
}

static void vt_abort(http_request_t *req, void *data)
{
    vt_ctx *c = data;
    (void)req;
    if (c->work)
        work_cancel(c->work);
    else
        taskgroup_cancel(&c->tg, -ECANCELED);
}

static bool is_vector(const json_t *ch, const char *stored_dtype)
{
    const char *dtype =
        json_string_value(json_object_get(json_object_get(ch, "metadata"), "channel_dtype"));
    if (!dtype)
        dtype = stored_dtype;
    return dtype && strcmp(dtype, "vector") == 0 && json_object_get(ch, "thumbnail");
}

void api_vector_thumbs(http_request_t *req, json_t *records, const json_t *dtypes,
                       const api_prefs *p, bool one_record, api_vector_thumbs_cb cb, void *data)
{
    vt_ctx *c = arena_alloc(&req->arena, sizeof(*c));
    if (!c) {
        json_decref(records);
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    memset(c, 0, sizeof(*c));
    app_t *app = req->app;
    c->req = req;
    c->records = records;
    c->prefs = *p;
    c->one_record = one_record;
    c->cb = cb;
    c->data = data;
    c->w = (uint32_t)app->cfg->vectors.thumbnail_size[0];
    c->h = (uint32_t)app->cfg->vectors.thumbnail_size[1];

    size_t n = 0, cap = 0, i;
    json_t *rec;
    json_array_foreach(records, i, rec)
    {
        const char *id = json_string_value(json_object_get(rec, "_id"));
        const json_t *types = json_object_get(dtypes, id ? id : "");
        const char *name;
        json_t *ch;
        json_object_foreach(json_object_get(rec, "channels"), name, ch)
        {
            if (!id || !is_vector(ch, json_string_value(json_object_get(types, name))))
                continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                vt_item *grown = realloc(c->items, ncap * sizeof(*grown));
                if (!grown) {
                    fail(c, 500, "Unknown error");
                    finish(c);
                    return;
                }
                c->items = grown;
                cap = ncap;
            }
            c->items[n++] = (vt_item){.ctx = c, .record_id = id, .channel = name, .ch = ch};
            c->nitems = n;
        }
    }
    if (n == 0) {
        finish(c);
        return;
    }
    http_set_abort(req, vt_abort, c);
    taskgroup_init(&c->tg, app->loop, 0);
    for (i = 0; i < n; i++)
        if (!taskgroup_spawn(&c->tg, item_start, item_cancel, &c->items[i]))
            break;
    taskgroup_wait(&c->tg, fetched, c);
}
