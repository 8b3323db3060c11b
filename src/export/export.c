/*
 * export/export.c: the export pipeline (docs/export.md; GET /export is its HTTP adapter,
 * api/export.c): the records a query selects, as one CSV file or as a zip of per-channel
 * files plus the main CSV, streamed into the caller's sink while the objects arrive.
 *
 * Flow:
 *   1. Parameters (loop). The records query and the latest manifest run at once (store
 *      ops). The projection sent to the store is ours, not the client's: for every
 *      `channels.<name>...` entry it asks for that channel's metadata, data and
 *      object_size (no thumbnails), so the channel's presence, type, vector labels and
 *      object size are known without fetching anything.
 *   2. With both: the reference's checks in its order ("No records found to export", then
 *      the projection's terms), the header and every CSV line (metadata only), and the
 *      list of *entries*: one per (record, object channel) that will produce files or an
 *      error line, in record order then projection order. No entry: the CSV is the whole
 *      answer (or 400 "Nothing to export").
 *   3. Size check before the first byte: the stored sizes recorded at ingest
 *      (`object_size`); entries of older records without one are sized by HEAD requests
 *      through the same window. Over export.max_filesize_bytes: the reference's 400.
 *   4. The stream: chunked `application/zip`. A window starts object GETs in entry order
 *      while fewer than export.max_concurrency are in flight and the bytes held (fetched,
 *      rendered, or queued for the socket) stay under export.max_buffer_bytes. Each
 *      arrival goes to the thread pool, which turns it into finished zip members (CRC,
 *      deflate, false colour, CSV text, plots). Members are placed and written in entry
 *      order, one write in flight: a slow client stalls the writes, the held bytes stop
 *      shrinking and no new GET starts (backpressure). Objects that are missing (404,
 *      both keys) become the reference's "Could not find ..." lines. After the last entry:
 *      the main CSV (only if a file was written, as the reference), EXPORT_ERRORS.txt,
 *      the central directory. The answer's head goes out with the first member.
 *   4b. An object call that fails otherwise (storage unreachable, timing out, answering
 *      5xx): before the first byte the answer is 503 "Object storage unavailable" (or 500
 *      for other errors); after it the stream is cut (no final chunk), so a download
 *      never looks whole when it is not. One log line says why, for the whole export.
 *   5. A client that goes away (export_cancel) cancels every GET, HEAD, queued render
 *      and function evaluation; the export finishes once the ones already running have
 *      reported.
 *
 * Lifetime: the export frees itself once it has ended (maybe_finish, finish_planned), and
 * that can happen inside a call it makes: fneval_start runs the batch's done inside the call
 * when the evaluation cannot start, and that failure may end the export (fneval_cancel may
 * run done too). Such calls are made between enter and leave: the sink's last calls happen
 * at once, the free waits for the outermost leave, which tells its caller to stop. Helpers
 * that may end the export and have callers with more to do (start_batches, start_get)
 * return false when it is over or being torn down, and those callers return at once.
 *
 * Output goes to the caller's sink (export.h): the CSV alone and every failure before the
 * first byte are whole answers (a failure as a class and code the caller maps to a
 * status); the zip is a stream of writes, one in flight, each reported back when done.
 *
 * Functions (`functions=`, docs/export.md §11): their result types come first (the header);
 * the store projection also carries the metadata and data of every channel they use, so
 * which records will have a result is known from the plan (build_entries' prediction). The
 * functions engine runs over batches of FN_BATCH records that share the export's record
 * documents: scalar results land in them (the CSV lines are written after the last batch),
 * waveform data and image PNGs go to their entries, which are packed like fetched objects.
 * The first batch runs before the answer is chosen, so a mistake in an expression is still
 * a 4xx; later ones run alongside the window (start_batches).
 *
 * Differences from the reference, all deliberate: member order is deterministic (the
 * reference's is completion order); PNG and .npz members are STOREd (already compressed);
 * an error after the first byte cannot become a status code, so a waveform or vector that
 * cannot be turned into files gets its error line (the reference answers 500) and an
 * internal failure closes the connection without the final chunk; the size limit is
 * checked before streaming, and a member that would start past it mid-stream (renderings
 * larger than their stored objects) becomes its error line.
 */
#include "export/export.h"

#include "export/csv.h"
#include "export/zip.h"
#include "imaging/colourmap.h"
#include "imaging/falsecolour.h"
#include "imaging/figure.h"
#include "objstore/keys.h"
#include "util/taskgroup.h"
#include "util/error.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Bytes assumed for an object whose size is unknown (HEAD failed: the GET will too). */
#define SIZE_UNKNOWN_GUESS ((uint64_t)64 * 1024)
#define DEFLATE_LEVEL 6
/* Functions are evaluated over batches of this many records, at most FN_BATCHES at once
 * and at most FN_AHEAD batches past the one being written (their inputs and results are
 * what an export with functions holds beyond max_buffer_bytes). */
#define FN_BATCH 16
#define FN_BATCHES 4
#define FN_AHEAD 4
#define TOO_MUCH                                                                                   \
    "Too much data requested. Reduce either the number of records or channels requested, or "      \
    "both."

static const char *const METADATA_KEYS[] = {"epac_ops_data_version", "shotnum", "timestamp",
                                            "active_area", "active_experiment"};

typedef enum col_kind { COL_ID, COL_META, COL_CHANNEL, COL_OTHER } col_kind;

typedef struct col {
    col_kind kind;
    const char *name;    /* the second dotted part (header text, channel or metadata key) */
    const char *dtype;   /* COL_CHANNEL: the manifest type */
    bool cell_from_data; /* COL_CHANNEL scalar: the user's path keeps `data` */
    bool object;         /* COL_CHANNEL of an object type (no column) */
    objstore_kind okind;
    long fn; /* COL_CHANNEL: the function of that name, or -1 */
} col;

typedef enum ent_state {
    ENT_IDLE,      /* not started */
    ENT_FETCHING,  /* HEAD or GET in flight */
    ENT_RENDERING, /* on the pool */
    ENT_READY,     /* members built (or failed), waiting for its turn */
    ENT_DONE,      /* written */
} ent_state;

struct export_job;

typedef struct ent {
    struct export_job *x;
    size_t rec;      /* index in the records */
    long fn;         /* a function's result (filled by its batch), or -1 for a stored object */
    json_t *fn_data; /* a waveform function's {"x","y"} (owned) */
    const char *id, *channel;
    const json_t *chdoc; /* the record's channel document (borrowed from the records) */
    objstore_kind kind;
    ent_state state;
    bool sized;    /* est is the object's size */
    uint64_t est;  /* bytes expected */
    uint64_t held; /* bytes counted in x->held for this entry */
    objstore_req_t *oreq;
    work_t *work;
    const objstore_blob_t *blob;
    int status;
    bool legacy_tried; /* HEAD: the legacy key was tried */
    bool failed;       /* an error line instead of (some of) its files */
    zip_member m[2];
    int nm, sent;
} ent;

