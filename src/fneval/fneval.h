/*
 * fneval/fneval.h: the functions engine, which applies user functions to records
 * (docs/functions.md §9) and knows nothing of HTTP: the list of {"name","expression"}
 * functions (built from already-decoded names and expressions), the validate-style vetting
 * of such a list against the channel manifest, and the evaluation entry point that the API
 * uses for /records, /images, /waveforms, the crosshair and /export. The caller gives an
 * explicit context (loop, store, object store, configuration, arena, object-store owner)
 * and cancels through fneval_cancel; errors come back as a class (fneval_error) with a
 * message, which the API maps to statuses (api/functions.h).
 */
#ifndef OGD_FNEVAL_FNEVAL_H
#define OGD_FNEVAL_FNEVAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "config/config.h"
#include "functions/functions.h"
#include "imaging/falsecolour.h"
#include "imaging/fnimage.h"
#include "objstore/objstore.h"
#include "store/store.h"
#include "util/arena.h"

/* Most functions one list may carry. */
#define FNEVAL_FUNCTIONS_MAX 100
/* Most distinct names the functions of one list may refer to. */
#define FNEVAL_VARIABLES_MAX 256

typedef struct fneval_function {
    const char *name;       /** arena memory */
    const char *expression; /** arena memory */
    fn_node *tree;          /** set by fneval_check / fneval_list_add */
    fn_type_t type;         /** result type, set by fneval_check */
} fneval_function;

/* Vets fns[0..n) in order as POST /functions/validate does (docs/functions.md §4 steps
 * 1-6): parses each expression into fns[i].tree and sets fns[i].type. manifest_channels:
 * the manifest's "channels" object (borrowed, may be NULL). 0, or -EINVAL with the failing
 * index and message. Trees are allocated from a. */
int fneval_check(arena_t *a, json_t *manifest_channels, fneval_function *fns, size_t n,
                 size_t *bad_index, char *err);

/* ---- the list of functions one evaluation applies ---- */

typedef struct fneval_list fneval_list;

/* An empty list with room for n functions (n <= FNEVAL_FUNCTIONS_MAX), in a; NULL when
 * out of memory. */
fneval_list *fneval_list_new(arena_t *a, size_t n);
/* Appends one function: copies name and expression into a, parses the expression
 * (bounded) and collects the names it uses. 0; -ENOMEM; -EINVAL with the parser's message
 * in err (FN_ERR_MAX bytes). */
int fneval_list_add(fneval_list *list, arena_t *a, const char *name, const char *expression,
                    char *err);
/* True when the functions refer to more than FNEVAL_VARIABLES_MAX distinct names (the
 * list cannot be evaluated). */
bool fneval_list_too_many_names(const fneval_list *list);
/* The list's functions, in the order given (borrowed from the list). */
size_t fneval_list_count(const fneval_list *list);
const fneval_function *fneval_list_get(const fneval_list *list, size_t i);
/* Index of the function named `name`, or -1. */
long fneval_list_find(const fneval_list *list, const char *name);
/* Widens a projection so every channel the functions name comes back whole (as the
 * reference's extra lookup does): adds "channels.<v>", drops "channels.<v>.<sub>" entries.
 * Unchanged when there is no projection. Memory from a. */
void fneval_projection(arena_t *a, const fneval_list *list, const char *const **projection,
                       size_t *n);
/* Result types known before evaluation (docs/export.md §11, e.g. for an export
 * header): vets the list against the manifest's "channels" object (borrowed, may be NULL)
 * as fneval_check does and sets each function's `type` (read it back with
 * fneval_list_get). 0, or -EINVAL with the failing index and the message in err
 * (FN_ERR_MAX bytes). Memory from a. */
int fneval_list_types(arena_t *a, fneval_list *list, json_t *manifest_channels, size_t *bad_index,
                      char *err);

/* ---- evaluation over records (docs/functions.md §9) ---- */

/* What an evaluation needs of the process; everything is borrowed and must outlive it. */
typedef struct fneval_ctx {
    uv_loop_t *loop;       /** the loop the evaluation runs on (callbacks come here) */
    store_t *store;        /** the manifest and the channels the records lack */
    objstore_t *objstore;  /** waveform and image objects */
    const ogd_config *cfg; /** images.* and waveforms.* (thumbnail sizes, colour map...) */
    arena_t *arena;        /** small allocations that live as long as the caller */
    const void *owner;     /** owner of the object-store transfers (objstore_set_owner) */
} fneval_ctx;

