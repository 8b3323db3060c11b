/*
 * render.c: the rendering service (see render.h), in the order a job runs: the loop side
 * (start, object read, the record count behind a miss, the checks), then the pool side
 * (validator, then one renderer per kind), then the end. Image arithmetic lives in
 * imaging/ (falsecolour, png, npz); the FWHM of a crosshair profile is the `fwhm`
 * builtin's (functions/functions.h, fn_half_max) with x = the pixel index.
 */
#include "render/render.h"

#include "functions/functions.h"
#include "imaging/colourmap.h"
#include "imaging/npz.h"
#include "imaging/png.h"
#include "objstore/keys.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/taskgroup.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest JSON answer (waveform, vector, crosshair) a job builds. */
#define RENDER_MAX_JSON_BYTES ((size_t)256 * 1024 * 1024)

struct render_job {
    render_ctx ctx;
    render_params p;
    objstore_kind okind;
    colourmap cm;
    render_done_cb done;
    void *done_data;
    bool cancelled;
    objstore_req_t *oreq;
    const objstore_blob_t *blob;
    store_op_t op;
    bool op_pending;
    work_t *work;
    render_result r;
    char msg[1024];
    char etag[24];
};

/* ---- the end ---- */

static void finish(render_job *j)
{
    if (j->blob)
        objstore_blob_unref(j->blob);
    j->r.etag = j->etag;
    j->done(&j->r, j->done_data);
    free(j->r.body);
    free(j);
}

static void fail(render_job *j, render_error error, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(render_job *j, render_error error, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->msg, sizeof j->msg, fmt, ap);
    va_end(ap);
    free(j->r.body);
    j->r = (render_result){.error = error, .code = code, .message = j->msg};
}

/* ---- pool side ---- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static bool etag_matches(const char *list, const char *etag)
{
    if (!list)
        return false;
    if (strcmp(list, "*") == 0)
        return true;
    size_t n = strlen(etag);
    for (const char *p = strstr(list, etag); p; p = strstr(p + 1, etag)) {
        char after = p[n];
        if (after == 0 || after == ',' || after == ' ')
            return true;
    }
    return false;
}

static void answer(render_job *j, char *body, size_t len, const char *content_type)
{
    j->r.body = body;
    j->r.len = len;
    j->r.content_type = content_type;
}

/* The JSON built in b as the answer, or (rc != 0) an internal failure. */
static void answer_json(render_job *j, int rc, buf_t *b)
{
    if (rc != 0) {
        buf_free(b);
        fail(j, RENDER_EINTERNAL, 0, "Unknown error");
        return;
    }
    size_t len = b->len;
    answer(j, buf_take(b), len, "application/json");
}

static void encode_rgba(render_job *j, const uint8_t *rgba, uint32_t w, uint32_t h)
{
    unsigned char *png = NULL;
    size_t len = 0;
    if (png_encode_rgba_deflate(rgba, w, h, j->p.png_level, &png, &len) != 0) {
        fail(j, RENDER_EINTERNAL, 0, "Unknown error");
        return;
    }
    answer(j, (char *)png, len, "image/png");
}

static void render_original(render_job *j)
{
    char *copy = malloc(j->blob->len ? j->blob->len : 1);
    if (!copy) {
        fail(j, RENDER_EINTERNAL, 0, "Unknown error");
        return;
    }
    memcpy(copy, j->blob->data, j->blob->len);
    answer(j, copy, j->blob->len, "image/png");
}

static void render_image(render_job *j)
{
    const char *mode = NULL;
    unsigned char *png = NULL;
    size_t len = 0;
    int rc = falsecolour_png(j->blob->data, j->blob->len, &j->p.levels, &j->cm, j->p.png_level,
                             &png, &len, &mode);
    if (rc != 0) {
        if (mode)
            fail(j, RENDER_EINTERNAL, 0, "Image mode %s not recognised", mode);
        else
            fail(j, RENDER_EINTERNAL, 0, "Unknown error");
        return;
    }
    answer(j, (char *)png, len, "image/png");
}

