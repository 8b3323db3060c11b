/*
 * images.c: the endpoints that render or return a channel's stored object
 * (docs/api.md §5.6-§5.12): GET /images/{id}/{ch} (false colour or the original PNG),
 * /images/{id}/{ch}/crosshair, /images/colour_bar, /images/colourmap_names,
 * /images/float/{id}/{ch}, /waveforms/{id}/{ch}, /vectors/{id}/{ch}.
 *
 * Flow of a channel request: parameters are validated on the loop (422 in FastAPI's
 * shape); the object is read with objstore_get_channel (new key, then legacy key); a miss
 * asks the store how many records hold that id and channel and answers the 404/500 texts
 * of docs/api.md §3.5; a hit goes to the thread pool (render_run), which hashes the object and the
 * rendering parameters into a strong ETag, answers 304 when If-None-Match names it, and
 * otherwise decodes, colours and encodes there. The loop thread only writes bytes.
 * Level and colour-map errors (400) are checked after the object was found, as the
 * reference does (a missing image wins over a bad level). Without a `colourmap_name`
 * parameter the user's preferred map is read first (api/prefs.h, one store op); with one,
 * nothing is read.
 *
 * Functions (docs/functions.md §9.1): when a `functions` entry is named like the requested
 * channel of /images, the crosshair or /waveforms, the functions are evaluated over the
 * record {_id} (api_functions_apply, FULL mode: the engine looks the named channels up,
 * fetches their objects and evaluates on the pool) and that function's result is served
 * instead of a stored object: its PNG, the profiles of its storage array, or its waveform
 * data. Such responses carry no ETag. Functions named otherwise are ignored.
 */
#include "api/api.h"
#include "api/functions.h"
#include "api/handlers.h"
#include "api/prefs.h"

#include "imaging/colourmap.h"
#include "imaging/falsecolour.h"
#include "imaging/fnimage.h"
#include "imaging/npz.h"
#include "imaging/png.h"
#include "objstore/keys.h"
#include "util/taskgroup.h"
#include "util/jsonw.h"
#include "util/log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMAGING_CACHE_CONTROL "private, no-cache"
#define IMAGING_MAX_JSON_BYTES ((size_t)256 * 1024 * 1024)

typedef enum render_kind {
    RENDER_IMAGE,
    RENDER_ORIGINAL,
    RENDER_FLOAT,
    RENDER_WAVEFORM,
    RENDER_VECTOR,
    RENDER_CROSSHAIR,
    RENDER_COLOUR_BAR, /* no object: made from the levels alone */
} render_kind;

typedef struct render_ctx {
    http_request_t *req;
    app_t *app;
    render_kind kind;
    objstore_kind okind;
    const char *record_id, *channel;
    falsecolour_levels levels;
    const char *colourmap_name;
    colourmap cm;
    bool has_position;
    int64_t pos_x, pos_y;
    uint32_t bar_height;
    int png_level; /** images.png_compression_level */
    const char *if_none_match;
    objstore_req_t *oreq;
    const objstore_blob_t *blob;
    store_op_t op;
    bool op_pending;
    work_t *work;
    /* results of render_run */
    int status;
    char *body;
    size_t len;
    const char *content_type;
    char err[FN_ERR_MAX + 256]; /** function errors carry the function and record */
    char etag[24];
    bool not_modified;
    /* a function named like the channel */
    fneval *fres;
    size_t fn;
    fneval_list *fn_list; /** functions waiting for the colour map */
    fneval_options fn_opts;
    const fnimage *fimg; /** crosshair of a function image (borrowed from fres) */
    const json_t *fdata; /** waveform data of a function (borrowed from fres) */
} render_ctx;

/* ---- helpers ---- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static bool etag_matches(const char *header, const char *etag)
{
    if (!header)
        return false;
    if (strcmp(header, "*") == 0)
        return true;
    size_t n = strlen(etag);
    for (const char *p = strstr(header, etag); p; p = strstr(p + 1, etag)) {
        char after = p[n];
        if (after == 0 || after == ',' || after == ' ')
            return true;
    }
    return false;
}

static void set_error(render_ctx *c, int status, const char *msg)
{
    c->status = status;
    snprintf(c->err, sizeof(c->err), "%s", msg);
}

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

/* ---- rendering (thread pool) ---- */

