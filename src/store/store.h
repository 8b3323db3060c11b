/*
 * store: the metadata store interface (records, channel manifests, users, sessions, ...).
 *
 * One interface, two back ends (SQLite, PostgreSQL) behind a vtable. Every operation is a
 * `store_op_t` the caller fills in and submits; the back end runs it off the worker's loop
 * thread (SQLite: the libuv thread pool, one connection per thread; PostgreSQL: libpq's
 * asynchronous API on the loop itself, see pg.c) and calls the completion callback once,
 * on the loop thread. If store_submit returns an
 * error the callback is never called. CLI tools without a server loop use store_run_sync,
 * which runs the same code in the calling thread.
 *
 * Inputs in an op are borrowed until its callback; outputs (result, err) belong to the op
 * and are released by store_op_cleanup. Records come back as jansson documents shaped as
 * the API emits them: keys `_id`, `version` (only when stored), `metadata`, `channels`,
 * with `metadata.timestamp` as a naive ISO-8601 UTC string.
 *
 * Schema and migrations live in the back ends; `store_migrate` brings a database to the
 * current version and is run once at start-up before workers exist.
 */
#ifndef OGD_STORE_STORE_H
#define OGD_STORE_STORE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "store/filter.h"
#include "util/error.h"

typedef struct store store_t;
typedef struct store_op store_op_t;
typedef void (*store_cb)(store_op_t *op);

typedef enum store_op_kind {
    STORE_PING,                  /* readiness check */
    STORE_RECORDS_FIND,          /* filter, order, skip, limit, projection -> result: array */
    STORE_RECORDS_COUNT,         /* filter -> count */
    STORE_RECORDS_RANGE,         /* range_by_shotnum, lo, hi -> result {from,to} or {min,max} */
    STORE_RECORD_DELETE,         /* id -> count (0 or 1) */
    STORE_RECORD_PUT,            /* doc (a whole record); replace => upsert, else -EEXIST */
    STORE_RECORDS_PUT,           /* doc: an array of records, all in one transaction */
    STORE_CHANNEL_COUNT,         /* id, channel -> count of records with that id and channel */
    STORE_MANIFEST_LATEST,       /* -> result: {"_id", "channels"} or -ENOENT */
    STORE_MANIFEST_PUT,          /* doc {"_id", "channels"} */
    STORE_CHANNEL_SUMMARY,       /* channel -> result {first_date, most_recent_date, recent:[{ts,
                                    channel-doc}]} */
    STORE_USER_GET,              /* id -> result: user document or -ENOENT */
    STORE_USER_PUT,              /* doc (a user, "_id" = username); replace => upsert */
    STORE_MAINTENANCE,           /* housekeeping: checkpoint, statistics (the jobs process) */
    STORE_RECORD_MERGE,          /* id, doc {"channels": {name: channel}}: in one transaction,
                                    version = stored (missing = 1) + 1, and each channel inserted
                                    or replaced (a new one goes last); -ENOENT if no such record.
                                    Concurrent merges of one record serialise: none is lost. */
    STORE_USER_DELETE,           /* id -> count (0 or 1) */
    STORE_USERS_LIST,            /* -> result: array of user documents, by id */
    STORE_SESSION_GET,           /* id -> result: session document or -ENOENT */
    STORE_SESSION_PUT,           /* doc {"_id","username","name",...}; replace => update by _id;
                                    -EEXIST when (username, name) is taken (or _id, on insert) */
    STORE_SESSION_DELETE,        /* id -> count (0 or 1) */
    STORE_SESSIONS_LIST,         /* id = username -> result: array of documents in the order
                                    they were first stored, at most max_documents */
    STORE_USER_BY_EMAIL,         /* id = an e-mail address -> result: the first user (by id) whose
                                    "email" is exactly that, or -ENOENT */
    STORE_USER_UPDATE,           /* doc (a user) replaces the stored one only if the stored one's
                                    "_rev" (absent = 0) still equals lo: count = 1, else 0 */
    STORE_EXPERIMENTS_LIST,      /* -> result: array of experiment documents by _id, at most
                                    max_documents (the bookkeeping row left out) */
    STORE_EXPERIMENT_PUT,        /* doc {"_id", "experiment_id", "part", "start_date", "end_date"}:
                                    stored unless a document equal in every field but _id exists
                                    -> result: the stored _id (string); count 1 = inserted, 0 = it
                                    existed */
    STORE_EXPERIMENTS_STAMP_GET, /* -> result: the collection_last_updated text, or -ENOENT */
    STORE_EXPERIMENTS_STAMP_PUT, /* id = the collection_last_updated text to store */
    /* Objects whose write has an unknown outcome (docs/design.md §6.5): a PUT that failed
     * may still land, under a key no record refers to. Times are Unix seconds. */
    STORE_UNCERTAIN_NOTE,   /* doc: array of {"_id": key, "record_id", "channel"}, all noted at
                               lo (an existing note is renewed, its claim dropped) */
    STORE_UNCERTAIN_TOUCH,  /* doc: array of keys an ingest is about to write, at lo: their notes
                               are renewed unless claimed (claim_until >= lo) -> result: array of
                               the claimed keys (being deleted now: not to be written) */
    STORE_UNCERTAIN_LIST,   /* -> result: array of {"_id", "record_id", "channel", "noted_at"},
                               oldest first, at most max_documents */
    STORE_UNCERTAIN_CLAIM,  /* id = key, hi = now: claims the note for STORE_UNCERTAIN_LEASE_S
                               if it was noted at or before lo and is not claimed at hi ->
                               count 1, else 0 */
    STORE_UNCERTAIN_DELETE, /* id = key -> count (0 or 1) */
    STORE_OP_KINDS          /* not a kind: how many there are (the back ends' dispatch tables,
                               indexed by kind, have exactly this many entries) */
} store_op_kind;