typedef struct export_job {
    uv_loop_t *loop;
    store_t *store;
    objstore_t *objstore;
    const ogd_config *cfg;
    arena_t *arena;
    const void *owner;
    export_sink sink;
    filter_t *filter;
    store_op_t find, manifest;
    int ops_pending;
    const char **proj;
    size_t nproj;
    const char **store_proj;
    col *cols;
    /* parameters */
    falsecolour_levels levels;
    const char *colourmap_name; /* NULL: not given */
    bool original_image;
    bool ex_scalars, ex_images, ex_floats, ex_wf_csv, ex_wf_img, ex_vec_csv, ex_vec_img;
    /* results */
    json_t *records;   /* the query's array (owned) */
    json_t *mchannels; /* the manifest's channels (owned) or NULL */
    buf_t csv;         /* the main CSV text */
    char *stem;
    /* the stream */
    ent *ents;
    size_t nents, next_start, next_emit, in_flight;
    size_t max_in_flight;
    uint64_t held, max_held, max_bytes;
    size_t outstanding; /* callbacks still to come (GET, HEAD, work, write) */
    bool sizing, streaming, ended, writing, aborted, finished, any_file;
    zip_writer zw;
    uint16_t dos_date, dos_time;
    colourmap cm;
    bool cm_ok;
    const char *levels_err;
    buf_t errors; /* EXPORT_ERRORS.txt */
    zip_member tail_m[2];
    int tail_n, tail_sent;
    work_t *tail_work;
    bool tail_built;
    /* functions */
    fneval_list *fns;
    size_t nbatches, next_batch, batches_done, evaluating;
    struct batch *batches; /* nbatches */
    size_t batch_limit;    /* batches at once: 1 until the answer is chosen */
    bool head_sent;        /* the answer's head went out: a failure now cuts the stream */
    export_failure err;    /* a failure to answer with, while nothing was sent (error 0:
                              none) */
    char err_detail[512];  /* its message */
    bool csv_pending;      /* the CSV's lines wait for the function results */
    unsigned depth;        /* calls between enter and leave in progress: no free until the
                              last leave */
} exp_ctx;

/* One evaluation of the functions over FN_BATCH records. */
typedef struct batch {
    exp_ctx *x;
    size_t index;
    fneval *handle; /* while it runs */
} batch;

static void pump(exp_ctx *x);
static bool start_batches(exp_ctx *x);

/* ---- lifetime ---- */

/* A failure before the first byte, as a class and what to say. */
static void answer_error(exp_ctx *x, export_error error, const char *message)
{
    export_failure f = {.error = error, .message = message};
    x->sink.fail(x->sink.data, &f);
}

static void ctx_free(exp_ctx *x)
{
    store_op_cleanup(&x->find);
    store_op_cleanup(&x->manifest);
    filter_free(x->filter);
    for (size_t i = 0; i < x->nents; i++) {
        ent *e = &x->ents[i];
        objstore_blob_unref(e->blob);
        json_decref(e->fn_data);
        for (int k = 0; k < e->nm; k++)
            zip_member_free(&e->m[k]);
    }
    for (int k = 0; k < x->tail_n; k++)
        zip_member_free(&x->tail_m[k]);
    free(x->ents);
    free(x->batches);
    json_decref(x->records);
    json_decref(x->mchannels);
    buf_free(&x->csv);
    buf_free(&x->errors);
    zip_writer_free(&x->zw);
    free(x);
}

/* Frees an export that has ended, unless a call that may end it is still running further
 * up the stack: then the outermost leave frees it. */
static void ctx_release(exp_ctx *x)
{
    if (x->depth == 0)
        ctx_free(x);
}

/* Around a call that may end the export inside it (fneval_start, fneval_cancel: their done
 * may run there): x stays allocated until the matching leave. */
static void enter(exp_ctx *x)
{
    x->depth++;
}

/* True when the export goes on; false when it ended during the call (freed here unless an
 * outer call is still running): the caller must not touch x any more. */
static bool leave(exp_ctx *x)
{
    x->depth--;
    if (!x->finished)
        return true;
    ctx_release(x);
    return false;
}

/* Ends an export whose answer was given while planning (nothing outstanding). */
static void finish_planned(exp_ctx *x)
{
    x->finished = true;
    x->sink.detach(x->sink.data);
    ctx_release(x);
}

/* Ends the export once nothing is outstanding: a stream still running is cut (the
 * client is gone or something failed), one that completed was ended already. */
static void maybe_finish(exp_ctx *x)
{
    if (x->outstanding || x->finished)
        return;
    x->finished = true;
    x->sink.detach(x->sink.data);
    if (x->head_sent && !x->ended) {
        x->sink.abort(x->sink.data);
    } else if (!x->head_sent) { /* gone, or failed, before the first byte: a plain answer */
        if (!x->err.error)
            x->err = (export_failure){.error = EXPORT_EINTERNAL, .message = "Unknown error"};
        x->sink.fail(x->sink.data, &x->err);
    }
    ctx_release(x);
}

/* A failure after the first byte: stop everything and cut the stream. */
static void fail_stream(exp_ctx *x, const char *why)
{
    log_warn("export: %s", why);
    if (!x->aborted) {
        x->aborted = true;
        for (size_t i = x->next_emit; i < x->nents; i++) {
            ent *e = &x->ents[i];
            if (e->oreq)
                objstore_cancel(e->oreq);
            if (e->work)
                work_cancel(e->work);
        }
        if (x->tail_work)
            work_cancel(x->tail_work);
        /* a batch's done may run inside its cancel, and end the export */
        enter(x);
        for (size_t b = 0; b < x->nbatches; b++)
            if (x->batches[b].handle)
                fneval_cancel(x->batches[b].handle, NULL, NULL);
        if (!leave(x))
            return;
    }
    maybe_finish(x);
}

void export_cancel(export_job *x)
{
    if (!x->streaming && !x->sizing && x->ops_pending) {
        store_cancel(&x->find);
        store_cancel(&x->manifest);
        return;
    }
    fail_stream(x, "client went away");
}

/* ---- parameters and the plan ---- */

/* The second dotted part of p, in arena memory; NULL when p has fewer than two. */
static const char *second_part(arena_t *a, const char *p)
{
    const char *dot = strchr(p, '.');
    if (!dot)
        return NULL;
    const char *end = strchr(dot + 1, '.');
    size_t n = end ? (size_t)(end - dot - 1) : strlen(dot + 1);
    char *s = arena_alloc(a, n + 1);
    if (!s)
        return NULL;
    memcpy(s, dot + 1, n);
    s[n] = '\0';
    return s;
}

static bool first_part_is(const char *p, const char *word)
{
    size_t n = strlen(word);
    return strncmp(p, word, n) == 0 && (p[n] == '.' || p[n] == '\0');
}

static bool add_store_path(exp_ctx *x, size_t *n, const char *path)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(x->store_proj[i], path) == 0)
            return true;
    char *c = arena_alloc(x->arena, strlen(path) + 1);
    if (!c)
        return false;
    strcpy(c, path);
    x->store_proj[(*n)++] = c;
    return true;
}

static void count_var(void *data, const char *name)
{
    (void)name;
    (*(size_t *)data)++;
}

typedef struct var_paths {
    exp_ctx *x;
    size_t *n;
    bool ok;
} var_paths;

