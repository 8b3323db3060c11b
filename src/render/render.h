/*
 * render/render.h: the rendering service, which turns one channel of one record into what
 * a client asked to see of it (docs/imaging.md) and knows nothing of HTTP: an image in
 * false colour or as it is stored, a float image coloured about 0, a waveform's or a
 * vector's data as JSON, the crosshair profiles of an image, or a colour bar (no object).
 *
 * The path of one job, in order: the object is read (objstore_get_channel: the new key,
 * then the legacy one); a missing object asks the store how many records hold that id and
 * channel, which tells the two "not found" answers apart (docs/api.md §3.5); levels and
 * colour map are checked once the object is known to exist (a missing image wins over a
 * bad level, as in the reference); then the thread pool hashes the stored bytes and the
 * parameters into a strong validator (the ETag), skips the work when the caller already
 * holds it, and otherwise decodes, colours and encodes. The loop thread only moves
 * pointers. A function's result (docs/functions.md §9.1) can stand in for the stored
 * object: its image for the crosshair, its data for a waveform; such answers carry no
 * validator.
 *
 * The caller gives an explicit context (loop, store, object store, owner of the
 * transfers), the parameters and a callback; it cancels through render_cancel. Failures
 * come back as a class with a message, which the API maps to statuses (api/images.c).
 */
#ifndef OGD_RENDER_RENDER_H
#define OGD_RENDER_RENDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "imaging/falsecolour.h"
#include "imaging/fnimage.h"
#include "objstore/objstore.h"
#include "store/store.h"

typedef enum render_kind {
    RENDER_IMAGE,      /** false-colour PNG of an image */
    RENDER_ORIGINAL,   /** the stored PNG itself */
    RENDER_FLOAT,      /** a float image (.npz) coloured with vmin = -max|v|, vmax = +max|v| */
    RENDER_WAVEFORM,   /** {"x": [...], "y": [...]} */
    RENDER_VECTOR,     /** {"data": [...]} */
    RENDER_CROSSHAIR,  /** {"row": profile, "column": profile} */
    RENDER_COLOUR_BAR, /** no object: made from the levels and the map alone */
} render_kind;

/* What a job needs of the process; everything is borrowed and must outlive the job. */
typedef struct render_ctx {
    uv_loop_t *loop;
    store_t *store;       /** the record count behind a missing object */
    objstore_t *objstore; /** the channel's object */
    const void *owner;    /** owner of the object-store transfer (objstore_set_owner) */
} render_ctx;

/* The parameters; strings and the function result are borrowed and must outlive the
 * job. */
typedef struct render_params {
    render_kind kind;
    const char *record_id, *channel;
    falsecolour_levels levels;  /** IMAGE, COLOUR_BAR (checked by the job) */
    const char *colourmap_name; /** IMAGE, FLOAT, COLOUR_BAR: the map (checked by the job) */
    bool has_position;          /** CROSSHAIR: at pos_x, pos_y (negative: from the end), */
    int64_t pos_x, pos_y;       /** else at the intensity-weighted centroid */
    uint32_t bar_height;        /** COLOUR_BAR: rows (1..4096) */
    int png_level;              /** zlib level of the PNGs made */
    /* An If-None-Match list the caller holds (NULL: none): when it names the job's
     * validator (or is "*"), nothing is rendered and the result says not_modified. */
    const char *if_none_match;
    /* A function's result instead of the stored object (nothing is read): the image a
     * CROSSHAIR works on, or the data of a WAVEFORM. */
    const fnimage *function_image;
    const json_t *function_data;
} render_params;

/* How a job failed. */
typedef enum render_error {
    RENDER_OK = 0,
    RENDER_EINVAL,    /** a bad level or colour map name: message (400) */
    RENDER_ENOTFOUND, /** no such object: message says which of the two cases (404) */
    /* the store or the object store failed: code (util/error.h) says how, message is what
     * to say when that code is no better known */
    RENDER_EBACKEND,
    /* anything else (undecodable object, a position outside the image, out of memory,
     * cancelled): message (500) */
    RENDER_EINTERNAL,
} render_error;

/* A job's outcome, valid during the callback. */
typedef struct render_result {
    render_error error;
    int code;            /** RENDER_EBACKEND: the back end's code */
    const char *message; /** the failure's text */
    /* success: body (malloc'd; the callback may take it and set it to NULL), its type,
     * the validator ("" when there is none) and whether the caller's copy is current
     * (then there is no body) */
    char *body;
    size_t len;
    const char *content_type;
    const char *etag;
    bool not_modified;
} render_result;

typedef struct render_job render_job;

/* Called once, on the loop, when the job is over; the job is freed after it returns. */
typedef void (*render_done_cb)(render_result *result, void *data);

/* Starts a job: ctx and params are copied. *handle (may be NULL) is set before any
 * callback can run and is valid until done. 0, and done is called exactly once (possibly
 * inside this call, when the job cannot start); -ENOMEM when not even that could be
 * arranged (done is not called). */
int render_start(const render_ctx *ctx, const render_params *params, render_done_cb done,
                 void *data, render_job **handle);
/* The caller went away: stops the object read, the store query or the queued work; done
 * still follows (RENDER_EINTERNAL). Only between render_start and done. */
void render_cancel(render_job *job);

#endif
