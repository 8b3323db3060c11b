/*
 * hdf5_read: turns an HDF5 file image (bytes in memory) into a neutral description that
 * the ingest checks read: root attributes, and for each root member (byte-wise name
 * order) its kind, attributes and datasets with their data.
 *
 * This is the only code that calls libhdf5, and it runs only in the parse helper process
 * (`ogd _hdf5-parse`, see parse_proc.h), never in a worker: libhdf5 is not hardened
 * against hostile files, so a crash or a hang there costs a helper, not a worker.
 *
 * Output ("OGDH" format), written to one capped buffer:
 *   "OGDH" | u64 little-endian length of the JSON | JSON description (blank-padded so
 *   the data part starts at a multiple of 8) | data bytes (each dataset 8-byte aligned)
 * JSON: {"attrs": {name: value}, "members": [{"name", "kind": "group"|"dataset"|"other",
 *        "attrs": {...}, "members": [{"name", "kind", "data": dataset}]}], "error"?: text}
 * value: {"t":"str","v":s} (variable-length string), {"t":"fstr","v":s} (fixed-length),
 *        {"t":"int","v":n}, {"t":"float","v":x}, {"t":"arr","el":"str"|"int"|"float"|
 *        "other","v":[...]}, {"t":"other"}
 * dataset: {"class":"int"|"uint"|"float"|"str"|"other","size":bytes per element,
 *           "shape":[...], "off":n, "len":n} for numbers (native byte order, elements of
 *           `size` bytes at offset off of the data part), {"class":"str","shape":[],
 *           "v":s} for a scalar string, {"class":"str","shape":[n...]} for string arrays.
 */
#ifndef OGD_INGEST_HDF5_READ_H
#define OGD_INGEST_HDF5_READ_H

#include <stddef.h>

#include "util/buf.h"

/* Describes image[0..len) into out (whose cap bounds the whole output; a dataset that
 * would pass it is reported as the "error" member). Returns 0 when the file opened
 * (check the "error" member anyway), -EINVAL when it is not a readable HDF5 file, -E2BIG
 * when the output cap was hit, -ENOMEM. */
int hdf5_describe(void *image, size_t len, buf_t *out);

/* The helper's main: reads the file from stdin (at most max_in bytes), writes the
 * description to stdout (at most max_out bytes). Exit 0, or 1 with a message on stderr. */
int hdf5_parse_main(size_t max_in, size_t max_out);

#endif