static void add_var_paths(void *data, const char *name)
{
    var_paths *vp = data;
    char path[1200];
    static const char *const parts[] = {"metadata", "data"};
    for (int k = 0; k < 2 && vp->ok; k++) {
        if (snprintf(path, sizeof(path), "channels.%s.%s", name, parts[k]) >= (int)sizeof(path) ||
            !add_store_path(vp->x, vp->n, path))
            vp->ok = false;
    }
}

/* The projection the store gets (see the top of the file). */
static bool build_store_projection(exp_ctx *x)
{
    arena_t *a = x->arena;
    size_t nvars = 0;
    for (size_t f = 0; x->fns && f < fneval_list_count(x->fns); f++)
        fn_variables(fneval_list_get(x->fns, f)->tree, count_var, &nvars);
    x->store_proj = arena_alloc(a, (3 * x->nproj + 2 * nvars + 1) * sizeof(char *));
    if (!x->store_proj)
        return false;
    size_t n = 0;
    char path[1200];
    /* What the functions use: each channel's metadata (bit depth, units) and data
     * (scalars); objects are fetched by the functions engine. */
    var_paths vp = {x, &n, true};
    for (size_t f = 0; x->fns && f < fneval_list_count(x->fns); f++)
        fn_variables(fneval_list_get(x->fns, f)->tree, add_var_paths, &vp);
    if (!vp.ok)
        return false;
    for (size_t i = 0; i < x->nproj; i++) {
        const char *p = x->proj[i];
        const char *second = second_part(a, p);
        if (!second || !*second)
            continue; /* reported after the query, as the reference */
        if (first_part_is(p, "metadata")) {
            snprintf(path, sizeof(path), "metadata.%s", second);
            if (!add_store_path(x, &n, path))
                return false;
        } else if (first_part_is(p, "channels")) {
            static const char *const parts[] = {"metadata", "data", "object_size"};
            for (int k = 0; k < 3; k++) {
                if (snprintf(path, sizeof(path), "channels.%s.%s", second, parts[k]) >=
                    (int)sizeof(path))
                    return false;
                if (!add_store_path(x, &n, path))
                    return false;
            }
        }
    }
    if (n == 0)
        x->store_proj[n++] = "_id";
    x->find.projection = x->store_proj;
    x->find.nprojection = n;
    return true;
}

/* 400 for the projection's terms, as docs/export.md §3 step 3; fills x->cols. */
static bool build_columns(exp_ctx *x)
{
    arena_t *a = x->arena;
    x->cols = arena_alloc(a, (x->nproj ? x->nproj : 1) * sizeof(col));
    if (!x->cols) {
        answer_error(x, EXPORT_EINTERNAL, "Unknown error");
        return false;
    }
    char msg[600];
    for (size_t i = 0; i < x->nproj; i++) {
        const char *p = x->proj[i];
        col *c = &x->cols[i];
        memset(c, 0, sizeof(*c));
        if (strcmp(p, "_id") == 0) {
            c->kind = COL_ID;
            c->name = "ID";
            continue;
        }
        const char *second = second_part(a, p);
        if (!second) {
            snprintf(msg, sizeof(msg), "Projection '%.400s' did not include a second term", p);
            answer_error(x, EXPORT_EINVAL, msg);
            return false;
        }
        c->name = second;
        c->fn = -1;
        if (first_part_is(p, "channels")) {
            c->kind = COL_CHANNEL;
            c->fn = x->fns ? fneval_list_find(x->fns, second) : -1;
            json_t *m = json_object_get(x->mchannels, second);
            const char *dtype = m ? json_string_value(json_object_get(m, "type")) : NULL;
            if (c->fn >= 0)
                dtype = fn_type_name(fneval_list_get(x->fns, (size_t)c->fn)->type);
            else if (!m) {
                snprintf(msg, sizeof(msg), "'%.400s' is not a recognised channel or function name",
                         second);
                answer_error(x, EXPORT_EINVAL, msg);
                return false;
            }
            c->dtype = dtype ? dtype : "scalar";
            c->object = objstore_kind_parse(c->dtype, &c->okind) == 0;
            /* The cell is the channel's data after the client's projection. */
            size_t n = strlen("channels.") + strlen(second);
            c->cell_from_data = p[n] == '\0' || strcmp(p + n, ".data") == 0;
        } else if (first_part_is(p, "metadata")) {
            c->kind = COL_META;
        } else {
            c->kind = COL_OTHER;
        }
    }
    return true;
}

static bool known_metadata(const char *k)
{
    for (size_t i = 0; i < sizeof(METADATA_KEYS) / sizeof(*METADATA_KEYS); i++)
        if (strcmp(k, METADATA_KEYS[i]) == 0)
            return true;
    return false;
}

/* The header (docs/export.md §4). */
static int build_csv_header(exp_ctx *x)
{
    buf_t *b = &x->csv;
    int rc = 0;
    for (size_t i = 0; i < x->nproj && !rc; i++)
        if (!(x->cols[i].kind == COL_CHANNEL && x->cols[i].object))
            rc = csv_header_cell(b, x->cols[i].name);
    if (!rc && b->len)
        rc = buf_putc(b, '\n');
    return rc;
}

/* One line per record, empty lines skipped (docs/export.md §4); function values are in the records'
 * channels by now. */
static int build_csv_lines(exp_ctx *x)
{
    buf_t *b = &x->csv;
    int rc = 0;
    size_t r;
    json_t *rec;
    json_array_foreach(x->records, r, rec)
    {
        size_t start = b->len;
        json_t *meta = json_object_get(rec, "metadata");
        json_t *chans = json_object_get(rec, "channels");
        for (size_t i = 0; i < x->nproj && !rc; i++) {
            const col *c = &x->cols[i];
            switch (c->kind) {
            case COL_ID:
                rc = csv_cell(b, json_object_get(rec, "_id"), false);
                break;
            case COL_META:
                rc = csv_cell(b, known_metadata(c->name) ? json_object_get(meta, c->name) : NULL,
                              strcmp(c->name, "timestamp") == 0);
                break;
            case COL_CHANNEL:
                if (!c->object) {
                    json_t *ch = json_object_get(chans, c->name);
                    rc = csv_cell(b, c->cell_from_data ? json_object_get(ch, "data") : NULL, false);
                }
                break;
            case COL_OTHER:
                break; /* a header column without cells: the reference's misalignment */
            }
        }
        if (rc)
            break;
        if (b->len > start)
            rc = buf_putc(b, '\n');
    }
    return rc;
}

static bool kind_exported(const exp_ctx *x, objstore_kind k)
{
    switch (k) {
    case OBJ_IMAGE:
        return x->ex_images;
    case OBJ_FLOAT_IMAGE:
        return x->ex_floats;
    case OBJ_WAVEFORM:
        return x->ex_wf_csv || x->ex_wf_img;
    case OBJ_VECTOR:
        return x->ex_vec_csv || x->ex_vec_img;
    }
    return false;
}

/* Whether function f will have a result for a record (docs/functions.md §9.2 step 4): every
 * name it uses is a channel the record has, or an earlier function that has a result. has[]
 * holds the answers for the earlier functions. */