static void render_float(render_job *j)
{
    npz_array a;
    char err[128];
    if (npz_read(j->blob->data, j->blob->len, &a, err, sizeof(err)) != 0) {
        log_warn("float image %s/%s: %s", j->p.record_id, j->p.channel, err);
        fail(j, RENDER_EINTERNAL, 0, "Unknown error");
        return;
    }
    size_t n = (size_t)a.rows * a.cols;
    uint8_t *rgba = malloc(n * 4);
    if (!rgba) {
        npz_array_free(&a);
        fail(j, RENDER_EINTERNAL, 0, "Unknown error");
        return;
    }
    if (a.itemsize == 4)
        falsecolour_float_f32(a.data, n, &j->cm, rgba);
    else
        falsecolour_float_f64(a.data, n, &j->cm, rgba);
    encode_rgba(j, rgba, a.cols, a.rows);
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

/* A stored waveform or vector, re-written with only its arrays (numbers and nulls). */
static void render_json(render_job *j)
{
    json_error_t e;
    json_t *doc = json_loadb((const char *)j->blob->data, j->blob->len, JSON_ALLOW_NUL, &e);
    buf_t b;
    buf_init(&b, RENDER_MAX_JSON_BYTES);
    int rc = doc && json_is_object(doc) ? 0 : -EINVAL;
    static const char *const wave_keys[] = {"x", "y", NULL};
    static const char *const vec_keys[] = {"data", NULL};
    const char *const *keys = j->p.kind == RENDER_WAVEFORM ? wave_keys : vec_keys;
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
    if (rc != 0)
        log_warn("%s %s/%s: stored JSON is not usable",
                 j->p.kind == RENDER_WAVEFORM ? "waveform" : "vector", j->p.record_id,
                 j->p.channel);
    answer_json(j, rc, &b);
}

/* A function's waveform data as it is. */
static void render_function_data(render_job *j)
{
    size_t len = 0;
    char *body = jsonw_dumps(j->p.function_data, &len);
    if (!body)
        fail(j, RENDER_EINTERNAL, 0, "Unknown error");
    else
        answer(j, body, len, "application/json");
}

/* One profile: {"position": p, "intensity": {"x": [0..n), "y": vals}, "fwhm": f}. x is
 * 0..n-1 (n doubles) and serves the FWHM too. */
static int put_profile(buf_t *b, const char *name, int64_t position, const double *x,
                       const double *vals, size_t n)
{
    int rc =
        buf_printf(b, "\"%s\":{\"position\":%" PRId64 ",\"intensity\":{\"x\":[", name, position);
    for (size_t i = 0; i < n; i++) {
        if (i)
            rc |= buf_putc(b, ',');
        rc |= jsonw_double(b, x[i]);
    }
    rc |= buf_puts(b, "],\"y\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            rc |= buf_putc(b, ',');
        rc |= jsonw_double(b, vals[i]);
    }
    double left, right;
    char err[FN_ERR_MAX];
    if (fn_half_max(x, n, vals, n, &left, &right, err) != 0)
        return -ENOMEM; /* n >= 1 and x has n values: only memory can fail */
    rc |= buf_puts(b, "]},\"fwhm\":");
    rc |= jsonw_double(b, right - left);
    return rc | buf_putc(b, '}');
}

/* The value at row i, column j of a decoded greyscale PNG or a function image. */
static double pixel(const png_image *img, const fnimage *fimg, size_t i, size_t jj)
{
    if (fimg)
        return fnimage_at(fimg, i, jj);
    size_t k = i * img->width + jj;
    return img->bit_depth == 16 ? (double)((const uint16_t *)img->pixels)[k]
                                : (double)((const uint8_t *)img->pixels)[k];
}

static void render_crosshair(render_job *j)
{
    png_image img = {0};
    const fnimage *fimg = j->p.function_image;
    if (!fimg && (png_decode(j->blob->data, j->blob->len, &img) != 0 || img.channels != 1)) {
        png_image_free(&img);
        fail(j, RENDER_EINTERNAL, 0, "Unknown error");
        return;
    }
    uint32_t w = fimg ? fimg->w : img.width, h = fimg ? fimg->h : img.height;
    int64_t x = j->p.pos_x, y = j->p.pos_y;
    if (!j->p.has_position) {
        double total = 0, sx = 0, sy = 0;
        for (uint32_t i = 0; i < h; i++)
            for (uint32_t k = 0; k < w; k++) {
                double v = pixel(&img, fimg, i, k);
                total += v;
                sx += v * k;
                sy += v * i;
            }
        if (total == 0) {
            png_image_free(&img);
            fail(j, RENDER_EINTERNAL, 0, "Unknown error");
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
            fail(j, RENDER_EINTERNAL, 0, "Unknown error");
            return;
        }
    }
    size_t n = w > h ? w : h;
    double *row = malloc(w * sizeof(double)), *col = malloc(h * sizeof(double));
    double *idx = malloc(n * sizeof(double));
    buf_t b;
    buf_init(&b, RENDER_MAX_JSON_BYTES);
    int rc = row && col && idx ? 0 : -ENOMEM;
    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            idx[i] = (double)i;
        for (uint32_t k = 0; k < w; k++)
            row[k] = pixel(&img, fimg, (size_t)y, k);
        for (uint32_t i = 0; i < h; i++)
            col[i] = pixel(&img, fimg, i, (size_t)x);
        rc |= buf_putc(&b, '{');
        rc |= put_profile(&b, "row", y, idx, row, w);
        rc |= buf_putc(&b, ',');
        rc |= put_profile(&b, "column", x, idx, col, h);
        rc |= buf_putc(&b, '}');
    }
    free(row);
    free(col);
    free(idx);
    png_image_free(&img);
    answer_json(j, rc, &b);
}

