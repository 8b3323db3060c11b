/*
 * submit.c: POST /submit/hdf (an HDF5 upload, through the ingest pipeline of
 * src/ingest/ingest.h) and POST /submit/manifest (a channel manifest, validated by
 * src/ingest/manifest.h). Both take a multipart/form-data body with a file part named
 * `file`; the part is located on the thread pool (the body may be hundreds of MB).
 */
#include "api/api.h"
#include "api/handlers.h"

#include "http/multipart.h"
#include "ingest/ingest.h"
#include "ingest/manifest.h"
#include "util/taskgroup.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds the HDF5 helper may run on one upload. */
#define INGEST_PARSE_TIMEOUT_MS 120000u

typedef struct submit_ctx {
    http_request_t *req;
    const char *content_type;
    multipart_status mp;
    const char *file;
    size_t file_len;
    ingest_t *ingest;
    bool bypass;
    json_t *manifest;
    store_op_t op;
    char err[1024];
} submit_ctx;

/* Answers a failed search for the file part (status: the search's own failure, else
 * ctx->mp); false when the part was found. */
static bool multipart_error(submit_ctx *ctx, int status)
{
    if (status) {
        http_respond_error(ctx->req, 500, "Unknown error");
        return true;
    }
    switch (ctx->mp) {
    case MULTIPART_OK:
        return false;
    case MULTIPART_NOT_MULTIPART:
    case MULTIPART_MISSING:
    case MULTIPART_NOT_FILE:
        api_respond_422(ctx->req, "missing", "body", "file", "Field required", NULL, NULL);
        return true;
    case MULTIPART_BAD_BOUNDARY:
        http_respond_error(ctx->req, 400,
                           "Malformed multipart/form-data body: the boundary parameter must be 1 "
                           "to 70 characters long (RFC 2046)");
        return true;
    default:
        http_respond_error(ctx->req, 400, "Malformed multipart/form-data body");
        return true;
    }
}

static void find_part(void *data)
{
    submit_ctx *ctx = data;
    ctx->mp = multipart_find_file(ctx->content_type, ctx->req->body.data ? ctx->req->body.data : "",
                                  ctx->req->body.len, "file", &ctx->file, &ctx->file_len);
}

static submit_ctx *ctx_new(http_request_t *req)
{
    submit_ctx *ctx = api_ctx_new(req, sizeof(*ctx));
    if (!ctx)
        return NULL;
    ctx->req = req;
    ctx->content_type = http_header_get(req, "content-type");
    return ctx;
}

/* ---- /submit/hdf ---- */

static void hdf_done(const ingest_result *res, void *data)
{
    submit_ctx *ctx = data;
    http_request_t *req = ctx->req;
    http_set_abort(req, NULL, NULL);
    if (res->status == 201) {
        char loc[64];
        snprintf(loc, sizeof(loc), "/records/%s", res->record_id);
        http_add_header(req, "Location", loc);
    }
    if (res->status >= 500)
        log_error("submit/hdf: %d", res->status);
    api_respond_json(req, res->status == 499 ? 400 : res->status, json_incref(res->body));
}

static void hdf_abort(http_request_t *req, void *data)
{
    submit_ctx *ctx = data;
    (void)req;
    if (ctx->ingest)
        ingest_cancel(ctx->ingest);
}

static void hdf_part_found(void *data, int status)
{
    submit_ctx *ctx = data;
    http_request_t *req = ctx->req;
    if (multipart_error(ctx, status))
        return;
    if (req->aborted) { /* the client left while the part was located: nothing started */
        http_respond_error(req, 400, "Client closed the request");
        return;
    }
    app_t *app = req->app;
    const ogd_config *cfg = app->cfg;
    ingest_env env;
    memset(&env, 0, sizeof(env));
    env.loop = app->loop;
    env.store = app->store;
    env.objstore = app->objstore;
    env.owner = req;
    ingest_env_from_config(cfg, &env);
    env.limits.timeout_ms = INGEST_PARSE_TIMEOUT_MS;
    http_set_abort(req, hdf_abort, ctx);
    /* a large body is a file already (http_request.body_fd): the HDF5 reader maps the
     * part in it instead of a copy */
    int fd = req->body_fd;
    uint64_t off = fd >= 0 ? req->body_fd_offset + (uint64_t)(ctx->file - req->body.data) : 0;
    int rc = ingest_start(&env, ctx->file, ctx->file_len, fd, off, hdf_done, ctx, &ctx->ingest);
    if (rc) {
        http_set_abort(req, NULL, NULL);
        log_error("submit/hdf: cannot start the HDF5 reader (%d)", rc);
        http_respond_error(req, 500, "Unknown error");
    }
}

