/*
 * checks: every file, record and channel check of an HDF5 upload (docs/ingest.md §3-§5),
 * as a pure function of the parsed description (hdf5_read.h) and the latest channel
 * manifest. No I/O: unit-tested directly, run on the thread pool by ingest.c.
 *
 * The result is a plan: either a whole-file rejection (status 400 + the message), or the
 * record's id, metadata, the channels that entered the record (name order) with their
 * descriptors, the rejected channels with their reasons (check-merge order, A5.3), and
 * the warnings. The merge with an existing record (A7) and the uploads come later.
 */
#ifndef OGD_INGEST_CHECKS_H
#define OGD_INGEST_CHECKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest/parse_proc.h"

/* Characters of a record id (YYYYMMDDhhmmss), without the terminating NUL. */
#define INGEST_ID_LEN 14

typedef enum ingest_kind {
    INGEST_SCALAR,
    INGEST_IMAGE,
    INGEST_FLOAT_IMAGE,
    INGEST_WAVEFORM,
    INGEST_VECTOR,
} ingest_kind;

/* A numeric dataset as read by the helper: elements of `size` bytes, native order. */
typedef struct ingest_array {
    char cls; /** 'i' signed, 'u' unsigned, 'f' float, 0 = not numeric */
    int size; /** bytes per element: 1, 2, 4, 8 */
    int rank;
    uint64_t shape[8];
    uint64_t count;            /** elements */
    const unsigned char *data; /** borrowed from the parse result */
} ingest_array;

typedef struct ingest_channel {
    const char *name; /** borrowed from the description */
    ingest_kind kind;
    const json_t *attrs; /** the group's attributes (borrowed from the description) */
    json_t *metadata;    /** {"channel_dtype": ..., optional attributes present} (owned) */
    json_t *scalar;      /** scalar channels: the value (owned) */
    ingest_array data;   /** image, float_image, vector */
    ingest_array x, y;   /** waveform */
    bool rejected;
} ingest_channel;

typedef struct ingest_plan {
    int status;                 /** 0, or 400 when the whole file is rejected */
    char message[512];          /** the 400 text */
    char id[INGEST_ID_LEN + 1]; /** record id, YYYYMMDDhhmmss in the file's own offset */
    int64_t ts_us;              /** the instant, UTC microseconds */
    json_t *metadata;           /** record metadata (timestamp as naive UTC text) (owned) */
    bool has_shotnum;
    int64_t shotnum;
    ingest_channel *channels; /** the channels that entered the record, name order */
    size_t nchannels;
    json_t *rejected; /** {name: [reasons]} in check-merge order (owned) */
    json_t *warnings; /** [text] (owned) */
} ingest_plan;

/* Runs the checks. manifest: the latest manifest document ({"_id","channels"}) or NULL
 * when none is stored. lim: the limits the helper was given (NULL: none): a file with
 * more root members than max_channels is rejected whole; a channel whose dataset's
 * declared size passes max_dataset_bytes is rejected ("data is too large: N bytes when
 * decompressed, more than the limit of M bytes"; waveforms: "x attribute ..." / "y
 * attribute ..."), merged with the dataset check (A5.2.4). The plan borrows from pr
 * (keep it alive). Returns 0 (look at plan->status) or -ENOMEM. */
int ingest_check(const parse_result *pr, const json_t *manifest, const hdf5_limits *lim,
                 ingest_plan *plan);
void ingest_plan_free(ingest_plan *plan);

/* Parses a timestamp as strptime("%Y-%m-%dT%H:%M:%S%z") does; *wall_us is the wall
 * clock (as if UTC), *offset_s the UTC offset. 0 or -EINVAL. */
int ingest_parse_timestamp(const char *s, int64_t *wall_us, int *offset_s);

/* The record id of a timestamp as ingest_parse_timestamp returns it: YYYYMMDDhhmmss of
 * the wall clock (the file's own offset, docs/ingest.md §3), always 14 digits. Total:
 * -ERANGE (and id = "") unless both the wall clock and the instant in UTC (wall_us -
 * offset_s) lie in the years 1..9999, the range the store and the reference's datetime
 * hold (0001-01-01T00:00:00+14:00 is in year 0 in UTC). Whole seconds (any fraction of
 * wall_us is dropped). */
int ingest_record_id(int64_t wall_us, int offset_s, char id[INGEST_ID_LEN + 1]);

#define INGEST_TIMESTAMP_ERROR                                                                     \
    "Invalid timestamp metadata. Expected key 'timestamp' with value formatted, for example as: "  \
    "'2025-04-07T14:28:16+00:00'."
#define INGEST_NO_MANIFEST                                                                         \
    "There is no manifest file stored in the database, channel checks against cannot occur "       \
    "unless there is one present"

#endif
