/*
 * fneval.c: user functions applied to records (docs/functions.md §9), with no HTTP in
 * sight: the list of functions (fneval_list_*), and fneval_start, the one evaluation entry
 * point. GET /records and /records/{id_} use it in THUMBNAILS mode (through
 * api_functions_respond); /images, the crosshair and /waveforms (api/images.c) in FULL mode
 * on a record {_id}; the export in FULL mode on bounded batches of its records.
 *
 * Flow for one page (all on the caller's loop except the evaluation):
 *   1. fneval_list_add (loop, before the query; the API decodes the `functions` query
 *      parameter): parse each expression (bounded), collect the variable names.
 *   2. fneval_start (loop, after the query): read the latest manifest (store op, off the
 *      loop) to tell "channel absent from this record" from "unknown name".
 *   2b. Unless the caller says its records are complete: one store query for the named
 *      channels the records lack, merged into their "channels" (docs/functions.md §9.2 step 2).
 *   3. One task group over records x variables: every waveform/image object any function
 *      needs on this page is fetched at once through the object store's fan-out
 *      (objstore_get_channel: new key, then legacy); the first failure cancels the rest.
 *   4. work_submit: the page is split into up to EVAL_CHUNKS shares of records, each on
 *      a pool thread: decode the objects (waveform JSON, PNG with the storage bit shift
 *      undone), evaluate every record's functions in order, attach the result channels.
 *      Each record is a distinct JSON tree, so the shares touch disjoint data. When all
 *      are done, the earliest record's error wins, and the caller's callback gets the
 *      results (for /records: one more pool item serialises the page).
 *
 * Per record (docs/functions.md §9.2): a function that uses a manifest channel this record
 * lacks is skipped silently, and so is every function that uses a skipped one; a name that
 * is neither a channel of the record, a manifest channel nor an earlier function is a
 * client mistake (FNEVAL_EINVAL) "{'x'} are not recognised channels/functions". Any
 * evaluation error is a client mistake naming the function and the record (ogd's position:
 * client mistakes are 4xx, not 500).
 *
 * Results (docs/functions.md §9.3-§9.4): waveforms carry a thumbnail drawn by the imaging
 * plotter or their data; images go through imaging/fnimage.h (storage bit depth, strided
 * thumbnail, false colour or the 16-bit original) and their PNG bytes stay in the results
 * object.
 */
#include "fneval/fneval.h"
#include "imaging/plot.h"
#include "util/base64.h"

#include "imaging/colourmap.h"
#include "imaging/png.h"
#include "objstore/keys.h"
#include "store/filter.h"
#include "util/error.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/taskgroup.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Most bytes of stored objects one page's functions may hold at once. */
#define MAX_INPUT_BYTES ((size_t)512 << 20)

struct fneval_list {
    fneval_function *fns;
    size_t n, cap;
    const char **vars; /* distinct variable names over all functions */
    size_t nvars;
    bool overflow; /* more than FNEVAL_VARIABLES_MAX distinct names */
};

typedef struct fn_input {
    struct fn_page *page;
    size_t rec;
    const char *var;
    objstore_kind kind;
    objstore_req_t *handle;
    const objstore_blob_t *blob;
} fn_input;

/* What one function gave for one record. */
typedef struct fn_result {
    bool has;
    unsigned char *png; /* FULL + want_png images */
    size_t png_len;
    fnimage image; /* FULL + keep_images images */
} fn_result;

/* One evaluation: the fneval handed to the caller. */
typedef struct fn_page {
    fneval_ctx ctx;
    fneval_options opts;
    colourmap cm;
    char colour_err[160]; /* why the levels / colour map cannot colour, or "" */
    fneval_done_cb done;
    void *done_data;
    bool aborting;       /* inside fneval_cancel: a completion there waits until it returns */
    bool finish_pending; /* page_finish was called while aborting */
    bool canceled;       /* page_cancel ran: the caller gets FNEVAL_EINTERNAL */
    fn_result *results;  /* nrec x list->n */
    size_t nrec;
    filter_t *dep_filter;
    fneval_list *list;
    json_t *records;
    store_op_t op;
    json_t *manifest; /* channels object, owned reference or NULL */
    fn_input *inputs;
    size_t ninputs;
    size_t input_bytes; /* held so far, capped by MAX_INPUT_BYTES */
    taskgroup_t tg;
    struct fn_chunk *chunks;
    size_t nchunks, chunks_pending;
    int status; /* fneval_error */
    int code;   /* FNEVAL_EBACKEND: the store's or object store's code */
    char err[FN_ERR_MAX + 256];
} fn_page;

/* A share of the page's records evaluated on one pool thread; errors stay here until
 * every chunk is done, then the earliest record's error wins. */
typedef struct fn_chunk {
    fn_page *pg;
    size_t from, to;
    work_t *work;
    int status; /* fneval_error */
    char err[FN_ERR_MAX + 256];
} fn_chunk;

/* Pool threads used for one page's evaluation. */
#define EVAL_CHUNKS 4

/* ---- 1. the list ---- */

fneval_list *fneval_list_new(arena_t *a, size_t n)
{
    fneval_list *list = arena_alloc(a, sizeof *list);
    fneval_function *fns = arena_alloc(a, (n ? n : 1) * sizeof *fns);
    const char **vars = arena_alloc(a, FNEVAL_VARIABLES_MAX * sizeof *vars);
    if (!list || !fns || !vars)
        return NULL;
    *list = (fneval_list){.fns = fns, .cap = n, .vars = vars};
    return list;
}

static void collect_var(void *data, const char *name)
{
    fneval_list *list = data;
    for (size_t i = 0; i < list->nvars; i++)
        if (strcmp(list->vars[i], name) == 0)
            return;
    if (list->nvars == FNEVAL_VARIABLES_MAX) {
        list->overflow = true;
        return;
    }
    list->vars[list->nvars++] = name;
}

