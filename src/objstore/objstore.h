/*
 * objstore: the object store (images, float images, waveforms, vectors), one async
 * interface over several back ends.
 *
 * An objstore_t belongs to one libuv loop (one per worker) and is used on that loop's
 * thread only. Back ends sit behind a vtable (objstore_backend, in objstore/backend.h): the
 * filesystem (fs.c, the embedded default, I/O on the libuv thread pool) and S3 (s3.c,
 * libcurl multi driven by the same loop), chosen by the URL scheme in objstore.c.
 *
 * Owners: every operation is accounted to the *owner* current when it starts (an opaque
 * pointer, normally the HTTP request; NULL = nobody in particular). A callback runs with
 * the owner of the operation it reports, so the calls a request makes from its
 * continuations stay its own without being told. The S3 back end shares its connections
 * fairly between owners (round robin over their queues, a per-owner in-flight cap).
 *
 * Data flow of a GET: objstore_get validates the key, then asks the per-objstore cache
 * (cache.c). A hit is answered from the cache; a miss joins the back-end read already in
 * flight for that key, or starts one (single-flight), and every waiter gets the same blob
 * when it completes. Only successful reads are cached, and never one that raced a write of
 * the same key. put, delete and delete_prefix drop the keys they touch from the cache.
 *
 * The libuv rules apply to every call that takes a callback:
 *   - if the call returns an error (negative errno), the callback is never called;
 *   - otherwise the callback is called exactly once, on the loop thread, and never
 *     inside the call that started the operation (cache hits are deferred to the next
 *     loop turn);
 *   - a cancelled operation's callback is still called once, with -ECANCELED. Work that
 *     already started (on a thread or on the wire) runs to its end in the background and
 *     its result is discarded (a cancelled put may or may not have stored the object).
 *
 * Error codes (util/error.h): -ENOENT no such object; -EINVAL bad key or argument;
 * -ENAMETOOLONG key longer than OBJSTORE_KEY_MAX - 1; -ENOMEM; -ECANCELED cancelled;
 * -ESHUTDOWN the objstore is closing; -EFBIG object too large to read into memory;
 * the store cannot be reached or does not answer in time: OGD_EOBJ_UNAVAILABLE (S3
 * answered 5xx/429 on every try), -ETIMEDOUT (no answer within the call's deadline, or a
 * read's whole wait passed max_read_wait_ms), -ECONNREFUSED, -ECONNRESET, -EHOSTUNREACH
 * (ogd_unavailable() is true for all of these: callers answer 503, never "not found");
 * anything else is a back-end I/O error (-EIO, -EACCES, -ENOSPC, ...).
 *
 * Memory: objects come back as refcounted immutable blobs. A callback *borrows* its blob
 * (valid until the callback returns); objstore_blob_ref keeps it, objstore_blob_unref
 * releases it. Blob refcounts are atomic, so a kept blob may be handed to thread-pool
 * work. Keys, prefixes and put bytes are copied by the call; the caller keeps ownership of
 * what it passes in.
 */
#ifndef OGD_OBJSTORE_OBJSTORE_H
#define OGD_OBJSTORE_OBJSTORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Longest key + 1 (the S3 limit is 1024 bytes). */
#define OBJSTORE_KEY_MAX 1025
/* The cache byte bound used when objstore_options.cache_max_bytes is 0. */
#define OBJSTORE_DEFAULT_CACHE_BYTES ((size_t)256 << 20)

typedef struct objstore objstore_t;
typedef struct objstore_req objstore_req_t;

/* An immutable byte string shared by the cache and every reader of one download. */
typedef struct objstore_blob {
    atomic_int refcount; /** private: use objstore_blob_ref / objstore_blob_unref */
    size_t len;          /** bytes in data */
    unsigned char *data; /** len bytes, followed by one NUL not counted in len */
    void *adopted;       /** private: a buffer freed with the blob (objstore_blob_adopt) */
} objstore_blob_t;

typedef struct objstore_options {
    size_t cache_max_entries; /** echo.cache_maxsize; 0 disables the cache */
    size_t cache_max_bytes;   /** byte bound of the cache; 0 = OBJSTORE_DEFAULT_CACHE_BYTES */
    const char *bucket;       /** echo.bucket_name; fs: objects live under <dir>/<bucket>/
                                  when set and non-empty, else under <dir>/ (copied) */
    /* S3 only (the fs back end ignores them). Strings are copied by objstore_open. */
    const char *access_key; /** SigV4 credentials (required for S3) */
    const char *secret_key;
    const char *region;          /** NULL = "us-east-1" */
    unsigned max_connections;    /** transfers (= connections) at once; 0 = 128 */
    unsigned max_per_owner;      /** transfers at once for one owner; 0 = max_connections */
    unsigned request_timeout_ms; /** deadline of one call, retries included; 0 = 30 s */
    unsigned max_read_wait_ms;   /** GET/HEAD: the whole wait, queueing for a connection
                                     included; 0 = request_timeout_ms + 5 s */
    unsigned max_retries;        /** retries of a failed idempotent call (0 = none) */
    size_t multipart_threshold;  /** larger puts use multipart upload; 0 = 64 MiB */
    size_t multipart_part_size;  /** 0 = 16 MiB (S3's minimum is 5 MiB) */
    /* objstore_prepare only */
    bool create_bucket; /** create a missing bucket instead of failing */
    int expiry_days;    /** > 0: put a lifecycle rule expiring objects after this many days */
} objstore_options;

