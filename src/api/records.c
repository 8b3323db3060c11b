/*
 * records.c: GET /records, /records/count, /records/range_converter, /records/{id_} and
 * DELETE /records/{id_} (docs/api.md §5.1-§5.5).
 *
 * Each request gets a small context in its arena: the parsed parameters, the compiled
 * filter and one store op. On /records and /records/{id_} the user's preferences are read
 * first (api/prefs.h: colour maps the query does not name, vector skip/limit). The op
 * runs off the loop; its post step re-colours the thumbnails; when the preferences ask
 * for it the vector thumbnails are re-drawn next (api/vector_thumbs.h); then truncate,
 * functions, and serialisation on the pool. A client that goes away cancels the current
 * step through the request's abort hook.
 */
#include "api/api.h"
#include "api/functions.h"
#include "api/handlers.h"
#include "api/prefs.h"
#include "api/vector_thumbs.h"
#include "imaging/recolour.h"

#include "objstore/keys.h"
#include "store/timestamp.h"
#include "util/jsonw.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct records_ctx {
    http_request_t *req;
    store_op_t op;
    filter_t *filter;
    bool truncate;
    recolour_opts recolour; /* thumbnail false colour (imaging/recolour.h) */
    int recolour_status;
    char recolour_err[256];
    fneval_list *functions; /* GET /records?functions=...: evaluated after the query */
    int64_t lower, upper;   /* thumbnail levels */
    api_prefs prefs;        /* the user's preferences (api/prefs.h) */
    bool vectors;           /* vector thumbnails re-drawn (api/vector_thumbs.h) */
    /* delete */
    char prefixes[OBJSTORE_RECORD_PREFIXES][OBJSTORE_PREFIX_MAX];
    struct prefix_task {
        struct records_ctx *ctx;
        int index;
    } tasks[OBJSTORE_RECORD_PREFIXES];
    int pending;
    int failed; /* DELETE: 0, or the status of the first failure */
    char fail_detail[512];
} records_ctx;

static void abort_op(http_request_t *req, void *data)
{
    records_ctx *ctx = data;
    (void)req;
    store_cancel(&ctx->op);
}

static records_ctx *ctx_new(http_request_t *req, store_op_kind kind)
{
    records_ctx *ctx = api_ctx_new(req, sizeof(*ctx));
    if (!ctx)
        return NULL;
    ctx->req = req;
    store_op_init(&ctx->op, kind);
    http_set_abort(req, abort_op, ctx);
    return ctx;
}

static void ctx_done(records_ctx *ctx)
{
    store_op_cleanup(&ctx->op);
    filter_free(ctx->filter);
    ctx->filter = NULL;
    http_set_abort(ctx->req, NULL, NULL);
}

static void truncate_thumbnails(json_t *rec)
{
    json_t *channels = json_object_get(rec, "channels");
    const char *name;
    json_t *ch;
    json_object_foreach(channels, name, ch)
    {
        json_t *t = json_object_get(ch, "thumbnail");
        if (json_is_string(t) && json_string_length(t) > 50)
            json_string_setn(t, json_string_value(t), 50);
    }
}

/* ---- GET /records ---- */

/* Image-valued functions colour their thumbnails as the stored thumbnails are coloured. */
static fneval_options functions_options(const records_ctx *ctx)
{
    return (fneval_options){
        .mode = FNEVAL_THUMBNAILS,
        .levels = {.lower = ctx->recolour.lower_level,
                   .upper = ctx->recolour.upper_level,
                   .limit_bit_depth = 8,
                   .has_lower = true,
                   .has_upper = true},
        .colourmap_name = ctx->recolour.colourmap_name,
        .truncate = ctx->truncate,
        .channels_complete = true,
    };
}

/* On the store's pool thread, right after the query: shape and serialise the page, so
 * the loop thread only writes bytes out (one thread hop per request, not two). */
