/*
 * records_functions.c: the HTTP side of user functions applied to records
 * (docs/functions.md §9; the engine is fneval/fneval.c): the `functions` query parameter
 * parsed into an fneval_list, the engine's context built from a request, its error classes
 * mapped to statuses, api_functions_apply (an evaluation that holds the request's abort
 * hook) and GET /records and /records/{id_} (api_functions_respond, THUMBNAILS mode).
 * /images, the crosshair and /waveforms (images.c) use api_functions_apply in FULL mode on
 * a record {_id}; the export pipeline (export/export.c) starts the engine itself, on
 * batches it cancels; its failures come back through api_fneval_error_status.
 */
#include "api/api.h"
#include "api/functions.h"

#include "util/jsonw.h"
#include "util/taskgroup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the parameter ---- */

bool api_functions_from_query(http_request_t *req, fneval_list **out)
{
    const char **values;
    size_t n = http_query_all(req, "functions", &values);
    *out = NULL;
    if (n == 0)
        return true;
    if (n > FNEVAL_FUNCTIONS_MAX) {
        char msg[96];
        snprintf(msg, sizeof msg, "At most %d functions may be given at once",
                 FNEVAL_FUNCTIONS_MAX);
        http_respond_error(req, 400, msg);
        return false;
    }
    arena_t *a = &req->arena;
    fneval_list *list = fneval_list_new(a, n);
    if (!list) {
        http_respond_error(req, 500, "Unknown error");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_error_t jerr;
        json_t *f = json_loads(values[i], JSON_DECODE_ANY, &jerr);
        if (!f) {
            char ctx[300];
            snprintf(ctx, sizeof ctx, "{\"error\":\"%s\"}", "invalid JSON");
            api_respond_422(req, "json_invalid", "query", "functions", "Invalid JSON", values[i],
                            ctx);
            return false;
        }
        json_t *name = json_object_get(f, "name"), *expr = json_object_get(f, "expression");
        if (!json_is_string(name) || !json_is_string(expr) || !json_string_length(name)) {
            json_decref(f);
            char msg[128];
            snprintf(msg, sizeof msg,
                     "functions[%zu] must be an object with string \"name\" and \"expression\"", i);
            http_respond_error(req, 400, msg);
            return false;
        }
        char err[FN_ERR_MAX];
        int rc = fneval_list_add(list, a, json_string_value(name), json_string_value(expr), err);
        if (rc == -EINVAL) {
            char msg[FN_ERR_MAX + 128];
            snprintf(msg, sizeof msg, "Function '%s': %s", json_string_value(name), err);
            json_decref(f);
            http_respond_error(req, 400, msg);
            return false;
        }
        json_decref(f);
        if (rc) {
            http_respond_error(req, 500, "Unknown error");
            return false;
        }
    }
    if (fneval_list_too_many_names(list)) {
        http_respond_error(req, 400, "Functions may refer to at most 256 distinct names");
        return false;
    }
    *out = list;
    return true;
}

/* ---- the engine on behalf of a request ---- */

void api_fneval_context(http_request_t *req, fneval_ctx *ctx)
{
    app_t *app = req->app;
    *ctx = (fneval_ctx){
        .loop = app->loop,
        .store = app->store,
        .objstore = app->objstore,
        .cfg = app->cfg,
        .arena = &req->arena,
        /* the request owns its transfers: S3 connections are shared fairly between
         * requests */
        .owner = req,
    };
}

int api_fneval_status(const fneval *ev, const char **message)
{
    int code;
    fneval_error e = fneval_status(ev, message, &code);
    return api_fneval_error_status(e, code, message);
}

int api_fneval_error_status(fneval_error e, int code, const char **message)
{
    switch (e) {
    case FNEVAL_OK:
        return 0;
    case FNEVAL_EINVAL:
        return 400;
    case FNEVAL_ENOTFOUND:
        return 404;
    case FNEVAL_EBACKEND:
        return api_error_answer(code, NULL, *message, message);
    case FNEVAL_EINTERNAL:
        break;
    }
    return 500;
}

