/*
 * keys: the object key layout of the bucket (spec/data.md §2.1), shared with the
 * reference service: <prefix>/<dir>/<CHANNEL>.<ext>, where <dir> is YYYY/MM/DD/HHMMSS
 * for record ids longer than 8 characters (the new layout) or the bare id (legacy).
 * Reads try the new key first and the legacy key second (objstore_get_channel).
 */
#ifndef OGD_OBJSTORE_KEYS_H
#define OGD_OBJSTORE_KEYS_H

#include <stddef.h>

#include "objstore/objstore.h"

typedef enum objstore_kind {
    OBJ_IMAGE,
    OBJ_FLOAT_IMAGE,
    OBJ_WAVEFORM,
    OBJ_VECTOR,
} objstore_kind;

#define OBJSTORE_KEY_MAX 1024
#define OBJSTORE_RECORD_PREFIXES 8

/* "image" -> OBJ_IMAGE, ...; -1 for other dtypes (scalar, unknown). */
int objstore_kind_parse(const char *dtype);
/* The class word of the reference's error texts: Image, FloatImage, Waveform, Vector. */
const char *objstore_kind_class(objstore_kind kind);
/* Writes the new-layout / legacy key into out (OBJSTORE_KEY_MAX bytes). 0 or -ENAMETOOLONG. */
int objstore_key_new(objstore_kind kind, const char *record_id, const char *channel, char *out);
int objstore_key_legacy(objstore_kind kind, const char *record_id, const char *channel,
                        char *out);
/* The 8 prefixes DELETE /records/{id} removes: new and legacy, for all four kinds, each
 * ending with '/'. Returns how many were written (8). */
int objstore_record_prefixes(const char *record_id, char out[][256]);

/* GET the channel's object: the new key, then (on any error) the legacy key. The
 * callback gets the final status (0, -ENOENT, ...). */
int objstore_get_channel(objstore_t *os, objstore_kind kind, const char *record_id,
                         const char *channel, objstore_get_cb cb, void *data);

#endif
