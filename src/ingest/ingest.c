/*
 * ingest.c: the upload pipeline (see ingest.h). One ingest_t per upload, freed after its
 * callback. Each stage's completion starts the next; `fail` ends the pipeline with an
 * error response (deleting objects already stored when there are any).
 */
#include "ingest/ingest.h"

#include "ingest/checks.h"
#include "util/taskgroup.h"
#include "store/filter.h"
#include "store/timestamp.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PRESENT "Channel is already present in existing record"

typedef struct obj_task {
    struct ingest *in;
    size_t channel; /* index into plan.channels */
    ingest_object obj;
    int encode_status;
    const char *why;
    const objstore_blob_t *blob; /* the encoded object, for the store */
    task_t *task;
    bool claimed;  /* a sweep is deleting this key (an earlier write's leftover): not written */
    bool put_sent; /* the PUT was sent: if it failed, it may still land */
} obj_task;

struct ingest {
    ingest_env env;
    const void *bytes;
    size_t len;
    ingest_done_cb cb;
    void *data;
    parse_proc_t *proc;
    parse_result parsed;
    json_t *manifest;
    ingest_plan plan;
    store_op_t op;
    filter_t *filter;
    json_t *existing; /* the stored record, or NULL */
    bool by_shotnum;
    bool canceled;
    json_t *response; /* {"accepted_channels", "rejected_channels", "warnings"} */
    json_t *rejected; /* the response's rejected_channels (borrowed from response) */
    bool *accept;     /* per plan channel: to store */
    obj_task *objs;   /* object channels to store */
    size_t nobjs;
    taskgroup_t tg;
    size_t heads_pending;
    int64_t version; /* merge: the new version */
    char record_id[32];
    json_t *doc;
    int rb_status; /* rollback: the answer after the deletes */
    const char *rb_detail;
    ingest_result res;
    /* stage times for the debug log (ms since ingest_start; CPU ns of the encodes) */
    uint64_t t0;
    double t_parsed, t_checked, t_first_put, t_encoded, t_uploaded;
    atomic_uint_fast64_t encode_cpu_ns;
    size_t encodes_pending;
};

static double since(const ingest_t *in)
{
    return (double)(uv_hrtime() - in->t0) / 1e6;
}

static void finish(ingest_t *in, int status, json_t *body)
{
    log_debug("ingest %s: status %d; ms since start: parsed %.0f, checked %.0f, first PUT %.0f, "
              "all encoded %.0f, all uploaded %.0f, answered %.0f; encode CPU %.0f ms",
              in->record_id, status, in->t_parsed, in->t_checked, in->t_first_put, in->t_encoded,
              in->t_uploaded, since(in), (double)atomic_load(&in->encode_cpu_ns) / 1e6);
    in->res.status = status;
    in->res.body = body;
    snprintf(in->res.record_id, sizeof(in->res.record_id), "%s", in->record_id);
    in->cb(&in->res, in->data);
    json_decref(body);
    for (size_t i = 0; i < in->nobjs; i++) {
        ingest_object_free(&in->objs[i].obj);
        objstore_blob_unref(in->objs[i].blob);
    }
    free(in->objs);
    free(in->accept);
    json_decref(in->response);
    json_decref(in->existing);
    json_decref(in->doc);
    json_decref(in->manifest);
    filter_free(in->filter);
    ingest_plan_free(&in->plan);
    parse_result_free(&in->parsed);
    free(in);
}

static void fail(ingest_t *in, int status, const char *detail)
{
    finish(in, status, json_pack("{ss}", "detail", detail));
}

/* ---- cleanup after a failed record write: delete what was stored ---- */

static void delete_done(int status, void *data)
{
    taskgroup_task_done(data, status);
}

static int delete_start(task_t *t)
{
    obj_task *o = t->arg;
    const void *prev = objstore_set_owner(o->in->env.objstore, o->in->env.owner);
    int rc = objstore_delete(o->in->env.objstore, o->obj.key, delete_done, t, NULL);
    objstore_set_owner(o->in->env.objstore, prev);
    return rc;
}