static void render_colour_bar(render_job *j)
{
    uint8_t *rgba = NULL;
    if (falsecolour_colour_bar(&j->p.levels, &j->cm, j->p.bar_height, &rgba) != 0) {
        fail(j, RENDER_EINTERNAL, 0, "Unknown error");
        return;
    }
    encode_rgba(j, rgba, 256, j->p.bar_height);
    free(rgba);
}

/* The validator: the stored bytes and every parameter that changes the answer. */
static void make_etag(render_job *j)
{
    uint64_t h = 0xcbf29ce484222325ull;
    if (j->blob)
        h = fnv1a(h, j->blob->data, j->blob->len);
    const render_params *p = &j->p;
    char params[160];
    int pn = snprintf(params, sizeof(params), "%d|%ld|%ld|%d|%s|%d|%" PRId64 "|%" PRId64 "|%u|%d",
                      (int)p->kind, p->levels.lower, p->levels.upper, p->levels.limit_bit_depth,
                      p->colourmap_name ? p->colourmap_name : "", (int)p->has_position, p->pos_x,
                      p->pos_y, p->bar_height, p->png_level);
    h = fnv1a(h, params, (size_t)pn < sizeof(params) ? (size_t)pn : sizeof(params));
    snprintf(j->etag, sizeof(j->etag), "\"%016" PRIx64 "\"", h);
}

static void run(void *data)
{
    render_job *j = data;
    if (j->p.function_image || j->p.function_data) {
        if (j->p.kind == RENDER_CROSSHAIR)
            render_crosshair(j);
        else
            render_function_data(j);
        return;
    }
    make_etag(j);
    if (etag_matches(j->p.if_none_match, j->etag)) {
        j->r.not_modified = true;
        return;
    }
    switch (j->p.kind) {
    case RENDER_ORIGINAL:
        render_original(j);
        break;
    case RENDER_IMAGE:
        render_image(j);
        break;
    case RENDER_FLOAT:
        render_float(j);
        break;
    case RENDER_WAVEFORM:
    case RENDER_VECTOR:
        render_json(j);
        break;
    case RENDER_CROSSHAIR:
        render_crosshair(j);
        break;
    case RENDER_COLOUR_BAR:
        render_colour_bar(j);
        break;
    }
}

/* ---- loop side ---- */

static void ran(void *data, int status)
{
    render_job *j = data;
    j->work = NULL;
    if (status != 0)
        fail(j, RENDER_EINTERNAL, 0, "Unknown error");
    finish(j);
}

static void submit(render_job *j)
{
    if (j->cancelled || work_submit(j->ctx.loop, run, ran, j, &j->work) != 0) {
        fail(j, RENDER_EINTERNAL, 0, "Unknown error");
        finish(j);
    }
}

/* Levels and colour map, once the object is known to exist (or for a colour bar). */
static bool checks_pass(render_job *j)
{
    render_kind k = j->p.kind;
    if (k == RENDER_IMAGE || k == RENDER_COLOUR_BAR) {
        const char *msg = falsecolour_check(&j->p.levels);
        if (msg) {
            fail(j, RENDER_EINVAL, 0, "%s", msg);
            return false;
        }
    }
    if ((k == RENDER_IMAGE || k == RENDER_FLOAT || k == RENDER_COLOUR_BAR) &&
        colourmap_find(j->p.colourmap_name, &j->cm) != 0) {
        fail(j, RENDER_EINVAL, 0, "%s is not a valid colour map name",
             j->p.colourmap_name ? j->p.colourmap_name : "");
        return false;
    }
    return true;
}

