/*
 * objstore/backend.h: the interface between the object store's front end (objstore.c) and
 * its back ends (fs.c, s3.c); callers of the object store never include it.
 *
 * The front end (objstore.c) validates keys, runs the cache and single-flight, owns the
 * requests and their callbacks; a back end only executes objstore_op's. Rules:
 *   - start() begins op and returns 0, or returns a negative errno and never completes it;
 *   - a started op is completed exactly once by objstore_op_done(op), on the loop thread,
 *     never inside start() or cancel();
 *   - cancel() is best effort: 0 means op will complete with status -ECANCELED soon;
 *     an error means it is too late and op will complete normally;
 *   - close() frees the back end's state; it is called once, when no op is outstanding.
 * The front end keeps key, bytes and the op itself alive until objstore_op_done.
 */
#ifndef OGD_OBJSTORE_BACKEND_H
#define OGD_OBJSTORE_BACKEND_H

#include "objstore/objstore.h"

typedef enum objstore_op_kind {
    OBJSTORE_OP_GET,
    OBJSTORE_OP_HEAD,
    OBJSTORE_OP_PUT,
    OBJSTORE_OP_DELETE,
    OBJSTORE_OP_DELETE_PREFIX,
} objstore_op_kind;

typedef struct objstore_op {
    /* inputs, set by the front end, read-only for the back end */
    objstore_op_kind kind;
    const char *key;            /** key, or prefix for DELETE_PREFIX (already validated) */
    const unsigned char *bytes; /** PUT: the object */
    size_t len;                 /** PUT: its length */
    const void *owner;          /** who started it (fair sharing); opaque */
    /* outputs, set by the back end before objstore_op_done */
    int status;            /** 0 or a negative errno (-ENOENT when GET/HEAD find nothing) */
    objstore_blob_t *blob; /** GET: made by the back end; the front end takes ownership */
    uint64_t size;         /** HEAD */
    size_t removed;        /** DELETE_PREFIX */
    /* the back end's own per-op state (e.g. its uv_work_t) */
    void *backend_data;
} objstore_op;

typedef struct objstore_backend {
    const char *name;           /** "fs", "s3" */
    const char *const *schemes; /** URL schemes it serves, NULL-terminated */
    /* *state receives the back end's state; err as for objstore_open. */
    int (*open)(uv_loop_t *loop, const char *url, const objstore_options *opts, void **state,
                char *err, size_t errlen);
    int (*start)(void *state, objstore_op *op);
    int (*cancel)(void *state, objstore_op *op);
    void (*close)(void *state);
    /* Optional: fills the back end's own counters of *out. */
    void (*stats)(const void *state, objstore_stats *out);
    /* Optional: objstore_prepare's blocking checks (no loop, no state). */
    int (*prepare)(const char *url, const objstore_options *opts, char *err, size_t errlen);
} objstore_backend;

/* Called by a back end, on the loop thread, when op has finished. */
void objstore_op_done(objstore_op *op);

/* The back ends objstore_open chooses from (by URL scheme; table in objstore.c). */
extern const objstore_backend objstore_fs_backend; /* fs.c: file:// */
extern const objstore_backend objstore_s3_backend; /* s3.c: http://, https:// */

#endif