static void encode_rgba(render_ctx *c, const uint8_t *rgba, uint32_t w, uint32_t h)
{
    unsigned char *png = NULL;
    size_t len = 0;
    int rc = png_encode_rgba_deflate(rgba, w, h, c->png_level, &png, &len);
    if (rc != 0) {
        set_error(c, 500, "Unknown error");
        return;
    }
    c->body = (char *)png;
    c->len = len;
    c->content_type = "image/png";
}

static void render_image(render_ctx *c)
{
    const char *mode = NULL;
    unsigned char *png = NULL;
    size_t len = 0;
    int rc = falsecolour_png(c->blob->data, c->blob->len, &c->levels, &c->cm, c->png_level, &png,
                             &len, &mode);
    if (rc != 0) {
        if (mode) {
            c->status = 500;
            snprintf(c->err, sizeof(c->err), "Image mode %s not recognised", mode);
        } else {
            set_error(c, 500, "Unknown error");
        }
        return;
    }
    c->body = (char *)png;
    c->len = len;
    c->content_type = "image/png";
}

static void render_float(render_ctx *c)
{
    npz_array a;
    char err[128];
    if (npz_read(c->blob->data, c->blob->len, &a, err, sizeof(err)) != 0) {
        log_warn("float image %s/%s: %s", c->record_id, c->channel, err);
        set_error(c, 500, "Unknown error");
        return;
    }
    size_t n = (size_t)a.rows * a.cols;
    uint8_t *rgba = malloc(n * 4);
    if (!rgba) {
        npz_array_free(&a);
        set_error(c, 500, "Unknown error");
        return;
    }
    if (a.itemsize == 4)
        falsecolour_float_f32(a.data, n, &c->cm, rgba);
    else
        falsecolour_float_f64(a.data, n, &c->cm, rgba);
    encode_rgba(c, rgba, a.cols, a.rows);
    free(rgba);
    npz_array_free(&a);
}

static int put_number_array(buf_t *b, const json_t *arr)
{
    int rc = buf_putc(b, '[');
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (i)
            rc |= buf_putc(b, ',');
        if (json_is_number(v))
            rc |= jsonw_double(b, json_number_value(v));
        else if (json_is_null(v))
            rc |= buf_puts(b, "null");
        else
            return -EINVAL;
    }
    return rc | buf_putc(b, ']');
}

static void render_json(render_ctx *c)
{
    json_error_t e;
    json_t *doc = json_loadb((const char *)c->blob->data, c->blob->len, JSON_ALLOW_NUL, &e);
    buf_t b;
    buf_init(&b, IMAGING_MAX_JSON_BYTES);
    int rc = doc && json_is_object(doc) ? 0 : -EINVAL;
    static const char *const wave_keys[] = {"x", "y", NULL};
    static const char *const vec_keys[] = {"data", NULL};
    const char *const *keys = c->kind == RENDER_WAVEFORM ? wave_keys : vec_keys;
    rc |= buf_putc(&b, '{');
    for (size_t k = 0; rc == 0 && keys[k]; k++) {
        const json_t *arr = json_object_get(doc, keys[k]);
        if (!json_is_array(arr)) {
            rc = -EINVAL;
            break;
        }
        if (k)
            rc |= buf_putc(&b, ',');
        rc |= jsonw_string(&b, keys[k], strlen(keys[k]));
        rc |= buf_putc(&b, ':');
        rc |= put_number_array(&b, arr);
    }
    rc |= buf_putc(&b, '}');
    json_decref(doc);
    if (rc != 0) {
        log_warn("%s %s/%s: stored JSON is not usable",
                 c->kind == RENDER_WAVEFORM ? "waveform" : "vector", c->record_id, c->channel);
        buf_free(&b);
        set_error(c, 500, "Unknown error");
        return;
    }
    c->len = b.len;
    c->body = buf_take(&b);
    c->content_type = "application/json";
}