static void deleted(taskgroup_t *tg, int status, void *data)
{
    ingest_t *in = data;
    (void)tg;
    if (status)
        log_error("ingest %s: could not delete every object of the failed upload (%d)",
                  in->record_id, status);
    fail(in, in->rb_status, in->rb_detail);
}

/* Deletes every uploaded object, then answers status/detail. */
static void rollback(ingest_t *in, int status, const char *detail)
{
    in->rb_status = status;
    in->rb_detail = detail;
    taskgroup_init(&in->tg, in->env.loop, 0);
    for (size_t i = 0; i < in->nobjs; i++) {
        if (in->objs[i].obj.uploaded)
            taskgroup_spawn(&in->tg, delete_start, NULL, &in->objs[i]);
    }
    taskgroup_wait(&in->tg, deleted, in);
}

/* ---- the record write ---- */

/* Runs on the thread pool (a file write of the whole upload plus fsync). */
static void backup_run(void *data)
{
    ingest_t *in = data;
    int64_t version = in->existing ? in->version : 1;
    const char *id = in->record_id;
    char dir[4096], path[4200], tmp[4300];
    snprintf(dir, sizeof(dir), "%s/%.4s/%.2s/%.2s/%s", in->env.backup_dir, id, id + 4, id + 6,
             id + 8);
    for (char *p = dir + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0750);
            *p = '/';
        }
    }
    mkdir(dir, 0750);
    snprintf(path, sizeof(path), "%s/%lld.hdf5", dir, (long long)version);
    snprintf(tmp, sizeof(tmp), "%s/.ogd-tmp-%d-%lld", dir, (int)getpid(), (long long)version);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    bool ok = fd >= 0;
    size_t done = 0;
    while (ok && done < in->len) {
        ssize_t n = write(fd, (const char *)in->bytes + done, in->len - done);
        ok = n > 0;
        done += ok ? (size_t)n : 0;
    }
    if (fd >= 0 && (fsync(fd) != 0 || close(fd) != 0))
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        log_error("ingest %s: could not write the backup copy %s", id, path);
    }
}

static void respond_stored(ingest_t *in);

static void backup_done(void *data, int status)
{
    (void)status; /* canceled only at loop shutdown; the record is stored either way */
    respond_stored(data);
}

static void written(store_op_t *op)
{
    ingest_t *in = op->data;
    int status = op->status;
    store_op_cleanup(op);
    if (status == -EEXIST) {
        /* A concurrent upload inserted a record with this id first. Its objects have the
         * same keys as ours, so deleting "ours" would leave its record pointing at missing
         * objects: keep them and answer as the reference does. */
        log_warn("ingest %s: a record with this id was inserted concurrently", in->record_id);
        return fail(in, 400, "Session name already exists for this user.");
    }
    if (status != 0) {
        log_error("ingest %s: record write failed: %s (%d)", in->record_id, ogd_strerror(status),
                  status);
        return rollback(in, ogd_unavailable(status) ? 503 : 500, "Database error");
    }
    /* The backup copy is part of the request, as the reference's: written off the loop. */
    if (in->env.backup_dir && work_submit(in->env.loop, backup_run, backup_done, in, NULL) == 0)
        return;
    respond_stored(in);
}

static void respond_stored(ingest_t *in)
{
    bool merged = in->existing != NULL;
    char msg[64];
    snprintf(msg, sizeof(msg), "%s %s", merged ? "Updated" : "Added as", in->record_id);
    json_t *body = json_pack("{ss sO}", "message", msg, "response", in->response);
    finish(in, merged ? 200 : 201, body);
}

