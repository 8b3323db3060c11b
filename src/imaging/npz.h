/*
 * npz: reads the float images the reference and ogd store (numpy savez_compressed of one
 * 2-D array, docs/imaging.md §8).
 *
 * Owns the parsing of the ZIP container (end of central directory, ZIP64 records and
 * extra fields, one stored or DEFLATE member, preferably "arr_0.npy") and of the .npy
 * payload (magic, version 1-3 header, dict with descr '<f4' or '<f8', fortran_order
 * False, a 2-D shape). Everything is bounds-checked against the input; the inflated
 * size is capped (NPZ_MAX_BYTES) and must match the header. Pure function, any thread.
 */
#ifndef OGD_IMAGING_NPZ_H
#define OGD_IMAGING_NPZ_H

#include <stddef.h>
#include <stdint.h>

#define NPZ_MAX_BYTES ((size_t)800 * 1024 * 1024)

typedef struct npz_array {
    uint32_t rows, cols;
    int itemsize; /** 4 (float) or 8 (double) */
    void *data;   /** rows * cols values, row-major, host order; malloc'd */
} npz_array;

/* Decodes the first array of an .npz (data borrowed). 0, -EINVAL (malformed or
 * unsupported: error text in err), -E2BIG, -ENOMEM. On error out holds no memory. */
int npz_read(const void *data, size_t len, npz_array *out, char *err, size_t errlen);
void npz_array_free(npz_array *a);

#endif