/* FWHM of a profile (docs/imaging.md §7), x = pixel index. y is modified. */
static double profile_fwhm(double *y, size_t n)
{
    if (n == 0)
        return 0;
    if (n >= 3) {
        double *d = malloc((n - 1) * sizeof(double));
        if (!d)
            return NAN;
        double lo = y[0], hi = y[0];
        for (size_t i = 0; i < n; i++) {
            lo = fmin(lo, y[i]);
            hi = fmax(hi, y[i]);
            if (i + 1 < n)
                d[i] = y[i + 1] - y[i];
        }
        double tol = 0.2 * (hi - lo);
        size_t m = n - 1; /* entries of d */
        if (fabs(d[0]) > tol && fabs(d[0] + d[1]) > tol)
            y[0] += (3 * d[0] + d[1]) / 6;
        for (size_t i = 1; i + 1 < n; i++) {
            if (fabs(d[i - 1]) > tol && fabs(d[i]) > tol) {
                double cc = -2 * d[i - 1] + 2 * d[i];
                double div = 7;
                if (i > 1) {
                    cc -= d[i - 2] + d[i - 1];
                    div += 1;
                }
                if (i < n - 2) {
                    cc += d[i] + d[i + 1];
                    div += 1;
                }
                y[i] += cc / div;
            }
        }
        if (fabs(d[m - 1]) > tol && fabs(d[m - 1] + d[m - 2]) > tol)
            y[n - 1] -= (3 * d[m - 1] + d[m - 2]) / 6;
        free(d);
    }
    double lo = y[0];
    for (size_t i = 1; i < n; i++)
        lo = fmin(lo, y[i]);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        y[i] -= lo;
        if (y[i] > y[k])
            k = i;
    }
    double half = y[k] / 2;
    size_t left = k, right = k;
    for (size_t i = k; i-- > 0;)
        if (y[i] <= half) {
            left = i;
            break;
        }
    for (size_t i = k; i < n; i++)
        if (y[i] <= half) {
            right = i;
            break;
        }
    return (double)right - (double)left;
}

static int put_profile(buf_t *b, const char *name, int64_t position, double *vals, size_t n)
{
    int rc =
        buf_printf(b, "\"%s\":{\"position\":%" PRId64 ",\"intensity\":{\"x\":[", name, position);
    for (size_t i = 0; i < n; i++) {
        if (i)
            rc |= buf_putc(b, ',');
        rc |= jsonw_double(b, (double)i);
    }
    rc |= buf_puts(b, "],\"y\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            rc |= buf_putc(b, ',');
        rc |= jsonw_double(b, vals[i]);
    }
    rc |= buf_puts(b, "]},\"fwhm\":");
    rc |= jsonw_double(b, profile_fwhm(vals, n));
    return rc | buf_putc(b, '}');
}

