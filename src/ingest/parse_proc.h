/*
 * parse_proc: runs the HDF5 reader (hdf5_read.h) in a helper process and brings its
 * description back to the loop.
 *
 * libhdf5 is fragile on hostile input (crashes, endless loops, huge allocations), so a
 * worker never links it into its own address space at run time: it spawns its own binary
 * (`/proc/self/exe _hdf5-parse`), with a time limit (the helper is killed when it passes)
 * and an output cap. Two ways to move the bytes:
 *  - shared files (the default): the helper's stdin is a file holding the upload, which
 *    it maps instead of reading: the caller's own file when it passes one (nothing
 *    copied), else a memfd the upload is copied into once, on the thread pool. A second
 *    memfd (the helper's fd 3) receives the description ("OGDM", hdf5_read.h), which the
 *    worker maps. Datasets stored plainly in the file (contiguous, unfiltered, native
 *    little-endian) are described by reference: their offset in the upload, which the
 *    worker checks and points into, so their bytes are copied nowhere; the others are
 *    read by libhdf5 straight into the output mapping. No pipe traffic runs through the
 *    loop.
 *  - pipes (when memfd_create is not available, or parse_limits.pipe_only): the upload
 *    is written to the helper's stdin and the "OGDH" description read from its stdout,
 *    with libuv pipes on the loop.
 * Nothing blocks the loop either way.
 * A crash, a kill or a non-zero exit of the helper is reported as a status, never more.
 * The process must ignore SIGPIPE (workers and `ogd ingest` do): a helper that exits
 * before reading all its input breaks the pipe.
 */
#ifndef OGD_INGEST_PARSE_PROC_H
#define OGD_INGEST_PARSE_PROC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "ingest/hdf5_read.h"
#include "util/error.h"

/* Statuses besides 0 (util/error.h codes). */
#define PARSE_NOT_HDF5 OGD_EHDF5_NOT_HDF5   /* the helper could not open the bytes as HDF5 */
#define PARSE_TOO_LARGE OGD_EHDF5_TOO_LARGE /* the description passed the output cap */
#define PARSE_CRASHED OGD_EHDF5_CRASHED     /* the helper died (signal) or failed otherwise */
#define PARSE_TIMEOUT OGD_EHDF5_TIMEOUT     /* the helper ran past the time limit, was killed */

typedef struct parse_result {
    json_t *desc;              /** the description (hdf5_read.h format) */
    const unsigned char *data; /** its data part */
    size_t data_len;
    /** the upload the description's dataset references ("ref") point into: the caller's
     * bytes (borrowed: valid until the parse callback's caller is done with them), or,
     * when they were copied into a memfd, the result's own page-aligned mapping of it
     * (freed with the result); NULL on the pipe path */
    const unsigned char *image;
    size_t image_len;
    char *raw;            /** private: the whole output (malloc'd, pipe path) */
    void *map;            /** private: the mapped output (memfd path) */
    size_t map_len;       /** private */
    void *image_map;      /** private: the worker's mapping of the input memfd, when image is it */
    size_t image_map_len; /** private */
} parse_result;

typedef struct parse_proc parse_proc_t;
/* status 0: *res is the caller's (release it with parse_result_free). */
typedef void (*parse_cb)(int status, parse_result *res, void *data);

typedef struct parse_limits {
    size_t max_output;   /** bytes of description + data */
    unsigned timeout_ms; /** wall-clock limit of the helper */
    bool pipe_only;      /** use the pipes even where memfds work (tests) */
    hdf5_limits hdf5;    /** what the file may hold (0 = no limit), told to the helper */
} parse_limits;

/* The helper binary; "/proc/self/exe" unless set (tests). */
void parse_proc_set_binary(const char *path);
/* Starts the helper on bytes[0..len) (borrowed until cb: the result's dataset references
 * point into it). fd -1: the bytes are copied into a memfd (or piped). fd >= 0: bytes is
 * the caller's mapping of that file's bytes [fd_offset, fd_offset + len), fd open and the
 * mapping valid until cb; the helper gets (a duplicate of) fd as its stdin and maps the
 * window itself, nothing copied (when fd is no regular file holding the window, the copy
 * as with -1). cb runs once, on the loop, never inside this call. Returns 0 or a negative
 * errno (no callback then). A spawn that fails after the memfd was filled (on the pool)
 * is reported to cb as PARSE_CRASHED. */
int parse_proc_start(uv_loop_t *loop, const void *bytes, size_t len, int fd, uint64_t fd_offset,
                     const parse_limits *lim, parse_cb cb, void *data, parse_proc_t **out);
/* Kills the helper; cb still runs, with -ECANCELED. */
void parse_proc_cancel(parse_proc_t *p);
/* Decodes an "OGDH" buffer (takes raw, malloc'd). 0 or PARSE_CRASHED (malformed; a
 * dataset reference is malformed here). */
int parse_result_decode(char *raw, size_t len, parse_result *out);
/* Decodes an "OGDM" mapping (takes map: munmap'd by parse_result_free, or here on
 * failure) whose dataset references point into image[0..image_len) (borrowed). 0 or
 * PARSE_CRASHED (malformed, or a reference that is not whole aligned elements inside
 * the image). */
int parse_result_decode_mapped(void *map, size_t len, const void *image, size_t image_len,
                               parse_result *out);
void parse_result_free(parse_result *r);
/* The client message for a parse status (400 texts). */
const char *parse_strerror(int status);

#endif
