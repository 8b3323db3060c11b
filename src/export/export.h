/*
 * export/export.h: the export pipeline (docs/export.md), which turns the records a query
 * selects into one CSV file or a zip of per-channel files plus the main CSV, streamed while
 * the objects arrive, and knows nothing of HTTP. The caller gives an explicit context
 * (loop, store, object store, configuration, arena, object-store owner), the parsed
 * parameters and an output sink (whole answers, or a stream written one piece at a time
 * with a completion callback), and cancels through export_cancel; failures before the
 * first byte come back as a class with a code and a message, which the API maps to
 * statuses (api/export.c).
 */
#ifndef OGD_EXPORT_EXPORT_H
#define OGD_EXPORT_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "fneval/fneval.h"
#include "objstore/objstore.h"
#include "store/filter.h"
#include "store/store.h"
#include "util/arena.h"

/* What an export needs of the process: the same context the functions engine takes
 * (loop, store, object store, configuration, arena, object-store owner; borrowed, must
 * outlive the export), so a caller builds one and hands it to both. */
typedef fneval_ctx export_ctx;

/* The parsed parameters (docs/export.md §2). Strings and arrays are borrowed and must
 * outlive the export (arena memory). */
typedef struct export_params {
    /* the records query: the filter is taken (freed with the export, also on failure) */
    filter_t *filter;
    const char *const *order; /** none: by _id */
    size_t norder;
    const char *const *projection; /** the client's projection: at least one entry */
    size_t nprojection;
    int64_t skip, limit, max_documents;
    fneval_list *fns; /** functions= (NULL: none) */
    /* image colouring (ranges already checked) */
    int64_t lower_level, upper_level, limit_bit_depth;
    const char *colourmap_name; /** NULL: not given */
    bool export_scalars, export_images, export_float_images, export_waveform_csvs,
        export_waveform_images, export_vector_csvs, export_vector_images;
} export_params;

/* How an export failed before its first byte. */
typedef enum export_error {
    /* the client's mistake: message is what to say (400) */
    EXPORT_EINVAL = 1,
    /* the records query or the manifest failed: code is the store's status, message the
     * store's error text (may be empty), detail500 what to say for an internal error */
    EXPORT_ESTORE,
    /* an object-store call failed with something other than "missing": code says how */
    EXPORT_EOBJECT,
    /* the functions failed: fn_error, code and message as fneval_status gives them
     * (message may be NULL) */
    EXPORT_EFUNCTIONS,
    /* anything else: message is what to say (500) */
    EXPORT_EINTERNAL,
} export_error;

typedef struct export_failure {
    export_error error;
    int code;
    const char *message; /** valid during the call */
    const char *detail500;
    fneval_error fn_error;
} export_failure;

/* Called once a stream write is over: status 0 when the bytes left the process, else the
 * write failed (or the client went away). */
typedef void (*export_written_cb)(int status, void *data);

/* Where the export goes. Every call comes on the loop, from the export. */
typedef struct export_sink {
    void *data;
    /* The whole answer (the CSV alone): takes body (malloc'd). */
    void (*answer)(void *data, int status, const char *content_type, char *body, size_t len);
    /* A failure before the first byte: the answer is the error. */
    void (*fail)(void *data, const export_failure *f);
    /* The Content-Disposition of the answer (before answer, start, or a failure). */
    void (*disposition)(void *data, const char *value);
    /* The stream's head; then write_take, one write in flight, and end or abort. */
    void (*start)(void *data, int status, const char *content_type);
    /* Takes bytes (malloc'd) in every case; 0 and done follows once, or an error and
     * done never runs. */
    int (*write_take)(void *data, char *bytes, size_t len, export_written_cb done, void *done_data);
    /* The stream is complete. */
    void (*end)(void *data);
    /* Cut the stream without its end, so the download never looks whole. */
    void (*abort)(void *data);
    /* The export is over: export_cancel must not be called any more. Called once, just
     * before the export's final answer (fail or abort) or just after it (answer, or a
     * failure found while planning); the export is freed right after. */
    void (*detach)(void *data);
} export_sink;

typedef struct export_job export_job;

/* A new export (nothing runs yet): ctx, params and sink are copied; takes params->filter
 * in every case. NULL when out of memory (the filter is freed then). */
export_job *export_new(const export_ctx *ctx, const export_params *params, const export_sink *sink);
/* Runs the export: the records query and the manifest, the plan, then the answer through
 * the sink, which ends with detach. The job is freed by the export itself, possibly
 * inside this call. */
void export_run(export_job *job);
/* The client went away: stops the store queries, or every GET, HEAD, queued render and
 * function evaluation; the export finishes (detach, and a cut stream or a failure) once
 * the ones already running have reported. Only between export_run and detach. */
void export_cancel(export_job *job);

#endif