static void write_record(ingest_t *in)
{
    json_t *accepted = json_object_get(in->response, "accepted_channels");
    /* upload failures, in the order waveforms, images, float images, vectors */
    static const objstore_kind order[] = {OBJ_WAVEFORM, OBJ_IMAGE, OBJ_FLOAT_IMAGE, OBJ_VECTOR};
    for (int k = 0; k < 4; k++) {
        for (size_t i = 0; i < in->nobjs; i++) {
            obj_task *o = &in->objs[i];
            if (o->obj.kind != order[k] || o->obj.uploaded)
                continue;
            const char *name = in->plan.channels[o->channel].name;
            in->accept[o->channel] = false;
            json_object_set_new(
                in->rejected, name,
                json_pack("[s]", o->encode_status ? o->why : "Upload to Echo failed"));
        }
    }
    json_array_clear(accepted);
    json_t *channels = json_object();
    size_t j = 0;
    for (size_t i = 0; i < in->plan.nchannels; i++) {
        if (!in->accept[i])
            continue;
        const ingest_channel *c = &in->plan.channels[i];
        json_array_append_new(accepted, json_string(c->name));
        json_t *doc = NULL;
        if (c->kind == INGEST_SCALAR) {
            doc = ingest_scalar_doc(c);
        } else {
            for (; j < in->nobjs && in->objs[j].channel != i; j++)
                ;
            if (j < in->nobjs)
                doc = json_incref(in->objs[j].obj.doc);
        }
        if (doc)
            json_object_set_new(channels, c->name, doc);
    }
    if (in->existing) {
        /* Only the version and the accepted channels change: the metadata matched (A7.1)
         * and epac_ops_data_version is never updated by a merge. One transaction, so
         * concurrent merges of one record each keep their channels. */
        in->doc = json_pack("{so}", "channels", channels);
        store_op_init(&in->op, STORE_RECORD_MERGE);
        in->op.id = in->record_id;
        in->op.doc = in->doc;
        if (store_submit(in->env.store, &in->op, written, in) != 0)
            rollback(in, 500, "Database error");
        return;
    }
    in->doc = json_pack("{ss sO so}", "_id", in->record_id, "metadata", in->plan.metadata,
                        "channels", channels);
    store_op_init(&in->op, STORE_RECORD_PUT);
    in->op.doc = in->doc;
    in->op.replace = false;
    if (store_submit(in->env.store, &in->op, written, in) != 0)
        rollback(in, 500, "Database error");
}

/* ---- encode + upload, one task per object ---- */

static void put_done(int status, void *data)
{
    obj_task *o = data;
    o->obj.uploaded = status == 0;
    o->obj.status = status;
    if (status)
        log_warn("ingest %s: upload of %s failed (%d)", o->in->record_id, o->obj.key, status);
    /* the store holds its own reference while it needs the bytes */
    objstore_blob_unref(o->blob);
    o->blob = NULL;
    taskgroup_task_done(o->task, 0);
}

static void encode_run(void *data)
{
    obj_task *o = data;
    ingest_t *in = o->in;
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    o->encode_status = ingest_encode(&in->plan.channels[o->channel], in->record_id, &in->env.sizes,
                                     &o->obj, &o->why);
    if (o->encode_status == 0) {
        /* the store's blob, made here: it adopts the encoder's buffer, trimmed to the
         * object and its NUL (realloc shrinks in place, or remaps without copying) */
        unsigned char *trimmed = realloc(o->obj.bytes, o->obj.len + 1);
        if (trimmed) {
            o->blob = objstore_blob_adopt(trimmed, o->obj.len);
        } else {
            o->blob = objstore_blob_copy(o->obj.bytes, o->obj.len);
            free(o->obj.bytes);
        }
        o->obj.bytes = NULL;
        if (!o->blob)
            o->encode_status = -ENOMEM;
    }
    if (o->encode_status && !o->why)
        o->why = "Upload to Echo failed";
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    atomic_fetch_add(&in->encode_cpu_ns, (uint_fast64_t)((c1.tv_sec - c0.tv_sec) * 1000000000LL +
                                                         (c1.tv_nsec - c0.tv_nsec)));
}

