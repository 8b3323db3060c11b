/*
 * fuzz_npz: the float-image reader (src/imaging/npz.h): the zip container (end of central
 * directory, Zip64 end record and locator, central entries and their Zip64 extra fields,
 * local headers, STORE and DEFLATE members) and the .npy payload (versions 1-3, the
 * header dict, the shape).
 *
 * Input: an .npz file. Checks, besides memory errors, UB and leaks:
 *  - npz_read returns 0, -EINVAL (with an error text), -E2BIG or -ENOMEM, and on error
 *    holds no memory;
 *  - a decoded array has 1 <= rows, cols <= 65535, itemsize 4 or 8, and all of its
 *    rows * cols * itemsize bytes are readable;
 *  - round trip: the array written by the project's writer (src/ingest/npz_write.h, as
 *    ingest stores float images) reads back with the same shape, type and bytes (arrays
 *    of at most 1 MiB).
 */
#include "harness.h"

#include "imaging/npz.h"
#include "ingest/npz_write.h"

#define ROUNDTRIP_MAX ((size_t)1 << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_silence_logs();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npz_array a;
    char err[256] = "";
    int rc = npz_read(data, size, &a, err, sizeof(err));
    if (rc != 0) {
        FZ_CHECK(rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
        FZ_CHECK(rc != -EINVAL || err[0] != '\0');
        FZ_CHECK(a.data == NULL);
        return 0;
    }
    FZ_CHECK(a.rows >= 1 && a.rows <= 65535 && a.cols >= 1 && a.cols <= 65535);
    FZ_CHECK(a.itemsize == 4 || a.itemsize == 8);
    FZ_CHECK(a.data != NULL);
    size_t bytes = (size_t)a.rows * a.cols * (size_t)a.itemsize;
    fz_touch(a.data, bytes);
    if (bytes <= ROUNDTRIP_MAX) {
        uint64_t shape[2] = {a.rows, a.cols};
        unsigned char *z = NULL;
        size_t zlen = 0;
        FZ_CHECK(npz_write(a.itemsize == 4 ? "<f4" : "<f8", shape, 2, a.data, bytes, &z, &zlen) ==
                 0);
        npz_array b;
        rc = npz_read(z, zlen, &b, err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "written npz does not read back: %s\n", err);
        FZ_CHECK(rc == 0);
        FZ_CHECK(b.rows == a.rows && b.cols == a.cols && b.itemsize == a.itemsize);
        FZ_CHECK(memcmp(a.data, b.data, bytes) == 0);
        npz_array_free(&b);
        free(z);
    }
    npz_array_free(&a);
    return 0;
}
