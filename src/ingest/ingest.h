/*
 * ingest: one HDF5 upload from bytes to a stored record, as an asynchronous pipeline on a
 * worker's loop (used by POST /submit/hdf and by `ogd ingest`).
 *
 *   parse (helper process, parse_proc.h) -> latest manifest (store) -> checks (thread
 *   pool, checks.h) -> existing record by id, then by shotnum (store) -> merge decision
 *   and HEADs of the stored objects -> per object: encode (thread pool) then PUT, all
 *   objects at once through the object store's fan-out -> record write (store) ->
 *   optional backup copy of the file -> result.
 *
 * All-or-nothing: the record is written only after every upload has finished; a channel
 * whose upload failed is left out and reported as ["Upload to Echo failed"]; if the
 * record write fails every object this upload stored is deleted and the result is 500
 * "Database error". Every decision that can reject the file runs before the first PUT.
 */
#ifndef OGD_INGEST_INGEST_H
#define OGD_INGEST_INGEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "ingest/encode.h"
#include "ingest/parse_proc.h"
#include "objstore/objstore.h"
#include "store/store.h"

typedef struct ingest_env {
    uv_loop_t *loop;
    store_t *store;
    objstore_t *objstore;
    const void *owner; /** objstore owner of the uploads (the HTTP request) */
    ingest_thumb_sizes sizes;
    parse_limits limits;
    const char *backup_dir; /** backup.cache_directory, or NULL (borrowed) */
} ingest_env;

typedef struct ingest_result {
    int status;   /** HTTP status: 201, 200, 400, 500, 503 */
    json_t *body; /** the response body (owned by the pipeline; valid in the callback) */
    char record_id[32];
    size_t uploaded; /** objects stored */
} ingest_result;

typedef struct ingest ingest_t;
typedef void (*ingest_done_cb)(const ingest_result *res, void *data);

/* Starts ingesting bytes[0..len) (borrowed until the callback: the checks and the
 * encoders read datasets straight from it). fd: -1, or a file open until the callback
 * of which bytes maps [fd_offset, fd_offset + len): the HDF5 reader then maps that file
 * instead of a copy (parse_proc_start). env is copied (its
 * pointers borrowed). cb runs once on the loop, never inside this call. 0 or a negative
 * errno. */
int ingest_start(const ingest_env *env, const void *bytes, size_t len, int fd, uint64_t fd_offset,
                 ingest_done_cb cb, void *data, ingest_t **out);
/* The client went away: stops at the next safe point (the helper is killed; uploads that
 * started are finished and, with no record written, deleted). cb still runs. */
void ingest_cancel(ingest_t *in);

/* The thumbnail sizes, the helper's output cap, the file limits (ingest:) and the backup
 * directory of env from the config (the server and `ogd ingest` use the same); the
 * caller sets the rest. */
void ingest_env_from_config(const ogd_config *cfg, ingest_env *env);

#endif