void api_submit_hdf(http_request_t *req)
{
    submit_ctx *ctx = ctx_new(req);
    if (ctx && work_submit(((app_t *)req->app)->loop, find_part, hdf_part_found, ctx, NULL) != 0)
        http_respond_error(req, 500, "Unknown error");
}

/* ---- /submit/manifest ---- */

static void manifest_put(store_op_t *op)
{
    submit_ctx *ctx = op->data;
    http_request_t *req = ctx->req;
    int status = op->status;
    store_op_cleanup(op);
    if (status == -EEXIST) {
        http_respond_error(req, 400, "Session name already exists for this user.");
    } else if (status) {
        api_respond_error_code(req, status, NULL, "Database error", "submit/manifest: store");
    } else {
        json_t *id = json_incref(json_object_get(ctx->manifest, "_id"));
        api_respond_json(req, 201, id);
    }
    json_decref(ctx->manifest);
}

static void manifest_latest(store_op_t *op)
{
    submit_ctx *ctx = op->data;
    http_request_t *req = ctx->req;
    int status = op->status;
    json_t *stored = status == 0 ? json_incref(op->result) : NULL;
    store_op_cleanup(op);
    if (status && status != -ENOENT) {
        json_decref(ctx->manifest);
        api_respond_error_code(req, status, NULL, "Database error", "submit/manifest: latest");
        return;
    }
    int rc = manifest_compare(ctx->manifest, stored, ctx->bypass, ctx->err, sizeof(ctx->err));
    json_decref(stored);
    if (rc) {
        json_decref(ctx->manifest);
        http_respond_error(req, 400, ctx->err);
        return;
    }
    store_op_init(&ctx->op, STORE_MANIFEST_PUT);
    ctx->op.doc = ctx->manifest;
    ctx->op.replace = false;
    if (store_submit(((app_t *)req->app)->store, &ctx->op, manifest_put, ctx) != 0) {
        json_decref(ctx->manifest);
        http_respond_error(req, 500, "Database error");
    }
}

static void manifest_part_found(void *data, int status)
{
    submit_ctx *ctx = data;
    http_request_t *req = ctx->req;
    if (multipart_error(ctx, status))
        return;
    /* The id is the server's local time, as the reference's. */
    char id[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(id, sizeof(id), "%Y%m%d%H%M%S", &tm);
    if (manifest_validate(ctx->file, ctx->file_len, id, &ctx->manifest, ctx->err,
                          sizeof(ctx->err)) != 0) {
        http_respond_error(req, 400, ctx->err);
        return;
    }
    store_op_init(&ctx->op, STORE_MANIFEST_LATEST);
    if (store_submit(((app_t *)req->app)->store, &ctx->op, manifest_latest, ctx) != 0) {
        json_decref(ctx->manifest);
        http_respond_error(req, 500, "Database error");
    }
}

void api_submit_manifest(http_request_t *req)
{
    bool bypass;
    if (!api_query_bool(req, "bypass_channel_check", false, &bypass))
        return;
    submit_ctx *ctx = ctx_new(req);
    if (!ctx)
        return;
    ctx->bypass = bypass;
    if (work_submit(((app_t *)req->app)->loop, find_part, manifest_part_found, ctx, NULL) != 0)
        http_respond_error(req, 500, "Unknown error");
}