int fneval_list_add(fneval_list *list, arena_t *a, const char *name, const char *expression,
                    char *err)
{
    if (list->n == list->cap) {
        snprintf(err, FN_ERR_MAX, "too many functions");
        return -EINVAL;
    }
    fneval_function *fn = &list->fns[list->n];
    *fn =
        (fneval_function){.name = arena_strdup(a, name), .expression = arena_strdup(a, expression)};
    if (!fn->name || !fn->expression)
        return -ENOMEM;
    if (fn_parse(a, fn->expression, &fn->tree, err) != 0)
        return -EINVAL;
    fn_variables(fn->tree, collect_var, list);
    list->n++;
    return 0;
}

bool fneval_list_too_many_names(const fneval_list *list)
{
    return list->overflow;
}

void fneval_projection(arena_t *a, const fneval_list *list, const char *const **projection,
                       size_t *n)
{
    if (*n == 0)
        return;
    const char **out = arena_alloc(a, (*n + list->nvars) * sizeof *out);
    if (!out)
        return;
    size_t k = 0;
    bool whole_channels = false;
    for (size_t i = 0; i < *n; i++) {
        const char *p = (*projection)[i];
        if (strcmp(p, "channels") == 0)
            whole_channels = true;
        bool sub = false;
        for (size_t v = 0; v < list->nvars; v++) {
            size_t vl = strlen(list->vars[v]);
            if (strncmp(p, "channels.", 9) == 0 && strncmp(p + 9, list->vars[v], vl) == 0 &&
                p[9 + vl] == '.')
                sub = true;
        }
        if (!sub)
            out[k++] = p;
    }
    for (size_t v = 0; v < list->nvars && !whole_channels; v++) {
        char *entry = arena_alloc(a, strlen(list->vars[v]) + 10);
        if (!entry)
            return;
        strcpy(entry, "channels.");
        strcat(entry, list->vars[v]);
        bool present = false;
        for (size_t i = 0; i < k; i++)
            if (strcmp(out[i], entry) == 0)
                present = true;
        if (!present)
            out[k++] = entry;
    }
    *projection = out;
    *n = k;
}

/* ---- helpers on records ---- */

static json_t *record_channel(json_t *rec, const char *name)
{
    return json_object_get(json_object_get(rec, "channels"), name);
}

static const char *channel_dtype(json_t *ch)
{
    const char *t =
        json_string_value(json_object_get(json_object_get(ch, "metadata"), "channel_dtype"));
    return t ? t : "scalar";
}

static bool page_fail(fn_page *pg, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool page_fail(fn_page *pg, int status, const char *fmt, ...)
{
    if (pg->status)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pg->err, sizeof pg->err, fmt, ap);
    va_end(ap);
    pg->status = status;
    return false;
}

/* A failure of the store or the object store: the code says how, detail what to say when
 * that code is no better known. */
static void page_fail_code(fn_page *pg, int code, const char *detail)
{
    if (pg->status)
        return;
    page_fail(pg, FNEVAL_EBACKEND, "%s", detail);
    pg->code = code;
}

static void page_free(fn_page *pg)
{
    for (size_t i = 0; i < pg->ninputs; i++)
        if (pg->inputs[i].blob)
            objstore_blob_unref(pg->inputs[i].blob);
    free(pg->inputs);
    free(pg->chunks);
    for (size_t i = 0; pg->results && i < pg->nrec * pg->list->n; i++) {
        free(pg->results[i].png);
        fnimage_free(&pg->results[i].image);
    }
    free(pg->results);
    filter_free(pg->dep_filter);
    json_decref(pg->records);
    json_decref(pg->manifest);
    free(pg);
}

static void page_finish(fn_page *pg);

/* Cancels the page's store op, fetches and evaluation; done still follows
 * (FNEVAL_EINTERNAL). */
static void page_cancel(fn_page *pg)
{
    pg->canceled = true;
    store_cancel(&pg->op);
    taskgroup_cancel(&pg->tg, -ECANCELED);
    for (size_t i = 0; i < pg->nchunks; i++)
        if (pg->chunks[i].work)
            work_cancel(pg->chunks[i].work);
}

void fneval_cancel(fneval *ev, void (*then)(void *then_data), void *then_data)
{
    fn_page *pg = (fn_page *)ev;
    pg->aborting = true;
    page_cancel(pg);
    if (then)
        then(then_data);
    pg->aborting = false;
    if (pg->finish_pending)
        page_finish(pg);
}

/* Hands the results to the caller (who frees them). */
static void page_finish(fn_page *pg)
{
    if (pg->aborting) {
        pg->finish_pending = true;
        return;
    }
    pg->finish_pending = false;
    if (pg->status == FNEVAL_EBACKEND)
        log_warn("functions: %s (%s)", pg->err, ogd_strerror(pg->code));
    else if (pg->status == FNEVAL_EINTERNAL)
        log_warn("functions: %s", pg->err);
    pg->done((fneval *)pg, pg->done_data);
}

fneval_error fneval_status(const fneval *ev, const char **message, int *code)
{
    const fn_page *pg = (const fn_page *)ev;
    *message = pg->err;
    *code = pg->status == FNEVAL_EBACKEND ? pg->code : 0;
    return (fneval_error)pg->status;
}

json_t *fneval_records(const fneval *res)
{
    return ((const fn_page *)res)->records;
}

static const fn_result *result_at(const fn_page *pg, size_t rec, size_t fn)
{
    if (!pg->results || rec >= pg->nrec || fn >= pg->list->n)
        return NULL;
    return &pg->results[rec * pg->list->n + fn];
}

bool fneval_has(const fneval *res, size_t rec, size_t fn)
{
    const fn_result *r = result_at((const fn_page *)res, rec, fn);
    return r && r->has;
}

bool fneval_png(const fneval *res, size_t rec, size_t fn, const unsigned char **png, size_t *len)
{
    const fn_result *r = result_at((const fn_page *)res, rec, fn);
    if (!r || !r->png)
        return false;
    *png = r->png;
    *len = r->png_len;
    return true;
}

const fnimage *fneval_image(const fneval *res, size_t rec, size_t fn)
{
    const fn_result *r = result_at((const fn_page *)res, rec, fn);
    return r && r->image.w ? &r->image : NULL;
}

void fneval_free(fneval *res)
{
    if (res)
        page_free((fn_page *)res);
}

