/*
 * vector_thumbs: re-draws the vector thumbnails of a page of records from the user's
 * VECTOR_SKIP / VECTOR_LIMIT preferences (docs/api.md §4.11, docs/imaging.md §9).
 *
 * Owns the step between the records query and the response on /records and
 * /records/{id_}: it finds every channel whose metadata says "vector" and that carries a
 * thumbnail, reads all their stored vector objects at once (one object-store fan-out,
 * owned by the request), then on the thread pool slices each `data` array as Python's
 * data[skip:limit] (limit is an end index; unset = open end; negatives count from the
 * end), draws the bar plot with the imaging plotter (imaging/plot.h) at
 * vectors.thumbnail_size and puts its base64 PNG in place of the stored thumbnail.
 * Only active when skip or limit is non-zero (api_vector_thumbs_wanted).
 */
#ifndef OGD_API_VECTOR_THUMBS_H
#define OGD_API_VECTOR_THUMBS_H

#include "api/prefs.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Python's slice bounds data[skip:limit] of a sequence of n items: [*start, *stop). */
void api_vector_slice(size_t n, bool has_skip, int64_t skip, bool has_limit, int64_t limit,
                      size_t *start, size_t *stop);

/* true when the preferences ask for re-drawn thumbnails (skip or limit non-zero). */
bool api_vector_thumbs_wanted(const api_prefs *p);

/* Called on the loop with the records (ownership back to the caller). */
typedef void (*api_vector_thumbs_cb)(http_request_t *req, json_t *records, void *data);

/* Re-draws the thumbnails of `records` (an array of record documents; takes ownership).
 * On success cb gets them back. On failure the response has been sent, the records are
 * freed and cb is not called: a missing object is 404 with the text of docs/api.md §3.5
 * when one_record (GET /records/{id_}), every failure is 500 "Unknown error" otherwise (the
 * reference's task group). Sets the request's abort hook while it works and clears it
 * before cb. dtypes: the stored channel types where a projection removed
 * metadata.channel_dtype (store_op.dtypes), or NULL; read during this call only. */
void api_vector_thumbs(http_request_t *req, json_t *records, const json_t *dtypes,
                       const api_prefs *p, bool one_record, api_vector_thumbs_cb cb, void *data);

#endif