typedef enum fneval_mode {
    /* docs/functions.md §9.3 (GET /records): scalar -> data; waveform -> thumbnail (plot); image ->
     * false-colour thumbnail (base64 RGBA PNG) with x/y_pixel_size = pixel counts. */
    FNEVAL_THUMBNAILS,
    /* docs/functions.md §9.4 (/export, /images, /waveforms, crosshair): scalar -> data; waveform ->
     * data {"x","y"} + metadata.x_units; image -> metadata only in the JSON, the PNG bytes
     * through fneval_png (and the storage array through fneval_image). */
    FNEVAL_FULL,
} fneval_mode;

typedef struct fneval_options {
    fneval_mode mode;
    /* Image colouring: levels (checked by the engine: FNEVAL_EINVAL with the text of
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
} fneval_options;

/* How an evaluation failed. */
typedef enum fneval_error {
    FNEVAL_OK = 0,
    /* the client's mistake: a function that does not evaluate, a value it cannot use, bad
     * colouring, too much channel data (docs/functions.md §9.2: client mistakes are 4xx) */
    FNEVAL_EINVAL,
    /* a record id the store does not know */
    FNEVAL_ENOTFOUND,
    /* the store or the object store failed; the code (util/error.h) says how, the message
     * is what to say when that code is no better known */
    FNEVAL_EBACKEND,
    /* anything else (out of memory, undecodable stored bytes, canceled) */
    FNEVAL_EINTERNAL,
} fneval_error;

/* One evaluation and, once done, its results. */
typedef struct fneval fneval;
/* Called once, on the loop, when evaluation is over (or failed). The callee owns `ev`
 * and frees it with fneval_free. */
typedef void (*fneval_done_cb)(fneval *ev, void *data);

/* Evaluates list over `records` (a JSON array of record documents with "_id"; takes
 * ownership) as docs/functions.md §9.2 says: reads the latest manifest, fetches (one store
 * query) the channels the functions name that a record lacks and merges them into its
 * "channels" (unless opts->channels_complete; a record id the store does not know is
 * FNEVAL_ENOTFOUND "Record cannot be found"), fetches every waveform/image object needed
 * (one task group, S3 fan-out), then evaluates each record's functions in order on the
 * thread pool and adds the result channels named after the functions. ctx and opts are
 * copied (colourmap_name must live as long as the evaluation). *handle (may be NULL) is
 * set before any callback can run (done may run inside the call when it cannot start:
 * clear your copy in done); it is the object done will receive. 0, and done is called
 * exactly once (also when the evaluation cannot start); -ENOMEM when not even that could be
 * arranged: done is not called. Memory: the stored objects of the whole call are capped
 * (512 MB, else FNEVAL_EINVAL), but every result PNG / kept image stays in the results
 * until fneval_free, so a caller with many records (the export) calls this on bounded
 * batches of records. */
int fneval_start(const fneval_ctx *ctx, fneval_list *list, json_t *records,
                 const fneval_options *opts, fneval_done_cb done, void *data, fneval **handle);
/* Cancels an evaluation (its object GETs, store op and work); done still follows, with
 * FNEVAL_EINTERNAL. Only between the start and done. `then` (may be NULL) is called with
 * `then_data` after the cancelling and before done can run (a caller that chains to
 * another cancel hook calls it there). */
void fneval_cancel(fneval *ev, void (*then)(void *then_data), void *then_data);

/* FNEVAL_OK on success; else the class, with the message in *message (owned by ev) and,
 * for FNEVAL_EBACKEND, the store's or object store's code in *code (else 0). */
fneval_error fneval_status(const fneval *ev, const char **message, int *code);
/* The records with the result (and dependency) channels merged (borrowed from ev). */
json_t *fneval_records(const fneval *ev);
/* True when function `fn` (index in the list) produced a result for record `rec` (a
 * function skipped because a channel it uses is missing produces none). */
bool fneval_has(const fneval *ev, size_t rec, size_t fn);
/* FULL + want_png, image results: the PNG bytes (borrowed from ev). false if none. */
bool fneval_png(const fneval *ev, size_t rec, size_t fn, const unsigned char **png, size_t *len);
/* FULL + keep_images, image results: the storage form (borrowed from ev). */
const fnimage *fneval_image(const fneval *ev, size_t rec, size_t fn);
void fneval_free(fneval *ev);

#endif
