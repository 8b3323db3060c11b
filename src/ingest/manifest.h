/*
 * manifest: validation of an uploaded channel manifest and its comparison with the stored
 * one (POST /submit/manifest, docs/ingest.md §11). Pure functions over jansson
 * documents; the handler does the I/O.
 */
#ifndef OGD_INGEST_MANIFEST_H
#define OGD_INGEST_MANIFEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Parses and validates the uploaded bytes; on success *out is the document to store
 * ({"_id": id, "channels": {...}}, only the model's fields, `type` always set). On
 * failure returns -1 with the 400 message in err. */
int manifest_validate(const char *bytes, size_t len, const char *id, json_t **out, char *err,
                      size_t errlen);
/* Compares a validated manifest with the stored one (may be NULL). 0, or -1 with the 400
 * message in err. */
int manifest_compare(const json_t *input, const json_t *stored, bool bypass_channel_check,
                     char *err, size_t errlen);

#endif