static void render_crosshair(render_ctx *c)
{
    png_image img = {0};
    const fnimage *fimg = c->fimg;
    if (!fimg && png_decode(c->blob->data, c->blob->len, &img) != 0) {
        set_error(c, 500, "Unknown error");
        return;
    }
    if (!fimg && img.channels != 1) {
        png_image_free(&img);
        set_error(c, 500, "Unknown error");
        return;
    }
    uint32_t w = fimg ? fimg->w : img.width, h = fimg ? fimg->h : img.height;
#define PX(i, j)                                                                                   \
    (fimg                  ? fnimage_at(fimg, (size_t)(i), (size_t)(j))                            \
     : img.bit_depth == 16 ? (double)((const uint16_t *)img.pixels)[(size_t)(i)*w + (j)]           \
                           : (double)((const uint8_t *)img.pixels)[(size_t)(i)*w + (j)])
    int64_t x = c->pos_x, y = c->pos_y;
    if (!c->has_position) {
        double total = 0, sx = 0, sy = 0;
        for (uint32_t i = 0; i < h; i++)
            for (uint32_t j = 0; j < w; j++) {
                double v = PX(i, j);
                total += v;
                sx += v * j;
                sy += v * i;
            }
        if (total == 0) {
            png_image_free(&img);
            set_error(c, 500, "Unknown error");
            return;
        }
        x = (int64_t)(sx / total);
        y = (int64_t)(sy / total);
    } else {
        if (x < 0)
            x += w;
        if (y < 0)
            y += h;
        if (x < 0 || y < 0 || x >= (int64_t)w || y >= (int64_t)h) {
            png_image_free(&img);
            set_error(c, 500, "Unknown error");
            return;
        }
    }
    double *row = malloc(w * sizeof(double)), *col = malloc(h * sizeof(double));
    buf_t b;
    buf_init(&b, IMAGING_MAX_JSON_BYTES);
    int rc = row && col ? 0 : -ENOMEM;
    if (rc == 0) {
        for (uint32_t j = 0; j < w; j++)
            row[j] = PX(y, j);
        for (uint32_t i = 0; i < h; i++)
            col[i] = PX(i, x);
        rc |= buf_putc(&b, '{');
        rc |= put_profile(&b, "row", y, row, w);
        rc |= buf_putc(&b, ',');
        rc |= put_profile(&b, "column", x, col, h);
        rc |= buf_putc(&b, '}');
    }
#undef PX
    free(row);
    free(col);
    png_image_free(&img);
    if (rc != 0) {
        buf_free(&b);
        set_error(c, 500, "Unknown error");
        return;
    }
    c->len = b.len;
    c->body = buf_take(&b);
    c->content_type = "application/json";
}

static void render_colour_bar(render_ctx *c)
{
    uint8_t *rgba = NULL;
    if (falsecolour_colour_bar(&c->levels, &c->cm, c->bar_height, &rgba) != 0) {
        set_error(c, 500, "Unknown error");
        return;
    }
    encode_rgba(c, rgba, 256, c->bar_height);
    free(rgba);
}

static void render_run(void *data)
{
    render_ctx *c = data;
    uint64_t h = 0xcbf29ce484222325ull;
    if (c->blob)
        h = fnv1a(h, c->blob->data, c->blob->len);
    char params[160];
    int pn = snprintf(params, sizeof(params), "%d|%ld|%ld|%d|%s|%d|%" PRId64 "|%" PRId64 "|%u|%d",
                      (int)c->kind, c->levels.lower, c->levels.upper, c->levels.limit_bit_depth,
                      c->colourmap_name ? c->colourmap_name : "", (int)c->has_position, c->pos_x,
                      c->pos_y, c->bar_height, c->png_level);
    h = fnv1a(h, params, (size_t)pn < sizeof(params) ? (size_t)pn : sizeof(params));
    snprintf(c->etag, sizeof(c->etag), "\"%016" PRIx64 "\"", h);
    c->status = 200;
    if (etag_matches(c->if_none_match, c->etag)) {
        c->not_modified = true;
        return;
    }
    switch (c->kind) {
    case RENDER_ORIGINAL:
        c->body = malloc(c->blob->len ? c->blob->len : 1);
        if (!c->body) {
            set_error(c, 500, "Unknown error");
            return;
        }
        memcpy(c->body, c->blob->data, c->blob->len);
        c->len = c->blob->len;
        c->content_type = "image/png";
        break;
    case RENDER_IMAGE:
        render_image(c);
        break;
    case RENDER_FLOAT:
        render_float(c);
        break;
    case RENDER_WAVEFORM:
    case RENDER_VECTOR:
        render_json(c);
        break;
    case RENDER_CROSSHAIR:
        render_crosshair(c);
        break;
    case RENDER_COLOUR_BAR:
        render_colour_bar(c);
        break;
    }
}

/* ---- loop side ---- */