/* Counters for /metrics. Monotonic unless marked "now". */
typedef struct objstore_stats {
    uint64_t gets;          /** GETs accepted (a legacy fallback counts as a second GET) */
    uint64_t hits;          /** answered from the cache */
    uint64_t misses;        /** started a back-end read */
    uint64_t shared;        /** joined a back-end read already in flight */
    uint64_t bytes_read;    /** bytes returned by back-end reads (not cache hits) */
    uint64_t bytes_written; /** bytes stored by successful puts */
    uint64_t puts, deletes; /** accepted puts; accepted deletes and prefix deletes */
    uint64_t errors;        /** back-end operations failed (not -ENOENT, not cancelled) */
    uint64_t canceled;      /** callbacks that reported -ECANCELED */
    uint64_t in_flight;     /** now: back-end operations running */
    uint64_t cache_entries; /** now */
    uint64_t cache_bytes;   /** now */
    /* S3 back end (0 for fs) */
    uint64_t calls;           /** HTTP exchanges with the server, retries included */
    uint64_t retries;         /** exchanges repeated after a retryable failure */
    uint64_t retries_denied;  /** retryable failures not retried: the retry budget was spent */
    uint64_t transfers;       /** now: exchanges on the wire */
    uint64_t queued;          /** now: exchanges waiting for a connection */
    uint64_t connections_max; /** the connection cap */
} objstore_stats;

/* blob: borrowed, valid until the callback returns; NULL unless status is 0. */
typedef void (*objstore_get_cb)(int status, const objstore_blob_t *blob, void *data);
typedef void (*objstore_head_cb)(int status, uint64_t size, void *data);
typedef void (*objstore_done_cb)(int status, void *data);
/* removed: how many objects were deleted (valid when status is 0). */
typedef void (*objstore_count_cb)(int status, size_t removed, void *data);
typedef void (*objstore_close_cb)(void *data);

/* ---- blobs ---- */

/* A blob of len uninitialised bytes (data[len] is 0) with one reference, which the caller
 * owns. NULL when out of memory. Safe on any thread. */
objstore_blob_t *objstore_blob_new(size_t len);
/* objstore_blob_new + memcpy of bytes. */
objstore_blob_t *objstore_blob_copy(const void *bytes, size_t len);
/* A blob of bytes[0..len) without a copy: takes bytes (malloc'd with room for at least
 * len + 1 bytes; the NUL is written at bytes[len]), freed with the blob. NULL when out of
 * memory (bytes freed then too). */
objstore_blob_t *objstore_blob_adopt(void *bytes, size_t len);
/* Takes one more reference; returns b. Safe on any thread. */
const objstore_blob_t *objstore_blob_ref(const objstore_blob_t *b);
/* Drops one reference, freeing the blob with the last one. NULL is ignored. */
void objstore_blob_unref(const objstore_blob_t *b);

/* ---- lifecycle ---- */

/* Opens the store named by url on loop:
 *   file:///abs/dir, file://rel/dir  filesystem back end; the directory (and the bucket
 *                                    directory below it) is created if missing;
 *   http://..., https://...          S3 at that endpoint, path-style (http://host:port,
 *                                    optionally with a path prefix), bucket opts->bucket.
 * opts may be NULL (no cache, no bucket). On success *out is the caller's until
 * objstore_close; on error err (errlen bytes, may be 0) holds a message naming echo.url. */
int objstore_open(const char *url, const objstore_options *opts, uv_loop_t *loop, objstore_t **out,
                  char *err, size_t errlen);

/* Start-up checks that may block (call them before serving, never on a serving loop):
 * S3 checks that the bucket exists (creating it when opts->create_bucket is set; else
 * "Bucket for object storage cannot be found"), that the credentials are accepted, and
 * puts the lifecycle rule of opts->expiry_days (a failure there is only logged). fs: 0. */
int objstore_prepare(const char *url, const objstore_options *opts, char *err, size_t errlen);

