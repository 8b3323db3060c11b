/*
 * images.c: the endpoints that render or return a channel's stored object
 * (docs/api.md §5.6-§5.12): GET /images/{id}/{ch} (false colour or the original PNG),
 * /images/{id}/{ch}/crosshair, /images/colour_bar, /images/colourmap_names,
 * /images/float/{id}/{ch}, /waveforms/{id}/{ch}, /vectors/{id}/{ch}.
 *
 * The adapter between HTTP and the rendering service (render/render.h), which reads the
 * object, tells the two "not found" answers apart, checks levels and colour map and
 * renders on the pool with a strong ETag. Here: the parameters are validated (422 in
 * FastAPI's shape); without a `colourmap_name` parameter the user's preferred map is read
 * first (api/prefs.h, one store op; with one, nothing is read); the service's result is
 * mapped to a status (400, 404, the back end's answer, 500), ETag, Cache-Control and a
 * 304 when If-None-Match names the ETag. A client that leaves cancels the job.
 *
 * Functions (docs/functions.md §9.1): when a `functions` entry is named like the requested
 * channel of /images, the crosshair or /waveforms, the functions are evaluated over the
 * record {_id} (api_functions_apply, FULL mode: the engine looks the named channels up,
 * fetches their objects and evaluates on the pool) and that function's result is served
 * instead of a stored object: its PNG as it is, or, through the service, the profiles of
 * its storage array or its waveform data. Such responses carry no ETag. Functions named otherwise
 * are ignored.
 */
#include "api/api.h"
#include "api/functions.h"
#include "api/handlers.h"
#include "api/prefs.h"

#include "imaging/colourmap.h"
#include "imaging/falsecolour.h"
#include "render/render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMAGING_CACHE_CONTROL "private, no-cache"

/* One request's rendering: the service's parameters, its job while it runs, and a
 * function's evaluation when one stands in for the stored object. */
typedef struct image_req {
    http_request_t *req;
    render_params p;
    render_job *job;
    /* a function named like the channel */
    fneval *fres;
    size_t fn;
    fneval_list *fn_list; /** functions waiting for the colour map */
    fneval_options fn_opts;
} image_req;

/* Whether some `functions` entry is named `channel` (then the functions decide the
 * answer). Entries are only looked at for their name here, so that functions named
 * otherwise are ignored as the reference ignores them. false = a response was sent
 * (invalid JSON: 422). */
static bool function_named(http_request_t *req, const char *channel, bool *match)
{
    const char **vals;
    size_t n = http_query_all(req, "functions", &vals);
    *match = false;
    for (size_t i = 0; i < n; i++) {
        json_error_t e;
        json_t *f = json_loads(vals[i], JSON_DECODE_ANY, &e);
        if (!f) {
            api_respond_422(req, "json_invalid", "query", "functions", "Invalid JSON", vals[i],
                            NULL);
            return false;
        }
        const char *name = json_string_value(json_object_get(f, "name"));
        if (name && strcmp(name, channel) == 0)
            *match = true;
        json_decref(f);
    }
    return true;
}

/* Colour map resolution on the image endpoints (docs/api.md §4.10):
 * a given `colourmap_name` wins and needs no look-up (an empty one means the config
 * default, as the reference's `name or default`); without one the user's preference
 * (images.preferred_colour_map_pref_name, or the float one) is read, and a user without
 * it gets the config default. cb runs with the name (borrowed: query, arena or config). */
typedef void (*colourmap_cb)(http_request_t *req, const char *name, void *data);

typedef struct colourmap_wait {
    colourmap_cb cb;
    void *data;
    bool is_float;
} colourmap_wait;

static const char *colourmap_default(http_request_t *req, bool is_float)
{
    const app_t *app = req->app;
    return is_float ? app->cfg->float_images.default_colour_map
                    : app->cfg->images.default_colour_map;
}

static void colourmap_prefs_loaded(http_request_t *req, const api_prefs *p, void *data)
{
    colourmap_wait *w = data;
    if (!p)
        return; /* answered */
    const char *pref = w->is_float ? p->float_colourmap : p->colourmap;
    w->cb(req, pref && *pref ? pref : colourmap_default(req, w->is_float), w->data);
}