size_t fneval_list_count(const fneval_list *list)
{
    return list ? list->n : 0;
}

const fneval_function *fneval_list_get(const fneval_list *list, size_t i)
{
    return &list->fns[i];
}

long fneval_list_find(const fneval_list *list, const char *name)
{
    for (size_t i = 0; list && i < list->n; i++)
        if (strcmp(list->fns[i].name, name) == 0)
            return (long)i;
    return -1;
}

int fneval_list_types(arena_t *a, fneval_list *list, json_t *manifest_channels, size_t *bad_index,
                      char *err)
{
    return fneval_check(a, manifest_channels, list->fns, list->n, bad_index, err);
}

/* ---- 4. evaluation on the pool ---- */

/* Values of one record: channels loaded on demand, function results as they come. */
typedef struct rec_env {
    fn_page *pg;
    size_t rec;
    json_t *record;
    const char *names[FNEVAL_VARIABLES_MAX + FNEVAL_FUNCTIONS_MAX];
    fn_value values[FNEVAL_VARIABLES_MAX + FNEVAL_FUNCTIONS_MAX];
    bool from_manifest[FNEVAL_VARIABLES_MAX + FNEVAL_FUNCTIONS_MAX];
    int bit_depth[FNEVAL_VARIABLES_MAX + FNEVAL_FUNCTIONS_MAX]; /* images: 0 = not known */
    size_t n;
    char err[FN_ERR_MAX];
    /* channels of the record that could not be loaded: an error only for a function
     * that is evaluated with them (one skipped for another reason stays skipped) */
    const char *bad_names[FNEVAL_VARIABLES_MAX];
    int bad_status[FNEVAL_VARIABLES_MAX];
    char bad_err[FNEVAL_VARIABLES_MAX][FN_ERR_MAX];
    size_t nbad;
} rec_env;

static fn_input *find_input(fn_page *pg, size_t rec, const char *var)
{
    for (size_t i = 0; i < pg->ninputs; i++)
        if (pg->inputs[i].rec == rec && strcmp(pg->inputs[i].var, var) == 0)
            return &pg->inputs[i];
    return NULL;
}

static int decode_waveform(const objstore_blob_t *b, fn_value *v, char *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)b->data, b->len, 0, &jerr);
    json_t *x = json_object_get(doc, "x"), *y = json_object_get(doc, "y");
    if (!json_is_array(x) || !json_is_array(y)) {
        json_decref(doc);
        snprintf(err, FN_ERR_MAX, "stored waveform is not a JSON object with x and y arrays");
        return -EINVAL;
    }
    size_t nx = json_array_size(x), ny = json_array_size(y);
    if (nx > FN_MAX_ELEMENTS || ny > FN_MAX_ELEMENTS) {
        json_decref(doc);
        snprintf(err, FN_ERR_MAX, "stored waveform is too large");
        return -E2BIG;
    }
    v->type = FN_WAVEFORM;
    v->nx = nx;
    v->ny = ny;
    v->x = malloc((nx ? nx : 1) * sizeof(double));
    v->y = malloc((ny ? ny : 1) * sizeof(double));
    if (!v->x || !v->y) {
        json_decref(doc);
        fn_value_free(v);
        snprintf(err, FN_ERR_MAX, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < nx; i++) {
        json_t *e = json_array_get(x, i);
        v->x[i] = json_is_number(e) ? json_number_value(e) : NAN;
    }
    for (size_t i = 0; i < ny; i++) {
        json_t *e = json_array_get(y, i);
        v->y[i] = json_is_number(e) ? json_number_value(e) : NAN;
    }
    json_decref(doc);
    return 0;
}

/* PNG -> doubles with the storage shift undone (docs/functions.md §9.2 step 3). */
static int decode_image(const objstore_blob_t *b, json_t *bit_depth, fn_value *v, char *err)
{
    png_image img;
    int rc = png_decode(b->data, b->len, &img);
    if (rc) {
        snprintf(err, FN_ERR_MAX, "stored image cannot be decoded: %s", png_strerror(rc));
        return rc;
    }
    size_t n = (size_t)img.width * img.height;
    if (img.channels != 1 || n > FN_MAX_ELEMENTS) {
        png_image_free(&img);
        snprintf(err, FN_ERR_MAX, "stored image is not greyscale or is too large");
        return -EINVAL;
    }
    double scale = 1;
    if (json_is_integer(bit_depth)) {
        json_int_t bd = json_integer_value(bit_depth);
        if (bd > 0 && bd < 8)
            scale = ldexp(1, (int)(8 - bd));
        else if (bd > 8 && bd < 16)
            scale = ldexp(1, (int)(16 - bd));
    }
    v->type = FN_IMAGE;
    v->w = img.width;
    v->h = img.height;
    v->pix = malloc((n ? n : 1) * sizeof(double));
    if (!v->pix) {
        png_image_free(&img);
        snprintf(err, FN_ERR_MAX, "out of memory");
        return -ENOMEM;
    }
    for (uint32_t r = 0; r < img.height; r++) {
        const unsigned char *row = (const unsigned char *)img.pixels + r * img.stride;
        for (uint32_t c = 0; c < img.width; c++) {
            double p = img.bit_depth == 16 ? ((const uint16_t *)row)[c] : row[c];
            v->pix[(size_t)r * img.width + c] = p / scale;
        }
    }
    png_image_free(&img);
    return 0;
}

static fn_value *env_find(rec_env *env, const char *name)
{
    for (size_t i = env->n; i-- > 0;)
        if (strcmp(env->names[i], name) == 0)
            return &env->values[i];
    return NULL;
}