static void encode_done(void *data, int status)
{
    obj_task *o = data;
    ingest_t *in = o->in;
    if (--in->encodes_pending == 0)
        in->t_encoded = since(in);
    if (in->t_first_put == 0)
        in->t_first_put = since(in);
    if (status == 0 && o->encode_status == 0 && !in->canceled) {
        const void *prev = objstore_set_owner(in->env.objstore, in->env.owner);
        int rc = objstore_put_blob(in->env.objstore, o->obj.key, o->blob, put_done, o, NULL);
        objstore_set_owner(in->env.objstore, prev);
        if (rc == 0) {
            o->put_sent = true;
            return;
        }
        o->obj.status = rc;
    } else if (status) {
        o->encode_status = status;
        o->why = "Upload to Echo failed";
    }
    taskgroup_task_done(o->task, 0);
}

static int obj_start(task_t *t)
{
    obj_task *o = t->arg;
    o->task = t;
    return work_submit(o->in->env.loop, encode_run, encode_done, o, NULL);
}

static void after_uploads(ingest_t *in)
{
    if (in->canceled)
        return rollback(in, 499, "Client closed the request");
    write_record(in);
}

static void noted(store_op_t *op)
{
    ingest_t *in = op->data;
    if (op->status)
        log_error("ingest %s: could not note the failed uploads (%d: %s); their objects may be "
                  "left behind if they land late",
                  in->record_id, op->status, op->err);
    json_decref(op->doc);
    store_op_cleanup(op);
    after_uploads(in);
}

/* A PUT that failed after it was sent (a timeout, a reset, a 5xx) may still be stored,
 * under a key the record will not name: each is noted in the store, for the jobs
 * process to delete once no record refers to it (docs/design.md §6.5). */
static void uploads_done(taskgroup_t *tg, int status, void *data)
{
    ingest_t *in = data;
    (void)tg;
    (void)status;
    in->t_uploaded = since(in);
    json_t *notes = json_array();
    for (size_t i = 0; notes && i < in->nobjs; i++) {
        obj_task *o = &in->objs[i];
        if (o->put_sent && !o->obj.uploaded)
            json_array_append_new(notes, json_pack("{ss ss ss}", "_id", o->obj.key, "record_id",
                                                   in->record_id, "channel",
                                                   in->plan.channels[o->channel].name));
    }
    if (json_array_size(notes) == 0) {
        json_decref(notes);
        return after_uploads(in);
    }
    store_op_init(&in->op, STORE_UNCERTAIN_NOTE);
    in->op.doc = notes;
    in->op.lo = (int64_t)time(NULL);
    if (store_submit(in->env.store, &in->op, noted, in) != 0) {
        in->op.status = -ENOMEM;
        noted(&in->op);
    }
}

static void start_objects(ingest_t *in)
{
    in->encodes_pending = in->nobjs;
    taskgroup_init(&in->tg, in->env.loop, 0);
    for (size_t i = 0; i < in->nobjs; i++) {
        obj_task *o = &in->objs[i];
        if (o->claimed) {
            in->encodes_pending--;
            o->encode_status = -EBUSY;
            o->why = "Upload to Echo failed";
            log_warn("ingest %s: %s is being deleted as an earlier upload's leftover; channel "
                     "not stored",
                     in->record_id, o->obj.key);
        } else if (!taskgroup_spawn(&in->tg, obj_start, NULL, o)) {
            o->encode_status = -ENOMEM;
            o->why = "Upload to Echo failed";
        }
    }
    taskgroup_wait(&in->tg, uploads_done, in);
}

static void touched(store_op_t *op)
{
    ingest_t *in = op->data;
    int status = op->status;
    size_t i;
    json_t *key;
    json_array_foreach(op->result, i, key)
    {
        for (size_t k = 0; k < in->nobjs; k++)
            if (strcmp(in->objs[k].obj.key, json_string_value(key)) == 0)
                in->objs[k].claimed = true;
    }
    json_decref(op->doc);
    store_op_cleanup(op);
    if (status)
        return fail(in, ogd_unavailable(status) ? 503 : 500, "Database error");
    if (in->canceled)
        return fail(in, 499, "Client closed the request");
    start_objects(in);
}