static void shape_page(store_op_t *op)
{
    records_ctx *ctx = op->post_data;
    if (ctx->recolour.enabled) {
        ctx->recolour.cancel = &op->canceled; /* the client may leave meanwhile */
        ctx->recolour_status = recolour_records(op->result, op->dtypes, &ctx->recolour,
                                                ctx->recolour_err, sizeof(ctx->recolour_err));
        if (ctx->recolour_status != 0)
            return; /* find_done answers 500 "Unknown error" (or nothing, if cancelled) */
    }
    if (atomic_load(&op->canceled))
        return;
    if (ctx->vectors)
        return; /* truncated and serialised once the vector thumbnails are re-drawn */
    if (ctx->truncate) {
        size_t i;
        json_t *rec;
        json_array_foreach(op->result, i, rec) truncate_thumbnails(rec);
    }
    if (ctx->functions)
        return; /* serialised after the functions ran */
    op->text = jsonw_dumps(op->result, &op->text_len);
}

/* The last steps of GET /records (one = false) and /records/{id_} (one = true, page holds
 * the record), once the store op is cleaned up: truncate, functions, answer (the page, or
 * the record alone). Takes page. */
static void respond_page(http_request_t *req, records_ctx *ctx, json_t *page, bool one)
{
    if (ctx->truncate) {
        size_t i;
        json_t *rec;
        json_array_foreach(page, i, rec) truncate_thumbnails(rec);
    }
    if (ctx->functions) {
        fneval_options fo = functions_options(ctx);
        api_functions_respond(req, ctx->functions, page, &fo, one);
        return;
    }
    if (!one) {
        api_respond_json(req, 200, page);
        return;
    }
    json_t *rec = json_incref(json_array_get(page, 0));
    json_decref(page);
    api_respond_json(req, 200, rec);
}

/* GET /records, after the vector thumbnails were re-drawn. */
static void page_vectors_done(http_request_t *req, json_t *records, void *data)
{
    respond_page(req, data, records, false);
}

static void find_done(store_op_t *op)
{
    records_ctx *ctx = op->data;
    http_request_t *req = ctx->req;
    if (op->status != 0) {
        api_respond_store_error(req, op, "Database operation failed during query_to_list");
        ctx_done(ctx);
        return;
    }
    if (ctx->recolour_status != 0) {
        /* The reference's task group turns every such error into "Unknown error". */
        log_warn("records: thumbnails: %s", ctx->recolour_err);
        http_respond_error(req, 500, "Unknown error");
        ctx_done(ctx);
        return;
    }
    if (ctx->vectors) {
        json_t *records = op->result, *dtypes = op->dtypes;
        op->result = op->dtypes = NULL;
        ctx_done(ctx);
        api_vector_thumbs(req, records, dtypes, &ctx->prefs, false, page_vectors_done, ctx);
        json_decref(dtypes);
        return;
    }
    if (ctx->functions) {
        json_t *records = op->result;
        op->result = NULL;
        fneval_list *functions = ctx->functions;
        fneval_options fo = functions_options(ctx);
        ctx_done(ctx);
        api_functions_respond(req, functions, records, &fo, false);
        return;
    }
    if (!op->text) {
        http_respond_error(req, 500, "Unknown error");
        ctx_done(ctx);
        return;
    }
    char *text = op->text;
    size_t len = op->text_len;
    op->text = NULL;
    ctx_done(ctx);
    http_respond_take(req, 200, "application/json", text, len);
}

/* Thumbnail colouring of /records and /records/{id_} (docs/api.md §4.9-§4.10):
 * a non-empty parameter, else the user's preference, else (unset or empty) the config
 * default. Which preferences must be read: the vector ones always, a colour map's only
 * when its parameter does not name one. */
static unsigned prefs_wanted(http_request_t *req)
{
    const char *cm = http_query_get(req, "colourmap_name");
    const char *fcm = http_query_get(req, "float_colourmap_name");
    return API_PREFS_VECTOR | (cm && *cm ? 0 : API_PREFS_COLOURMAP) |
           (fcm && *fcm ? 0 : API_PREFS_FLOAT_COLOURMAP);
}

