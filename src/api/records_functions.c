/*
 * records_functions.c: the `functions` query parameter of GET /records and
 * GET /records/{id_} (spec/data.md §5, spec/functions.md §B9): user functions evaluated over a page
 * of records, their results added to each record as channels named after the functions.
 *
 * GET /records/{id_} takes the same path with a page of one record.
 *
 * Flow for one page (all on the request's worker loop except the evaluation):
 *   1. api_functions_from_query (loop, before the query): parse each `functions` value
 *      (JSON object), parse each expression (bounded), collect the variable names.
 *   2. api_functions_respond (loop, after the query): read the latest manifest (store op,
 *      off the loop) to tell "channel absent from this record" from "unknown name".
 *   3. One task group over records x variables: every waveform/image object any function
 *      needs on this page is fetched at once through the object store's fan-out
 *      (objstore_get_channel: new key, then legacy); the first failure cancels the rest.
 *   4. work_submit: the page is split into up to EVAL_CHUNKS shares of records, each on
 *      a pool thread: decode the objects (waveform JSON, PNG with the storage bit shift
 *      undone), evaluate every record's functions in order, attach the result channels.
 *      Each record is a distinct JSON tree, so the shares touch disjoint data. When all
 *      are done, the earliest record's error wins; otherwise one more pool item
 *      serialises the page and the loop only writes the bytes.
 *
 * Per record (§5.2): a function that uses a manifest channel this record lacks is skipped
 * silently, and so is every function that uses a skipped one; a name that is neither a
 * channel of the record, a manifest channel nor an earlier function is a 400
 * "{'x'} are not recognised channels/functions". Any evaluation error is a 400 naming the
 * function and the record (ogd's position: client mistakes are 4xx, not 500).
 *
 * Waveform-valued results carry a thumbnail drawn by the imaging plotter (§5.3). Not here
 * yet: image-valued results (they need the imaging module's false colour wired in; such
 * functions get a 400).
 */
#include "api/api.h"
#include "api/functions.h"
#include "imaging/plot.h"
#include "util/base64.h"

#include "imaging/png.h"
#include "objstore/keys.h"
#include "runtime/taskgroup.h"
#include "util/jsonw.h"
#include "util/log.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VARIABLES 256
/* Most bytes of stored objects one page's functions may hold at once. */
#define MAX_INPUT_BYTES ((size_t)512 << 20)

struct api_fn_list {
    api_function *fns;
    size_t n;
    const char **vars; /* distinct variable names over all functions */
    size_t nvars;
};

typedef struct fn_input {
    struct fn_page *page;
    size_t rec;
    const char *var;
    objstore_kind kind;
    objstore_req_t *handle;
    const objstore_blob_t *blob;
} fn_input;

typedef struct fn_page {
    http_request_t *req;
    api_fn_list *list;
    json_t *records;
    store_op_t op;
    json_t *manifest; /* channels object, owned reference or NULL */
    fn_input *inputs;
    size_t ninputs;
    size_t input_bytes; /* held so far, capped by MAX_INPUT_BYTES */
    taskgroup_t tg;
    work_t *work; /* the serialisation */
    struct fn_chunk *chunks;
    size_t nchunks, chunks_pending;
    bool single; /* respond with records[0] */
    int http_status;
    char err[FN_ERR_MAX + 256];
    char *text;
    size_t text_len;
} fn_page;

/* A share of the page's records evaluated on one pool thread; errors stay here until
 * every chunk is done, then the earliest record's error wins. */
typedef struct fn_chunk {
    fn_page *pg;
    size_t from, to;
    work_t *work;
    int status;
    char err[FN_ERR_MAX + 256];
} fn_chunk;

/* Pool threads used for one page's evaluation. */
#define EVAL_CHUNKS 4

/* ---- 1. parsing the parameter ---- */

typedef struct var_collect {
    arena_t *a;
    api_fn_list *list;
    bool overflow;
} var_collect;

static void collect_var(void *data, const char *name)
{
    var_collect *vc = data;
    for (size_t i = 0; i < vc->list->nvars; i++)
        if (strcmp(vc->list->vars[i], name) == 0)
            return;
    if (vc->list->nvars == MAX_VARIABLES) {
        vc->overflow = true;
        return;
    }
    vc->list->vars[vc->list->nvars++] = name;
}