static void colourmap_resolve(http_request_t *req, bool is_float, colourmap_cb cb, void *data)
{
    const char *v = http_query_get(req, "colourmap_name");
    if (v) {
        cb(req, *v ? v : colourmap_default(req, is_float), data);
        return;
    }
    colourmap_wait *w = arena_alloc(&req->arena, sizeof(*w));
    if (!w) {
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    *w = (colourmap_wait){.cb = cb, .data = data, .is_float = is_float};
    api_prefs_load(req, is_float ? API_PREFS_FLOAT_COLOURMAP : API_PREFS_COLOURMAP,
                   colourmap_prefs_loaded, w);
}

static bool levels_params(http_request_t *req, falsecolour_levels *lv)
{
    int64_t lo, up, bits;
    if (!api_query_int_range(req, "upper_level", 255, 0, 65535, &up) ||
        !api_query_int_range(req, "lower_level", 0, 0, 65535, &lo) ||
        !api_query_int_range(req, "limit_bit_depth", 8, 0, 16, &bits))
        return false;
    *lv = (falsecolour_levels){.lower = lo,
                               .upper = up,
                               .limit_bit_depth = (int)bits,
                               .has_lower = true,
                               .has_upper = true};
    return true;
}

/* ---- the service's answer ---- */

static void image_answered(render_result *r, void *data)
{
    image_req *c = data;
    http_request_t *req = c->req;
    c->job = NULL;
    http_set_abort(req, NULL, NULL);
    if (c->fres) {
        fneval_free(c->fres);
        c->fres = NULL;
    }
    const char *detail = r->message;
    switch (r->error) {
    case RENDER_OK:
        break;
    case RENDER_EINVAL:
        http_respond_error(req, 400, detail);
        return;
    case RENDER_ENOTFOUND:
        http_respond_error(req, 404, detail);
        return;
    case RENDER_EBACKEND: {
        int status = api_error_answer(r->code, NULL, r->message, &detail);
        http_respond_error(req, status, detail);
        return;
    }
    case RENDER_EINTERNAL:
        http_respond_error(req, 500, detail);
        return;
    }
    if (r->etag[0])
        http_add_header(req, "ETag", r->etag);
    http_add_header(req, "Cache-Control", IMAGING_CACHE_CONTROL);
    if (r->not_modified) {
        http_respond(req, 304, NULL, NULL, 0);
        return;
    }
    http_respond_take(req, 200, r->content_type, r->body, r->len);
    r->body = NULL;
}

static void image_abort(http_request_t *req, void *data)
{
    image_req *c = data;
    (void)req;
    if (c->job)
        render_cancel(c->job);
}

static image_req *image_req_new(http_request_t *req, render_kind kind)
{
    const app_t *app = req->app;
    image_req *c = api_ctx_new(req, sizeof(*c));
    if (!c)
        return NULL;
    c->req = req;
    c->p = (render_params){
        .kind = kind,
        .record_id = req->nparams > 0 ? req->params[0] : "",
        .channel = req->nparams > 1 ? req->params[1] : "",
        .png_level = app->cfg->images.png_compression_level,
        .if_none_match = http_header_get(req, "if-none-match"),
    };
    return c;
}

/* Hands the request to the rendering service; the answer comes in image_answered. */
static void image_render(image_req *c)
{
    http_request_t *req = c->req;
    app_t *app = req->app;
    /* the request owns its transfer: S3 connections are shared fairly between requests */
    render_ctx ctx = {
        .loop = app->loop, .store = app->store, .objstore = app->objstore, .owner = req};
    http_set_abort(req, image_abort, c);
    if (render_start(&ctx, &c->p, image_answered, c, &c->job) != 0) {
        c->job = NULL;
        http_set_abort(req, NULL, NULL);
        if (c->fres) {
            fneval_free(c->fres);
            c->fres = NULL;
        }
        http_respond_error(req, 500, "Unknown error");
    }
}

/* ---- a function named like the channel ---- */

/* Answers a function's failure (message may belong to the evaluation), then frees it. */
static void function_failed(image_req *c, int status, const char *message)
{
    http_respond_error(c->req, status, message);
    fneval_free(c->fres);
    c->fres = NULL;
}

static void function_evaluated(fneval *res, void *data)
{
    image_req *c = data;
    c->fres = res;
    const char *msg;
    int status = api_fneval_status(res, &msg);
    if (status) {
        function_failed(c, status, msg);
        return;
    }
    char err[FN_ERR_MAX + 256];
    if (!fneval_has(res, 0, c->fn)) {
        snprintf(err, sizeof err,
                 "Function '%s' has no value for record '%s': a channel it uses is missing",
                 c->p.channel, c->p.record_id);
        function_failed(c, 404, err);
        return;
    }
    json_t *ch = json_object_get(
        json_object_get(json_array_get(fneval_records(res), 0), "channels"), c->p.channel);
    const char *type =
        json_string_value(json_object_get(json_object_get(ch, "metadata"), "channel_dtype"));
    render_kind kind = c->p.kind;
    bool want_image = kind != RENDER_WAVEFORM;
    bool ok = type && (want_image ? strcmp(type, "image") == 0
                                  : strcmp(type, "waveform") == 0 || strcmp(type, "scalar") == 0);
    if (!ok) {
        snprintf(err, sizeof err, "Function '%s' gives a %s, not %s", c->p.channel,
                 type ? type : "value", want_image ? "an image" : "a waveform");
        function_failed(c, 400, err);
        return;
    }
    if (kind == RENDER_IMAGE || kind == RENDER_ORIGINAL) {
        const unsigned char *png;
        size_t len;
        char *body = fneval_png(res, 0, c->fn, &png, &len) ? malloc(len) : NULL;
        if (!body) {
            function_failed(c, 500, "Unknown error");
            return;
        }
        memcpy(body, png, len);
        fneval_free(c->fres);
        c->fres = NULL;
        http_add_header(c->req, "Cache-Control", IMAGING_CACHE_CONTROL);
        http_respond_take(c->req, 200, "image/png", body, len);
        return;
    }
    if (kind == RENDER_CROSSHAIR)
        c->p.function_image = fneval_image(res, 0, c->fn);
    else
        c->p.function_data = json_object_get(ch, "data");
    if (!c->p.function_image && !c->p.function_data) {
        function_failed(c, 500, "Unknown error");
        return;
    }
    if (c->req->aborted) {
        function_failed(c, 500, "Unknown error");
        return;
    }
    image_render(c); /* the crosshair profiles or the waveform's JSON, on the pool */
}

/* The colour map of a function image is resolved as a stored image's (query, preference,
 * default); then the functions run. */
static void function_colourmap_ready(http_request_t *req, const char *name, void *data)
{
    image_req *c = data;
    const app_t *app = req->app;
    c->fn_opts.colourmap_name = name ? name : app->cfg->images.default_colour_map;
    json_t *records = json_pack("[{ss}]", "_id", c->p.record_id);
    if (!records) {
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    api_functions_apply(req, c->fn_list, records, &c->fn_opts, function_evaluated, c);
}

/* Evaluates the request's functions for the record {_id} when one is named like the
 * channel. true = the request is handled here (answered now or later). */
static bool function_route(http_request_t *req, render_kind kind, const falsecolour_levels *lv,
                           bool has_position, int64_t px, int64_t py)
{
    bool match;
    if (!function_named(req, req->params[1], &match))
        return true;
    if (!match)
        return false;
    fneval_list *list;
    if (!api_functions_from_query(req, &list))
        return true;
    image_req *c = image_req_new(req, kind);
    if (!c)
        return true;
    c->fn = (size_t)fneval_list_find(list, c->p.channel);
    c->p.has_position = has_position;
    c->p.pos_x = px;
    c->p.pos_y = py;
    c->fn_list = list;
    c->fn_opts = (fneval_options){
        .mode = FNEVAL_FULL,
        .levels = lv ? *lv : (falsecolour_levels){.limit_bit_depth = 8},
        .original_image = kind == RENDER_ORIGINAL,
        .want_png = kind == RENDER_IMAGE || kind == RENDER_ORIGINAL,
        .keep_images = kind == RENDER_CROSSHAIR,
    };
    if (kind == RENDER_IMAGE)
        colourmap_resolve(req, false, function_colourmap_ready, c);
    else
        function_colourmap_ready(req, NULL, c);
    return true;
}

/* ---- handlers ---- */

static void colourmap_then_render(http_request_t *req, const char *name, void *data)
{
    image_req *c = data;
    (void)req;
    c->p.colourmap_name = name;
    image_render(c);
}

void api_images_get(http_request_t *req)
{
    bool original;
    falsecolour_levels lv;
    if (!levels_params(req, &lv) || !api_query_bool(req, "original_image", false, &original))
        return;
    render_kind kind = original ? RENDER_ORIGINAL : RENDER_IMAGE;
    if (function_route(req, kind, &lv, false, 0, 0))
        return;
    image_req *c = image_req_new(req, kind);
    if (!c)
        return;
    if (original) {
        image_render(c);
        return;
    }
    c->p.levels = lv;
    colourmap_resolve(req, false, colourmap_then_render, c);
}

void api_images_float(http_request_t *req)
{
    image_req *c = image_req_new(req, RENDER_FLOAT);
    if (c)
        colourmap_resolve(req, true, colourmap_then_render, c);
}

void api_images_crosshair(http_request_t *req)
{
    const char *pos = http_query_get(req, "position");
    int64_t px = 0, py = 0;
    if (pos) {
        json_t *p;
        if (!api_query_json(req, "position", NULL, &p))
            return;
        bool ok = json_is_array(p) && json_array_size(p) == 2 &&
                  json_is_integer(json_array_get(p, 0)) && json_is_integer(json_array_get(p, 1));
        if (ok) {
            px = json_integer_value(json_array_get(p, 0));
            py = json_integer_value(json_array_get(p, 1));
        }
        json_decref(p);
        if (!ok) {
            api_respond_422(req, "value_error", "query", "position",
                            "position must be a list of two integers [x, y]", pos, NULL);
            return;
        }
    }
    if (function_route(req, RENDER_CROSSHAIR, NULL, pos != NULL, px, py))
        return;
    image_req *c = image_req_new(req, RENDER_CROSSHAIR);
    if (!c)
        return;
    c->p.has_position = pos != NULL;
    c->p.pos_x = px;
    c->p.pos_y = py;
    image_render(c);
}

void api_waveforms_get(http_request_t *req)
{
    if (function_route(req, RENDER_WAVEFORM, NULL, false, 0, 0))
        return;
    image_req *c = image_req_new(req, RENDER_WAVEFORM);
    if (c)
        image_render(c);
}

void api_vectors_get(http_request_t *req)
{
    image_req *c = image_req_new(req, RENDER_VECTOR);
    if (c)
        image_render(c);
}

void api_images_colourmap_names(http_request_t *req)
{
    buf_t b;
    buf_init(&b, 1 << 16);
    if (colourmap_catalogue_json(&b) != 0) {
        buf_free(&b);
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    size_t len = b.len;
    http_respond_take(req, 200, "application/json", buf_take(&b), len);
}

static void colour_bar_render(http_request_t *req, const char *name, void *data)
{
    image_req *c = image_req_new(req, RENDER_COLOUR_BAR);
    if (!c)
        return;
    c->p.levels = *(const falsecolour_levels *)data;
    c->p.colourmap_name = name;
    const app_t *app = req->app;
    int height = app->cfg->images.colourbar_height_pixels;
    c->p.bar_height = height >= 1 && height <= 4096 ? (uint32_t)height : 16;
    image_render(c);
}

void api_images_colour_bar(http_request_t *req)
{
    falsecolour_levels *lv = arena_alloc(&req->arena, sizeof(*lv));
    if (!lv) {
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    if (!levels_params(req, lv))
        return;
    const char *msg = falsecolour_check(lv);
    if (msg) {
        http_respond_error(req, 400, msg);
        return;
    }
    colourmap_resolve(req, false, colour_bar_render, lv);
}
