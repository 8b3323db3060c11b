/*
 * demo_hdf5: writes synthetic EPAC-shaped HDF5 files with libhdf5, in the layout the ingest
 * path accepts (docs/ingest.md §2): root attributes, one group per channel with
 * `channel_dtype` and the per-type datasets and attributes. `ogd demo --hdf5` writes them
 * and ingests them through the same pipeline as POST /submit/hdf, so the demo data set
 * exercises ingestion end to end.
 *
 * Per file: 2 camera images (uint16, 12-bit, bit_depth 12), 1 float image (a wavefront,
 * float64) and its 20-term Zernike vector, 2 photodiode waveforms, and 6 scalars (one a
 * string). Pure function of (seed, index): the same arguments give the same files.
 */
#ifndef OGD_DEMO_DEMO_HDF5_H
#define OGD_DEMO_DEMO_HDF5_H

#include <jansson.h>
#include <stdint.h>

/* The channel manifest matching the files ({"_id": id, "channels": {...}}). */
json_t *demo_hdf5_manifest(const char *id);
/* Writes shot number `index` (0-based; one shot every 10 s from 2023-06-05T08:00:00Z) to
 * path. 0 or -EIO. */
int demo_hdf5_write(const char *path, uint64_t seed, int64_t index, uint32_t image_w,
                    uint32_t image_h);

#endif
