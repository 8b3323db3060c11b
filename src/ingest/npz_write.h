/*
 * npz_write: float images as numpy's savez_compressed writes them: a zip archive holding
 * one deflated member `arr_0.npy` (npy format 1.0: magic, a header dict padded to a
 * multiple of 64 bytes, then the array in C order). Zip64 fields are written only when a
 * size passes 4 GiB. The reader lives with the imaging code.
 */
#ifndef OGD_INGEST_NPZ_WRITE_H
#define OGD_INGEST_NPZ_WRITE_H

#include <stddef.h>
#include <stdint.h>

/* descr: numpy's type string, e.g. "<f8", "<f4", "|u1", "<i2". shape: ndim sides.
 * data: the elements (len bytes). *out: malloc'd archive (caller frees). 0 or -ENOMEM,
 * -EINVAL. */
int npz_write(const char *descr, const uint64_t *shape, int ndim, const void *data, size_t len,
              unsigned char **out, size_t *outlen);

#endif
