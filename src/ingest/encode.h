/*
 * encode: turns an accepted channel into what is stored: the object bytes in the
 * reference's format (image: greyscale PNG after the bit-depth shift, with sBIT from an
 * explicit bit_depth; float image: .npz; waveform / vector: pretty JSON) and the channel
 * document of the record (metadata, relative path, base64 PNG thumbnail, and the object's
 * byte size as `object_size`). Pure CPU work: runs on the thread pool.
 */
#ifndef OGD_INGEST_ENCODE_H
#define OGD_INGEST_ENCODE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest/checks.h"
#include "objstore/keys.h"

typedef struct ingest_thumb_sizes {
    uint32_t image[2], float_image[2], waveform[2], vector[2]; /** width, height */
    double waveform_line_width;                                /** points */
} ingest_thumb_sizes;

typedef struct ingest_object {
    const ingest_channel *ch;
    objstore_kind kind;
    char key[OBJSTORE_KEY_MAX]; /** object key (new layout) */
    unsigned char *bytes;       /** the object (malloc'd) */
    size_t len;
    json_t *doc;   /** the channel document (owned) */
    int status;    /** upload status, 0 = stored */
    bool uploaded; /** the put succeeded (delete it if the record write fails) */
} ingest_object;

/* The channel document of a scalar channel (new reference). */
json_t *ingest_scalar_doc(const ingest_channel *c);
/* Encodes an object channel for record_id. 0, -EINVAL (data that cannot be encoded;
 * *why says why), -ENOMEM, -ENAMETOOLONG (key). */
int ingest_encode(const ingest_channel *c, const char *record_id, const ingest_thumb_sizes *ts,
                  ingest_object *out, const char **why);
/* The object kind and key (OBJSTORE_KEY_MAX bytes) ingest_encode gives channel c of the
 * record: 0, -EINVAL (c has no object) or -ENAMETOOLONG. */
int ingest_object_key(const ingest_channel *c, const char *record_id, objstore_kind *kind,
                      char *out);
void ingest_object_free(ingest_object *o);

/* Image bit-depth shift (docs/ingest.md §8.1): the stored sample for raw value v of an
 * element of `size` bytes, given the depth rule; *target_bits is 8 or 16. */
uint32_t ingest_image_shift(uint32_t v, int size, int depth, int *target_bits);

#endif
