/*
 * channels.c: GET /channels, /channels/{channel_system_name} and
 * /channels/summary/{channel_name} (docs/api.md §5.13-§5.15): the most recent channel
 * manifest, shaped with a fixed key order and `type` defaulting to "scalar".
 */
#include "api/api.h"
#include "api/handlers.h"
#include "api/prefs.h"
#include "imaging/recolour.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct channels_ctx {
    http_request_t *req;
    store_op_t op;
    recolour_opts recolour; /* the summary's thumbnail colouring */
    int recolour_status;    /* its failure: -EINVAL (400, message) or another error (500) */
    char recolour_err[256];
} channels_ctx;

static void abort_op(http_request_t *req, void *data)
{
    channels_ctx *ctx = data;
    (void)req;
    store_cancel(&ctx->op);
}

static channels_ctx *ctx_new(http_request_t *req)
{
    channels_ctx *ctx = api_ctx_new(req, sizeof(*ctx));
    if (!ctx)
        return NULL;
    ctx->req = req;
    return ctx;
}

static bool submit_ctx(channels_ctx *ctx, store_op_kind kind, store_cb cb, const char *channel,
                       void (*post)(store_op_t *op))
{
    http_request_t *req = ctx->req;
    store_op_init(&ctx->op, kind);
    ctx->op.channel = channel;
    ctx->op.post = post;
    ctx->op.post_data = ctx;
    http_set_abort(req, abort_op, ctx);
    app_t *app = req->app;
    if (store_submit(app->store, &ctx->op, cb, ctx) != 0) {
        http_set_abort(req, NULL, NULL);
        http_respond_error(req, 500, "Unknown error");
        return false;
    }
    return true;
}

static bool submit(http_request_t *req, store_op_kind kind, store_cb cb, const char *channel)
{
    channels_ctx *ctx = ctx_new(req);
    return ctx && submit_ctx(ctx, kind, cb, channel, NULL);
}

/* One manifest channel in the reference's key order; type always present. */
static json_t *shape_channel(json_t *ch)
{
    static const char *const order[] = {"name",  "path",       "type",    "notation", "precision",
                                        "units", "historical", "x_units", "y_units",  "labels"};
    json_t *out = json_object();
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        json_t *v = json_object_get(ch, order[i]);
        if (strcmp(order[i], "type") == 0 && (!v || json_is_null(v)))
            v = json_string_nocheck("scalar");
        else if (v)
            json_incref(v);
        if (v)
            json_object_set_new(out, order[i], v);
    }
    return out;
}

static void manifest_done(store_op_t *op)
{
    channels_ctx *ctx = op->data;
    http_request_t *req = ctx->req;
    http_set_abort(req, NULL, NULL);
    if (op->status != 0) {
        if (op->status == -ENOENT)
            http_respond_error(req, 500, "Unknown error");
        else
            api_respond_store_error(req, op, "Unknown error");
        store_op_cleanup(op);
        return;
    }
    json_t *doc = op->result;
    json_t *out = json_object();
    json_t *id = json_object_get(doc, "_id");
    json_object_set(out, "_id", id ? id : json_null());
    json_t *channels = json_object();
    const char *name;
    json_t *ch;
    json_object_foreach(json_object_get(doc, "channels"), name, ch)
        json_object_set_new(channels, name, shape_channel(ch));
    json_object_set_new(out, "channels", channels);
    store_op_cleanup(op);
    api_respond_json(req, 200, out);
}

void api_channels_manifest(http_request_t *req)
{
    submit(req, STORE_MANIFEST_LATEST, manifest_done, NULL);
}

static void channel_done(store_op_t *op)
{
    channels_ctx *ctx = op->data;
    http_request_t *req = ctx->req;
    http_set_abort(req, NULL, NULL);
    const char *name = req->params[0];
    json_t *ch =
        op->status == 0 ? json_object_get(json_object_get(op->result, "channels"), name) : NULL;
    if (op->status != 0 && op->status != -ENOENT) {
        api_respond_store_error(req, op, "Unknown error");
    } else if (!json_is_object(ch)) {
        char msg[600];
        snprintf(msg, sizeof(msg), "Channel '%.500s' cannot be found", name);
        http_respond_error(req, 400, msg);
    } else {
        api_respond_json(req, 200, shape_channel(ch));
    }
    store_op_cleanup(op);
}

