/*
 * demo: fills an empty data directory with synthetic EPAC-shaped shot data.
 *
 * Owns nothing after it returns. demo_generate writes one channel manifest (every channel
 * it generates, with names, paths, units and display hints) and then N records, one shot
 * every interval_s seconds from start_us, through the store's synchronous path
 * (STORE_MANIFEST_PUT, STORE_RECORD_PUT). Scalars drift smoothly with noise; some are
 * missing on some shots; one is string-valued and one integer-valued. With images on, each
 * record also gets two 12-bit camera images (16-bit PNG, values << 4, sBIT 12), two
 * photodiode waveforms and one Zernike-coefficient vector: the objects are uploaded to the
 * object store under the new key layout (images/2023/06/05/080000/CH.png, ...) with a
 * bounded number of puts in flight, driving the given loop until they finish; the record
 * documents carry the relative paths and base64 PNG thumbnails.
 *
 * Everything is a pure function of the seed and options (own PRNG, no clock, no rand()):
 * two runs with the same options produce the same ids, values, pixels and thumbnails. A
 * record's scalar values do not depend on whether images are generated.
 */
#ifndef OGD_DEMO_DEMO_H
#define OGD_DEMO_DEMO_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "objstore/objstore.h"
#include "store/store.h"

typedef struct demo_options {
    int64_t records;        /* records to generate (default 200) */
    uint64_t seed;          /* PRNG seed (default 1) */
    bool images;            /* image, waveform and vector channels + objects */
    bool skip_if_not_empty; /* do nothing (return DEMO_SKIPPED) if records exist */
    int64_t start_us;       /* first shot, microseconds since the epoch, UTC */
    int64_t interval_s;     /* seconds between shots (default 10) */
    uint32_t image_width;   /* camera image size (default 320 x 240) */
    uint32_t image_height;
    uint32_t image_thumb_w; /* image thumbnail box (default 50 x 50) */
    uint32_t image_thumb_h;
    uint32_t waveform_thumb_w; /* waveform thumbnail size (default 100 x 100) */
    uint32_t waveform_thumb_h;
    uint32_t vector_thumb_w; /* vector thumbnail size (default 100 x 100) */
    uint32_t vector_thumb_h;
    int max_in_flight; /* object puts outstanding at once (default 64) */
} demo_options;

/* demo_generate's result when skip_if_not_empty found records (nothing was written). */
#define DEMO_SKIPPED 1

/* Fills *o with the defaults above (images on, start 2023-06-05T08:00:00Z). */
void demo_options_default(demo_options *o);

/*
 * Generates the data set. store: opened for synchronous use (borrowed). os and loop
 * (borrowed) are needed only when opts->images; loop is the one os was created on and is
 * run here until every put has completed, so nothing else may be running it. progress
 * (may be NULL): a line every 1000 records, at the end, and a message for any error.
 * Returns 0, DEMO_SKIPPED, or a negative error (-EINVAL bad options, -ENOMEM, a store
 * status, or the first failed put's status); records written before an error stay.
 */
int demo_generate(const demo_options *opts, store_t *store, objstore_t *os, uv_loop_t *loop,
                  FILE *progress);

/*
 * Creates the local user `demo` (password `demo`, every permission string) unless a user of
 * that name exists. For the embedded default only: the caller decides. The password is
 * stored as new passwords are (argon2id, auth/password.h). Returns 0, -ENOMEM when hashing
 * failed, or a store status.
 */
int demo_create_user(store_t *store);

#endif