/* An evaluation holding the request's abort hook. */
typedef struct held_eval {
    http_request_t *req;
    http_abort_cb prev_abort; /* the caller's abort hook: chained, restored at the end */
    void *prev_abort_data;
    fneval_done_cb done;
    void *done_data;
    fneval *ev;
    bool finished; /* done has run */
} held_eval;

static void held_chain(void *data)
{
    held_eval *h = data;
    if (h->prev_abort)
        h->prev_abort(h->req, h->prev_abort_data);
}

static void held_abort(http_request_t *req, void *data)
{
    held_eval *h = data;
    (void)req;
    fneval_cancel(h->ev, held_chain, h);
}

static void held_done(fneval *ev, void *data)
{
    held_eval *h = data;
    h->finished = true;
    http_set_abort(h->req, h->prev_abort, h->prev_abort_data);
    h->done(ev, h->done_data);
}

void api_functions_apply(http_request_t *req, fneval_list *list, json_t *records,
                         const fneval_options *opts, fneval_done_cb done, void *data)
{
    held_eval *h = arena_alloc(&req->arena, sizeof *h);
    if (!h) {
        json_decref(records);
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    *h = (held_eval){.req = req,
                     .prev_abort = req->on_abort,
                     .prev_abort_data = req->abort_data,
                     .done = done,
                     .done_data = data};
    fneval_ctx ctx;
    api_fneval_context(req, &ctx);
    http_set_abort(req, held_abort, h);
    if (fneval_start(&ctx, list, records, opts, held_done, h, &h->ev) != 0) {
        http_set_abort(req, h->prev_abort, h->prev_abort_data);
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    /* a client gone before the start: no hook will tell, so the evaluation stops now */
    if (req->aborted && !h->finished)
        fneval_cancel(h->ev, NULL, NULL);
}

/* ---- GET /records, /records/{id_} ---- */

typedef struct respond_ctx {
    http_request_t *req;
    fneval *res;
    bool single;
    work_t *work;
    char *text;
    size_t len;
} respond_ctx;

static void respond_abort(http_request_t *req, void *data)
{
    respond_ctx *rc = data;
    (void)req;
    if (rc->work)
        work_cancel(rc->work);
}

static void serialise_page(void *data)
{
    respond_ctx *rc = data;
    json_t *records = fneval_records(rc->res);
    rc->text = jsonw_dumps(rc->single ? json_array_get(records, 0) : records, &rc->len);
}

static void serialised(void *data, int status)
{
    respond_ctx *rc = data;
    rc->work = NULL;
    http_set_abort(rc->req, NULL, NULL);
    fneval_free(rc->res);
    if (status || !rc->text) {
        free(rc->text);
        http_respond_error(rc->req, 500, "Unknown error");
        return;
    }
    http_respond_take(rc->req, 200, "application/json", rc->text, rc->len);
}

static void records_evaluated(fneval *res, void *data)
{
    respond_ctx *rc = data;
    const char *msg;
    int status = api_fneval_status(res, &msg);
    rc->res = res;
    if (status) {
        http_respond_error(rc->req, status, msg);
        fneval_free(res);
        return;
    }
    app_t *app = rc->req->app;
    http_set_abort(rc->req, respond_abort, rc);
    if (rc->req->aborted || work_submit(app->loop, serialise_page, serialised, rc, &rc->work)) {
        http_set_abort(rc->req, NULL, NULL);
        fneval_free(res);
        http_respond_error(rc->req, 500, "Unknown error");
    }
}

void api_functions_respond(http_request_t *req, fneval_list *list, json_t *records,
                           const fneval_options *opts, bool single)
{
    respond_ctx *rc = arena_alloc(&req->arena, sizeof *rc);
    if (!rc) {
        json_decref(records);
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    *rc = (respond_ctx){.req = req, .single = single};
    fneval_options o = *opts;
    o.mode = FNEVAL_THUMBNAILS;
    o.channels_complete = true;
    api_functions_apply(req, list, records, &o, records_evaluated, rc);
}
