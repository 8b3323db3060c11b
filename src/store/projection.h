/*
 * projection: MongoDB-style inclusion projections ("metadata.shotnum",
 * "channels.X.data") applied to record documents after they are read.
 *
 * A projection is compiled once per query into a tree of path segments; `_id` is always
 * kept. Paths that collide (`metadata` with `metadata.shotnum`) are rejected at compile
 * time. Applying keeps only projected keys, in the document's own order; a projected
 * sub-field that a present object lacks leaves that object empty (as MongoDB does).
 */
#ifndef OGD_STORE_PROJECTION_H
#define OGD_STORE_PROJECTION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct projection projection_t;

/* paths: borrowed. On error returns -EINVAL with a client message in err. */
int projection_compile(const char *const *paths, size_t n, projection_t **out, char *err,
                       size_t errlen);
void projection_free(projection_t *p);
/* True when a top-level key (e.g. "metadata") is projected in whole or in part. */
bool projection_wants(const projection_t *p, const char *top);
/* The channel names the projection needs (new JSON array, caller frees), or NULL when
 * the whole `channels` object is projected. */
json_t *projection_channel_names(const projection_t *p);
/* Projects rec in place. */
void projection_apply(const projection_t *p, json_t *rec);

#endif