static void render_finish(render_ctx *c)
{
    http_request_t *req = c->req;
    http_set_abort(req, NULL, NULL);
    if (c->blob) {
        objstore_blob_unref(c->blob);
        c->blob = NULL;
    }
    if (c->fres) {
        fneval_free(c->fres);
        c->fres = NULL;
        c->fimg = NULL;
        c->fdata = NULL;
    }
    if (c->status != 200) {
        free(c->body);
        http_respond_error(req, c->status, c->err);
        return;
    }
    if (c->etag[0])
        http_add_header(req, "ETag", c->etag);
    http_add_header(req, "Cache-Control", IMAGING_CACHE_CONTROL);
    if (c->not_modified) {
        http_respond(req, 304, NULL, NULL, 0);
        return;
    }
    http_respond_take(req, 200, c->content_type, c->body, c->len);
    c->body = NULL;
}

static void render_done(void *data, int status)
{
    render_ctx *c = data;
    c->work = NULL;
    if (status != 0)
        set_error(c, 500, "Unknown error");
    render_finish(c);
}

static void count_done(store_op_t *op)
{
    render_ctx *c = op->data;
    c->op_pending = false;
    const char *cls = objstore_kind_class(c->okind);
    if (op->status != 0) {
        const char *detail;
        c->status = api_error_answer(op->status, NULL,
                                     op->status == -ECANCELED ? "Unknown error" : "Database error",
                                     &detail);
        snprintf(c->err, sizeof(c->err), "%s", detail);
        if (op->status != -ECANCELED)
            log_warn("channel count for %s/%s: %s", c->record_id, c->channel, op->err);
    } else if (op->count == 0) {
        c->status = 404;
        snprintf(c->err, sizeof(c->err),
                 "%s with id=%s, channel=%s could not be found due to invalid id and or channel",
                 cls, c->record_id, c->channel);
    } else if (op->count == 1) {
        c->status = 404;
        snprintf(c->err, sizeof(c->err),
                 "%s with id=%s, channel=%s could not be found in object storage, check deletion "
                 "policy and age of requested data",
                 cls, c->record_id, c->channel);
    } else {
        c->status = 500;
        snprintf(c->err, sizeof(c->err),
                 "Unexpected number of records (%" PRId64
                 ") found when verifying whether %s, %s should be available on object storage",
                 op->count, c->record_id, c->channel);
    }
    store_op_cleanup(op);
    render_finish(c);
}

static void object_missing(render_ctx *c)
{
    store_op_init(&c->op, STORE_CHANNEL_COUNT);
    c->op.id = c->record_id;
    c->op.channel = c->channel;
    c->op_pending = true;
    if (store_submit(c->app->store, &c->op, count_done, c) != 0) {
        c->op_pending = false;
        set_error(c, 500, "Unknown error");
        render_finish(c);
    }
}

static void object_got(int status, const objstore_blob_t *blob, void *data)
{
    render_ctx *c = data;
    c->oreq = NULL;
    if (status == -ECANCELED || c->req->aborted) {
        set_error(c, 500, "Unknown error");
        render_finish(c);
        return;
    }
    if (status == -ENOENT) {
        object_missing(c); /* which of the two "not found" texts */
        return;
    }
    if (status != 0) {
        /* storage down or failing: never "not found" */
        const char *detail;
        c->status = api_error_answer(status, NULL, "Unknown error", &detail);
        snprintf(c->err, sizeof(c->err), "%s", detail);
        log_warn("%s %s/%s: object read failed: %s (%d)", objstore_kind_class(c->okind),
                 c->record_id, c->channel, ogd_strerror(status), status);
        render_finish(c);
        return;
    }
    /* Levels and colour map are checked once the object is known to exist. */
    if (c->kind == RENDER_IMAGE) {
        const char *msg = falsecolour_check(&c->levels);
        if (msg) {
            set_error(c, 400, msg);
            render_finish(c);
            return;
        }
    }
    if ((c->kind == RENDER_IMAGE || c->kind == RENDER_FLOAT) &&
        colourmap_find(c->colourmap_name, &c->cm) != 0) {
        c->status = 400;
        snprintf(c->err, sizeof(c->err), "%s is not a valid colour map name", c->colourmap_name);
        render_finish(c);
        return;
    }
    c->blob = objstore_blob_ref(blob);
    if (work_submit(c->app->loop, render_run, render_done, c, &c->work) != 0) {
        set_error(c, 500, "Unknown error");
        render_finish(c);
    }
}