typedef struct fn_predict {
    const fneval_list *fns;
    json_t *chans;
    const bool *has;
    size_t f;
    bool ok;
} fn_predict;

static void predict_var(void *data, const char *name)
{
    fn_predict *p = data;
    long g = fneval_list_find(p->fns, name);
    if (g >= 0 && (size_t)g < p->f)
        p->ok = p->ok && p->has[g];
    else
        p->ok = p->ok && json_object_get(p->chans, name) != NULL;
}

static void predict_record(const exp_ctx *x, json_t *chans, bool *has)
{
    size_t n = fneval_list_count(x->fns);
    for (size_t f = 0; f < n; f++) {
        fn_predict p = {x->fns, chans, has, f, true};
        fn_variables(fneval_list_get(x->fns, f)->tree, predict_var, &p);
        has[f] = p.ok;
    }
}

static int build_entries(exp_ctx *x)
{
    size_t nrec = json_array_size(x->records), cap = 0;
    for (size_t i = 0; i < x->nproj; i++)
        if (x->cols[i].kind == COL_CHANNEL && x->cols[i].object &&
            kind_exported(x, x->cols[i].okind))
            cap++;
    if (cap == 0 || nrec == 0)
        return 0;
    x->ents = calloc(cap * nrec, sizeof(ent));
    if (!x->ents)
        return -ENOMEM;
    bool has[FNEVAL_FUNCTIONS_MAX];
    size_t r;
    json_t *rec;
    json_array_foreach(x->records, r, rec)
    {
        json_t *chans = json_object_get(rec, "channels");
        const char *id = json_string_value(json_object_get(rec, "_id"));
        if (!id)
            continue;
        if (x->fns)
            predict_record(x, chans, has);
        size_t first = x->nents;
        for (size_t i = 0; i < x->nproj; i++) {
            const col *c = &x->cols[i];
            if (c->kind != COL_CHANNEL || !c->object || !kind_exported(x, c->okind))
                continue;
            json_t *ch = c->fn >= 0 ? NULL : json_object_get(chans, c->name);
            if (c->fn >= 0 ? !has[c->fn] : !ch)
                continue; /* absent from this record: nothing, not even an error line */
            bool dup = false;
            for (size_t k = first; k < x->nents && !dup; k++)
                dup = strcmp(x->ents[k].channel, c->name) == 0;
            if (dup)
                continue; /* the same channel twice: one set of files */
            ent *e = &x->ents[x->nents++];
            e->x = x;
            e->rec = r;
            e->fn = c->fn;
            e->id = id;
            e->channel = c->name;
            e->chdoc = ch;
            e->kind = c->okind;
            json_t *size = json_object_get(ch, "object_size");
            if (c->fn >= 0) {
                e->sized = true; /* made here: nothing to HEAD, counted once made */
            } else if (json_is_integer(size) && json_integer_value(size) >= 0) {
                e->est = (uint64_t)json_integer_value(size);
                e->sized = true;
            }
        }
    }
    return 0;
}

/* <first>[_to_<last>][_<second part>] (docs/export.md §8). */
static char *make_stem(exp_ctx *x)
{
    const char *lo = NULL, *hi = NULL;
    size_t r;
    json_t *rec;
    json_array_foreach(x->records, r, rec)
    {
        const char *id = json_string_value(json_object_get(rec, "_id"));
        if (!id)
            continue;
        if (!lo || strcmp(id, lo) < 0)
            lo = id;
        if (!hi || strcmp(id, hi) > 0)
            hi = id;
    }
    buf_t b;
    buf_init(&b, 4096);
    int rc = buf_puts(&b, lo ? lo : "export");
    if (hi && strcmp(lo, hi) != 0)
        rc |= buf_printf(&b, "_to_%s", hi);
    if (x->nproj == 1)
        rc |= buf_printf(&b, "_%s", x->cols[0].name);
    char *s = rc ? NULL : arena_alloc(x->arena, b.len + 1);
    if (s)
        memcpy(s, b.data, b.len + 1);
    buf_free(&b);
    return s;
}

static void set_disposition(exp_ctx *x, const char *ext)
{
    buf_t b;
    buf_init(&b, 8192);
    /* The stem is record ids and a channel name; quotes in it would break the header. */
    buf_puts(&b, "attachment; filename=\"");
    for (const char *p = x->stem; *p; p++)
        buf_putc(&b, *p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ? '_' : *p);
    buf_printf(&b, ".%s\"", ext);
    x->sink.disposition(x->sink.data, b.data ? b.data : "attachment");
    buf_free(&b);
}

/* ---- rendering (thread pool) ---- */

static int add_member(ent *e, const char *ext, const void *data, size_t len, bool deflate)
{
    char name[ZIP_NAME_MAX + 1];
    if (snprintf(name, sizeof(name), "%s_%s.%s", e->id, e->channel, ext) >= (int)sizeof(name))
        return -EINVAL;
    exp_ctx *x = e->x;
    int rc = zip_member_build(name, data, len, deflate, DEFLATE_LEVEL, x->dos_date, x->dos_time,
                              &e->m[e->nm]);
    if (rc == 0)
        e->nm++;
    return rc;
}

static void render_image(ent *e)
{
    exp_ctx *x = e->x;
    if (x->original_image || e->fn >= 0) {
        /* the stored PNG, or a function's PNG made with the request's parameters */
        if (add_member(e, "png", e->blob->data, e->blob->len, false))
            e->failed = true;
        return;
    }
    if (x->levels_err || !x->cm_ok) {
        e->failed = true;
        return;
    }
    unsigned char *png = NULL;
    size_t len = 0;
    const char *mode = NULL;
    if (falsecolour_png(e->blob->data, e->blob->len, &x->levels, &x->cm,
                        x->cfg->images.png_compression_level, &png, &len, &mode) != 0 ||
        add_member(e, "png", png, len, false) != 0)
        e->failed = true;
    free(png);
}

static void render_waveform(ent *e)
{
    exp_ctx *x = e->x;
    double *wx = NULL, *wy = NULL;
    size_t n = 0;
    char err[128];
    int rc = e->fn_data
                 ? csv_waveform_json(e->fn_data, &wx, &wy, &n, err, sizeof(err))
                 : csv_parse_waveform(e->blob->data, e->blob->len, &wx, &wy, &n, err, sizeof(err));
    if (rc != 0) {
        e->failed = true;
        return;
    }
    if (x->ex_wf_csv) {
        buf_t b;
        buf_init(&b, (size_t)x->max_bytes);
        if (csv_waveform_lines(wx, wy, n, &b) != 0 ||
            add_member(e, "csv", b.data ? b.data : "", b.len, true) != 0)
            e->failed = true;
        buf_free(&b);
    }
    if (x->ex_wf_img && !e->failed) {
        unsigned char *png = NULL;
        size_t len = 0;
        const json_t *meta = json_object_get(e->chdoc, "metadata");
        if (figure_waveform_png(wx, wy, n, json_string_value(json_object_get(meta, "x_units")),
                                json_string_value(json_object_get(meta, "y_units")), &png,
                                &len) != 0 ||
            add_member(e, "png", png, len, false) != 0)
            e->failed = true;
        free(png);
    }
    free(wx);
    free(wy);
}