/* Before anything is written: the keys this upload will write renew any note an earlier
 * failed write left on them (so the sweep leaves them be), and a key the sweep is
 * deleting right now is not written at all (docs/design.md §6.5). */
static void store_objects(ingest_t *in)
{
    in->objs = calloc(in->plan.nchannels ? in->plan.nchannels : 1, sizeof(obj_task));
    json_t *keys = json_array();
    if (!in->objs || !keys) {
        json_decref(keys);
        return fail(in, 500, "Unknown error");
    }
    for (size_t i = 0; i < in->plan.nchannels; i++) {
        if (!in->accept[i] || in->plan.channels[i].kind == INGEST_SCALAR)
            continue;
        obj_task *o = &in->objs[in->nobjs++];
        o->in = in;
        o->channel = i;
        if (ingest_object_key(&in->plan.channels[i], in->record_id, &o->obj.kind, o->obj.key) == 0)
            json_array_append_new(keys, json_string(o->obj.key));
    }
    if (json_array_size(keys) == 0) {
        json_decref(keys);
        return start_objects(in);
    }
    store_op_init(&in->op, STORE_UNCERTAIN_TOUCH);
    in->op.doc = keys;
    in->op.lo = (int64_t)time(NULL);
    if (store_submit(in->env.store, &in->op, touched, in) != 0) {
        json_decref(keys);
        store_op_cleanup(&in->op);
        fail(in, 500, "Database error");
    }
}

/* ---- decisions ---- */

/* The response skeleton and per-channel acceptance for a new record. */
static void decide_new(ingest_t *in)
{
    for (size_t i = 0; i < in->plan.nchannels; i++)
        in->accept[i] = !in->plan.channels[i].rejected;
    json_object_update(in->rejected, in->plan.rejected);
    store_objects(in);
}

typedef struct head_ctx {
    ingest_t *in;
    size_t channel;
    bool present;
} head_ctx;

static void merge_channels_done(ingest_t *in, head_ctx *heads)
{
    /* "already present" strings first (record order), then check failures in place */
    for (size_t i = 0; i < in->plan.nchannels; i++) {
        const ingest_channel *c = &in->plan.channels[i];
        in->accept[i] = !heads[i].present;
        if (heads[i].present)
            json_object_set_new(in->rejected, c->name, json_string(PRESENT));
    }
    free(heads);
    const char *key;
    json_t *v;
    json_object_foreach(in->plan.rejected, key, v) json_object_set(in->rejected, key, v);
    for (size_t i = 0; i < in->plan.nchannels; i++)
        if (in->plan.channels[i].rejected)
            in->accept[i] = false;
    store_objects(in);
}

static void head_done(int status, uint64_t size, void *data)
{
    head_ctx *h = data;
    (void)size;
    h->present = status == 0; /* any failure counts as absent: re-upload */
    ingest_t *in = h->in;
    if (--in->heads_pending == 0)
        merge_channels_done(in, h - h->channel);
}

static void decide_merge(ingest_t *in)
{
    head_ctx *heads = calloc(in->plan.nchannels ? in->plan.nchannels : 1, sizeof(head_ctx));
    if (!heads)
        return fail(in, 500, "Unknown error");
    json_t *stored = json_object_get(in->existing, "channels");
    in->heads_pending = 1;
    for (size_t i = 0; i < in->plan.nchannels; i++) {
        const ingest_channel *c = &in->plan.channels[i];
        heads[i].in = in;
        heads[i].channel = i;
        if (!json_object_get(stored, c->name))
            continue;
        if (c->kind == INGEST_SCALAR) {
            heads[i].present = true;
            continue;
        }
        objstore_kind k = c->kind == INGEST_IMAGE         ? OBJ_IMAGE
                          : c->kind == INGEST_FLOAT_IMAGE ? OBJ_FLOAT_IMAGE
                          : c->kind == INGEST_WAVEFORM    ? OBJ_WAVEFORM
                                                          : OBJ_VECTOR;
        char key[OBJSTORE_KEY_MAX];
        if (objstore_key_new(k, in->record_id, c->name, key) != 0)
            continue;
        const void *prev = objstore_set_owner(in->env.objstore, in->env.owner);
        in->heads_pending++;
        if (objstore_head(in->env.objstore, key, head_done, &heads[i], NULL) != 0)
            in->heads_pending--;
        objstore_set_owner(in->env.objstore, prev);
    }
    if (--in->heads_pending == 0)
        merge_channels_done(in, heads);
}