static void render_abort(http_request_t *req, void *data)
{
    render_ctx *c = data;
    (void)req;
    if (c->oreq)
        objstore_cancel(c->oreq);
    if (c->op_pending)
        store_cancel(&c->op);
    if (c->work)
        work_cancel(c->work);
}

static render_ctx *render_new(http_request_t *req, render_kind kind, objstore_kind okind)
{
    render_ctx *c = api_ctx_new(req, sizeof(*c));
    if (!c)
        return NULL;
    c->req = req;
    c->app = req->app;
    c->kind = kind;
    c->okind = okind;
    c->record_id = req->nparams > 0 ? req->params[0] : "";
    c->channel = req->nparams > 1 ? req->params[1] : "";
    c->if_none_match = http_header_get(req, "if-none-match");
    c->png_level = c->app->cfg->images.png_compression_level;
    return c;
}

static void render_start(render_ctx *c)
{
    http_set_abort(c->req, render_abort, c);
    const void *owner = objstore_set_owner(c->app->objstore, c->req);
    int rc = objstore_get_channel(c->app->objstore, c->okind, c->record_id, c->channel, object_got,
                                  c, &c->oreq);
    objstore_set_owner(c->app->objstore, owner);
    if (rc != 0) {
        c->oreq = NULL;
        if (rc == -EINVAL || rc == -ENAMETOOLONG)
            object_missing(c);
        else {
            set_error(c, 500, "Unknown error");
            render_finish(c);
        }
    }
}

/* ---- a function named like the channel ---- */

/* Pool side of a function result: the crosshair profiles or the waveform's JSON. */
static void function_run(void *data)
{
    render_ctx *c = data;
    c->status = 200;
    if (c->kind == RENDER_CROSSHAIR) {
        render_crosshair(c);
        return;
    }
    c->body = jsonw_dumps(c->fdata, &c->len);
    c->content_type = "application/json";
    if (!c->body)
        set_error(c, 500, "Unknown error");
}

static void function_evaluated(fneval *res, void *data)
{
    render_ctx *c = data;
    c->fres = res;
    const char *msg;
    int status = api_fneval_status(res, &msg);
    if (status) {
        set_error(c, status, msg);
        render_finish(c);
        return;
    }
    if (!fneval_has(res, 0, c->fn)) {
        c->status = 404;
        snprintf(c->err, sizeof c->err,
                 "Function '%s' has no value for record '%s': a channel it uses is missing",
                 c->channel, c->record_id);
        render_finish(c);
        return;
    }
    json_t *ch = json_object_get(
        json_object_get(json_array_get(fneval_records(res), 0), "channels"), c->channel);
    const char *type =
        json_string_value(json_object_get(json_object_get(ch, "metadata"), "channel_dtype"));
    bool want_image = c->kind != RENDER_WAVEFORM;
    bool ok = type && (want_image ? strcmp(type, "image") == 0
                                  : strcmp(type, "waveform") == 0 || strcmp(type, "scalar") == 0);
    if (!ok) {
        c->status = 400;
        snprintf(c->err, sizeof c->err, "Function '%s' gives a %s, not %s", c->channel,
                 type ? type : "value", want_image ? "an image" : "a waveform");
        render_finish(c);
        return;
    }
    c->status = 200;
    if (c->kind == RENDER_IMAGE || c->kind == RENDER_ORIGINAL) {
        const unsigned char *png;
        size_t len;
        c->body = fneval_png(res, 0, c->fn, &png, &len) ? malloc(len) : NULL;
        if (!c->body)
            set_error(c, 500, "Unknown error");
        else {
            memcpy(c->body, png, len);
            c->len = len;
            c->content_type = "image/png";
        }
        render_finish(c);
        return;
    }
    if (c->kind == RENDER_CROSSHAIR)
        c->fimg = fneval_image(res, 0, c->fn);
    else
        c->fdata = json_object_get(ch, "data");
    if ((c->kind == RENDER_CROSSHAIR && !c->fimg) || (c->kind == RENDER_WAVEFORM && !c->fdata)) {
        set_error(c, 500, "Unknown error");
        render_finish(c);
        return;
    }
    http_set_abort(c->req, render_abort, c);
    if (c->req->aborted || work_submit(c->app->loop, function_run, render_done, c, &c->work)) {
        set_error(c, 500, "Unknown error");
        render_finish(c);
    }
}