/* The vector's labels as C strings when there is one string per value (else NULL);
 * borrowed from the record, in an array the caller frees. */
static const char **labels_of(const ent *e, size_t n)
{
    const json_t *labels = json_object_get(json_object_get(e->chdoc, "metadata"), "labels");
    if (!json_is_array(labels) || json_array_size(labels) != n || n == 0)
        return NULL;
    const char **out = malloc(n * sizeof(*out));
    for (size_t i = 0; out && i < n; i++) {
        out[i] = json_string_value(json_array_get(labels, i));
        if (!out[i]) {
            free(out);
            return NULL;
        }
    }
    return out;
}

static void render_vector(ent *e)
{
    exp_ctx *x = e->x;
    double *v = NULL;
    size_t n = 0;
    char err[128];
    if (csv_parse_vector(e->blob->data, e->blob->len, &v, &n, err, sizeof(err)) != 0) {
        e->failed = true;
        return;
    }
    if (x->ex_vec_csv) {
        const json_t *labels = json_object_get(json_object_get(e->chdoc, "metadata"), "labels");
        buf_t b;
        buf_init(&b, (size_t)x->max_bytes);
        if (csv_vector_lines(v, n, json_is_array(labels) ? labels : NULL, &b) != 0 ||
            add_member(e, "csv", b.data ? b.data : "", b.len, true) != 0)
            e->failed = true;
        buf_free(&b);
    }
    if (x->ex_vec_img && !e->failed) {
        unsigned char *png = NULL;
        size_t len = 0;
        const char **labels = labels_of(e, n);
        if (figure_vector_png(v, n, labels, &png, &len) != 0 ||
            add_member(e, "png", png, len, false) != 0)
            e->failed = true;
        free(labels);
        free(png);
    }
    free(v);
}

static void render_run(void *data)
{
    ent *e = data;
    if (e->status != 0 || (!e->blob && !e->fn_data)) {
        e->failed = true;
    } else {
        switch (e->kind) {
        case OBJ_IMAGE:
            render_image(e);
            break;
        case OBJ_FLOAT_IMAGE:
            if (add_member(e, "npz", e->blob->data, e->blob->len, false))
                e->failed = true;
            break;
        case OBJ_WAVEFORM:
            render_waveform(e);
            break;
        case OBJ_VECTOR:
            render_vector(e);
            break;
        }
    }
    if (e->failed) {
        /* An entry's files come all or not at all. */
        for (int k = 0; k < e->nm; k++)
            zip_member_free(&e->m[k]);
        e->nm = 0;
    }
    objstore_blob_unref(e->blob);
    e->blob = NULL;
}

/* Recounts what an entry holds. */
static void hold(exp_ctx *x, ent *e, uint64_t now)
{
    x->held = x->held - e->held + now;
    e->held = now;
}

static uint64_t members_bytes(const ent *e)
{
    uint64_t n = 0;
    for (int k = e->sent; k < e->nm; k++)
        n += e->m[k].len;
    return n;
}

static void render_done(void *data, int status)
{
    ent *e = data;
    exp_ctx *x = e->x;
    e->work = NULL;
    x->outstanding--;
    if (status != 0)
        e->failed = true;
    e->state = ENT_READY;
    hold(x, e, members_bytes(e));
    pump(x);
}

/* ---- fetching ---- */

static void fail_object(exp_ctx *x, const ent *e, int status);

/* Accounts an object-store call that reported; false when the export is being torn
 * down (the caller drops the result). */
static bool call_finished(ent *e)
{
    exp_ctx *x = e->x;
    e->oreq = NULL;
    x->outstanding--;
    x->in_flight--;
    if (x->aborted) {
        maybe_finish(x);
        return false;
    }
    return true;
}

static void got_object(int status, const objstore_blob_t *blob, void *data)
{
    ent *e = data;
    exp_ctx *x = e->x;
    if (!call_finished(e))
        return;
    if (status != 0 && status != -ENOENT && status != -ECANCELED) {
        fail_object(x, e, status); /* EXPORT_ERRORS.txt is for objects that are missing */
        return;
    }
    e->status = status;
    if (status == 0) {
        e->blob = objstore_blob_ref(blob);
        hold(x, e, blob->len);
    }
    e->state = ENT_RENDERING;
    if (work_submit(x->loop, render_run, render_done, e, &e->work) != 0) {
        fail_stream(x, "cannot queue work");
        return;
    }
    x->outstanding++;
}

/* Counts an object-store call that started (rc 0); false when it did not. */
static bool started(exp_ctx *x, ent *e, int rc)
{
    if (rc != 0) {
        e->oreq = NULL;
        return false;
    }
    x->outstanding++;
    x->in_flight++;
    return true;
}

/* Starts e's GET. False when the export is being torn down (it may be freed: the caller
 * returns at once). */
static bool start_get(exp_ctx *x, ent *e)
{
    e->state = ENT_FETCHING;
    hold(x, e, e->sized ? e->est : SIZE_UNKNOWN_GUESS);
    const void *owner = objstore_set_owner(x->objstore, x->owner);
    /* Each object is read once: not worth evicting what other requests reuse. */
    int rc = objstore_get_channel_ex(x->objstore, e->kind, e->id, e->channel, OBJSTORE_GET_NO_CACHE,
                                     got_object, e, &e->oreq);
    objstore_set_owner(x->objstore, owner);
    if (started(x, e, rc))
        return true;
    /* Not a valid key (odd id or channel): not found, as a failed GET. */
    e->status = rc;
    e->state = ENT_RENDERING;
    if (work_submit(x->loop, render_run, render_done, e, &e->work) != 0) {
        fail_stream(x, "cannot queue work");
        return false;
    }
    x->outstanding++;
    return true;
}

/* ---- writing ---- */

static void written(int status, void *data);

/* The answer's head goes out with its first bytes: until then a failure (storage that
 * cannot be reached) is still a plain 503, not a cut stream. */
static void send_head(exp_ctx *x)
{
    if (!x->head_sent) {
        x->head_sent = true;
        x->sink.start(x->sink.data, 200, "application/zip");
    }
}

/* An object call failed with something other than "missing": the export cannot be
 * whole. Before the first byte the client gets the error (503 when storage cannot be
 * reached); after it the stream is cut, so no well-formed zip claims success. */
static void fail_object(exp_ctx *x, const ent *e, int status)
{
    x->err = (export_failure){.error = EXPORT_EOBJECT, .code = status};
    char why[512];
    snprintf(why, sizeof(why), "reading %s %s: %s (%d)%s", e->id, e->channel, ogd_strerror(status),
             status, x->head_sent ? ", the stream is cut" : "");
    fail_stream(x, why);
}

/* Sends one member: places it in the archive and hands its bytes to the connection. */
static int send_member(exp_ctx *x, zip_member *m)
{
    int rc = zip_writer_add(&x->zw, m);
    if (rc)
        return rc;
    send_head(x);
    char *bytes = (char *)m->bytes;
    size_t len = m->len;
    m->bytes = NULL;
    x->writing = true;
    x->outstanding++;
    rc = x->sink.write_take(x->sink.data, bytes, len, written, x);
    if (rc) {
        x->writing = false;
        x->outstanding--;
    }
    return rc;
}