static bool same_string(const json_t *a, const json_t *b)
{
    if (!a || json_is_null(a))
        return !b || json_is_null(b);
    return b && json_equal(a, b);
}

static void decide(ingest_t *in)
{
    in->response = json_pack("{s[] s{} sO}", "accepted_channels", "rejected_channels", "warnings",
                             in->plan.warnings);
    in->rejected = json_object_get(in->response, "rejected_channels");
    in->accept = calloc(in->plan.nchannels ? in->plan.nchannels : 1, sizeof(bool));
    if (!in->response || !in->accept)
        return fail(in, 500, "Unknown error");
    if (!in->existing)
        return decide_new(in);
    /* A7.1, comparing instants (ogd: the reference compares wall clocks across offsets) */
    const json_t *smd = json_object_get(in->existing, "metadata");
    const json_t *fmd = in->plan.metadata;
    int64_t sts = 0;
    bool time_match =
        timestamp_from_json(json_object_get(smd, "timestamp"), &sts) == 0 && sts == in->plan.ts_us;
    bool shot_match = same_string(json_object_get(smd, "shotnum"), json_object_get(fmd, "shotnum"));
    bool area_match =
        same_string(json_object_get(smd, "active_area"), json_object_get(fmd, "active_area"));
    bool exp_match = same_string(json_object_get(smd, "active_experiment"),
                                 json_object_get(fmd, "active_experiment"));
    if (shot_match && !time_match)
        return fail(in, 400, "a record with this shotnum already exists");
    if (!(shot_match && time_match && area_match && exp_match))
        return fail(in, 400, "inconsistent metadata");
    snprintf(in->record_id, sizeof(in->record_id), "%s",
             json_string_value(json_object_get(in->existing, "_id")));
    json_t *ver = json_object_get(in->existing, "version");
    in->version = (json_is_integer(ver) ? json_integer_value(ver) : 1) + 1;
    decide_merge(in);
}

/* ---- lookups ---- */

static void lookup(ingest_t *in, bool by_shotnum);

static void found(store_op_t *op)
{
    ingest_t *in = op->data;
    int status = op->status;
    json_t *first = json_array_get(op->result, 0);
    if (status == 0 && first)
        in->existing = json_incref(first);
    store_op_cleanup(op);
    filter_free(in->filter);
    in->filter = NULL;
    if (status)
        return fail(in, ogd_unavailable(status) ? 503 : 500, "Database error");
    if (in->canceled)
        return fail(in, 499, "Client closed the request");
    if (!in->existing && !in->by_shotnum && in->plan.has_shotnum)
        return lookup(in, true);
    decide(in);
}

static void lookup(ingest_t *in, bool by_shotnum)
{
    in->by_shotnum = by_shotnum;
    json_t *cond = by_shotnum ? json_pack("{sI}", "metadata.shotnum", (json_int_t)in->plan.shotnum)
                              : json_pack("{ss}", "_id", in->record_id);
    char err[256];
    int rc = filter_compile(cond, false, &in->filter, err, sizeof(err));
    json_decref(cond);
    if (rc)
        return fail(in, 500, "Unknown error");
    store_op_init(&in->op, STORE_RECORDS_FIND);
    in->op.filter = in->filter;
    in->op.limit = 1;
    if (store_submit(in->env.store, &in->op, found, in) != 0)
        fail(in, 500, "Database error");
}

/* ---- checks ---- */

static void check_run(void *data)
{
    ingest_t *in = data;
    int rc = ingest_check(&in->parsed, in->manifest, &in->env.limits.hdf5, &in->plan);
    if (rc)
        in->plan.status = 500;
}

