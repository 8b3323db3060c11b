/*
 * import: `ogd import --collection records|channels FILE...` loads documents exported
 * from the reference's MongoDB (mongoexport JSON lines or a JSON array, Extended JSON
 * v1/v2 types) into the store, through the same store interface the server uses.
 */
#ifndef OGD_CLI_IMPORT_H
#define OGD_CLI_IMPORT_H

#include <jansson.h>
#include <stdio.h>

#include "store/store.h"

/* Rewrites Extended JSON wrappers in place-returned copy: $numberLong/$numberInt ->
 * integers, $numberDouble -> reals (NaN/Infinity -> null), $oid -> hex text, $binary ->
 * the decoded bytes as text when they are printable ASCII (thumbnails), $date is kept for
 * the store to parse. Returns a new reference. */
json_t *import_normalise(json_t *v);

/* Imports every document of path into collection; progress and errors go to log.
 * Returns the number of documents imported, or a negative error. */
long import_file(store_t *store, const char *collection, const char *path, FILE *log);

#endif