static void build_tail(void *data)
{
    exp_ctx *x = data;
    /* docs/export.md §6: the CSV only when a file made it into the zip and it has text. */
    if (x->ex_scalars && x->any_file && x->csv.len > 0) {
        char name[ZIP_NAME_MAX + 8];
        snprintf(name, sizeof(name), "%s.csv", x->stem);
        if (zip_member_build(name, x->csv.data, x->csv.len, true, DEFLATE_LEVEL, x->dos_date,
                             x->dos_time, &x->tail_m[x->tail_n]) == 0)
            x->tail_n++;
    }
    if (x->errors.len > 0 &&
        zip_member_build("EXPORT_ERRORS.txt", x->errors.data, x->errors.len, true, DEFLATE_LEVEL,
                         x->dos_date, x->dos_time, &x->tail_m[x->tail_n]) == 0)
        x->tail_n++;
    x->tail_built = true;
}

static void tail_done(void *data, int status)
{
    exp_ctx *x = data;
    x->tail_work = NULL;
    x->outstanding--;
    if (status != 0) {
        fail_stream(x, "cannot build the archive's tail");
        return;
    }
    pump(x);
}

static void write_end(exp_ctx *x)
{
    unsigned char *tail;
    size_t len;
    if (zip_writer_finish(&x->zw, &tail, &len) != 0) {
        fail_stream(x, "no memory for the central directory");
        return;
    }
    x->writing = true;
    x->outstanding++;
    x->tail_sent = x->tail_n + 1; /* marks the end record as sent */
    send_head(x);
    if (x->sink.write_take(x->sink.data, (char *)tail, len, written, x) != 0) {
        x->writing = false;
        x->outstanding--;
        fail_stream(x, "write failed");
    }
}

static void written(int status, void *data)
{
    exp_ctx *x = data;
    x->writing = false;
    x->outstanding--;
    if (status != 0 || x->aborted) {
        fail_stream(x, "write failed");
        return;
    }
    if (x->tail_sent > x->tail_n) {
        /* The end record went out: the archive is complete. */
        x->ended = true;
        x->sink.end(x->sink.data);
        maybe_finish(x);
        return;
    }
    pump(x);
}

static void error_line(exp_ctx *x, const ent *e)
{
    static const char *const what[] = {"image", "float image", "waveform", "vector"};
    buf_printf(&x->errors, "Could not find %s for %s %s\n", what[e->kind], e->id, e->channel);
}

/* Writes what is ready, in order; starts the tail after the last entry. */
static void emit(exp_ctx *x)
{
    while (!x->writing && x->next_emit < x->nents) {
        ent *e = &x->ents[x->next_emit];
        if (e->state != ENT_READY)
            return;
        if (e->sent < e->nm) {
            zip_member *m = &e->m[e->sent];
            /* The size limit, for renderings that grew past their stored objects. */
            if (e->sent == 0 && x->zw.offset > x->max_bytes) {
                for (int k = 0; k < e->nm; k++)
                    zip_member_free(&e->m[k]);
                e->nm = 0;
                e->failed = true;
                continue;
            }
            if (send_member(x, m) != 0) {
                fail_stream(x, "write failed");
                return;
            }
            x->any_file = true;
            e->sent++;
            hold(x, e, members_bytes(e));
            return;
        }
        if (e->failed)
            error_line(x, e);
        for (int k = 0; k < e->nm; k++)
            zip_member_free(&e->m[k]);
        e->nm = e->sent = 0;
        hold(x, e, 0);
        e->state = ENT_DONE;
        x->next_emit++;
        /* The batches' window follows the entry being written (FN_AHEAD). Move it now: when
         * the entries left are all written here, or wait for batches that have not started,
         * no other callback comes to do it. */
        if (!start_batches(x))
            return;
    }
    if (x->writing || x->next_emit < x->nents)
        return;
    if (x->batches_done < x->nbatches)
        return; /* the CSV still needs function values */
    if (x->csv_pending) {
        x->csv_pending = false;
        if (build_csv_lines(x) != 0) {
            fail_stream(x, "the CSV does not fit");
            return;
        }
    }
    if (!x->tail_built) {
        if (x->tail_work)
            return;
        if (work_submit(x->loop, build_tail, tail_done, x, &x->tail_work) != 0) {
            fail_stream(x, "cannot queue work");
            return;
        }
        x->outstanding++;
        return;
    }
    if (x->tail_sent < x->tail_n) {
        zip_member *m = &x->tail_m[x->tail_sent++];
        if (send_member(x, m) != 0)
            fail_stream(x, "write failed");
        return;
    }
    if (x->tail_sent == x->tail_n)
        write_end(x);
}

/* ---- functions, evaluated over batches of records ---- */

static void respond_and_free(exp_ctx *x, export_error error, const char *detail);
static void proceed(exp_ctx *x);

static size_t batch_of(size_t rec)
{
    return rec / FN_BATCH;
}

/* The results of a batch go where the export needs them: scalar values stay in the
 * records (the CSV is written after the last batch), a waveform's data and an image's PNG
 * go to their entries, which then render as fetched objects do. */
static void batch_done(fneval *res, void *data)
{
    batch *bt = data;
    exp_ctx *x = bt->x;
    bt->handle = NULL;
    x->evaluating--;
    x->outstanding--;
    const char *msg = NULL;
    int code = 0;
    fneval_error fe = fneval_status(res, &msg, &code);
    if (x->aborted || fe != FNEVAL_OK) {
        if (fe != FNEVAL_OK && !x->aborted) {
            if (x->head_sent)
                log_warn("export: functions failed after the first byte: %s", msg ? msg : "");
            snprintf(x->err_detail, sizeof(x->err_detail), "%s", msg ? msg : "Unknown error");
            x->err = (export_failure){
                .error = EXPORT_EFUNCTIONS, .code = code, .message = x->err_detail, .fn_error = fe};
        }
        fneval_free(res);
        fail_stream(x, "functions failed");
        return;
    }
    json_t *recs = fneval_records(res);
    size_t from = bt->index * FN_BATCH;
    size_t nfn = fneval_list_count(x->fns);
    /* entries of this batch: the first one of its first record onwards */
    size_t lo = 0, hi = x->nents;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (x->ents[mid].rec < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < x->nents && batch_of(x->ents[i].rec) == bt->index; i++) {
        ent *e = &x->ents[i];
        if (e->fn < 0)
            continue;
        size_t r = e->rec - from;
        const unsigned char *png;
        size_t len;
        if (!fneval_has(res, r, (size_t)e->fn)) {
            e->state = ENT_READY; /* no result for this record after all: nothing */
            continue;
        }
        if (e->kind == OBJ_IMAGE && fneval_png(res, r, (size_t)e->fn, &png, &len)) {
            e->blob = objstore_blob_copy(png, len);
            if (e->blob)
                hold(x, e, len);
        } else if (e->kind == OBJ_WAVEFORM) {
            json_t *ch =
                json_object_get(json_object_get(json_array_get(recs, r), "channels"), e->channel);
            e->fn_data = json_incref(json_object_get(ch, "data"));
        }
        e->state = ENT_RENDERING;
        if (work_submit(x->loop, render_run, render_done, e, &e->work) != 0) {
            fneval_free(res);
            fail_stream(x, "cannot queue work");
            return;
        }
        x->outstanding++;
    }
    /* Only scalar results are needed later (CSV cells): drop the others from the records. */
    size_t r;
    json_t *rec;
    json_array_foreach(recs, r, rec)
    {
        json_t *chans = json_object_get(rec, "channels");
        for (size_t f = 0; f < nfn; f++) {
            const fneval_function *fn = fneval_list_get(x->fns, f);
            if (fn->type != FN_SCALAR)
                json_object_del(chans, fn->name);
        }
    }
    fneval_free(res);
    x->batches_done++;
    if (!x->streaming && !x->sizing)
        proceed(x); /* the first batch ran before the answer was chosen */
    else
        pump(x);
}