/* Loads channel `name` of the record into the environment; -EINVAL with err. */
static int env_load_channel(rec_env *env, const char *name, json_t *ch)
{
    fn_value v = {0};
    const char *dtype = channel_dtype(ch);
    fn_type_t t;
    if (!fn_type_parse(dtype, &t))
        t = FN_SCALAR;
    if (t == FN_SCALAR) {
        json_t *d = json_object_get(ch, "data");
        if (!json_is_number(d)) {
            snprintf(env->err, FN_ERR_MAX, "channel '%s' has no numeric value", name);
            return -EINVAL;
        }
        v.type = FN_SCALAR;
        v.scalar = json_number_value(d);
    } else if (t == FN_WAVEFORM || t == FN_IMAGE) {
        fn_input *in = find_input(env->pg, env->rec, name);
        if (!in || !in->blob) {
            snprintf(env->err, FN_ERR_MAX, "channel '%s' was not fetched", name);
            return -EINVAL;
        }
        json_t *meta = json_object_get(ch, "metadata");
        int rc = t == FN_WAVEFORM
                     ? decode_waveform(in->blob, &v, env->err)
                     : decode_image(in->blob, json_object_get(meta, "bit_depth"), &v, env->err);
        if (rc)
            return rc == -ENOMEM ? rc : -EIO;
        v.x_units = json_string_value(json_object_get(meta, "x_units"));
        json_t *bd = json_object_get(meta, "bit_depth");
        if (t == FN_IMAGE && json_is_integer(bd) && json_integer_value(bd) > 0 &&
            json_integer_value(bd) <= 16)
            env->bit_depth[env->n] = (int)json_integer_value(bd);
    } else {
        v.type = t; /* float_image / vector: typed, but evaluation refuses them */
    }
    env->names[env->n] = name;
    env->values[env->n] = v;
    env->from_manifest[env->n] = true;
    if (t != FN_IMAGE)
        env->bit_depth[env->n] = 0;
    env->n++;
    return 0;
}

static bool env_type(void *data, const char *name, fn_typeinfo *out)
{
    rec_env *env = data;
    for (size_t i = env->n; i-- > 0;)
        if (strcmp(env->names[i], name) == 0) {
            out->type = env->values[i].type;
            out->manifest = env->from_manifest[i];
            return true;
        }
    return false;
}

static const fn_value *env_value(void *data, const char *name)
{
    return env_find(data, name);
}

/* A waveform's {"x","y"} (NaN -> null, as the stored form). */
static json_t *waveform_data(const fn_value *v)
{
    json_t *x = json_array(), *y = json_array(), *d = json_object();
    if (!x || !y || !d) {
        json_decref(x);
        json_decref(y);
        json_decref(d);
        return NULL;
    }
    for (size_t i = 0; i < v->nx; i++)
        json_array_append_new(x, isfinite(v->x[i]) ? json_real(v->x[i]) : json_null());
    for (size_t i = 0; i < v->ny; i++)
        json_array_append_new(y, isfinite(v->y[i]) ? json_real(v->y[i]) : json_null());
    json_object_set_new(d, "x", x);
    json_object_set_new(d, "y", y);
    return d;
}

/* The image part of a result (docs/functions.md §9.3 thumbnail or §9.4 PNG); 0, or an
 * fneval_error with the problem in err (negated for a colouring error, whose text is
 * given as it is). */
static int image_result(fn_page *pg, const fn_value *v, int bit_depth, fn_result *res, json_t *ch,
                        json_t *meta, char *err)
{
    const ogd_config *cfg = pg->ctx.cfg;
    json_object_set_new(meta, "x_pixel_size", json_integer((json_int_t)v->w));
    json_object_set_new(meta, "y_pixel_size", json_integer((json_int_t)v->h));
    bool colours =
        pg->opts.mode == FNEVAL_THUMBNAILS || (pg->opts.want_png && !pg->opts.original_image);
    if (colours && pg->colour_err[0]) {
        snprintf(err, FN_ERR_MAX, "%s", pg->colour_err);
        return -FNEVAL_EINVAL;
    }
    int rc;
    if (pg->opts.mode == FNEVAL_THUMBNAILS) {
        falsecolour_levels lv = pg->opts.levels;
        lv.limit_bit_depth = 8;
        uint8_t *rgba = NULL;
        uint32_t tw = 0, th = 0;
        unsigned char *png = NULL;
        size_t len = 0;
        int status = 0;
        rc = fnimage_thumbnail_rgba(
            v->pix, v->w, v->h, bit_depth, (uint32_t)cfg->images.thumbnail_size[0],
            (uint32_t)cfg->images.thumbnail_size[1], &lv, &pg->cm, &rgba, &tw, &th);
        if (rc == -EDOM) {
            snprintf(err, FN_ERR_MAX,
                     "the image (%zu x %zu pixels) is narrower or shorter than the thumbnail "
                     "size (%d x %d)",
                     v->w, v->h, cfg->images.thumbnail_size[0], cfg->images.thumbnail_size[1]);
            status = FNEVAL_EINVAL;
        } else if (rc == 0) {
            rc = png_encode_rgba(rgba, tw, th, PNG_COMPRESSION_DEFAULT, &png, &len);
        }
        free(rgba);
        char *text = rc == 0 ? base64_encode(png, len, NULL) : NULL;
        free(png);
        if (!status && !text) {
            snprintf(err, FN_ERR_MAX, "the thumbnail could not be made");
            status = FNEVAL_EINTERNAL;
        }
        if (text) {
            if (pg->opts.truncate && strlen(text) > 50)
                text[50] = '\0';
            json_object_set_new(ch, "thumbnail", json_string(text));
            free(text);
        }
        return status;
    }
    fnimage img;
    rc = fnimage_make(v->pix, v->w, v->h, bit_depth, &img);
    if (rc) {
        snprintf(err, FN_ERR_MAX, "%s",
                 rc == -E2BIG ? "the image is too large or empty" : "out of memory");
        return rc == -E2BIG ? FNEVAL_EINVAL : FNEVAL_EINTERNAL;
    }
    if (pg->opts.want_png) {
        unsigned char *png = NULL;
        size_t len = 0;
        if (pg->opts.original_image) {
            uint16_t *g = NULL;
            rc = fnimage_gray16(&img, &g);
            if (rc == 0)
                rc = png_encode_gray_deflate(g, img.w, img.h, 16, 0,
                                             cfg->images.png_compression_level, &png, &len);
            free(g);
        } else {
            uint8_t *rgba = NULL;
            rc = fnimage_rgba(&img, &pg->opts.levels, &pg->cm, &rgba);
            if (rc == 0)
                rc = png_encode_rgba_deflate(rgba, img.w, img.h, cfg->images.png_compression_level,
                                             &png, &len);
            free(rgba);
        }
        if (rc) {
            fnimage_free(&img);
            snprintf(err, FN_ERR_MAX, "the image could not be encoded");
            return FNEVAL_EINTERNAL;
        }
        res->png = png;
        res->png_len = len;
    }
    if (pg->opts.keep_images)
        res->image = img;
    else
        fnimage_free(&img);
    return 0;
}

