/*
 * api/functions.h: what the API handlers share about user functions: the parsed list of
 * {"name","expression"} objects, the validate-style vetting of such a list against the
 * channel manifest, and the evaluation entry point that applies functions to records
 * (records_functions.c) for /records, /images, /waveforms, the crosshair and /export.
 */
#ifndef OGD_API_FUNCTIONS_H
#define OGD_API_FUNCTIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "functions/functions.h"
#include "imaging/falsecolour.h"
#include "imaging/fnimage.h"
#include "http/http.h"

/* Most functions one request may carry. */
#define API_FUNCTIONS_MAX 100

typedef struct api_function {
    const char *name;       /** arena memory */
    const char *expression; /** arena memory */
    fn_node *tree;          /** set by api_functions_check / parsing */
    fn_type_t type;         /** result type, set by api_functions_check */
} api_function;

/* Vets fns[0..n) in order as POST /functions/validate does (docs/functions.md §4 steps
 * 1-6): parses each expression into fns[i].tree and sets fns[i].type. manifest_channels:
 * the manifest's "channels" object (borrowed, may be NULL). 0, or -EINVAL with the failing
 * index and message. Trees are allocated from a. */
int api_functions_check(arena_t *a, json_t *manifest_channels, api_function *fns, size_t n,
                        size_t *bad_index, char *err);

/* The parsed `functions` query parameter of a request (records_functions.c). */
typedef struct api_fn_list api_fn_list;

/* Parses the repeated `functions` query parameter: each value a JSON object
 * {"name","expression"}, each expression parsed. *out is NULL when there is none. On
 * false the 4xx has been sent. Everything lives in the request arena. */
bool api_functions_from_query(http_request_t *req, api_fn_list **out);
/* Widens a projection so every channel the functions name comes back whole (as the
 * reference's extra lookup does): adds "channels.<v>", drops "channels.<v>.<sub>" entries.
 * Unchanged when there is no projection. Arena memory. */
void api_functions_projection(http_request_t *req, const api_fn_list *list,
                              const char *const **projection, size_t *n);
/* The list's functions, in the order given (borrowed from the list). */
size_t api_fn_list_count(const api_fn_list *list);
const api_function *api_fn_list_get(const api_fn_list *list, size_t i);
/* Index of the function named `name`, or -1. */
long api_fn_list_find(const api_fn_list *list, const char *name);

/* Result types known before evaluation (docs/export.md §11, e.g. for an export
 * header): vets the list against the manifest's "channels" object (borrowed, may be NULL)
 * as api_functions_check does and sets each function's `type` (read it back with
 * api_fn_list_get). 0, or -EINVAL with the failing index and the message in err
 * (FN_ERR_MAX bytes). Uses the request arena. */
int api_functions_types(http_request_t *req, api_fn_list *list, json_t *manifest_channels,
                        size_t *bad_index, char *err);

/* ---- evaluation over records (docs/functions.md §9) ---- */

typedef enum api_fn_mode {
    /* docs/functions.md §9.3 (GET /records): scalar -> data; waveform -> thumbnail (plot); image ->
     * false-colour thumbnail (base64 RGBA PNG) with x/y_pixel_size = pixel counts. */
    API_FN_THUMBNAILS,
    /* docs/functions.md §9.4 (/export, /images, /waveforms, crosshair): scalar -> data; waveform ->
     * data {"x","y"} + metadata.x_units; image -> metadata only in the JSON, the PNG bytes
     * through api_fn_results_png (and the storage array through api_fn_results_image). */
    API_FN_FULL,
} api_fn_mode;

