/*
 * npz: ZIP + .npy decoding for float images (see npz.h). The central directory is the
 * source of truth for sizes (local headers written by numpy carry 0xFFFFFFFF and a
 * ZIP64 extra field); the member is inflated with libdeflate into a buffer of exactly
 * the announced size.
 */
#include "imaging/npz.h"

#include <errno.h>
#include <libdeflate.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p)
{
    return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* Finds the central directory: offset and entry count. */
static int find_cd(const uint8_t *d, size_t len, uint64_t *cd_off, uint64_t *nent)
{
    if (len < 22)
        return -EINVAL;
    size_t stop = len > 22 + 65535 ? len - 22 - 65535 : 0;
    for (size_t i = len - 22 + 1; i-- > stop;) {
        if (rd32(d + i) != 0x06054b50)
            continue;
        *nent = rd16(d + i + 10);
        *cd_off = rd32(d + i + 16);
        if (*cd_off == 0xFFFFFFFFu || *nent == 0xFFFF) {
            if (i < 20 || rd32(d + i - 20) != 0x07064b50)
                return -EINVAL;
            uint64_t z = rd64(d + i - 20 + 8);
            if (len < 56 || z > len - 56 || rd32(d + z) != 0x06064b50)
                return -EINVAL;
            *nent = rd64(d + z + 32);
            *cd_off = rd64(d + z + 48);
        }
        return *cd_off < len ? 0 : -EINVAL;
    }
    return -EINVAL;
}

typedef struct member {
    int method;
    uint64_t csize, usize, local_off;
    const char *name;
    size_t namelen;
} member;

/* Parses the central directory entry at *pos; advances *pos. */
static int cd_entry(const uint8_t *d, size_t len, uint64_t *pos, member *m)
{
    uint64_t p = *pos;
    if (p > len || len - p < 46 || rd32(d + p) != 0x02014b50)
        return -EINVAL;
    m->method = rd16(d + p + 10);
    m->csize = rd32(d + p + 20);
    m->usize = rd32(d + p + 24);
    size_t nl = rd16(d + p + 28), el = rd16(d + p + 30), cl = rd16(d + p + 32);
    m->local_off = rd32(d + p + 42);
    if (len - p - 46 < nl + el + cl)
        return -EINVAL;
    m->name = (const char *)d + p + 46;
    m->namelen = nl;
    const uint8_t *e = d + p + 46 + nl, *end = e + el;
    while (end - e >= 4) {
        uint16_t id = rd16(e), sz = rd16(e + 2);
        if ((size_t)(end - e - 4) < sz)
            return -EINVAL;
        if (id == 0x0001) {
            const uint8_t *z = e + 4, *zend = z + sz;
            if (m->usize == 0xFFFFFFFFu && zend - z >= 8)
                m->usize = rd64(z), z += 8;
            if (m->csize == 0xFFFFFFFFu && zend - z >= 8)
                m->csize = rd64(z), z += 8;
            if (m->local_off == 0xFFFFFFFFu && zend - z >= 8)
                m->local_off = rd64(z);
        }
        e += 4 + sz;
    }
    *pos = p + 46 + nl + el + cl;
    return 0;
}

/* Parses "'key': value" out of the npy header dict (value up to the matching end). */
static const char *dict_value(const char *h, const char *key)
{
    const char *k = strstr(h, key);
    if (!k)
        return NULL;
    k += strlen(key);
    while (*k == ' ' || *k == ':')
        k++;
    return k;
}

static int parse_header(const char *h, npz_array *out, char *err, size_t errlen);

static int parse_npy(const uint8_t *p, size_t n, npz_array *out, char *err, size_t errlen)
{
    if (n < 10 || memcmp(p, "\x93NUMPY", 6) != 0)
        return fail(err, errlen, -EINVAL, "not a .npy array");
    size_t hl, off;
    if (p[6] == 1) {
        hl = rd16(p + 8);
        off = 10;
    } else if (p[6] == 2 || p[6] == 3) {
        if (n < 12)
            return fail(err, errlen, -EINVAL, "truncated .npy header");
        hl = rd32(p + 8);
        off = 12;
    } else {
        return fail(err, errlen, -EINVAL, "unsupported .npy version %d", p[6]);
    }
    if (hl > 65536 || n - off < hl)
        return fail(err, errlen, -EINVAL, "bad .npy header length");
    char *h = malloc(hl + 1);
    if (!h)
        return -ENOMEM;
    memcpy(h, p + off, hl);
    h[hl] = 0;
    int rc = parse_header(h, out, err, errlen);
    free(h);
    if (rc != 0)
        return rc;
    size_t bytes = (size_t)out->rows * out->cols * (size_t)out->itemsize;
    if (n - off - hl < bytes)
        return fail(err, errlen, -EINVAL, "array data truncated");
    out->data = malloc(bytes);
    if (!out->data)
        return -ENOMEM;
    memcpy(out->data, p + off + hl, bytes);
    return 0;
}

static int parse_header(const char *h, npz_array *out, char *err, size_t errlen)
{
    const char *descr = dict_value(h, "'descr'");
    const char *fo = dict_value(h, "'fortran_order'");
    const char *shape = dict_value(h, "'shape'");
    if (!descr || !fo || !shape)
        return fail(err, errlen, -EINVAL, "incomplete .npy header");
    int itemsize;
    if (strncmp(descr, "'<f4'", 5) == 0)
        itemsize = 4;
    else if (strncmp(descr, "'<f8'", 5) == 0)
        itemsize = 8;
    else
        return fail(err, errlen, -EINVAL, "unsupported array type (want '<f4' or '<f8')");
    if (strncmp(fo, "False", 5) != 0)
        return fail(err, errlen, -EINVAL, "Fortran-ordered arrays are not supported");
    unsigned long long r, c;
    int used = 0;
    if (sscanf(shape, "(%llu, %llu%n", &r, &c, &used) != 2 || used == 0)
        return fail(err, errlen, -EINVAL, "array is not 2-D");
    const char *rest = shape + used;
    if (*rest == ',')
        rest++;
    while (*rest == ' ')
        rest++;
    if (*rest != ')')
        return fail(err, errlen, -EINVAL, "array is not 2-D");
    if (r == 0 || c == 0 || r > 65535 || c > 65535)
        return fail(err, errlen, -E2BIG, "array shape out of range");
    out->rows = (uint32_t)r;
    out->cols = (uint32_t)c;
    out->itemsize = itemsize;
    return 0;
}

int npz_read(const void *data, size_t len, npz_array *out, char *err, size_t errlen)
{
    const uint8_t *d = data;
    memset(out, 0, sizeof(*out));
    uint64_t cd, nent;
    if (find_cd(d, len, &cd, &nent) != 0 || nent == 0)
        return fail(err, errlen, -EINVAL, "not a zip archive");
    member m, chosen = {0};
    bool found = false;
    uint64_t pos = cd;
    for (uint64_t i = 0; i < nent && i < 1024; i++) {
        if (cd_entry(d, len, &pos, &m) != 0)
            return fail(err, errlen, -EINVAL, "bad zip central directory");
        if (!found || (m.namelen == 9 && memcmp(m.name, "arr_0.npy", 9) == 0)) {
            chosen = m;
            found = true;
        }
    }
    m = chosen;
    if (m.local_off > len || len - m.local_off < 30 || rd32(d + m.local_off) != 0x04034b50)
        return fail(err, errlen, -EINVAL, "bad zip local header");
    uint64_t start = m.local_off + 30 + rd16(d + m.local_off + 26) + rd16(d + m.local_off + 28);
    if (start > len || len - start < m.csize)
        return fail(err, errlen, -EINVAL, "zip member truncated");
    if (m.usize > NPZ_MAX_BYTES)
        return fail(err, errlen, -E2BIG, "array too large");
    if (m.method == 0) {
        if (m.csize != m.usize)
            return fail(err, errlen, -EINVAL, "bad stored zip member");
        return parse_npy(d + start, (size_t)m.usize, out, err, errlen);
    }
    if (m.method != 8)
        return fail(err, errlen, -EINVAL, "unsupported zip compression %d", m.method);
    uint8_t *buf = malloc(m.usize ? (size_t)m.usize : 1);
    if (!buf)
        return -ENOMEM;
    struct libdeflate_decompressor *dc = libdeflate_alloc_decompressor();
    if (!dc) {
        free(buf);
        return -ENOMEM;
    }
    size_t got = 0;
    enum libdeflate_result r =
        libdeflate_deflate_decompress(dc, d + start, (size_t)m.csize, buf, (size_t)m.usize, &got);
    libdeflate_free_decompressor(dc);
    int rc;
    if (r != LIBDEFLATE_SUCCESS || got != m.usize)
        rc = fail(err, errlen, -EINVAL, "zip member does not inflate");
    else
        rc = parse_npy(buf, got, out, err, errlen);
    free(buf);
    return rc;
}

void npz_array_free(npz_array *a)
{
    free(a->data);
    a->data = NULL;
}