/* The colour map of a function image is resolved as a stored image's (query, preference,
 * default); then the functions run. */
static void function_colourmap_ready(http_request_t *req, const char *name, void *data)
{
    render_ctx *c = data;
    c->fn_opts.colourmap_name = name ? name : c->app->cfg->images.default_colour_map;
    json_t *records = json_pack("[{ss}]", "_id", c->record_id);
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
    render_ctx *c = render_new(req, kind, OBJ_IMAGE);
    if (!c)
        return true;
    c->fn = (size_t)fneval_list_find(list, c->channel);
    c->has_position = has_position;
    c->pos_x = px;
    c->pos_y = py;
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
    render_ctx *c = data;
    (void)req;
    c->colourmap_name = name;
    render_start(c);
}

void api_images_get(http_request_t *req)
{
    bool original;
    falsecolour_levels lv;
    if (!levels_params(req, &lv) || !api_query_bool(req, "original_image", false, &original))
        return;
    if (function_route(req, original ? RENDER_ORIGINAL : RENDER_IMAGE, &lv, false, 0, 0))
        return;
    render_ctx *c = render_new(req, original ? RENDER_ORIGINAL : RENDER_IMAGE, OBJ_IMAGE);
    if (!c)
        return;
    if (original) {
        render_start(c);
        return;
    }
    c->levels = lv;
    colourmap_resolve(req, false, colourmap_then_render, c);
}

void api_images_float(http_request_t *req)
{
    render_ctx *c = render_new(req, RENDER_FLOAT, OBJ_FLOAT_IMAGE);
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
    render_ctx *c = render_new(req, RENDER_CROSSHAIR, OBJ_IMAGE);
    if (!c)
        return;
    c->has_position = pos != NULL;
    c->pos_x = px;
    c->pos_y = py;
    render_start(c);
}

void api_waveforms_get(http_request_t *req)
{
    if (function_route(req, RENDER_WAVEFORM, NULL, false, 0, 0))
        return;
    render_ctx *c = render_new(req, RENDER_WAVEFORM, OBJ_WAVEFORM);
    if (c)
        render_start(c);
}

void api_vectors_get(http_request_t *req)
{
    render_ctx *c = render_new(req, RENDER_VECTOR, OBJ_VECTOR);
    if (c)
        render_start(c);
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
    app_t *app = req->app;
    const falsecolour_levels *lv = data;
    colourmap cm;
    if (colourmap_find(name, &cm) != 0) {
        char err[256];
        snprintf(err, sizeof(err), "%s is not a valid colour map name", name);
        http_respond_error(req, 400, err);
        return;
    }
    render_ctx *c = render_new(req, RENDER_COLOUR_BAR, OBJ_IMAGE);
    if (!c)
        return;
    c->levels = *lv;
    c->colourmap_name = name;
    c->cm = cm;
    int height = app->cfg->images.colourbar_height_pixels;
    c->bar_height = height >= 1 && height <= 4096 ? (uint32_t)height : 16;
    http_set_abort(req, render_abort, c);
    if (work_submit(app->loop, render_run, render_done, c, &c->work) != 0) {
        set_error(c, 500, "Unknown error");
        render_finish(c);
    }
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
