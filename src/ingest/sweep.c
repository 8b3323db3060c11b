/*
 * sweep.c: the sweep of uncertain objects (see sweep.h).
 */
#include "ingest/sweep.h"

#include "util/log.h"

#include <errno.h>
#include <string.h>

typedef struct delete_wait {
    bool done;
    int status;
} delete_wait;

static void deleted(int status, void *data)
{
    delete_wait *w = data;
    w->done = true;
    w->status = status;
}

/* One object delete, run to completion on loop. */
static int delete_object(objstore_t *os, uv_loop_t *loop, const char *key)
{
    delete_wait w = {false, 0};
    int rc = objstore_delete(os, key, deleted, &w, NULL);
    if (rc)
        return rc;
    while (!w.done && uv_run(loop, UV_RUN_ONCE))
        ;
    return w.done ? w.status : -EIO;
}

static int run_by_id(store_t *store, store_op_kind kind, const char *id, int64_t lo, int64_t hi,
                     int64_t *count)
{
    store_op_t op;
    store_op_init(&op, kind);
    op.id = id;
    op.lo = lo;
    op.hi = hi;
    int rc = store_run_sync(store, &op);
    *count = op.count;
    store_op_cleanup(&op);
    return rc;
}

static json_t *list_notes(store_t *store, size_t max, int *status)
{
    store_op_t op;
    store_op_init(&op, STORE_UNCERTAIN_LIST);
    op.max_documents = (int64_t)max;
    *status = store_run_sync(store, &op);
    json_t *notes = *status == 0 ? json_incref(op.result) : NULL;
    store_op_cleanup(&op);
    return notes;
}

bool uncertain_sweep_due(store_t *store, int64_t now, int64_t grace)
{
    int status;
    json_t *notes = list_notes(store, 1, &status);
    json_t *oldest = json_array_get(notes, 0);
    bool due = oldest && json_integer_value(json_object_get(oldest, "noted_at")) <= now - grace;
    json_decref(notes);
    return due;
}

/* One due note: claim, check, delete. */
static void sweep_one(store_t *store, objstore_t *os, uv_loop_t *loop, const json_t *note,
                      int64_t now, int64_t grace, uncertain_sweep_stats *st)
{
    const char *key = json_string_value(json_object_get(note, "_id"));
    const char *record_id = json_string_value(json_object_get(note, "record_id"));
    const char *channel = json_string_value(json_object_get(note, "channel"));
    if (!key || !record_id || !channel) {
        st->failures++;
        return;
    }
    int64_t n = 0;
    int rc = run_by_id(store, STORE_UNCERTAIN_CLAIM, key, now - grace, now, &n);
    if (rc || n != 1) {
        if (rc)
            st->failures++;
        else
            st->skipped++;
        return;
    }
    store_op_t op;
    store_op_init(&op, STORE_CHANNEL_COUNT);
    op.id = record_id;
    op.channel = channel;
    rc = store_run_sync(store, &op);
    int64_t refs = op.count;
    store_op_cleanup(&op);
    if (rc) {
        st->failures++;
        log_warn("jobs: uncertain object %s: cannot read record %s (%d)", key, record_id, rc);
        return;
    }
    if (refs > 0) {
        st->live++;
    } else {
        rc = delete_object(os, loop, key);
        if (rc && rc != -ENOENT) {
            st->failures++;
            log_warn("jobs: uncertain object %s: delete failed (%d); tried again later", key, rc);
            return;
        }
        st->deleted++;
        log_info("jobs: deleted %s, left by a failed upload of record %s", key, record_id);
    }
    if (run_by_id(store, STORE_UNCERTAIN_DELETE, key, 0, 0, &n) != 0)
        st->failures++;
}

int uncertain_sweep(store_t *store, objstore_t *os, uv_loop_t *loop, int64_t now, int64_t grace,
                    size_t max, uncertain_sweep_stats *stats)
{
    memset(stats, 0, sizeof(*stats));
    int status;
    json_t *notes = list_notes(store, max, &status);
    if (!notes)
        return status ? status : -ENOMEM;
    size_t i;
    json_t *note;
    json_array_foreach(notes, i, note)
    {
        if (json_integer_value(json_object_get(note, "noted_at")) > now - grace)
            break; /* oldest first: the rest are younger */
        stats->due++;
        sweep_one(store, os, loop, note, now, grace, stats);
    }
    json_decref(notes);
    return 0;
}
