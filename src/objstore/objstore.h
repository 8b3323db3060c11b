/*
 * objstore: the object store interface (images, float images, waveforms, vectors).
 *
 * One interface, several back ends behind a vtable: the filesystem (fs.c, the embedded
 * default) now, S3 later. An objstore_t belongs to one libuv loop (one per worker). Every
 * operation completes through its callback, exactly once, on the loop thread, and never
 * inside the call that started it; if a call returns an error its callback is never
 * called (libuv's rule). Back-end I/O never runs on the loop thread.
 *
 * Reads go through a per-objstore cache (cache.c): an LRU bounded in entries
 * (echo.cache_maxsize, 0 disables) and bytes, where concurrent reads of one key share one
 * back-end fetch. Only successful reads are cached; a put or delete of a key drops it.
 *
 * Objects come back as refcounted immutable blobs. A callback *borrows* its blob: call
 * objstore_blob_ref to keep it beyond the callback, objstore_blob_unref to release.
 *
 * Keys are relative paths ("images/2023/06/05/080000/CH.png"); a key with an empty, "."
 * or ".." segment, a leading '/', a backslash or a NUL is refused with -EINVAL.
 */
#ifndef OGD_OBJSTORE_OBJSTORE_H
#define OGD_OBJSTORE_OBJSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct objstore objstore_t;
typedef struct objstore_req objstore_req_t;

typedef struct objstore_blob {
    int refcount;
    size_t len;
    unsigned char data[];
} objstore_blob_t;

typedef struct objstore_options {
    size_t cache_max_entries; /** 0 disables the cache */
    size_t cache_max_bytes;   /** 0 = 256 MiB */
    const char *bucket;       /** fs: objects live under <dir>/<bucket>/ when set */
} objstore_options;

typedef struct objstore_stats {
    uint64_t gets, hits, misses, shared; /** shared: gets that joined a fetch in flight */
    uint64_t bytes_read, bytes_written;
    uint64_t puts, deletes, errors;
    uint64_t in_flight;                  /** back-end operations running now */
    uint64_t cache_entries, cache_bytes;
} objstore_stats;

typedef void (*objstore_get_cb)(int status, const objstore_blob_t *blob, void *data);
typedef void (*objstore_done_cb)(int status, void *data);
typedef void (*objstore_count_cb)(int status, size_t count, void *data);
typedef void (*objstore_head_cb)(int status, uint64_t size, void *data);

objstore_blob_t *objstore_blob_new(const void *data, size_t len);
void objstore_blob_ref(const objstore_blob_t *b);
void objstore_blob_unref(const objstore_blob_t *b);

/* url: file:///abs/dir or file://rel/dir (the directory is created if missing). */
int objstore_open(const char *url, const objstore_options *opts, uv_loop_t *loop,
                  objstore_t **out, char *err, size_t errlen);
/* Cancels what is pending and frees the store once outstanding work has finished; run
 * the loop afterwards so that happens. */
void objstore_close(objstore_t *os);

/* GET. status 0 with a blob, -ENOENT, -EINVAL for a bad key, other -errno. req (may be
 * NULL) can cancel: the callback then gets -ECANCELED. req is valid until the callback. */
int objstore_get(objstore_t *os, const char *key, objstore_get_cb cb, void *data,
                 objstore_req_t **req);
void objstore_cancel(objstore_req_t *req);
/* Size of an object, or -ENOENT. */
int objstore_head(objstore_t *os, const char *key, objstore_head_cb cb, void *data);
/* Stores bytes (copied) under key, atomically. */
int objstore_put(objstore_t *os, const char *key, const void *bytes, size_t len,
                 objstore_done_cb cb, void *data);
/* Deletes one object (-ENOENT if absent). */
int objstore_delete(objstore_t *os, const char *key, objstore_done_cb cb, void *data);
/* Deletes every object whose key starts with prefix; reports how many. */
int objstore_delete_prefix(objstore_t *os, const char *prefix, objstore_count_cb cb,
                           void *data);
/* Empties this store's cache (DELETE /records does, spec/data.md §2.4). */
void objstore_cache_clear(objstore_t *os);
void objstore_stats_get(const objstore_t *os, objstore_stats *out);

bool objstore_key_valid(const char *key);

/* ---- back-end vtable ---- */

/* A back-end operation: runs off the loop; completes with objstore_backend_done. */
typedef enum { OBJ_OP_GET, OBJ_OP_HEAD, OBJ_OP_PUT, OBJ_OP_DELETE, OBJ_OP_DELETE_PREFIX } obj_op_kind;

typedef struct obj_op {
    obj_op_kind kind;
    char *key;
    const unsigned char *bytes; /* put */
    size_t len;
    /* results */
    int status;
    objstore_blob_t *blob; /* get: owned by the op */
    uint64_t size;         /* head */
    size_t count;          /* delete_prefix */
    /* private */
    objstore_t *os;
    void (*complete)(struct obj_op *op);
    void *data;
} obj_op;

typedef struct objstore_backend {
    const char *scheme;
    int (*open)(objstore_t *os, const char *url, const objstore_options *opts, char *err,
                size_t errlen);
    /* Starts op; must end with objstore_backend_done(op) on the loop thread, later. */
    int (*submit)(objstore_t *os, obj_op *op);
    void (*close)(objstore_t *os);
} objstore_backend;

void objstore_backend_done(obj_op *op);
/* The back end's private state and the loop it completes on. */
void *objstore_backend_data(const objstore_t *os);
void objstore_set_backend_data(objstore_t *os, void *data);
uv_loop_t *objstore_loop(const objstore_t *os);

extern const objstore_backend objstore_fs_backend;

#endif
