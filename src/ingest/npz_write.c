/*
 * npz_write.c: one-member zip writer (deflate through zlib, CRC-32) around an npy file.
 * The whole member is built and compressed in memory: sizes and CRC are known before the
 * local header is written, so no data descriptor is needed.
 */
#include "ingest/npz_write.h"

#include "util/buf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int put16(buf_t *b, unsigned v)
{
    unsigned char x[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    return buf_append(b, x, 2);
}

static int put32(buf_t *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    return buf_append(b, x, 4);
}

static int put64(buf_t *b, uint64_t v)
{
    return put32(b, (uint32_t)v) || put32(b, (uint32_t)(v >> 32)) ? -ENOMEM : 0;
}

/* Raw deflate of two pieces (header, data) into *out. */
static int deflate_all(const void *a, size_t alen, const void *d, size_t dlen, buf_t *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    unsigned char chunk[1 << 16];
    const unsigned char *parts[2] = {a, d};
    size_t lens[2] = {alen, dlen};
    int rc = 0;
    for (int p = 0; p < 2 && !rc; p++) {
        size_t done = 0;
        bool last = p == 1;
        do {
            size_t n = lens[p] - done;
            if (n > (1u << 30))
                n = 1u << 30;
            z.next_in = (unsigned char *)parts[p] + done;
            z.avail_in = (uInt)n;
            done += n;
            int flush = last && done == lens[p] ? Z_FINISH : Z_NO_FLUSH;
            int zr;
            do {
                z.next_out = chunk;
                z.avail_out = sizeof(chunk);
                zr = deflate(&z, flush);
                if (buf_append(out, chunk, sizeof(chunk) - z.avail_out) != 0) {
                    rc = -ENOMEM;
                    break;
                }
            } while (z.avail_out == 0 && !rc);
            if (flush == Z_FINISH && zr != Z_STREAM_END && !rc)
                rc = -EINVAL;
        } while (done < lens[p] && !rc);
    }
    deflateEnd(&z);
    return rc;
}

int npz_write(const char *descr, const uint64_t *shape, int ndim, const void *data, size_t len,
              unsigned char **out, size_t *outlen)
{
    /* npy 1.0 header */
    char dict[512];
    int n =
        snprintf(dict, sizeof(dict), "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < ndim && n < 400; i++)
        n += snprintf(dict + n, sizeof(dict) - (size_t)n, "%s%llu", i ? ", " : "",
                      (unsigned long long)shape[i]);
    n += snprintf(dict + n, sizeof(dict) - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)n + pad + 1;
    if (hlen > 65535 || n >= 480)
        return -EINVAL;
    unsigned char hdr[600];
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (unsigned char)hlen;
    hdr[9] = (unsigned char)(hlen >> 8);
    memcpy(hdr + 10, dict, (size_t)n);
    memset(hdr + 10 + n, ' ', pad);
    hdr[10 + n + pad] = '\n';
    size_t hsize = 10 + hlen;

    uint64_t usize = hsize + len;
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32_z(crc, hdr, hsize);
    crc = crc32_z(crc, data, len);
    buf_t comp;
    buf_init(&comp, BUF_UNLIMITED);
    int rc = deflate_all(hdr, hsize, data, len, &comp);
    if (rc) {
        buf_free(&comp);
        return rc;
    }
    uint64_t csize = comp.len;
    bool z64 = usize >= 0xFFFFFFFFu || csize >= 0xFFFFFFFFu;
    static const char name[] = "arr_0.npy";
    const unsigned nlen = sizeof(name) - 1;
    /* DOS time of 1980-01-01 00:00 as numpy's zipfile writes for in-memory members */
    const unsigned dtime = 0, ddate = (0 << 9) | (1 << 5) | 1;
    buf_t z;
    buf_init(&z, BUF_UNLIMITED);
    rc = put32(&z, 0x04034b50) || put16(&z, z64 ? 45 : 20) || put16(&z, 0) || put16(&z, 8) ||
         put16(&z, dtime) || put16(&z, ddate) || put32(&z, (uint32_t)crc) ||
         put32(&z, z64 ? 0xFFFFFFFFu : (uint32_t)csize) ||
         put32(&z, z64 ? 0xFFFFFFFFu : (uint32_t)usize) || put16(&z, nlen) ||
         put16(&z, z64 ? 20 : 0) || buf_append(&z, name, nlen);
    if (!rc && z64)
        rc = put16(&z, 1) || put16(&z, 16) || put64(&z, usize) || put64(&z, csize);
    if (!rc)
        rc = buf_append(&z, comp.data, comp.len);
    buf_free(&comp);
    uint64_t cd_off = 0;
    uint64_t cd_start = z.len;
    if (!rc)
        rc = put32(&z, 0x02014b50) || put16(&z, z64 ? 45 : 20) || put16(&z, z64 ? 45 : 20) ||
             put16(&z, 0) || put16(&z, 8) || put16(&z, dtime) || put16(&z, ddate) ||
             put32(&z, (uint32_t)crc) || put32(&z, z64 ? 0xFFFFFFFFu : (uint32_t)csize) ||
             put32(&z, z64 ? 0xFFFFFFFFu : (uint32_t)usize) || put16(&z, nlen) ||
             put16(&z, z64 ? 28 : 0) || put16(&z, 0) || put16(&z, 0) || put16(&z, 0) ||
             put32(&z, 0x01800000) || put32(&z, (uint32_t)cd_off) || buf_append(&z, name, nlen);
    if (!rc && z64)
        rc = put16(&z, 1) || put16(&z, 24) || put64(&z, usize) || put64(&z, csize) ||
             put64(&z, cd_off);
    uint64_t cd_size = z.len - cd_start;
    if (!rc && z64) {
        uint64_t eocd64 = z.len;
        rc = put32(&z, 0x06064b50) || put64(&z, 44) || put16(&z, 45) || put16(&z, 45) ||
             put32(&z, 0) || put32(&z, 0) || put64(&z, 1) || put64(&z, 1) || put64(&z, cd_size) ||
             put64(&z, cd_start) || put32(&z, 0x07064b50) || put32(&z, 0) || put64(&z, eocd64) ||
             put32(&z, 1);
    }
    if (!rc)
        rc = put32(&z, 0x06054b50) || put16(&z, 0) || put16(&z, 0) || put16(&z, 1) ||
             put16(&z, 1) || put32(&z, z64 ? 0xFFFFFFFFu : (uint32_t)cd_size) ||
             put32(&z, z64 ? 0xFFFFFFFFu : (uint32_t)cd_start) || put16(&z, 0);
    if (rc) {
        buf_free(&z);
        return -ENOMEM;
    }
    *outlen = z.len;
    *out = (unsigned char *)buf_take(&z);
    return 0;
}
