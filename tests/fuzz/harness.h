/*
 * harness.h: what the libFuzzer targets of tests/fuzz share. Header-only (each target is
 * one file plus this): a NUL-terminated copy of the input, splitting the input into parts
 * at a separator, a little-endian byte reader for inputs that carry parameters, the input
 * as a file (a memfd, for loaders that only take a path), reading a whole buffer (for
 * ASan), silencing the logger, and an invariant check that aborts (libFuzzer then saves
 * the input) with a message.
 *
 * Conventions of the targets: parts are separated by FZ_SEP ("\n%%\n", chosen to be rare
 * in JSON, YAML, multipart bodies and expressions, and listed in every dictionary);
 * every check failure is FZ_CHECK, which prints where and aborts; inputs are never
 * modified (libFuzzer's buffer is read-only).
 */
#ifndef OGD_FUZZ_HARNESS_H
#define OGD_FUZZ_HARNESS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_SEP "\n%%\n"
#define FZ_SEP_LEN 4

/* An invariant of the code under test; failing it is a finding. */
#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A malloc'd copy of data[0..size) with a NUL after it (the copy may hold other NULs). */
static inline char *fz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* One part of a split input: borrowed bytes, not NUL-terminated. */
typedef struct fz_part {
    const uint8_t *data;
    size_t size;
} fz_part;

/* Splits data at each FZ_SEP into at most max parts (the last part keeps any further
 * separators). Returns the number of parts (>= 1; missing parts are left empty). */
static inline size_t fz_split(const uint8_t *data, size_t size, fz_part *parts, size_t max)
{
    for (size_t i = 0; i < max; i++)
        parts[i] = (fz_part){NULL, 0};
    size_t n = 0;
    const uint8_t *p = data, *end = data + size;
    while (n + 1 < max) {
        const uint8_t *sep = memmem(p, (size_t)(end - p), FZ_SEP, FZ_SEP_LEN);
        if (!sep)
            break;
        parts[n++] = (fz_part){p, (size_t)(sep - p)};
        p = sep + FZ_SEP_LEN;
    }
    parts[n++] = (fz_part){p, (size_t)(end - p)};
    return n;
}

/* Reads little-endian integers off the front of the input; past the end it reads zeros. */
typedef struct fz_reader {
    const uint8_t *p;
    size_t left;
} fz_reader;

static inline uint64_t fz_uint(fz_reader *r, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) {
        uint64_t b = 0;
        if (r->left) {
            b = *r->p++;
            r->left--;
        }
        v |= b << (8 * i);
    }
    return v;
}

static inline uint8_t fz_u8(fz_reader *r)
{
    return (uint8_t)fz_uint(r, 1);
}

static inline double fz_double(fz_reader *r)
{
    uint64_t bits = fz_uint(r, 8);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* Up to n bytes off the front: *got says how many there were. */
static inline const uint8_t *fz_bytes(fz_reader *r, size_t n, size_t *got)
{
    const uint8_t *p = r->p;
    *got = n < r->left ? n : r->left;
    r->p += *got;
    r->left -= *got;
    return p;
}

/* The input as a file: a memfd holding data[0..size) and its path (/proc/self/fd/N) in
 * path (at least 32 bytes). Returns the fd (close it when done). */
static inline int fz_memfd(const uint8_t *data, size_t size, char *path)
{
    int fd = memfd_create("ogd-fuzz-input", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0)
            abort();
        done += (size_t)w;
    }
    snprintf(path, 32, "/proc/self/fd/%d", fd);
    return fd;
}

/* Reads every byte of p[0..n) (so ASan checks the whole buffer); the result goes to a
 * volatile, which the optimiser cannot drop. */
static volatile unsigned char fz_sink;
static inline void fz_touch(const void *p, size_t n)
{
    unsigned char acc = 0;
    for (size_t i = 0; i < n; i++)
        acc ^= ((const unsigned char *)p)[i];
    fz_sink = acc;
}

/* The logger writes nothing below error, and that to /dev/null. */
static inline void fz_silence_logs(void)
{
    log_open("/dev/null", LOG_ERROR);
}

#endif
