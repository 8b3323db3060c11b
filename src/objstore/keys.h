/*
 * keys: the object key layout of the bucket (docs/design.md §6.2), shared with the
 * reference service, and the channel read that follows it (docs/api.md §3.5).
 *
 *   <prefix>/<dir>/<CHANNEL>.<ext>     prefix/ext by kind: images/png, float_images/npz,
 *                                      waveforms/json, vectors/json
 *   <dir> new layout:    YYYY/MM/DD/HHMMSS = id[0:4]/id[4:6]/id[6:8]/id[8:], when the
 *                        record id is longer than 8 characters
 *   <dir> legacy layout: the bare record id (also the new layout for ids of <= 8 chars)
 *
 * Writers use the new key. Readers use objstore_get_channel: the new key, then, when it
 * is missing (-ENOENT), the legacy key. DELETE /records/{id} removes the 8 prefixes of
 * objstore_record_prefixes (docs/api.md §5.5). The functions here only format strings; key
 * validation happens when a key reaches objstore.c.
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

#define OBJSTORE_KINDS 4
/* objstore_record_prefixes writes this many prefixes, of at most OBJSTORE_PREFIX_MAX
 * bytes each (NUL included). */
#define OBJSTORE_RECORD_PREFIXES 8
#define OBJSTORE_PREFIX_MAX 256

/* "image" -> OBJ_IMAGE, "float_image", "waveform", "vector"; 0, or -EINVAL for any other
 * dtype (scalar, unknown, NULL), leaving *out unchanged. */
int objstore_kind_parse(const char *dtype, objstore_kind *out);
/* The class word of the reference's error texts: "Image", "FloatImage", "Waveform",
 * "Vector" (static strings). */
const char *objstore_kind_class(objstore_kind kind);
/* The key prefix ("images", ...) and file extension ("png", ...), static strings. */
const char *objstore_kind_prefix(objstore_kind kind);
const char *objstore_kind_ext(objstore_kind kind);

/* Writes the new-layout key (images/2023/06/05/100000/CH.png) into out, which has
 * OBJSTORE_KEY_MAX bytes. 0, or -ENAMETOOLONG (out then holds an empty string). */
int objstore_key_new(objstore_kind kind, const char *record_id, const char *channel, char *out);
/* The same for the legacy key (images/20230605100000/CH.png). */
int objstore_key_legacy(objstore_kind kind, const char *record_id, const char *channel, char *out);
/* The prefixes DELETE /records/{id} removes, in the reference's order: for waveforms,
 * images, vectors, float_images, the new then the legacy directory, each ending with '/'
 * (for ids of <= 8 characters the two are equal). Returns OBJSTORE_RECORD_PREFIXES, or
 * -ENAMETOOLONG when the id does not fit (nothing usable is written then). */
int objstore_record_prefixes(const char *record_id,
                             char out[OBJSTORE_RECORD_PREFIXES][OBJSTORE_PREFIX_MAX]);

/* GETs a channel's object: the new key, then, on any error but -ECANCELED, the legacy
 * key; the callback gets the final status (0 with a borrowed blob, -ENOENT, ...) and the
 * caller builds the 404/500 texts of docs/api.md §3.5 (they need the database). Returns -EINVAL or
 * -ENAMETOOLONG when record_id/channel do not make a valid key (treat it as not found),
 * and the other errors of objstore_get; then cb is never called. req as for
 * objstore_get: one handle covers both reads. */
int objstore_get_channel(objstore_t *os, objstore_kind kind, const char *record_id,
                         const char *channel, objstore_get_cb cb, void *data, objstore_req_t **req);
/* The same with objstore_get_ex's flags (OBJSTORE_GET_NO_CACHE). */
int objstore_get_channel_ex(objstore_t *os, objstore_kind kind, const char *record_id,
                            const char *channel, unsigned flags, objstore_get_cb cb, void *data,
                            objstore_req_t **req);

#endif