static const char *first_set(const char *a, const char *b, const char *c)
{
    return a && *a ? a : b && *b ? b : c;
}

static void recolour_params(records_ctx *ctx, const api_prefs *p)
{
    http_request_t *req = ctx->req;
    app_t *app = req->app;
    ctx->recolour = (recolour_opts){
        .enabled = true,
        .lower_level = (long)ctx->lower,
        .upper_level = (long)ctx->upper,
        .colourmap_name = first_set(http_query_get(req, "colourmap_name"), p->colourmap,
                                    app->cfg->images.default_colour_map),
        .float_colourmap_name =
            first_set(http_query_get(req, "float_colourmap_name"), p->float_colourmap,
                      app->cfg->float_images.default_colour_map),
    };
    ctx->prefs = *p;
    ctx->vectors = api_vector_thumbs_wanted(p);
}

/* With the user's preferences known: the thumbnail colouring, then the query (its post
 * step shapes the result on the pool). */
static void query_with_prefs(records_ctx *ctx, const api_prefs *p, void (*post)(store_op_t *),
                             store_cb done, const char *fail)
{
    http_request_t *req = ctx->req;
    recolour_params(ctx, p);
    ctx->op.post = post;
    ctx->op.post_data = ctx;
    http_set_abort(req, abort_op, ctx);
    app_t *app = req->app;
    if (store_submit(app->store, &ctx->op, done, ctx) != 0) {
        ctx_done(ctx);
        http_respond_error(req, 500, fail);
    }
}

static void list_prefs_loaded(http_request_t *req, const api_prefs *p, void *data)
{
    records_ctx *ctx = data;
    /* the reference reads skip/limit for every page, even an empty one */
    if (!p || !api_prefs_vector_ok(req, p)) {
        ctx_done(ctx);
        return;
    }
    query_with_prefs(ctx, p, shape_page, find_done,
                     "Database operation failed during query_to_list");
}

void api_records_list(http_request_t *req)
{
    records_ctx *ctx = ctx_new(req, STORE_RECORDS_FIND);
    if (!ctx)
        return;
    if (!api_list_params(req, &ctx->op, &ctx->filter) ||
        !api_query_bool(req, "truncate", false, &ctx->truncate) ||
        !api_query_int_range(req, "lower_level", 0, 0, 255, &ctx->lower) ||
        !api_query_int_range(req, "upper_level", 255, 0, 255, &ctx->upper) ||
        !api_functions_from_query(req, &ctx->functions)) {
        ctx_done(ctx);
        return;
    }
    if (ctx->functions)
        fneval_projection(&req->arena, ctx->functions, &ctx->op.projection, &ctx->op.nprojection);
    /* a channel projected down to its thumbnail is still coloured as its type says */
    ctx->op.channel_dtypes = true;
    api_prefs_load(req, prefs_wanted(req), list_prefs_loaded, ctx);
}

/* ---- GET /records/count ---- */

static void count_done(store_op_t *op)
{
    records_ctx *ctx = op->data;
    http_request_t *req = ctx->req;
    if (op->status != 0) {
        api_respond_store_error(req, op, "Error counting the number of documents in collection %s");
    } else {
        char text[32];
        int n = snprintf(text, sizeof(text), "%lld", (long long)op->count);
        http_respond(req, 200, "application/json", text, (size_t)n);
    }
    ctx_done(ctx);
}

void api_records_count(http_request_t *req)
{
    records_ctx *ctx = ctx_new(req, STORE_RECORDS_COUNT);
    if (!ctx)
        return;
    json_t *cond = NULL;
    if (!api_query_json(req, "conditions", "{}", &cond)) {
        ctx_done(ctx);
        return;
    }
    bool ok = api_compile_conditions(req, cond, true, &ctx->filter);
    json_decref(cond);
    if (!ok) {
        ctx_done(ctx);
        return;
    }
    ctx->op.filter = ctx->filter;
    app_t *app = req->app;
    if (store_submit(app->store, &ctx->op, count_done, ctx) != 0) {
        ctx_done(ctx);
        http_respond_error(req, 500, "Error counting the number of documents in collection %s");
    }
}

