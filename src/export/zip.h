/*
 * zip: a streaming zip writer for GET /export (PKWARE APPNOTE 6.3, with Zip64).
 *
 * Owns the byte layout of the archive, nothing else: no I/O, no threads. The archive is
 * produced as a sequence of independent byte strings that the caller sends in order:
 *
 *   1. zip_member_build (any thread, e.g. the libuv pool): one complete member, its
 *      local file header followed by its data (STORE or raw DEFLATE through libdeflate)
 *      with the CRC-32 and both sizes already in the header. A member's bytes do not
 *      depend on where it lands in the archive, so members are built concurrently, in
 *      any order, and only *placed* in order.
 *   2. zip_writer_add (the sending thread): places the next member at the current offset
 *      and remembers its central-directory entry.
 *   3. zip_writer_finish: the central directory, then (only when needed) the Zip64 end
 *      record and locator, then the end-of-central-directory record.
 *
 * Every member is complete before its header is written, so no data descriptors are
 * needed: the local header carries the real CRC and sizes, which also lets streaming
 * readers (`unzip` from a pipe, Python's zipfile reading members in order) work. Zip64
 * extra fields are written only where a value does not fit: a member of 4 GiB or more, an
 * offset past 4 GiB, more than 65,535 members or a central directory past 4 GiB. Members
 * are marked as made on Unix with mode 0600 and UTF-8 names; all carry one timestamp (the
 * server's local time when the export started).
 */
#ifndef OGD_EXPORT_ZIP_H
#define OGD_EXPORT_ZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/buf.h"

/* Longest member name accepted (bytes). */
#define ZIP_NAME_MAX 4096

typedef struct zip_member {
    unsigned char *bytes; /** local header + data, malloc'd (the caller frees or hands it on) */
    size_t len;
    /* what the central directory needs */
    char *name; /** malloc'd copy */
    uint32_t crc;
    uint64_t csize, usize;
    uint16_t method; /** 0 STORE, 8 DEFLATE */
} zip_member;

/* DOS date and time words for t in the server's local time zone (1980 at the earliest,
 * 2107-12-31 23:59:58 at the latest). */
void zip_dos_time(time_t t, uint16_t *date, uint16_t *time);

/* Builds a member named name holding data[0..len). deflate: compress with libdeflate at
 * level (1..12), falling back to STORE when that does not make it smaller. 0, -EINVAL
 * (empty or over-long name), -ENOMEM. On success free it with zip_member_free unless the
 * bytes were taken (set m->bytes to NULL after taking them). Thread-safe: compressors
 * are reused from a process-wide cache of idle ones (at most 16 per level), each used by
 * one member at a time. */
int zip_member_build(const char *name, const void *data, size_t len, bool deflate, int level,
                     uint16_t dos_date, uint16_t dos_time, zip_member *out);
void zip_member_free(zip_member *m);
/* The compressors idle in the cache, and freeing them (at exit, or to give the memory
 * back; members built later allocate new ones). */
size_t zip_compressors_idle(void);
void zip_compressors_free(void);

typedef struct zip_writer {
    uint64_t offset; /** bytes of the archive so far */
    uint64_t count;  /** members placed */
    buf_t central;   /** central-directory entries so far */
    uint16_t dos_date, dos_time;
} zip_writer;

/* max_central: a cap on the central directory's bytes (0 = none). */
void zip_writer_init(zip_writer *z, uint16_t dos_date, uint16_t dos_time, size_t max_central);
/* Places m (its bytes must be sent next, in full) and records its directory entry; the
 * member keeps its bytes. 0 or -ENOMEM / -E2BIG (the central directory cap). */
int zip_writer_add(zip_writer *z, const zip_member *m);
/* The archive's tail: central directory, Zip64 records when needed, end record. *out is
 * malloc'd. The writer is spent afterwards (zip_writer_free still required). */
int zip_writer_finish(zip_writer *z, unsigned char **out, size_t *outlen);
void zip_writer_free(zip_writer *z);

#endif