void api_channels_get(http_request_t *req)
{
    submit(req, STORE_MANIFEST_LATEST, channel_done, NULL);
}

static void summary_done(store_op_t *op)
{
    channels_ctx *ctx = op->data;
    http_request_t *req = ctx->req;
    http_set_abort(req, NULL, NULL);
    if (op->status == -ENOENT) {
        char msg[600];
        snprintf(msg, sizeof(msg), "There is no timestamp data for %.500s", req->params[0]);
        http_respond_error(req, 400, msg);
        store_op_cleanup(op);
        return;
    }
    if (op->status != 0) {
        api_respond_store_error(req, op, "Unknown error");
        store_op_cleanup(op);
        return;
    }
    if (ctx->recolour_status != 0) {
        /* the reference's summary has no task group: a bad map keeps its 400 */
        if (ctx->recolour_status == -EINVAL) {
            http_respond_error(req, 400, ctx->recolour_err);
        } else {
            log_warn("channel summary: thumbnail: %s", ctx->recolour_err);
            http_respond_error(req, 500, "Unknown error");
        }
        store_op_cleanup(op);
        return;
    }
    json_t *res = op->result;
    json_t *out = json_object();
    json_object_set(out, "first_date", json_object_get(res, "first_date"));
    json_object_set(out, "most_recent_date", json_object_get(res, "most_recent_date"));
    json_t *sample = json_array();
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(res, "recent"), i, item)
    {
        json_t *ch = json_object_get(item, "channel");
        const char *dtype =
            json_string_value(json_object_get(json_object_get(ch, "metadata"), "channel_dtype"));
        json_t *value = NULL;
        if (!dtype)
            continue;
        if (strcmp(dtype, "scalar") == 0)
            value = json_object_get(ch, "data");
        else if (strcmp(dtype, "image") == 0 || strcmp(dtype, "float_image") == 0 ||
                 strcmp(dtype, "waveform") == 0 || strcmp(dtype, "vector") == 0)
            value = json_object_get(ch, "thumbnail");
        else
            continue;
        const char *ts = json_string_value(json_object_get(item, "timestamp"));
        json_t *entry = json_object();
        json_object_set(entry, ts ? ts : "null", value ? value : json_null());
        json_array_append_new(sample, entry);
    }
    json_object_set_new(out, "recent_sample", sample);
    store_op_cleanup(op);
    api_respond_json(req, 200, out);
}

/* On the store's pool thread: image and float-image thumbnails of the sample re-coloured
 * over the full 0..255 range with the user's preferred maps, else the configured ones
 * (imaging/recolour.h); the first failure stops the walk. */
static void summary_recolour(store_op_t *op)
{
    channels_ctx *ctx = op->post_data;
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(op->result, "recent"), i, item)
    {
        ctx->recolour_status = recolour_channel(json_object_get(item, "channel"), &ctx->recolour,
                                                ctx->recolour_err, sizeof(ctx->recolour_err));
        if (ctx->recolour_status != 0)
            return;
    }
}

static void summary_prefs_loaded(http_request_t *req, const api_prefs *p, void *data)
{
    channels_ctx *ctx = data;
    if (!p)
        return; /* answered */
    const app_t *app = req->app;
    ctx->recolour = (recolour_opts){
        .enabled = true,
        .lower_level = 0,
        .upper_level = 255,
        .colourmap_name =
            p->colourmap && *p->colourmap ? p->colourmap : app->cfg->images.default_colour_map,
        .float_colourmap_name = p->float_colourmap && *p->float_colourmap
                                    ? p->float_colourmap
                                    : app->cfg->float_images.default_colour_map};
    submit_ctx(ctx, STORE_CHANNEL_SUMMARY, summary_done, req->params[0], summary_recolour);
}

void api_channels_summary(http_request_t *req)
{
    channels_ctx *ctx = ctx_new(req);
    if (ctx)
        api_prefs_load(req, API_PREFS_COLOURMAP | API_PREFS_FLOAT_COLOURMAP, summary_prefs_loaded,
                       ctx);
}