bool api_functions_from_query(http_request_t *req, api_fn_list **out)
{
    const char **values;
    size_t n = http_query_all(req, "functions", &values);
    *out = NULL;
    if (n == 0)
        return true;
    if (n > API_FUNCTIONS_MAX) {
        char msg[96];
        snprintf(msg, sizeof msg, "At most %d functions may be given at once", API_FUNCTIONS_MAX);
        http_respond_error(req, 400, msg);
        return false;
    }
    arena_t *a = &req->arena;
    api_fn_list *list = arena_alloc(a, sizeof *list);
    api_function *fns = arena_alloc(a, n * sizeof *fns);
    const char **vars = arena_alloc(a, MAX_VARIABLES * sizeof *vars);
    if (!list || !fns || !vars) {
        http_respond_error(req, 500, "Unknown error");
        return false;
    }
    *list = (api_fn_list){fns, n, vars, 0};
    var_collect vc = {a, list, false};
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
        fns[i].name = arena_strdup(a, json_string_value(name));
        fns[i].expression = arena_strdup(a, json_string_value(expr));
        json_decref(f);
        char err[FN_ERR_MAX];
        if (!fns[i].name || !fns[i].expression) {
            http_respond_error(req, 500, "Unknown error");
            return false;
        }
        if (fn_parse(a, fns[i].expression, &fns[i].tree, err) != 0) {
            char msg[FN_ERR_MAX + 128];
            snprintf(msg, sizeof msg, "Function '%s': %s", fns[i].name, err);
            http_respond_error(req, 400, msg);
            return false;
        }
        fn_variables(fns[i].tree, collect_var, &vc);
    }
    if (vc.overflow) {
        http_respond_error(req, 400, "Functions may refer to at most 256 distinct names");
        return false;
    }
    *out = list;
    return true;
}

void api_functions_projection(http_request_t *req, const api_fn_list *list,
                              const char *const **projection, size_t *n)
{
    if (*n == 0)
        return;
    const char **out = arena_alloc(&req->arena, (*n + list->nvars) * sizeof *out);
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
        char *entry = arena_alloc(&req->arena, strlen(list->vars[v]) + 10);
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
    if (pg->http_status)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pg->err, sizeof pg->err, fmt, ap);
    va_end(ap);
    pg->http_status = status;
    return false;
}

static void page_free(fn_page *pg)
{
    for (size_t i = 0; i < pg->ninputs; i++)
        if (pg->inputs[i].blob)
            objstore_blob_unref(pg->inputs[i].blob);
    free(pg->inputs);
    free(pg->chunks);
    json_decref(pg->records);
    json_decref(pg->manifest);
    free(pg->text);
    free(pg);
}

static void page_abort(http_request_t *req, void *data)
{
    fn_page *pg = data;
    (void)req;
    store_cancel(&pg->op);
    taskgroup_cancel(&pg->tg, -ECANCELED);
    if (pg->work)
        work_cancel(pg->work);
    for (size_t i = 0; i < pg->nchunks; i++)
        if (pg->chunks[i].work)
            work_cancel(pg->chunks[i].work);
}

static void page_finish(fn_page *pg)
{
    http_request_t *req = pg->req;
    http_set_abort(req, NULL, NULL);
    if (pg->http_status) {
        if (pg->http_status >= 500)
            log_warn("functions: %s", pg->err);
        http_respond_error(req, pg->http_status, pg->err);
    } else {
        char *text = pg->text;
        pg->text = NULL;
        http_respond_take(req, 200, "application/json", text, pg->text_len);
    }
    page_free(pg);
}

/* ---- 4. evaluation on the pool ---- */

/* Values of one record: channels loaded on demand, function results as they come. */
typedef struct rec_env {
    fn_page *pg;
    size_t rec;
    json_t *record;
    const char *names[MAX_VARIABLES + API_FUNCTIONS_MAX];
    fn_value values[MAX_VARIABLES + API_FUNCTIONS_MAX];
    bool from_manifest[MAX_VARIABLES + API_FUNCTIONS_MAX];
    size_t n;
    char err[FN_ERR_MAX];
    /* channels of the record that could not be loaded: an error only for a function
     * that is evaluated with them (one skipped for another reason stays skipped) */
    const char *bad_names[MAX_VARIABLES];
    int bad_status[MAX_VARIABLES];
    char bad_err[MAX_VARIABLES][FN_ERR_MAX];
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

/* PNG -> doubles with the storage shift undone (spec/data.md §5.2 step 3). */
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
    } else {
        v.type = t; /* float_image / vector: typed, but evaluation refuses them */
    }
    env->names[env->n] = name;
    env->values[env->n] = v;
    env->from_manifest[env->n] = true;
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

/* The result channel of spec/data.md §5.3; a waveform gets its thumbnail drawn by the
 * imaging plotter (runs on the pool thread evaluating the chunk). 0, or -ENOMEM. */