/* Starts closing: every pending request is cancelled (its callback gets -ECANCELED on a
 * later loop turn), new calls fail with -ESHUTDOWN, and once back-end work still running
 * on threads has finished the store is freed and cb(data) is called (cb may be NULL).
 * Keep running the loop until then. Call it once. Safe at worker shutdown, also after a
 * uv_walk has already closed every handle of the loop (including the store's own). */
void objstore_close(objstore_t *os, objstore_close_cb cb, void *data);

/* ---- operations ----
 * Every operation takes an optional req: when not NULL, *req receives a handle for
 * objstore_cancel, valid from the return of the call until the callback returns (clear
 * your copy in the callback). */

/* GET key: status 0 and a borrowed blob; -ENOENT when missing; other negative errno. */
int objstore_get(objstore_t *os, const char *key, objstore_get_cb cb, void *data,
                 objstore_req_t **req);
/* GET key; when it is missing (-ENOENT), GET fallback_key and report that result instead.
 * fallback_key may be NULL or equal to key (plain GET). Both keys are validated up front. */
int objstore_get_fallback(objstore_t *os, const char *key, const char *fallback_key,
                          objstore_get_cb cb, void *data, objstore_req_t **req);
/* objstore_get_fallback with flags. OBJSTORE_GET_NO_CACHE: a cache hit is still used and
 * a read in flight still joined, but what this read brings is not kept in the cache
 * (unless a reader without the flag joined it): for bulk reads such as exports, which
 * read each object once and would only evict what others reuse. */
#define OBJSTORE_GET_NO_CACHE 1u
int objstore_get_ex(objstore_t *os, const char *key, const char *fallback_key, unsigned flags,
                    objstore_get_cb cb, void *data, objstore_req_t **req);
/* Size of an object (from the cache when it holds the object), or -ENOENT. */
int objstore_head(objstore_t *os, const char *key, objstore_head_cb cb, void *data,
                  objstore_req_t **req);
/* Stores len bytes under key, replacing any object there. The bytes are copied before the
 * call returns. fs: atomic (temp file in the same directory, fsync, rename, fsync of the
 * directory); parent directories are created. Drops key from the cache. */
int objstore_put(objstore_t *os, const char *key, const void *bytes, size_t len,
                 objstore_done_cb cb, void *data, objstore_req_t **req);
/* objstore_put without the copy: takes a reference on blob (the caller keeps its own). */
int objstore_put_blob(objstore_t *os, const char *key, const objstore_blob_t *blob,
                      objstore_done_cb cb, void *data, objstore_req_t **req);
/* Deletes one object. Deleting a missing object succeeds (as S3's DeleteObject). */
int objstore_delete(objstore_t *os, const char *key, objstore_done_cb cb, void *data,
                    objstore_req_t **req);
/* Deletes every object whose key starts with prefix (a key, optionally ending with '/';
 * never empty) and reports how many were removed (0 when none matched: not an error).
 * fs: a prefix ending with '/' removes that directory tree. */
int objstore_delete_prefix(objstore_t *os, const char *prefix, objstore_count_cb cb, void *data,
                           objstore_req_t **req);

/* Cancels a pending request: its callback will get -ECANCELED (exactly once, later, never
 * inside this call). A no-op when the request's callback is already running. Never call
 * it after the callback has returned: the handle is freed then. */
void objstore_cancel(objstore_req_t *req);

/* Empties this store's cache (DELETE /records/{id} does, docs/design.md §6.3). Reads in
 * flight when it is called are delivered but not cached. */
void objstore_cache_clear(objstore_t *os);
/* Sets the owner of the operations started from now on this loop turn (see the top of
 * this file) and returns the previous one. */
const void *objstore_set_owner(objstore_t *os, const void *owner);
/* A snapshot of the counters. */
void objstore_stats_get(const objstore_t *os, objstore_stats *out);
/* The S3 error code that names a failure status, for the reference's error texts
 * ("<code> when deleting directory ..."): -ENOENT "NoSuchKey", -EACCES "AccessDenied",
 * -ETIMEDOUT "RequestTimeout", connection failures "ServiceUnavailable", -EFBIG
 * "EntityTooLarge", anything else "InternalError". */
const char *objstore_error_code(int status);
/* "fs", "s3": for logs. */
const char *objstore_backend_name(const objstore_t *os);

/* 0 if key is acceptable; -EINVAL for NULL, empty, a leading '/', an empty, "." or ".."
 * segment, a trailing '/', a backslash, a control character or a segment starting with
 * ".ogd-tmp-" (reserved for the fs back end's temp files); -ENAMETOOLONG past
 * OBJSTORE_KEY_MAX - 1 bytes. A NUL cannot occur inside a C string: keys end at the
 * first one. */
int objstore_key_check(const char *key);
/* The same for delete prefixes: a valid key, or a valid key followed by one '/'. */
int objstore_prefix_check(const char *prefix);

#endif