static void counted(store_op_t *op)
{
    render_job *j = op->data;
    j->op_pending = false;
    const char *cls = objstore_kind_class(j->okind);
    const char *id = j->p.record_id, *ch = j->p.channel;
    if (op->status == -ECANCELED) {
        fail(j, RENDER_EINTERNAL, 0, "Unknown error");
    } else if (op->status != 0) {
        log_warn("channel count for %s/%s: %s", id, ch, op->err);
        fail(j, RENDER_EBACKEND, op->status, "Database error");
    } else if (op->count == 0) {
        fail(j, RENDER_ENOTFOUND, 0,
             "%s with id=%s, channel=%s could not be found due to invalid id and or channel", cls,
             id, ch);
    } else if (op->count == 1) {
        fail(j, RENDER_ENOTFOUND, 0,
             "%s with id=%s, channel=%s could not be found in object storage, check deletion "
             "policy and age of requested data",
             cls, id, ch);
    } else {
        fail(j, RENDER_EINTERNAL, 0,
             "Unexpected number of records (%" PRId64
             ") found when verifying whether %s, %s should be available on object storage",
             op->count, id, ch);
    }
    store_op_cleanup(op);
    finish(j);
}

/* Which of the two "not found" answers: one store query. */
static void object_missing(render_job *j)
{
    store_op_init(&j->op, STORE_CHANNEL_COUNT);
    j->op.id = j->p.record_id;
    j->op.channel = j->p.channel;
    j->op_pending = true;
    if (j->cancelled || store_submit(j->ctx.store, &j->op, counted, j) != 0) {
        j->op_pending = false;
        fail(j, RENDER_EINTERNAL, 0, "Unknown error");
        finish(j);
    }
}

static void object_got(int status, const objstore_blob_t *blob, void *data)
{
    render_job *j = data;
    j->oreq = NULL;
    if (status == -ECANCELED || j->cancelled) {
        fail(j, RENDER_EINTERNAL, 0, "Unknown error");
        finish(j);
        return;
    }
    if (status == -ENOENT) {
        object_missing(j);
        return;
    }
    if (status != 0) { /* storage down or failing: never "not found" */
        log_warn("%s %s/%s: object read failed: %s (%d)", objstore_kind_class(j->okind),
                 j->p.record_id, j->p.channel, ogd_strerror(status), status);
        fail(j, RENDER_EBACKEND, status, "Unknown error");
        finish(j);
        return;
    }
    if (!checks_pass(j)) {
        finish(j);
        return;
    }
    j->blob = objstore_blob_ref(blob);
    submit(j);
}

static objstore_kind kind_object(render_kind k)
{
    switch (k) {
    case RENDER_FLOAT:
        return OBJ_FLOAT_IMAGE;
    case RENDER_WAVEFORM:
        return OBJ_WAVEFORM;
    case RENDER_VECTOR:
        return OBJ_VECTOR;
    default:
        return OBJ_IMAGE;
    }
}

int render_start(const render_ctx *ctx, const render_params *params, render_done_cb done,
                 void *data, render_job **handle)
{
    render_job *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    j->ctx = *ctx;
    j->p = *params;
    j->okind = kind_object(params->kind);
    j->done = done;
    j->done_data = data;
    if (handle)
        *handle = j;
    if (params->function_image || params->function_data) {
        submit(j);
        return 0;
    }
    if (params->kind == RENDER_COLOUR_BAR) {
        if (checks_pass(j))
            submit(j);
        else
            finish(j);
        return 0;
    }
    const void *owner = objstore_set_owner(ctx->objstore, ctx->owner);
    int rc = objstore_get_channel(ctx->objstore, j->okind, params->record_id, params->channel,
                                  object_got, j, &j->oreq);
    objstore_set_owner(ctx->objstore, owner);
    if (rc != 0) {
        j->oreq = NULL;
        if (rc == -EINVAL || rc == -ENAMETOOLONG) { /* no key can name it */
            object_missing(j);
        } else {
            fail(j, RENDER_EINTERNAL, 0, "Unknown error");
            finish(j);
        }
    }
    return 0;
}

void render_cancel(render_job *j)
{
    j->cancelled = true;
    if (j->oreq)
        objstore_cancel(j->oreq);
    if (j->op_pending)
        store_cancel(&j->op);
    if (j->work)
        work_cancel(j->work);
}