/* The result channel of docs/functions.md §9.3 (THUMBNAILS) or §9.4 (FULL); runs on the pool
 * thread evaluating the chunk. 0, or an fneval_error with the problem in err (negated as
 * image_result says). */
static int result_channel(fn_page *pg, const fn_value *v, int bit_depth, fn_result *res,
                          json_t **out, char *err)
{
    const ogd_config *cfg = pg->ctx.cfg;
    json_t *meta = json_pack("{ss}", "channel_dtype", fn_type_name(v->type));
    json_t *ch = json_object();
    if (!meta || !ch) {
        json_decref(meta);
        json_decref(ch);
        snprintf(err, FN_ERR_MAX, "out of memory");
        return FNEVAL_EINTERNAL;
    }
    json_object_set_new(ch, "metadata", meta);
    int status = 0;
    if (v->type == FN_SCALAR) {
        json_object_set_new(ch, "data", isfinite(v->scalar) ? json_real(v->scalar) : json_null());
    } else if (v->type == FN_WAVEFORM) {
        if (v->x_units)
            json_object_set_new(meta, "x_units", json_string(v->x_units));
        if (pg->opts.mode == FNEVAL_FULL) {
            json_t *d = waveform_data(v);
            if (!d)
                status = FNEVAL_EINTERNAL;
            json_object_set_new(ch, "data", d);
        } else {
            unsigned char *png = NULL;
            size_t len = 0;
            int rc = plot_waveform_png(v->x, v->y, v->nx < v->ny ? v->nx : v->ny,
                                       (uint32_t)cfg->waveforms.thumbnail_size[0],
                                       (uint32_t)cfg->waveforms.thumbnail_size[1],
                                       cfg->waveforms.line_width, &png, &len);
            char *text = rc == 0 ? base64_encode(png, len, NULL) : NULL;
            free(png);
            if (!text)
                status = FNEVAL_EINTERNAL;
            else
                json_object_set_new(ch, "thumbnail", json_string(text));
            free(text);
        }
        if (status)
            snprintf(err, FN_ERR_MAX, "out of memory");
    } else if (v->type == FN_IMAGE) {
        status = image_result(pg, v, bit_depth, res, ch, meta, err);
    }
    if (status) {
        json_decref(ch);
        return status;
    }
    res->has = true;
    *out = ch;
    return 0;
}

/* The overall bit depth of a function's image (docs/functions.md §9.5): the largest known
 * bit depth of the image values it uses, 16 when none is known. */
typedef struct depth_scan {
    rec_env *env;
    int depth;
} depth_scan;

static void scan_depth(void *data, const char *name)
{
    depth_scan *ds = data;
    for (size_t i = ds->env->n; i-- > 0;)
        if (strcmp(ds->env->names[i], name) == 0) {
            if (ds->env->values[i].type == FN_IMAGE && ds->env->bit_depth[i] > ds->depth)
                ds->depth = ds->env->bit_depth[i];
            return;
        }
}

typedef struct name_set {
    const char *names[FNEVAL_VARIABLES_MAX];
    size_t n;
} name_set;

static void set_add(name_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return;
    if (s->n < FNEVAL_VARIABLES_MAX)
        s->names[s->n++] = name;
}

static bool set_has(const name_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return true;
    return false;
}

typedef struct var_check {
    rec_env *env;
    json_t *manifest;
    name_set *undefined;
    name_set unknown;
    bool skip;
    int bad; /* index + 1 into env->bad_names of the first unusable channel, or 0 */
} var_check;