static int result_channel(const fn_value *v, const ogd_config *cfg, json_t **out)
{
    json_t *meta = json_pack("{ss}", "channel_dtype", fn_type_name(v->type));
    json_t *ch = json_object();
    if (!meta || !ch) {
        json_decref(meta);
        json_decref(ch);
        return -ENOMEM;
    }
    json_object_set_new(ch, "metadata", meta);
    if (v->type == FN_SCALAR) {
        json_object_set_new(ch, "data", isfinite(v->scalar) ? json_real(v->scalar) : json_null());
    } else if (v->type == FN_WAVEFORM) {
        if (v->x_units)
            json_object_set_new(meta, "x_units", json_string(v->x_units));
        unsigned char *png = NULL;
        size_t len = 0;
        int rc = plot_waveform_png(
            v->x, v->y, v->nx < v->ny ? v->nx : v->ny, (uint32_t)cfg->waveforms.thumbnail_size[0],
            (uint32_t)cfg->waveforms.thumbnail_size[1], cfg->waveforms.line_width, &png, &len);
        char *text = rc == 0 ? base64_encode(png, len, NULL) : NULL;
        free(png);
        if (!text) {
            json_decref(ch);
            return rc ? rc : -ENOMEM;
        }
        json_object_set_new(ch, "thumbnail", json_string(text));
        free(text);
    }
    *out = ch;
    return 0;
}

typedef struct name_set {
    const char *names[MAX_VARIABLES];
    size_t n;
} name_set;

static void set_add(name_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return;
    if (s->n < MAX_VARIABLES)
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
    api_fn_list *list = pg->list;
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
        ok = chunk_fail(ck, 500, "out of memory");
    json_t *channels = json_object_get(record, "channels");
    if (ok && !json_is_object(channels)) {
        channels = json_object();
        json_object_set_new(record, "channels", channels);
    }
    for (size_t f = 0; f < list->n && ok; f++) {
        api_function *fn = &list->fns[f];
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
            ok = chunk_fail(ck, 400, "{%s} are not recognised channels/functions", names);
            break;
        }
        if (vc.bad) {
            /* a value the client cannot use is a 400; stored bytes that do not decode, a
             * 500 */
            size_t b = (size_t)vc.bad - 1;
            ok = chunk_fail(ck, env->bad_status[b] == -EINVAL ? 400 : 500,
                            "Channel '%s' of record '%s' cannot be used: %s", env->bad_names[b],
                            id ? id : "", env->bad_err[b]);
            break;
        }
        fn_typeinfo t;
        if (fn_typecheck(fn->tree, env_type, env, &t, env->err) != 0) {
            ok = chunk_fail(ck, 400, "Function '%s' on record '%s': %s", fn->name, id ? id : "",
                            env->err);
            break;
        }
        if (t.type == FN_IMAGE) {
            ok = chunk_fail(ck, 400,
                            "Function '%s' gives an image: image-valued functions are not "
                            "supported yet",
                            fn->name);
            break;
        }
        fn_value v = {0};
        if (fn_eval(fn->tree, env_value, env, &v, env->err) != 0) {
            ok = chunk_fail(ck, 400, "Function '%s' on record '%s': %s", fn->name, id ? id : "",
                            env->err);
            break;
        }
        json_t *rch = NULL;
        if (result_channel(&v, ((app_t *)ck->pg->req->app)->cfg, &rch) != 0) {
            fn_value_free(&v);
            ok = chunk_fail(ck, 500, "Function '%s' on record '%s': out of memory", fn->name,
                            id ? id : "");
            break;
        }
        json_object_set_new(channels, fn->name, rch);
        if (env->n == sizeof env->names / sizeof env->names[0]) {
            fn_value_free(&v);
            ok = chunk_fail(ck, 400, "too many functions");
            break;
        }
        env->names[env->n] = fn->name;
        env->values[env->n] = v;
        env->from_manifest[env->n] = t.manifest;
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
        chunk_fail(ck, 500, "out of memory");
        return;
    }
    for (size_t r = ck->from; r < ck->to; r++)
        if (!evaluate_record(ck, r, env))
            break;
    free(env);
}

static void serialise_page(void *data)
{
    fn_page *pg = data;
    pg->text =
        jsonw_dumps(pg->single ? json_array_get(pg->records, 0) : pg->records, &pg->text_len);
    if (!pg->text)
        page_fail(pg, 500, "Unknown error");
}

static void serialised(void *data, int status)
{
    fn_page *pg = data;
    pg->work = NULL;
    if (status)
        page_fail(pg, 500, "Unknown error");
    page_finish(pg);
}