/* How long a claim on an uncertain object's note holds (seconds): the sweep deletes the
 * object within it, and an ingest that meets a claim does not write that key. */
#define STORE_UNCERTAIN_LEASE_S 600

/* Statuses besides 0 and negative errno values (-ENOENT, -EEXIST, -ECANCELED): codes of
 * util/error.h under the store's names. */
#define STORE_EBADQUERY OGD_EBADQUERY /* the query is not valid: err holds a client message */
#define STORE_EDB OGD_EDB             /* the database failed: err holds a log message */
#define STORE_EUNAVAILABLE OGD_EDB_UNAVAILABLE /* cannot reach the database */

struct store_op {
    store_op_kind kind;

    /* Inputs, borrowed until the callback. */
    const filter_t *filter;   /* NULL = match everything */
    const char *const *order; /* "field asc|desc" entries */
    size_t norder;
    const char *const *projection; /* dotted paths; none = whole records */
    size_t nprojection;
    int64_t skip;
    int64_t limit;         /* 0 = no limit */
    int64_t max_documents; /* hard cap on returned documents (0 = none) */
    const char *id;
    const char *channel;
    json_t *doc; /* for puts */
    bool replace;
    bool range_by_shotnum; /* true: lo/hi are shot numbers; false: microseconds */
    /* Records and channel summaries: also return ogd's own bookkeeping in channel bodies
     * (STORE_PRIVATE_CHANNEL_FIELDS). Without it a channel has exactly the keys clients
     * know, and a projection that names a private field finds nothing there. */
    bool private_fields;
    /* Records with a projection: every returned channel's metadata.channel_dtype also in
     * `dtypes`, where the projection may have removed it from the document (the thumbnail
     * colouring needs the type of a channel projected down to its thumbnail). */
    bool channel_dtypes;
    int64_t lo, hi;

    /* Optional: runs on the same pool thread right after a successful op (not for
     * store_run_sync callers that leave it NULL), e.g. to shape and serialise the result
     * into `text` so the loop thread only writes it out. */
    void (*post)(store_op_t *op);
    void *post_data; /* the post step's data; free for the caller's use without one */

    /* Outputs, owned by the op until store_op_cleanup. */
    int status;
    char err[256];
    json_t *result;
    int64_t count;
    char *text;     /** set by post, if it serialises; malloc'd */
    json_t *dtypes; /** with channel_dtypes and a projection: {record id: {channel: dtype}} */
    size_t text_len;

    /* Private to the store. */
    store_t *store;
    store_cb cb;
    void *data;
    uv_work_t work;
    atomic_bool canceled; /* set on the loop, read where the op runs (a pool thread) */
    void *backend_data;   /* the back end's state for a submitted op */
};

/* Whether url selects the PostgreSQL back end (a database several nodes may share). */
bool store_url_is_postgresql(const char *url);

/* Opens a store for one loop (NULL for CLI use with store_run_sync only).
 * url: sqlite:///abs/path, sqlite://rel/path, postgresql://... (or postgres://...). */
int store_open(const char *url, uv_loop_t *loop, store_t **out, char *err, size_t errlen);

/* Tuning for store_open_ex; zero fields take their defaults. */
typedef struct store_options {
    int pool_size; /* PostgreSQL: connections per loop (database.pool_size; default 4) */
} store_options;
int store_open_ex(const char *url, uv_loop_t *loop, const store_options *opts, store_t **out,
                  char *err, size_t errlen);
/* Creates the database if needed and applies pending migrations. */
int store_migrate(const char *url, char *err, size_t errlen);
/* Closes the store. All submitted ops must have completed. */
void store_close(store_t *s);

/* Submits op; cb is called once on the loop thread. op must stay valid until then. */
int store_submit(store_t *s, store_op_t *op, store_cb cb, void *data);
/* Runs op in the calling thread and returns op->status. */
int store_run_sync(store_t *s, store_op_t *op);
/* Marks op canceled: its callback still runs, with -ECANCELED, and its result is dropped.
 * An op not started yet never runs; a running read (find, count, range, summary) is
 * interrupted (SQLite: a progress handler; PostgreSQL: a cancel request to the server);
 * a running write completes (whether it was stored is then unknown to the caller, as
 * before). */
void store_cancel(store_op_t *op);
/* Whether op kind only reads (and may be interrupted by store_cancel). */
bool store_op_reads(store_op_kind kind);
void store_op_init(store_op_t *op, store_op_kind kind);
void store_op_cleanup(store_op_t *op);

/* Formats microseconds since the epoch as the API's naive ISO-8601 text
 * (YYYY-MM-DDTHH:MM:SS, plus .ffffff only when non-zero). out: at least 32 bytes. */
void store_format_timestamp(int64_t us, char *out);

#endif