static void check_var(void *data, const char *name)
{
    var_check *vc = data;
    if (env_find(vc->env, name))
        return;
    for (size_t i = 0; i < vc->env->nbad; i++)
        if (strcmp(vc->env->bad_names[i], name) == 0) {
            if (!vc->bad)
                vc->bad = (int)i + 1;
            return;
        }
    if (set_has(vc->undefined, name) || json_object_get(vc->manifest, name))
        vc->skip = true;
    else
        set_add(&vc->unknown, name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool chunk_fail(fn_chunk *ck, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool chunk_fail(fn_chunk *ck, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ck->err, sizeof ck->err, fmt, ap);
    va_end(ap);
    ck->status = status;
    return false;
}

/* Evaluates every function for one record; false with ck->err set on failure. */
static bool evaluate_record(fn_chunk *ck, size_t rec, rec_env *env)
{
    fn_page *pg = ck->pg;
    json_t *record = json_array_get(pg->records, rec);
    const char *id = json_string_value(json_object_get(record, "_id"));
    fneval_list *list = pg->list;
    for (size_t i = 0; i < env->n; i++)
        fn_value_free(&env->values[i]);
    env->n = 0;
    env->nbad = 0;
    env->pg = pg;
    env->rec = rec;
    env->record = record;
    bool ok = true;
    /* the record's channels that functions name */
    for (size_t i = 0; i < list->nvars && ok; i++) {
        json_t *ch = record_channel(record, list->vars[i]);
        int rc = ch ? env_load_channel(env, list->vars[i], ch) : 0;
        if (rc) {
            env->bad_names[env->nbad] = list->vars[i];
            env->bad_status[env->nbad] = rc;
            memcpy(env->bad_err[env->nbad], env->err, FN_ERR_MAX);
            env->nbad++;
        }
    }
    name_set *undefined = calloc(1, sizeof *undefined);
    if (!undefined)
        ok = chunk_fail(ck, FNEVAL_EINTERNAL, "out of memory");
    json_t *channels = json_object_get(record, "channels");
    if (ok && !json_is_object(channels)) {
        channels = json_object();
        json_object_set_new(record, "channels", channels);
    }
    for (size_t f = 0; f < list->n && ok; f++) {
        fneval_function *fn = &list->fns[f];
        var_check vc = {.env = env, .manifest = pg->manifest, .undefined = undefined};
        fn_variables(fn->tree, check_var, &vc);
        if (vc.skip) {
            set_add(undefined, fn->name);
            continue;
        }
        if (vc.unknown.n) {
            qsort(vc.unknown.names, vc.unknown.n, sizeof(char *), cmp_str);
            char names[FN_ERR_MAX] = "";
            size_t len = 0;
            for (size_t i = 0; i < vc.unknown.n && len < sizeof names; i++)
                len += (size_t)snprintf(names + len, sizeof names - len, "%s'%s'", i ? ", " : "",
                                        vc.unknown.names[i]);
            ok = chunk_fail(ck, FNEVAL_EINVAL, "{%s} are not recognised channels/functions", names);
            break;
        }
        if (vc.bad) {
            /* a value the client cannot use is a client mistake; stored bytes that do not
             * decode, an internal error */
            size_t b = (size_t)vc.bad - 1;
            ok = chunk_fail(ck, env->bad_status[b] == -EINVAL ? FNEVAL_EINVAL : FNEVAL_EINTERNAL,
                            "Channel '%s' of record '%s' cannot be used: %s", env->bad_names[b],
                            id ? id : "", env->bad_err[b]);
            break;
        }
        fn_typeinfo t;
        if (fn_typecheck(fn->tree, env_type, env, &t, env->err) != 0) {
            ok = chunk_fail(ck, FNEVAL_EINVAL, "Function '%s' on record '%s': %s", fn->name,
                            id ? id : "", env->err);
            break;
        }
        fn_value v = {0};
        if (fn_eval(fn->tree, env_value, env, &v, env->err) != 0) {
            ok = chunk_fail(ck, FNEVAL_EINVAL, "Function '%s' on record '%s': %s", fn->name,
                            id ? id : "", env->err);
            break;
        }
        json_t *rch = NULL;
        depth_scan ds = {env, 0};
        if (v.type == FN_IMAGE)
            fn_variables(fn->tree, scan_depth, &ds);
        int status = result_channel(pg, &v, ds.depth ? ds.depth : 16,
                                    &pg->results[rec * list->n + f], &rch, env->err);
        if (status < 0) { /* a colouring error: the text of docs/api.md §4.10 as it is */
            fn_value_free(&v);
            ok = chunk_fail(ck, -status, "%s", env->err);
            break;
        }
        if (status) {
            fn_value_free(&v);
            ok = chunk_fail(ck, status, "Function '%s' on record '%s': %s", fn->name, id ? id : "",
                            env->err);
            break;
        }
        json_object_set_new(channels, fn->name, rch);
        if (env->n == sizeof env->names / sizeof env->names[0]) {
            fn_value_free(&v);
            ok = chunk_fail(ck, FNEVAL_EINVAL, "too many functions");
            break;
        }
        env->names[env->n] = fn->name;
        env->values[env->n] = v;
        env->from_manifest[env->n] = t.manifest;
        env->bit_depth[env->n] = ds.depth ? ds.depth : 16;
        env->n++;
    }
    for (size_t i = 0; i < env->n; i++)
        fn_value_free(&env->values[i]);
    free(undefined);
    return ok;
}

static void evaluate_chunk(void *data)
{
    fn_chunk *ck = data;
    rec_env *env = calloc(1, sizeof *env);
    if (!env) {
        chunk_fail(ck, FNEVAL_EINTERNAL, "out of memory");
        return;
    }
    for (size_t r = ck->from; r < ck->to; r++)
        if (!evaluate_record(ck, r, env))
            break;
    free(env);
}

static void chunk_evaluated(void *data, int status)
{
    fn_chunk *ck = data;
    fn_page *pg = ck->pg;
    ck->work = NULL;
    if (status && !ck->status)
        chunk_fail(ck, FNEVAL_EINTERNAL, "Unknown error");
    if (--pg->chunks_pending > 0)
        return;
    for (size_t i = 0; i < pg->nchunks; i++)
        if (pg->chunks[i].status) {
            page_fail(pg, pg->chunks[i].status, "%s", pg->chunks[i].err);
            break;
        }
    /* the inputs are no longer needed: release the bytes before the caller goes on */
    for (size_t i = 0; i < pg->ninputs; i++)
        if (pg->inputs[i].blob) {
            objstore_blob_unref(pg->inputs[i].blob);
            pg->inputs[i].blob = NULL;
        }
    if (pg->canceled)
        page_fail(pg, FNEVAL_EINTERNAL, "Unknown error");
    page_finish(pg);
}

/* Splits the page over EVAL_CHUNKS pool items. */
static void evaluate_page(fn_page *pg)
{
    size_t nrec = json_array_size(pg->records);
    size_t n = nrec < EVAL_CHUNKS ? (nrec ? nrec : 1) : EVAL_CHUNKS;
    pg->chunks = calloc(n, sizeof *pg->chunks);
    if (!pg->chunks) {
        page_fail(pg, FNEVAL_EINTERNAL, "Unknown error");
        page_finish(pg);
        return;
    }
    pg->chunks_pending = 1; /* held while submitting */
    for (size_t i = 0; i < n; i++) {
        fn_chunk *ck = &pg->chunks[i];
        *ck = (fn_chunk){.pg = pg, .from = nrec * i / n, .to = nrec * (i + 1) / n};
        pg->nchunks++;
        pg->chunks_pending++;
        if (work_submit(pg->ctx.loop, evaluate_chunk, chunk_evaluated, ck, &ck->work) != 0) {
            chunk_fail(ck, FNEVAL_EINTERNAL, "Unknown error");
            pg->chunks_pending--;
            break;
        }
    }
    /* release the hold: a fake completion of a chunk that did no work */
    fn_chunk hold = {.pg = pg};
    if (--pg->chunks_pending == 0) {
        pg->chunks_pending = 1;
        chunk_evaluated(&hold, 0);
    }
}

/* ---- 3. the fan-out ---- */

static void input_got(int status, const objstore_blob_t *blob, void *data)
{
    task_t *t = data;
    fn_input *in = t->arg;
    in->handle = NULL;
    if (status == 0) {
        in->page->input_bytes += blob->len;
        if (in->page->input_bytes > MAX_INPUT_BYTES) {
            page_fail(in->page, FNEVAL_EINVAL,
                      "The functions need more than %zu MB of channel data for this page: "
                      "ask for fewer records",
                      MAX_INPUT_BYTES >> 20);
            taskgroup_task_done(t, -E2BIG);
            return;
        }
        in->blob = objstore_blob_ref(blob);
    } else if (status != -ECANCELED) {
        json_t *rec = json_array_get(in->page->records, in->rec);
        const char *id = json_string_value(json_object_get(rec, "_id"));
        if (ogd_unavailable(status)) { /* storage down (page_finish logs it once) */
            page_fail_code(in->page, status, "Unknown error");
        } else {
            page_fail(in->page, FNEVAL_EINTERNAL,
                      "%s for channel '%s' of record '%s' could not be read (%s)",
                      objstore_kind_class(in->kind), in->var, id ? id : "",
                      objstore_error_code(status));
        }
    }
    taskgroup_task_done(t, status);
}

static int input_start(task_t *t)
{
    fn_input *in = t->arg;
    fn_page *pg = in->page;
    json_t *rec = json_array_get(in->page->records, in->rec);
    const char *id = json_string_value(json_object_get(rec, "_id"));
    /* the caller owns its transfers: S3 connections are shared fairly between owners */
    const void *owner = objstore_set_owner(pg->ctx.objstore, pg->ctx.owner);
    int rc = objstore_get_channel(pg->ctx.objstore, in->kind, id ? id : "", in->var, input_got, t,
                                  &in->handle);
    objstore_set_owner(pg->ctx.objstore, owner);
    if (rc)
        page_fail(in->page, FNEVAL_EINTERNAL,
                  "%s for channel '%s' of record '%s' could not be read (%s)",
                  objstore_kind_class(in->kind), in->var, id ? id : "", objstore_error_code(rc));
    return rc;
}

static void input_cancel(task_t *t)
{
    fn_input *in = t->arg;
    if (in->handle)
        objstore_cancel(in->handle);
}

static void inputs_fetched(taskgroup_t *tg, int status, void *data)
{
    fn_page *pg = data;
    (void)tg;
    if (status) {
        page_fail(pg, FNEVAL_EINTERNAL, "Unknown error");
        page_finish(pg);
        return;
    }
    evaluate_page(pg);
}

static bool deps_fetch(fn_page *pg);
static void fetch_inputs(fn_page *pg);

static void manifest_read(store_op_t *op)
{
    fn_page *pg = op->data;
    if (op->status != 0 && op->status != -ENOENT) {
        page_fail_code(pg, op->status, "Unknown error");
        store_op_cleanup(op);
        page_finish(pg);
        return;
    }
    if (pg->canceled) {
        store_op_cleanup(op);
        page_fail(pg, FNEVAL_EINTERNAL, "Unknown error");
        page_finish(pg);
        return;
    }
    if (op->status == 0)
        pg->manifest = json_incref(json_object_get(op->result, "channels"));
    store_op_cleanup(op);
    if (!pg->opts.channels_complete && deps_fetch(pg))
        return;
    fetch_inputs(pg);
}

/* ---- 2b. the channels the records lack (docs/functions.md §9.2 step 2) ---- */

static const char *str_or_empty(json_t *s)
{
    const char *v = json_string_value(s);
    return v ? v : "";
}

/* True when `name` may be a stored channel the record lacks: not a function of the list
 * unless the manifest knows it too. */
static bool may_be_channel(const fn_page *pg, const char *name)
{
    return fneval_list_find(pg->list, name) < 0 || json_object_get(pg->manifest, name);
}

static void deps_read(store_op_t *op)
{
    fn_page *pg = op->data;
    if (op->status != 0 || pg->canceled) {
        if (op->status)
            page_fail_code(pg, op->status, "Unknown error");
        else
            page_fail(pg, FNEVAL_EINTERNAL, "Unknown error");
        if (op->status && op->status != -ECANCELED)
            log_warn("functions: dependency lookup: %s", op->err);
        store_op_cleanup(op);
        page_finish(pg);
        return;
    }
    size_t nrec = json_array_size(pg->records);
    bool *found = calloc(nrec ? nrec : 1, sizeof *found);
    if (!found) {
        store_op_cleanup(op);
        page_fail(pg, FNEVAL_EINTERNAL, "Unknown error");
        page_finish(pg);
        return;
    }
    size_t i;
    json_t *doc;
    json_array_foreach(op->result, i, doc)
    {
        const char *id = json_string_value(json_object_get(doc, "_id"));
        json_t *chans = json_object_get(doc, "channels");
        for (size_t r = 0; id && r < nrec; r++) {
            json_t *rec = json_array_get(pg->records, r);
            if (strcmp(id, str_or_empty(json_object_get(rec, "_id"))) != 0)
                continue;
            found[r] = true;
            json_t *mine = json_object_get(rec, "channels");
            if (!json_is_object(mine)) {
                mine = json_object();
                json_object_set_new(rec, "channels", mine);
            }
            const char *name;
            json_t *ch;
            json_object_foreach(chans, name, ch)
            {
                if (!json_object_get(mine, name))
                    json_object_set(mine, name, ch);
            }
        }
    }
    store_op_cleanup(op);
    for (size_t r = 0; r < nrec; r++)
        if (!found[r] && json_object_get(json_array_get(pg->records, r), "_id")) {
            page_fail(pg, FNEVAL_ENOTFOUND, "Record cannot be found");
            break;
        }
    free(found);
    if (pg->status) {
        page_finish(pg);
        return;
    }
    fetch_inputs(pg);
}

/* Starts the lookup when some record lacks a name the functions use; false when there is
 * nothing to look up (or on failure, after finishing the page: then true). */
static bool deps_fetch(fn_page *pg)
{
    json_t *ids = json_array();
    size_t nrec = json_array_size(pg->records);
    for (size_t r = 0; ids && r < nrec; r++) {
        json_t *rec = json_array_get(pg->records, r);
        json_t *id = json_object_get(rec, "_id");
        bool lacks = false;
        for (size_t v = 0; v < pg->list->nvars && !lacks; v++)
            lacks =
                may_be_channel(pg, pg->list->vars[v]) && !record_channel(rec, pg->list->vars[v]);
        if (lacks && json_is_string(id))
            json_array_append(ids, id);
    }
    if (ids && json_array_size(ids) == 0) {
        json_decref(ids);
        return false;
    }
    json_t *cond = ids ? json_pack("{s{so}}", "_id", "$in", ids) : NULL;
    const char **proj = arena_alloc(pg->ctx.arena, (pg->list->nvars + 1) * sizeof *proj);
    char err[256];
    if (!cond || !proj || filter_compile(cond, false, &pg->dep_filter, err, sizeof err) != 0) {
        json_decref(cond);
        page_fail(pg, FNEVAL_EINTERNAL, "Unknown error");
        page_finish(pg);
        return true;
    }
    json_decref(cond);
    size_t k = 0;
    proj[k++] = "_id";
    for (size_t v = 0; v < pg->list->nvars; v++) {
        if (!may_be_channel(pg, pg->list->vars[v]))
            continue;
        char *entry = arena_alloc(pg->ctx.arena, strlen(pg->list->vars[v]) + 10);
        if (!entry)
            continue;
        strcpy(entry, "channels.");
        strcat(entry, pg->list->vars[v]);
        proj[k++] = entry;
    }
    store_op_init(&pg->op, STORE_RECORDS_FIND);
    pg->op.filter = pg->dep_filter;
    pg->op.projection = proj;
    pg->op.nprojection = k;
    if (store_submit(pg->ctx.store, &pg->op, deps_read, pg) != 0) {
        page_fail(pg, FNEVAL_EINTERNAL, "Unknown error");
        page_finish(pg);
    }
    return true;
}

/* ---- 3. (continued) the objects ---- */

static void fetch_inputs(fn_page *pg)
{
    /* every (record, variable) whose value lives in the object store */
    size_t nrec = json_array_size(pg->records), cap = 0;
    for (size_t r = 0; r < nrec; r++)
        for (size_t v = 0; v < pg->list->nvars; v++) {
            json_t *ch = record_channel(json_array_get(pg->records, r), pg->list->vars[v]);
            objstore_kind kind;
            if (ch && objstore_kind_parse(channel_dtype(ch), &kind) == 0 &&
                (kind == OBJ_WAVEFORM || kind == OBJ_IMAGE))
                cap++;
        }
    pg->inputs = calloc(cap ? cap : 1, sizeof *pg->inputs);
    pg->nrec = nrec;
    size_t nres = nrec * pg->list->n;
    pg->results = calloc(nres ? nres : 1, sizeof *pg->results);
    if (!pg->inputs || !pg->results) {
        page_fail(pg, FNEVAL_EINTERNAL, "Unknown error");
        page_finish(pg);
        return;
    }
    taskgroup_init(&pg->tg, pg->ctx.loop, 0);
    const void *owner = objstore_set_owner(pg->ctx.objstore, pg->ctx.owner);
    for (size_t r = 0; r < nrec; r++)
        for (size_t v = 0; v < pg->list->nvars; v++) {
            json_t *ch = record_channel(json_array_get(pg->records, r), pg->list->vars[v]);
            objstore_kind kind;
            if (!ch || objstore_kind_parse(channel_dtype(ch), &kind) != 0 ||
                (kind != OBJ_WAVEFORM && kind != OBJ_IMAGE))
                continue;
            fn_input *in = &pg->inputs[pg->ninputs++];
            *in = (fn_input){.page = pg, .rec = r, .var = pg->list->vars[v], .kind = kind};
            if (!taskgroup_spawn(&pg->tg, input_start, input_cancel, in))
                break;
        }
    objstore_set_owner(pg->ctx.objstore, owner);
    taskgroup_wait(&pg->tg, inputs_fetched, pg);
}

int fneval_start(const fneval_ctx *ctx, fneval_list *list, json_t *records,
                 const fneval_options *opts, fneval_done_cb done, void *data, fneval **handle)
{
    fn_page *pg = calloc(1, sizeof *pg);
    if (!pg) {
        /* the callback still runs once: with a page that says so */
        static const char oom[] = "Unknown error";
        json_decref(records);
        fn_page *tiny = calloc(1, sizeof *tiny);
        if (!tiny)
            return -ENOMEM;
        tiny->ctx = *ctx;
        tiny->list = list;
        page_fail(tiny, FNEVAL_EINTERNAL, "%s", oom);
        done((fneval *)tiny, data);
        return 0;
    }
    pg->ctx = *ctx;
    pg->list = list;
    pg->records = records;
    pg->opts = *opts;
    pg->done = done;
    pg->done_data = data;
    store_op_init(&pg->op, STORE_MANIFEST_LATEST);
    /* the task group is initialised here so a cancel before the manifest arrives is safe */
    taskgroup_init(&pg->tg, ctx->loop, 0);
    /* colouring is checked here and reported (FNEVAL_EINVAL) by the first image result
     * that needs it */
    const char *cm = opts->colourmap_name && *opts->colourmap_name
                         ? opts->colourmap_name
                         : ctx->cfg->images.default_colour_map;
    falsecolour_levels lv = opts->levels;
    if (opts->mode == FNEVAL_THUMBNAILS)
        lv.limit_bit_depth = 8;
    const char *bad = falsecolour_check(&lv);
    if (bad)
        snprintf(pg->colour_err, sizeof pg->colour_err, "%s", bad);
    else if (colourmap_find(cm, &pg->cm) != 0)
        snprintf(pg->colour_err, sizeof pg->colour_err, "%s is not a valid colour map name", cm);
    if (handle)
        *handle = (fneval *)pg;
    if (store_submit(ctx->store, &pg->op, manifest_read, pg) != 0) {
        page_fail(pg, FNEVAL_EINTERNAL, "Unknown error");
        page_finish(pg);
    }
    return 0;
}