static void check_done(void *data, int status)
{
    ingest_t *in = data;
    in->t_checked = since(in);
    if (status)
        return fail(in, 500, "Unknown error");
    if (in->plan.status)
        return fail(in, in->plan.status,
                    in->plan.status == 500 ? "Unknown error" : in->plan.message);
    if (in->canceled)
        return fail(in, 499, "Client closed the request");
    snprintf(in->record_id, sizeof(in->record_id), "%s", in->plan.id);
    lookup(in, false);
}

static void manifest_loaded(store_op_t *op)
{
    ingest_t *in = op->data;
    int status = op->status;
    if (status == 0)
        in->manifest = json_incref(op->result);
    store_op_cleanup(op);
    if (status && status != -ENOENT)
        return fail(in, ogd_unavailable(status) ? 503 : 500, "Database error");
    if (work_submit(in->env.loop, check_run, check_done, in, NULL) != 0)
        fail(in, 500, "Unknown error");
}

static void parsed(int status, parse_result *res, void *data)
{
    ingest_t *in = data;
    in->proc = NULL;
    in->t_parsed = since(in);
    if (status == -ECANCELED || in->canceled)
        return fail(in, 499, "Client closed the request");
    if (status)
        return fail(in, 400, parse_strerror(status));
    in->parsed = *res;
    store_op_init(&in->op, STORE_MANIFEST_LATEST);
    if (store_submit(in->env.store, &in->op, manifest_loaded, in) != 0)
        fail(in, 500, "Database error");
}

int ingest_start(const ingest_env *env, const void *bytes, size_t len, int fd, uint64_t fd_offset,
                 ingest_done_cb cb, void *data, ingest_t **out)
{
    ingest_t *in = calloc(1, sizeof(*in));
    if (!in)
        return -ENOMEM;
    in->env = *env;
    in->t0 = uv_hrtime();
    in->bytes = bytes;
    in->len = len;
    in->cb = cb;
    in->data = data;
    int rc =
        parse_proc_start(env->loop, bytes, len, fd, fd_offset, &env->limits, parsed, in, &in->proc);
    if (rc) {
        free(in);
        return rc;
    }
    if (out)
        *out = in;
    return 0;
}

void ingest_cancel(ingest_t *in)
{
    in->canceled = true;
    if (in->proc)
        parse_proc_cancel(in->proc);
}

void ingest_env_from_config(const ogd_config *cfg, ingest_env *env)
{
    env->sizes.image[0] = (uint32_t)cfg->images.thumbnail_size[0];
    env->sizes.image[1] = (uint32_t)cfg->images.thumbnail_size[1];
    env->sizes.float_image[0] = (uint32_t)cfg->float_images.thumbnail_size[0];
    env->sizes.float_image[1] = (uint32_t)cfg->float_images.thumbnail_size[1];
    env->sizes.waveform[0] = (uint32_t)cfg->waveforms.thumbnail_size[0];
    env->sizes.waveform[1] = (uint32_t)cfg->waveforms.thumbnail_size[1];
    env->sizes.waveform_line_width = cfg->waveforms.line_width;
    env->sizes.vector[0] = (uint32_t)cfg->vectors.thumbnail_size[0];
    env->sizes.vector[1] = (uint32_t)cfg->vectors.thumbnail_size[1];
    /* the helper's answer: every frame at most twice the upload, plus thumbnails */
    env->limits.max_output = (size_t)cfg->server.max_upload_bytes * 2 + ((size_t)64 << 20);
    /* what one file may hold (config ingest:), checked before any dataset is read */
    env->limits.hdf5.max_dataset_bytes = (uint64_t)cfg->ingest.max_decompressed_bytes;
    env->limits.hdf5.max_file_bytes = (uint64_t)cfg->ingest.max_file_decompressed_bytes;
    env->limits.hdf5.max_channels = (uint64_t)cfg->ingest.max_channels;
    env->backup_dir = cfg->backup.present ? cfg->backup.cache_directory : NULL;
}