/* ---- GET /records/range_converter ---- */

/* Nothing in the range is 404, where the reference answers 500 (a deliberate departure):
 * the web client asks for its last-24-hours range on every page load, and an empty range
 * is not a server failure to count in /metrics and the logs. The client treats every
 * error status alike. Same text as the reference. */
#define RANGE_NOTHING_FOUND "No results have been found from database query"

static void range_done(store_op_t *op)
{
    records_ctx *ctx = op->data;
    http_request_t *req = ctx->req;
    if (op->status == -ENOENT) {
        http_respond_error(req, 404, RANGE_NOTHING_FOUND);
    } else if (op->status != 0) {
        api_respond_store_error(req, op, "Database operation failed during aggregate");
    } else {
        json_t *r = op->result;
        op->result = NULL;
        ctx_done(ctx);
        api_respond_json(req, 200, r);
        return;
    }
    ctx_done(ctx);
}

/* One bound of a range: an integer (shot number / date given as int) or a datetime. */
static int range_bound(json_t *v, bool want_date, int64_t *out, const char *field, buf_t *err)
{
    if (!v) {
        buf_printf(err, "%s\n  Field required [type=missing]\n", field);
        return -1;
    }
    if (json_is_integer(v)) {
        /* An int where a date is expected validates but then matches nothing. */
        *out = want_date ? INT64_MIN : json_integer_value(v);
        return want_date ? 1 : 0;
    }
    if (json_is_string(v) || json_is_real(v)) {
        int64_t us;
        if (json_is_string(v) && timestamp_parse_iso(json_string_value(v), &us) == 0) {
            *out = us;
            return want_date ? 0 : 1;
        }
        if (json_is_real(v)) {
            *out = 0;
            return 1;
        }
    }
    buf_printf(err,
               "%s\n  Input should be a valid integer or a valid datetime "
               "[type=int_or_datetime_type]\n",
               field);
    return -1;
}

void api_records_range(http_request_t *req)
{
    records_ctx *ctx = ctx_new(req, STORE_RECORDS_RANGE);
    if (!ctx)
        return;
    json_t *shot = NULL, *date = NULL;
    if (!api_query_json(req, "shotnum_range", "{}", &shot)) {
        ctx_done(ctx);
        return;
    }
    if (!api_query_json(req, "date_range", "{}", &date)) {
        json_decref(shot);
        ctx_done(ctx);
        return;
    }
    bool has_shot = json_is_object(shot) ? json_object_size(shot) > 0 : !json_is_null(shot);
    bool has_date = json_is_object(date) ? json_object_size(date) > 0 : !json_is_null(date);
    buf_t err;
    buf_init(&err, 4096);
    if (has_shot && has_date) {
        http_respond_error(req, 400,
                           "Query parameters cannot contain both date_range and shotnum_range");
        goto out;
    }
    if (!has_shot && !has_date) {
        http_respond_error(req, 500, "Both date range and shot number range are None");
        goto out;
    }
    json_t *range = has_shot ? shot : date;
    const char *klo = has_shot ? "min" : "from", *khi = has_shot ? "max" : "to";
    if (!json_is_object(range)) {
        http_respond_error(req, 400,
                           has_shot ? "shotnum_range must be a JSON object"
                                    : "date_range must be a JSON object");
        goto out;
    }
    int64_t lo = 0, hi = 0;
    buf_printf(&err, "validation errors for %s\n",
               has_shot ? "ShotnumConverterRange" : "DateConverterRange");
    size_t head = err.len;
    int r1 = range_bound(json_object_get(range, klo), has_date, &lo, klo, &err);
    int r2 = range_bound(json_object_get(range, khi), has_date, &hi, khi, &err);
    if (err.len > head) {
        while (err.len && err.data[err.len - 1] == '\n')
            err.data[--err.len] = '\0';
        http_respond_error(req, 400, err.data);
        goto out;
    }
    if (r1 == 0 && r2 == 0 && hi < lo) {
        http_respond_error(req, 400,
                           has_shot ? "max cannot be less than min value"
                                    : "to cannot be less than from value");
        goto out;
    }
    if (r1 || r2) {
        /* Valid input of the other kind (ints for dates, floats or dates for shot
         * numbers): the reference's query runs and matches nothing; the same answer. */
        http_respond_error(req, 404, RANGE_NOTHING_FOUND);
        goto out;
    }
    ctx->op.range_by_shotnum = has_shot;
    ctx->op.lo = lo;
    ctx->op.hi = hi;
    app_t *app = req->app;
    if (store_submit(app->store, &ctx->op, range_done, ctx) != 0) {
        ctx_done(ctx);
        http_respond_error(req, 500, "Database operation failed during aggregate");
    }
    json_decref(shot);
    json_decref(date);
    buf_free(&err);
    return;
out:
    json_decref(shot);
    json_decref(date);
    buf_free(&err);
    ctx_done(ctx);
}

