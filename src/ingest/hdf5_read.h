/*
 * hdf5_read: turns an HDF5 file image (bytes in memory) into a neutral description that
 * the ingest checks read: root attributes, and for each root member (byte-wise name
 * order) its kind, attributes and datasets with their data.
 *
 * This is the only code that calls libhdf5, and it runs only in the parse helper process
 * (`ogd _hdf5-parse`, see parse_proc.h), never in a worker: libhdf5 is not hardened
 * against hostile files, so a crash or a hang there costs a helper, not a worker.
 *
 * Output through the pipe ("OGDH" format), written to one capped buffer:
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
 *           A numeric dataset larger than the limits' max_dataset_bytes (its declared
 *           size, hdf5_declared_bytes) is not read: {"class", "size", "shape",
 *           "too_large": true}, no "off"/"ref"/"len".
 * Whole-file refusals: "error" (text) when the numeric datasets within
 * max_dataset_bytes hold more than max_file_bytes together, or do not fit the output
 * cap (then no dataset was read and "members" still describes the file); "channels": n
 * and empty "attrs" and "members" when the root group has more than max_channels
 * members (nothing else was read).
 *
 * Output into a shared file (the "OGDM" format, parse_proc's memfd path): the data part
 * is read by libhdf5 straight into the mapping, so nothing is copied on either side:
 *   bytes 0..64: "OGDM" | 4 zero bytes | u64 data length | u64 JSON offset | u64 JSON
 *   length (little-endian) | zeros; data part from byte 64 (datasets 8-byte aligned, the
 *   same offsets as above); the JSON at the (8-aligned) offset after the data.
 * In this format a numeric dataset may also come by reference, copied nowhere:
 *   {"class", "size", "shape", "ref":n, "len":n} means its elements are the bytes
 *   [ref, ref + len) of the file image itself. The helper says so only when those bytes
 *   are exactly what H5Dread would give (one allocated contiguous block, no filters, the
 *   file type equal to the native type: same class, size, little-endian) and the
 *   elements are aligned in the reader's copy of the image; every other dataset is copied ("off").
 * The reader of the description holds the same bytes (the upload the image came from) and checks
 * each reference against them (parse_proc.h).
 */
#ifndef OGD_INGEST_HDF5_READ_H
#define OGD_INGEST_HDF5_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* What one file may make the reader do (config section ingest:); 0 = no limit. All are
 * decided from the file's metadata before any dataset is read. */
typedef struct hdf5_limits {
    uint64_t max_dataset_bytes; /** one numeric dataset's declared size */
    uint64_t max_file_bytes;    /** the sum of those within max_dataset_bytes */
    uint64_t max_channels;      /** members of the root group */
} hdf5_limits;

/* The bytes a dataset of rank dims (rank 0: one element) of elements of elem_size bytes
 * holds once read: *bytes, true; false when that does not fit in 64 bits. A zero side
 * makes it 0 whatever the others are. */
bool hdf5_declared_bytes(const uint64_t *dims, int rank, uint64_t elem_size, uint64_t *bytes);

/* Describes image[0..len) into out (whose cap bounds the whole output; datasets that
 * would pass it are reported as the "error" member), within lim (NULL: no limits).
 * Returns 0 when the file opened (check the "error" member anyway), -EINVAL when it is
 * not a readable HDF5 file, -E2BIG when the output cap was hit, -ENOMEM. */
int hdf5_describe(void *image, size_t len, const hdf5_limits *lim, buf_t *out);

/* Bytes before the data part of an "OGDM" output. */
#define HDF5_MAPPED_HEADER 64

/* Describes image[0..len) into area[0..cap) in the "OGDM" format (datasets by
 * reference where they can be, offsets relative to image, aligned for a copy of image
 * that starts skew (0..7) bytes past a multiple of 8); *used: the bytes written. Returns as
 * hdf5_describe (-E2BIG: cap too small even for the description). */
int hdf5_describe_mapped(void *image, size_t len, unsigned skew, const hdf5_limits *lim,
                         unsigned char *area, size_t cap, size_t *used);

/* Where the helper's input is: the HDF5 bytes are [offset, offset + len) of the stdin
 * file when window is set, else the whole file; the reader's own copy of them starts
 * skew bytes past a multiple of 8 (references must be aligned there, not only in the
 * file). */
typedef struct hdf5_input {
    bool window;
    uint64_t offset;
    uint64_t len;
    unsigned skew;
} hdf5_input;

/* The helper's main (`ogd _hdf5-parse MAX_IN MAX_OUT MAX_DATASET MAX_FILE MAX_CHANNELS
 * [mapped SKEW [OFFSET LEN]]`, src/main.c), within lim. Pipe mode: reads the file from
 * stdin (at most max_in bytes), writes the "OGDH" description to stdout (at most max_out
 * bytes). Mapped mode: stdin is a regular file (a memfd, or the caller's own file)
 * holding the HDF5 bytes as `in` says (NULL: the whole file, skew 0), at most max_in of
 * them, mapped, not read; fd 3 is a file (a memfd) that receives the "OGDM" description
 * (at most max_out + HDF5_MAPPED_HEADER bytes, the file truncated to its length). Exit 0;
 * 3 not HDF5; 4 too large; 1 other failures (a message on stderr). */
int hdf5_parse_main(size_t max_in, size_t max_out, const hdf5_limits *lim, bool mapped,
                    const hdf5_input *in);

#endif