/* Starts the batches the window allows: FN_BATCHES at once, at most FN_AHEAD past the
 * batch of the entry being written. A batch that cannot start ends the export as any
 * failure of the functions does: its done runs inside fneval_start (the engine's own
 * failure, in x->err), or, when the engine could not even arrange that (-ENOMEM: done never
 * runs), the batch is uncounted here and the export fails (500 before the first byte, a cut
 * stream after it). False when the export is over or being torn down (x may be freed then:
 * the caller returns at once). */
static bool start_batches(exp_ctx *x)
{
    while (x->fns && !x->aborted && x->next_batch < x->nbatches && x->evaluating < x->batch_limit) {
        if (x->next_emit < x->nents &&
            x->next_batch > batch_of(x->ents[x->next_emit].rec) + FN_AHEAD)
            return true;
        batch *bt = &x->batches[x->next_batch];
        bt->x = x;
        bt->index = x->next_batch++;
        size_t nrec = json_array_size(x->records);
        size_t from = bt->index * FN_BATCH, to = from + FN_BATCH < nrec ? from + FN_BATCH : nrec;
        json_t *arr = json_array();
        for (size_t r = from; arr && r < to; r++)
            json_array_append(arr, json_array_get(x->records, r)); /* shared: results land in
                                                                      the records */
        if (!arr) {
            fail_stream(x, "no memory");
            return false;
        }
        fneval_options o = {
            .mode = FNEVAL_FULL,
            .levels = x->levels,
            .colourmap_name = x->colourmap_name ? x->colourmap_name : "viridis",
            .original_image = x->original_image,
            .want_png = x->ex_images,
            .channels_complete = true,
        };
        x->evaluating++;
        x->outstanding++;
        /* the export cancels its batches itself (fail_stream) */
        fneval_ctx ctx = {
            .loop = x->loop,
            .store = x->store,
            .objstore = x->objstore,
            .cfg = x->cfg,
            .arena = x->arena,
            .owner = x->owner,
        };
        enter(x);
        int rc = fneval_start(&ctx, x->fns, arr, &o, batch_done, bt, &bt->handle);
        if (!leave(x))
            return false; /* done ran inside (the batch could not start) and ended the export */
        if (rc != 0) {
            /* done will not come; the engine released arr */
            x->evaluating--;
            x->outstanding--;
            fail_stream(x, "no memory to start the functions");
            return false;
        }
    }
    return !x->aborted;
}

static void pump(exp_ctx *x)
{
    if (x->aborted) {
        maybe_finish(x);
        return;
    }
    if (!start_batches(x))
        return;
    while (x->next_start < x->nents && x->in_flight < x->max_in_flight) {
        ent *e = &x->ents[x->next_start];
        if (e->fn >= 0) {
            x->next_start++; /* made by its batch */
            continue;
        }
        uint64_t need = e->sized ? e->est : SIZE_UNKNOWN_GUESS;
        if (x->held > 0 && x->held + need > x->max_held)
            break; /* backpressure: wait for writes to drain */
        x->next_start++;
        if (!start_get(x, e))
            return;
    }
    emit(x);
}

static void start_stream(exp_ctx *x)
{
    uint64_t total = x->csv.len;
    for (size_t i = 0; i < x->nents; i++)
        total += x->ents[i].est;
    if (total > x->max_bytes) {
        respond_and_free(x, EXPORT_EINVAL, TOO_MUCH);
        return;
    }
    set_disposition(x, "zip");
    x->streaming = true; /* the head goes out with the first member (send_head) */
    pump(x);
}

/* ---- sizing (HEAD) for entries without a recorded size ---- */

static void size_next(exp_ctx *x);

static void got_size(int status, uint64_t size, void *data);

/* HEAD of key for e, accounted to the request; false when it could not start. */
static bool head_key(exp_ctx *x, ent *e, const char *key)
{
    const void *owner = objstore_set_owner(x->objstore, x->owner);
    int rc = objstore_head(x->objstore, key, got_size, e, &e->oreq);
    objstore_set_owner(x->objstore, owner);
    return started(x, e, rc);
}

static void got_size(int status, uint64_t size, void *data)
{
    ent *e = data;
    exp_ctx *x = e->x;
    if (!call_finished(e))
        return;
    if (status != 0 && status != -ENOENT && status != -ECANCELED) {
        fail_object(x, e, status); /* before the first byte: 503 when storage is down */
        return;
    }
    if (status == -ENOENT && !e->legacy_tried) {
        /* New key missing: the legacy one, as a GET would. */
        char key[OBJSTORE_KEY_MAX];
        e->legacy_tried = true;
        if (objstore_key_legacy(e->kind, e->id, e->channel, key) == 0 && head_key(x, e, key))
            return;
    }
    e->sized = true;
    e->est = status == 0 ? size : 0; /* missing: the GET will fail and write a line */
    size_next(x);
}

static void size_next(exp_ctx *x)
{
    while (x->next_start < x->nents && x->in_flight < x->max_in_flight) {
        ent *e = &x->ents[x->next_start++];
        if (e->sized)
            continue;
        char key[OBJSTORE_KEY_MAX];
        if (objstore_key_new(e->kind, e->id, e->channel, key) != 0 || !head_key(x, e, key)) {
            e->sized = true;
            e->est = 0;
        }
    }
    if (x->in_flight == 0 && x->next_start >= x->nents) {
        x->sizing = false;
        x->next_start = 0;
        start_stream(x);
    }
}

/* ---- the query ---- */

static void respond_and_free(exp_ctx *x, export_error error, const char *detail)
{
    answer_error(x, error, detail);
    finish_planned(x);
}

/* A store op failed: the caller maps its status and text. */
static void store_failed(exp_ctx *x, const store_op_t *op, const char *detail500)
{
    export_failure f = {
        .error = EXPORT_ESTORE, .code = op->status, .message = op->err, .detail500 = detail500};
    x->sink.fail(x->sink.data, &f);
    finish_planned(x);
}

