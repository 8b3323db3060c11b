/*
 * store/backend.h: the interface between the store's front end (store.c: choosing a back
 * end by URL, submitting, cancelling, completing ops) and its back ends (sqlite.c,
 * pg.c), with the helpers both back ends share. Callers of the store never include it:
 * store.h is their whole contract.
 */
#ifndef OGD_STORE_BACKEND_H
#define OGD_STORE_BACKEND_H

#include "store/store.h"

/* Back-end vtable; each back end provides one. */
typedef struct store_backend {
    const char *scheme;  /* "sqlite" */
    const char *scheme2; /* another accepted scheme, or NULL */
    int (*open)(const char *url, const store_options *opts, store_t **out, char *err,
                size_t errlen);
    int (*migrate)(const char *url, char *err, size_t errlen);
    void (*close)(store_t *s);
    /* Runs op synchronously in the calling (pool) thread. */
    void (*execute)(store_t *s, store_op_t *op);
    /* Optional: runs op asynchronously on s->loop (instead of execute on the thread pool)
     * and completes it through store_complete. 0 or a negative errno (no callback then). */
    int (*submit)(store_t *s, store_op_t *op);
    /* Optional, with submit: cancels a submitted op (store_cancel). */
    void (*cancel)(store_op_t *op);
} store_backend;

struct store {
    const store_backend *backend;
    uv_loop_t *loop;
};

extern const store_backend store_sqlite_backend;
extern const store_backend store_pg_backend;

/* For back ends with submit: delivers a finished op to its callback on the loop thread
 * (a canceled op gets -ECANCELED and loses its result). */
void store_complete(store_op_t *op);

/* Back ends: the result of STORE_RECORDS_RANGE from the aggregate row (count of matching
 * records, min and max of the other axis, how many of them have it): sets op->count,
 * op->result ({from,to} or {min,max}), or -ENOENT when n is 0. */
void store_range_result(store_op_t *op, int64_t n, int64_t lo, int64_t hi, int64_t nfield);

/* Channel fields that ogd stores for itself and never shows a client: "object_size" (the
 * stored object's length in bytes, for the export's size check). NULL-terminated. */
extern const char *const STORE_PRIVATE_CHANNEL_FIELDS[];

/* Back ends: a channel body as op asked for it (in place): the private fields removed
 * unless op->private_fields. NULL is passed through. */
json_t *store_channel_for(const store_op_t *op, json_t *body);
/* Back ends: notes a loaded channel's stored dtype (NULL: none) in op->dtypes when the op
 * asked for them (channel_dtypes with a projection). */
void store_note_dtype(store_op_t *op, const char *record_id, const char *channel,
                      const char *dtype);

/* Back ends: a copy of a record document's metadata (an empty object when it has none)
 * whose timestamp, if any, is in the API's text form (store_format_timestamp); *ts_us and
 * *has_ts say what it was. NULL with op->status STORE_EBADQUERY and op->err set when the
 * timestamp is not a date, or -ENOMEM. id: the record's, for the message. */
json_t *store_record_metadata(store_op_t *op, const json_t *doc, const char *id, int64_t *ts_us,
                              bool *has_ts);

/* Back ends: the uniqueness key of an experiment document (every field but _id, compact JSON
 * with sorted keys; caller frees), or NULL when doc lacks a field or memory runs out. */
char *store_experiment_key(const json_t *doc);

/* Back ends: whether doc is what STORE_UNCERTAIN_NOTE takes (an array of objects with
 * string _id, record_id and channel), and what STORE_UNCERTAIN_TOUCH takes (an array of
 * strings). */
bool store_uncertain_notes_valid(const json_t *doc);
bool store_uncertain_keys_valid(const json_t *doc);

/* The first op kind that a back end's dispatch table (indexed by kind) has no entry for,
 * or -1 when every kind has one (for the unit tests). */
int store_sqlite_missing_kind(void);
int store_pg_missing_kind(void);

#endif