/* ---- GET /records/{id_} ---- */

/* After the vector thumbnails were re-drawn. */
static void one_vectors_done(http_request_t *req, json_t *page, void *data)
{
    respond_page(req, data, page, true);
}

static void get_one_done(store_op_t *op)
{
    records_ctx *ctx = op->data;
    http_request_t *req = ctx->req;
    if (op->status != 0) {
        api_respond_store_error(req, op, "Database operation failed during find_one");
        ctx_done(ctx);
        return;
    }
    if (json_array_size(op->result) == 0) {
        http_respond_error(req, 404, "Record cannot be found");
        ctx_done(ctx);
        return;
    }
    /* the reference reads skip/limit only for a record with channels */
    if (json_object_size(json_object_get(json_array_get(op->result, 0), "channels")) > 0 &&
        !api_prefs_vector_ok(req, &ctx->prefs)) {
        ctx_done(ctx);
        return;
    }
    if (ctx->recolour_status != 0) {
        if (ctx->recolour_status == -EINVAL) {
            http_respond_error(req, 400, ctx->recolour_err);
        } else {
            log_warn("record: thumbnails: %s", ctx->recolour_err);
            http_respond_error(req, 500, "Unknown error");
        }
        ctx_done(ctx);
        return;
    }
    if (ctx->vectors) {
        json_t *page = json_array();
        json_array_append(page, json_array_get(op->result, 0));
        ctx_done(ctx);
        api_vector_thumbs(req, page, NULL, &ctx->prefs, true, one_vectors_done, ctx);
        return;
    }
    json_t *page = json_array();
    json_array_append(page, json_array_get(op->result, 0));
    ctx_done(ctx);
    respond_page(req, ctx, page, true);
}

/* On the store's pool thread: the thumbnail colouring of the one record. */
static void recolour_record(store_op_t *op)
{
    records_ctx *ctx = op->post_data;
    ctx->recolour_err[0] = 0;
    ctx->recolour_status = recolour_records(op->result, op->dtypes, &ctx->recolour,
                                            ctx->recolour_err, sizeof(ctx->recolour_err));
}

static void one_prefs_loaded(http_request_t *req, const api_prefs *p, void *data)
{
    records_ctx *ctx = data;
    if (!p) {
        ctx_done(ctx);
        return;
    }
    (void)req;
    query_with_prefs(ctx, p, recolour_record, get_one_done,
                     "Database operation failed during find_one");
}