static void ops_done(store_op_t *op)
{
    exp_ctx *x = op->data;
    if (--x->ops_pending > 0)
        return;
    if (x->find.status != 0) {
        store_failed(x, &x->find, "Database operation failed during query_to_list");
        return;
    }
    if (x->manifest.status != 0 && x->manifest.status != -ENOENT) {
        store_failed(x, &x->manifest, "Unknown error");
        return;
    }
    x->records = x->find.result;
    x->find.result = NULL;
    if (x->manifest.status == 0) {
        x->mchannels = json_incref(json_object_get(x->manifest.result, "channels"));
    }
    if (json_array_size(x->records) == 0) {
        respond_and_free(x, EXPORT_EINVAL, "No records found to export");
        return;
    }
    if (x->fns) {
        size_t bad = 0;
        char err[FN_ERR_MAX];
        if (fneval_list_types(x->arena, x->fns, x->mchannels, &bad, err) != 0) {
            respond_and_free(x, EXPORT_EINVAL, err);
            return;
        }
    }
    if (!build_columns(x)) {
        finish_planned(x);
        return;
    }
    int rc = build_csv_header(x);
    if (!rc && !x->fns)
        rc = build_csv_lines(x);
    x->csv_pending = x->fns != NULL;
    if (rc == -E2BIG) {
        respond_and_free(x, EXPORT_EINVAL, TOO_MUCH);
        return;
    }
    if (rc || build_entries(x) != 0 || !(x->stem = make_stem(x))) {
        respond_and_free(x, EXPORT_EINTERNAL, "Unknown error");
        return;
    }
    if (x->nents == 0 && !x->ex_scalars) {
        respond_and_free(x, EXPORT_EINVAL, "Nothing to export");
        return;
    }
    if (x->fns) {
        size_t nrec = json_array_size(x->records);
        x->nbatches = (nrec + FN_BATCH - 1) / FN_BATCH;
        x->batches = calloc(x->nbatches, sizeof(batch));
        if (!x->batches) {
            respond_and_free(x, EXPORT_EINTERNAL, "Unknown error");
            return;
        }
        /* The first batch runs alone before anything is sent: a mistake in the functions
         * is still a 4xx then. Its done goes on (proceed); x may be freed here. */
        x->batch_limit = 1;
        start_batches(x);
        return;
    }
    proceed(x);
}

/* After the plan (and the first batch of functions): the CSV alone, or the zip. */
static void proceed(exp_ctx *x)
{
    x->batch_limit = FN_BATCHES;
    if (x->nents == 0) {
        if (x->batches_done < x->nbatches) {
            /* the CSV needs every record's function values; x may be freed here */
            start_batches(x);
            return;
        }
        if (x->csv_pending && build_csv_lines(x) != 0) {
            respond_and_free(x, EXPORT_EINVAL, TOO_MUCH);
            return;
        }
        set_disposition(x, "csv");
        size_t len = x->csv.len;
        char *text = buf_take(&x->csv);
        if (!text) {
            respond_and_free(x, EXPORT_EINTERNAL, "Unknown error");
            return;
        }
        x->sink.answer(x->sink.data, 200, "text/plain; charset=utf-8", text, len);
        finish_planned(x);
        return;
    }
    /* Sizes: what ingest recorded, else HEAD. */
    bool need_head = false;
    for (size_t i = 0; i < x->nents && !need_head; i++)
        need_head = !x->ents[i].sized;
    if (need_head) {
        x->sizing = true;
        size_next(x);
    } else {
        start_stream(x);
    }
}

export_job *export_new(const export_ctx *ctx, const export_params *p, const export_sink *sink)
{
    exp_ctx *x = calloc(1, sizeof(*x));
    if (!x) {
        filter_free(p->filter);
        return NULL;
    }
    x->loop = ctx->loop;
    x->store = ctx->store;
    x->objstore = ctx->objstore;
    x->cfg = ctx->cfg;
    x->arena = ctx->arena;
    x->owner = ctx->owner;
    x->sink = *sink;
    store_op_init(&x->find, STORE_RECORDS_FIND);
    x->find.private_fields = true; /* object_size, for the size check */
    store_op_init(&x->manifest, STORE_MANIFEST_LATEST);
    buf_init(&x->csv, (size_t)x->cfg->export.max_filesize_bytes);
    buf_init(&x->errors, 64u << 20);
    x->max_bytes = (uint64_t)x->cfg->export.max_filesize_bytes;
    x->max_in_flight = (size_t)x->cfg->export.max_concurrency;
    x->max_held = (uint64_t)x->cfg->export.max_buffer_bytes;
    zip_dos_time(time(NULL), &x->dos_date, &x->dos_time);
    /* Every member's directory entry is under 100 bytes + its name. */
    zip_writer_init(&x->zw, x->dos_date, x->dos_time, 0);

    x->filter = p->filter;
    x->find.filter = p->filter;
    x->find.skip = p->skip;
    x->find.limit = p->limit;
    x->find.max_documents = p->max_documents;
    x->find.order = p->order;
    x->find.norder = p->norder;
    x->proj = (const char **)p->projection;
    x->nproj = p->nprojection;
    x->find.projection = p->projection;
    x->find.nprojection = p->nprojection;
    x->fns = p->fns;
    x->ex_scalars = p->export_scalars;
    x->ex_images = p->export_images;
    x->ex_floats = p->export_float_images;
    x->ex_wf_csv = p->export_waveform_csvs;
    x->ex_wf_img = p->export_waveform_images;
    x->ex_vec_csv = p->export_vector_csvs;
    x->ex_vec_img = p->export_vector_images;
    int64_t lo = p->lower_level, up = p->upper_level, bits = p->limit_bit_depth;
    x->colourmap_name = p->colourmap_name;
    x->levels = (falsecolour_levels){.lower = lo,
                                     .upper = up,
                                     .limit_bit_depth = (int)bits,
                                     .has_lower = true,
                                     .has_upper = true};
    x->original_image = lo == 0 && up == 255 && bits == 8 && !x->colourmap_name;
    x->levels_err = falsecolour_check(&x->levels);
    x->cm_ok = colourmap_find(x->colourmap_name ? x->colourmap_name : "viridis", &x->cm) == 0;
    /* /export sorts by _id when no order is given (docs/api.md §4.4). */
    static const char *const by_id[] = {"_id asc"};
    if (x->find.norder == 0) {
        x->find.order = by_id;
        x->find.norder = 1;
    }
    return x;
}

void export_run(export_job *x)
{
    if (!build_store_projection(x)) {
        respond_and_free(x, EXPORT_EINTERNAL, "Unknown error");
        return;
    }
    x->ops_pending = 2;
    if (store_submit(x->store, &x->find, ops_done, x) != 0) {
        respond_and_free(x, EXPORT_EINTERNAL, "Database operation failed during query_to_list");
        return;
    }
    if (store_submit(x->store, &x->manifest, ops_done, x) != 0) {
        /* The find completes on its own: let ops_done see a failed manifest. */
        x->manifest.data = x;
        x->manifest.status = STORE_EDB;
        snprintf(x->manifest.err, sizeof(x->manifest.err), "cannot submit");
        ops_done(&x->manifest);
    }
}
