/*
 * recolour: false-colours the thumbnails inside record documents on read
 * (docs/imaging.md §4, §6).
 *
 * Owns the walk over records -> channels -> thumbnail: an "image" thumbnail (8-bit grey
 * PNG, base64) is coloured with the request's levels at limit_bit_depth 8 and the image
 * colour map; a "float_image" thumbnail (grey + alpha PNG) is coloured by direct table
 * index with the float colour map; both are replaced by the base64 of an RGBA PNG of
 * the same size. Other channels are left alone. Runs on the thread pool (the store op's
 * post step): pure CPU, no I/O, the documents are modified in place.
 */
#ifndef OGD_IMAGING_RECOLOUR_H
#define OGD_IMAGING_RECOLOUR_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct recolour_opts {
    bool enabled;
    long lower_level, upper_level;    /** 0..255 */
    const char *colourmap_name;       /** for image thumbnails; borrowed */
    const char *float_colourmap_name; /** for float-image thumbnails; borrowed */
    const atomic_bool *cancel; /** optional: when it becomes true the walk stops (-ECANCELED) */
} recolour_opts;

/* Re-colours the thumbnails of every record of the array `records`. A channel's type is
 * its metadata.channel_dtype, or where a projection removed that, dtypes[record id][name]
 * (NULL: none known; store_op.dtypes has that shape). 0; -EINVAL when an
 * image thumbnail needs levels or a colour map that are not valid (err: the client
 * message of docs/api.md §4.10, e.g. "x is not a valid colour map name"); -EDOM when a
 * float-image thumbnail needs an unknown float colour map (err: a log message; the
 * reference fails inside matplotlib there: 500); -ENOMEM; -ECANCELED when o->cancel was
 * set (checked before each record).
 * Thumbnails that are not decodable PNGs are left as they are. */
int recolour_records(json_t *records, const json_t *dtypes, const recolour_opts *o, char *err,
                     size_t errlen);
/* The same for one channel document ({"metadata": {...}, "thumbnail": ...}). */
int recolour_channel(json_t *ch, const recolour_opts *o, char *err, size_t errlen);

#endif