void api_records_get(http_request_t *req)
{
    records_ctx *ctx = ctx_new(req, STORE_RECORDS_FIND);
    if (!ctx)
        return;
    json_t *cond = NULL;
    if (!api_query_json(req, "conditions", "{}", &cond)) {
        ctx_done(ctx);
        return;
    }
    if (!api_query_bool(req, "truncate", false, &ctx->truncate) ||
        !api_query_int_range(req, "lower_level", 0, 0, 255, &ctx->lower) ||
        !api_query_int_range(req, "upper_level", 255, 0, 255, &ctx->upper) ||
        !api_functions_from_query(req, &ctx->functions)) {
        json_decref(cond);
        ctx_done(ctx);
        return;
    }
    /* {"_id": id, **conditions}: a _id in conditions overrides the path. */
    json_t *merged = json_pack("{ss}", "_id", req->params[0]);
    if (json_is_object(cond))
        json_object_update(merged, cond);
    bool ok = json_is_object(cond) ? api_compile_conditions(req, merged, false, &ctx->filter)
                                   : api_compile_conditions(req, cond, false, &ctx->filter);
    json_decref(merged);
    json_decref(cond);
    if (!ok) {
        ctx_done(ctx);
        return;
    }
    ctx->op.filter = ctx->filter;
    ctx->op.limit = 1;
    api_prefs_load(req, prefs_wanted(req), one_prefs_loaded, ctx);
}

/* ---- DELETE /records/{id_} ---- */

static void delete_finish(records_ctx *ctx)
{
    http_request_t *req = ctx->req;
    app_t *app = req->app;
    objstore_cache_clear(app->objstore);
    ctx_done(ctx);
    if (ctx->failed)
        /* the reference's text, with the store's code; 503 when it cannot be reached */
        http_respond_error(req, ctx->failed, ctx->fail_detail);
    else
        http_respond(req, 204, NULL, "", 0);
}

static void prefix_deleted(int status, size_t removed, void *data)
{
    struct prefix_task *task = data;
    records_ctx *ctx = task->ctx;
    (void)removed;
    if (status < 0 && status != -ENOENT && !ctx->failed) {
        ctx->failed = ogd_unavailable(status) ? 503 : 500;
        snprintf(ctx->fail_detail, sizeof(ctx->fail_detail), "%s when deleting directory '%s'",
                 objstore_error_code(status), ctx->prefixes[task->index]);
    }
    if (--ctx->pending == 0)
        delete_finish(ctx);
}

static void delete_done(store_op_t *op)
{
    records_ctx *ctx = op->data;
    http_request_t *req = ctx->req;
    if (op->status != 0) {
        api_respond_store_error(req, op, "Database operation failed during delete_one");
        ctx_done(ctx);
        return;
    }
    app_t *app = req->app;
    int n = objstore_record_prefixes(req->params[0], ctx->prefixes);
    if (n < 0) {
        /* An id too long for any object key has no objects. */
        n = 0;
    }
    const void *owner = objstore_set_owner(app->objstore, req); /* fair share of S3 */
    ctx->pending = 1; /* held until every delete is submitted */
    for (int i = 0; i < n; i++) {
        ctx->pending++;
        ctx->tasks[i].ctx = ctx;
        ctx->tasks[i].index = i;
        if (objstore_delete_prefix(app->objstore, ctx->prefixes[i], prefix_deleted, &ctx->tasks[i],
                                   NULL) != 0) {
            ctx->pending--;
            ctx->failed = 500;
            snprintf(ctx->fail_detail, sizeof(ctx->fail_detail),
                     "Error when deleting directory '%s'", ctx->prefixes[i]);
        }
    }
    objstore_set_owner(app->objstore, owner);
    if (--ctx->pending == 0)
        delete_finish(ctx);
}

void api_records_delete(http_request_t *req)
{
    records_ctx *ctx = ctx_new(req, STORE_RECORD_DELETE);
    if (!ctx)
        return;
    ctx->op.id = req->params[0];
    app_t *app = req->app;
    if (store_submit(app->store, &ctx->op, delete_done, ctx) != 0) {
        ctx_done(ctx);
        http_respond_error(req, 500, "Database operation failed during delete_one");
    }
}