static void chunk_evaluated(void *data, int status)
{
    fn_chunk *ck = data;
    fn_page *pg = ck->pg;
    ck->work = NULL;
    if (status && !ck->status)
        chunk_fail(ck, 500, "Unknown error");
    if (--pg->chunks_pending > 0)
        return;
    for (size_t i = 0; i < pg->nchunks; i++)
        if (pg->chunks[i].status) {
            page_fail(pg, pg->chunks[i].status, "%s", pg->chunks[i].err);
            break;
        }
    /* the inputs are no longer needed: release the bytes before serialising */
    for (size_t i = 0; i < pg->ninputs; i++)
        if (pg->inputs[i].blob) {
            objstore_blob_unref(pg->inputs[i].blob);
            pg->inputs[i].blob = NULL;
        }
    app_t *app = pg->req->app;
    if (pg->http_status || pg->req->aborted ||
        work_submit(app->loop, serialise_page, serialised, pg, &pg->work) != 0) {
        page_fail(pg, 500, "Unknown error");
        page_finish(pg);
    }
}

/* Splits the page over EVAL_CHUNKS pool items. */
static void evaluate_page(fn_page *pg)
{
    size_t nrec = json_array_size(pg->records);
    size_t n = nrec < EVAL_CHUNKS ? (nrec ? nrec : 1) : EVAL_CHUNKS;
    pg->chunks = calloc(n, sizeof *pg->chunks);
    if (!pg->chunks) {
        page_fail(pg, 500, "Unknown error");
        page_finish(pg);
        return;
    }
    app_t *app = pg->req->app;
    pg->chunks_pending = 1; /* held while submitting */
    for (size_t i = 0; i < n; i++) {
        fn_chunk *ck = &pg->chunks[i];
        *ck = (fn_chunk){.pg = pg, .from = nrec * i / n, .to = nrec * (i + 1) / n};
        pg->nchunks++;
        pg->chunks_pending++;
        if (work_submit(app->loop, evaluate_chunk, chunk_evaluated, ck, &ck->work) != 0) {
            chunk_fail(ck, 500, "Unknown error");
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
            page_fail(in->page, 400,
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
        page_fail(in->page, 500, "%s for channel '%s' of record '%s' could not be read (%s)",
                  objstore_kind_class(in->kind), in->var, id ? id : "",
                  objstore_error_code(status));
    }
    taskgroup_task_done(t, status);
}

static int input_start(task_t *t)
{
    fn_input *in = t->arg;
    app_t *app = in->page->req->app;
    json_t *rec = json_array_get(in->page->records, in->rec);
    const char *id = json_string_value(json_object_get(rec, "_id"));
    /* the request owns its transfers: S3 connections are shared fairly between requests */
    const void *owner = objstore_set_owner(app->objstore, in->page->req);
    int rc = objstore_get_channel(app->objstore, in->kind, id ? id : "", in->var, input_got, t,
                                  &in->handle);
    objstore_set_owner(app->objstore, owner);
    if (rc)
        page_fail(in->page, 500, "%s for channel '%s' of record '%s' could not be read (%s)",
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
        page_fail(pg, 500, "Unknown error");
        page_finish(pg);
        return;
    }
    evaluate_page(pg);
}

static void manifest_read(store_op_t *op)
{
    fn_page *pg = op->data;
    if (op->status != 0 && op->status != -ENOENT) {
        page_fail(pg, op->status == STORE_EUNAVAILABLE ? 503 : 500, "%s",
                  op->status == STORE_EUNAVAILABLE ? "Database unavailable" : "Unknown error");
        store_op_cleanup(op);
        page_finish(pg);
        return;
    }
    if (pg->req->aborted) {
        store_op_cleanup(op);
        page_fail(pg, 500, "Unknown error");
        page_finish(pg);
        return;
    }
    if (op->status == 0)
        pg->manifest = json_incref(json_object_get(op->result, "channels"));
    store_op_cleanup(op);

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
    if (!pg->inputs) {
        page_fail(pg, 500, "Unknown error");
        page_finish(pg);
        return;
    }
    app_t *app = pg->req->app;
    taskgroup_init(&pg->tg, app->loop, 0);
    const void *owner = objstore_set_owner(app->objstore, pg->req);
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
    objstore_set_owner(app->objstore, owner);
    taskgroup_wait(&pg->tg, inputs_fetched, pg);
}

void api_functions_respond(http_request_t *req, api_fn_list *list, json_t *records, bool single)
{
    fn_page *pg = calloc(1, sizeof *pg);
    if (!pg) {
        json_decref(records);
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    pg->req = req;
    pg->list = list;
    pg->records = records;
    pg->single = single;
    store_op_init(&pg->op, STORE_MANIFEST_LATEST);
    http_set_abort(req, page_abort, pg);
    app_t *app = req->app;
    /* the task group is initialised here so an abort before the manifest arrives is safe */
    taskgroup_init(&pg->tg, app->loop, 0);
    if (store_submit(app->store, &pg->op, manifest_read, pg) != 0) {
        page_fail(pg, 500, "Unknown error");
        page_finish(pg);
    }
}