typedef struct api_fn_options {
    api_fn_mode mode;
    /* Image colouring: levels (checked by the engine: 400 with the text of
     * docs/api.md §4.10) and the colour map name (NULL or empty =
     * images.default_colour_map). THUMBNAILS always colour with limit_bit_depth 8 and the
     * given lower/upper. */
    falsecolour_levels levels;
    const char *colourmap_name;
    bool truncate;       /** THUMBNAILS: cut image thumbnails to 50 characters */
    bool original_image; /** FULL: image PNG = 16-bit greyscale of the storage values */
    bool want_png;       /** FULL: encode image results as PNG (else only the arrays) */
    bool keep_images;    /** FULL: keep each image result's storage form (crosshair) */
    /* true when every channel the functions name is already in the records as far as it
     * exists (GET /records widens its projection): skips the docs/functions.md §9.2 step 2
     * lookup. */
    bool channels_complete;
    /* The caller cancels (api_functions_cancel) instead of the engine taking over the
     * request's abort hook: for callers that run several evaluations at once (/export). */
    bool caller_aborts;
} api_fn_options;

typedef struct api_fn_results api_fn_results;
/* Called once, on the loop, when evaluation is over (or failed). The callee owns `res`
 * and frees it with api_fn_results_free. While evaluating, the engine holds the request's
 * abort hook and chains to the one the caller had set (if the client goes away, the
 * engine cancels its work, calls the caller's hook, and still calls done with a 500);
 * the caller's hook is back in place when done runs. */
typedef void (*api_fn_done_cb)(api_fn_results *res, void *data);

/* Evaluates list over `records` (a JSON array of record documents with "_id"; takes
 * ownership) as docs/functions.md §9.2 says: reads the latest manifest, fetches (one store
 * query) the channels the functions name that a record lacks and merges them into its
 * "channels" (unless opts->channels_complete; a record id the store does not know is 404
 * "Record cannot be found"), fetches every waveform/image object needed (one task group, S3
 * fan-out), then evaluates each record's functions in order on the thread pool and adds the
 * result channels named after the functions. opts is copied (colourmap_name must live as
 * long as the request). Always calls done exactly once (also when it cannot start). Memory:
 * the stored objects of the whole call are capped (512 MB, else 400), but every result PNG
 * / kept image stays in the results until api_fn_results_free, so a caller with many
 * records (the export) calls this on bounded batches of records. */
void api_functions_apply(http_request_t *req, api_fn_list *list, json_t *records,
                         const api_fn_options *opts, api_fn_done_cb done, void *data);

/* api_functions_apply that also gives the evaluation's handle, set before any callback
 * can run (done may run inside the call when it cannot start: clear your copy in done).
 * The handle is the results object done will receive. */
void api_functions_apply_ex(http_request_t *req, api_fn_list *list, json_t *records,
                            const api_fn_options *opts, api_fn_done_cb done, void *data,
                            api_fn_results **handle);
/* Cancels an evaluation started with caller_aborts (its object GETs, store op and work);
 * done still follows, with a 500. Only between the start and done. */
void api_functions_cancel(api_fn_results *evaluation);

/* 0 on success; else the HTTP status, with the client message in *message (owned by res). */
int api_fn_results_status(const api_fn_results *res, const char **message);
/* The records with the result (and dependency) channels merged (borrowed from res). */
json_t *api_fn_results_records(const api_fn_results *res);
/* True when function `fn` (index in the list) produced a result for record `rec` (a
 * function skipped because a channel it uses is missing produces none). */
bool api_fn_results_has(const api_fn_results *res, size_t rec, size_t fn);
/* FULL + want_png, image results: the PNG bytes (borrowed from res). false if none. */
bool api_fn_results_png(const api_fn_results *res, size_t rec, size_t fn, const unsigned char **png,
                        size_t *len);
/* FULL + keep_images, image results: the storage form (borrowed from res). */
const fnimage *api_fn_results_image(const api_fn_results *res, size_t rec, size_t fn);
void api_fn_results_free(api_fn_results *res);

/* GET /records and /records/{id_}: api_functions_apply in THUMBNAILS mode, then responds
 * 200 with the page (or, when `single`, its one record) or the error. Takes `records`. */
void api_functions_respond(http_request_t *req, api_fn_list *list, json_t *records,
                           const api_fn_options *opts, bool single);

#endif
