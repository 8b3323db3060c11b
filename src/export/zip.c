/*
 * zip.c: see zip.h. Little-endian field writers, the local header of a member, its
 * central-directory entry (with a Zip64 extra field for whichever values overflow), and
 * the end records.
 */
#include "export/zip.h"

#include <errno.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END 0x06054b50u
#define SIG_END64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u
#define U32_MAX 0xffffffffu
#define U16_MAX 0xffffu
#define FLAG_UTF8 0x0800u
#define MADE_BY ((3u << 8) | 45u)      /* Unix, spec version 4.5 */
#define EXTERNAL_ATTR (0100600u << 16) /* regular file, rw------- */
#define LOCAL_HEADER 30u
#define CENTRAL_HEADER 46u

static unsigned char *put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)((v >> 8) & 0xff);
    return p + 2;
}

static unsigned char *put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)((v >> (8 * i)) & 0xff);
    return p + 4;
}

static unsigned char *put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)((v >> (8 * i)) & 0xff);
    return p + 8;
}

/* Idle compressors, per level: a compressor's set-up (a few hundred KiB of match-finder
 * tables at the export's level 6, a few MiB at 12) is paid once per thread at most, not
 * once per member. A compressor serves one member at a time: it is taken out of the
 * cache for the member and put back after, so members built at once on several threads
 * use several compressors. Its output does not depend on what it compressed before. */
#define LEVELS 12
#define IDLE_PER_LEVEL 16
static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static struct libdeflate_compressor *idle[LEVELS][IDLE_PER_LEVEL];
static unsigned nidle[LEVELS];

static struct libdeflate_compressor *compressor_take(int level)
{
    struct libdeflate_compressor *c = NULL;
    pthread_mutex_lock(&idle_lock);
    if (nidle[level - 1])
        c = idle[level - 1][--nidle[level - 1]];
    pthread_mutex_unlock(&idle_lock);
    return c ? c : libdeflate_alloc_compressor(level);
}

static void compressor_give(int level, struct libdeflate_compressor *c)
{
    pthread_mutex_lock(&idle_lock);
    if (nidle[level - 1] < IDLE_PER_LEVEL) {
        idle[level - 1][nidle[level - 1]++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&idle_lock);
    libdeflate_free_compressor(c); /* NULL: kept */
}

size_t zip_compressors_idle(void)
{
    size_t n = 0;
    pthread_mutex_lock(&idle_lock);
    for (int l = 0; l < LEVELS; l++)
        n += nidle[l];
    pthread_mutex_unlock(&idle_lock);
    return n;
}

void zip_compressors_free(void)
{
    pthread_mutex_lock(&idle_lock);
    for (int l = 0; l < LEVELS; l++)
        while (nidle[l])
            libdeflate_free_compressor(idle[l][--nidle[l]]);
    pthread_mutex_unlock(&idle_lock);
}

void zip_dos_time(time_t t, uint16_t *date, uint16_t *time)
{
    struct tm tm;
    if (!localtime_r(&t, &tm) || tm.tm_year < 80) {
        *date = (uint16_t)((0 << 9) | (1 << 5) | 1); /* 1980-01-01 */
        *time = 0;
        return;
    }
    if (tm.tm_year - 80 > 127) { /* the year field has 7 bits: 2107-12-31 23:59:58 */
        *date = (uint16_t)((127 << 9) | (12 << 5) | 31);
        *time = (uint16_t)((23 << 11) | (59 << 5) | 29);
        return;
    }
    *date = (uint16_t)(((tm.tm_year - 80) << 9) | ((tm.tm_mon + 1) << 5) | tm.tm_mday);
    *time = (uint16_t)((tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec / 2));
}

int zip_member_build(const char *name, const void *data, size_t len, bool deflate, int level,
                     uint16_t dos_date, uint16_t dos_time, zip_member *out)
{
    memset(out, 0, sizeof(*out));
    size_t nlen = name ? strlen(name) : 0;
    if (nlen == 0 || nlen > ZIP_NAME_MAX)
        return -EINVAL;
    uint32_t crc = (uint32_t)libdeflate_crc32(0, data, len);
    /* Room for the header, the Zip64 extra (20 bytes) and the larger of the two forms. */
    size_t bound = len;
    struct libdeflate_compressor *c = NULL;
    level = level < 1 ? 1 : level > LEVELS ? LEVELS : level;
    if (deflate && len > 0) {
        c = compressor_take(level);
        if (!c)
            return -ENOMEM;
        size_t b = libdeflate_deflate_compress_bound(c, len);
        if (b > bound)
            bound = b;
    }
    size_t head = LOCAL_HEADER + nlen + 20;
    unsigned char *buf = malloc(head + bound);
    out->name = malloc(nlen + 1);
    if (!buf || !out->name) {
        free(buf);
        free(out->name);
        out->name = NULL;
        if (c)
            compressor_give(level, c);
        return -ENOMEM;
    }
    memcpy(out->name, name, nlen + 1);
    bool zip64 = (uint64_t)len >= U32_MAX;
    size_t extra = zip64 ? 20 : 0;
    unsigned char *payload = buf + LOCAL_HEADER + nlen + extra;
    uint16_t method = 0;
    size_t clen = len;
    if (c) {
        size_t n = libdeflate_deflate_compress(c, data, len, payload, bound);
        compressor_give(level, c);
        if (n > 0 && n < len) {
            method = 8;
            clen = n;
        }
    }
    if (method == 0 && len > 0)
        memcpy(payload, data, len);

    unsigned char *p = buf;
    p = put32(p, SIG_LOCAL);
    p = put16(p, zip64 ? 45 : 20);
    p = put16(p, FLAG_UTF8);
    p = put16(p, method);
    p = put16(p, dos_time);
    p = put16(p, dos_date);
    p = put32(p, crc);
    p = put32(p, zip64 ? U32_MAX : (uint32_t)clen);
    p = put32(p, zip64 ? U32_MAX : (uint32_t)len);
    p = put16(p, (unsigned)nlen);
    p = put16(p, (unsigned)extra);
    memcpy(p, name, nlen);
    p += nlen;
    if (zip64) {
        p = put16(p, 0x0001);
        p = put16(p, 16);
        p = put64(p, len);
        p = put64(p, clen);
    }
    out->bytes = buf;
    out->len = (size_t)(p - buf) + clen;
    out->crc = crc;
    out->csize = clen;
    out->usize = len;
    out->method = method;
    return 0;
}

void zip_member_free(zip_member *m)
{
    free(m->bytes);
    free(m->name);
    memset(m, 0, sizeof(*m));
}

void zip_writer_init(zip_writer *z, uint16_t dos_date, uint16_t dos_time, size_t max_central)
{
    memset(z, 0, sizeof(*z));
    z->dos_date = dos_date;
    z->dos_time = dos_time;
    buf_init(&z->central, max_central ? max_central : BUF_UNLIMITED);
}

int zip_writer_add(zip_writer *z, const zip_member *m)
{
    size_t nlen = strlen(m->name);
    bool big_u = m->usize >= U32_MAX, big_c = m->csize >= U32_MAX, big_o = z->offset >= U32_MAX;
    size_t extra_data = (big_u ? 8 : 0) + (big_c ? 8 : 0) + (big_o ? 8 : 0);
    size_t extra = extra_data ? 4 + extra_data : 0;
    unsigned char h[CENTRAL_HEADER + 28];
    unsigned char *p = h;
    p = put32(p, SIG_CENTRAL);
    p = put16(p, MADE_BY);
    p = put16(p, extra ? 45 : 20);
    p = put16(p, FLAG_UTF8);
    p = put16(p, m->method);
    p = put16(p, z->dos_time);
    p = put16(p, z->dos_date);
    p = put32(p, m->crc);
    p = put32(p, big_c ? U32_MAX : (uint32_t)m->csize);
    p = put32(p, big_u ? U32_MAX : (uint32_t)m->usize);
    p = put16(p, (unsigned)nlen);
    p = put16(p, (unsigned)extra);
    p = put16(p, 0); /* comment */
    p = put16(p, 0); /* disk */
    p = put16(p, 0); /* internal attributes */
    p = put32(p, EXTERNAL_ATTR);
    p = put32(p, big_o ? U32_MAX : (uint32_t)z->offset);
    size_t fixed = (size_t)(p - h);
    unsigned char x[28];
    unsigned char *q = x;
    if (extra) {
        /* APPNOTE 4.5.3: the values present appear in this order. */
        q = put16(q, 0x0001);
        q = put16(q, (unsigned)extra_data);
        if (big_u)
            q = put64(q, m->usize);
        if (big_c)
            q = put64(q, m->csize);
        if (big_o)
            q = put64(q, z->offset);
    }
    size_t before = z->central.len;
    int rc = buf_append(&z->central, h, fixed);
    if (!rc)
        rc = buf_append(&z->central, m->name, nlen);
    if (!rc && extra)
        rc = buf_append(&z->central, x, (size_t)(q - x));
    if (rc) {
        z->central.len = before;
        return rc;
    }
    z->offset += m->len;
    z->count++;
    return 0;
}

int zip_writer_finish(zip_writer *z, unsigned char **out, size_t *outlen)
{
    uint64_t cd_offset = z->offset, cd_size = z->central.len;
    bool zip64 = z->count >= U16_MAX || cd_offset >= U32_MAX || cd_size >= U32_MAX;
    size_t tail = 22 + (zip64 ? 56 + 20 : 0);
    unsigned char *buf = malloc(cd_size + tail);
    if (!buf)
        return -ENOMEM;
    if (cd_size)
        memcpy(buf, z->central.data, cd_size);
    unsigned char *p = buf + cd_size;
    if (zip64) {
        uint64_t end64_offset = cd_offset + cd_size;
        p = put32(p, SIG_END64);
        p = put64(p, 44); /* size of the rest of this record */
        p = put16(p, MADE_BY);
        p = put16(p, 45);
        p = put32(p, 0); /* this disk */
        p = put32(p, 0); /* disk with the directory */
        p = put64(p, z->count);
        p = put64(p, z->count);
        p = put64(p, cd_size);
        p = put64(p, cd_offset);
        p = put32(p, SIG_LOCATOR64);
        p = put32(p, 0);
        p = put64(p, end64_offset);
        p = put32(p, 1); /* total disks */
    }
    p = put32(p, SIG_END);
    p = put16(p, 0);
    p = put16(p, 0);
    unsigned n16 = z->count >= U16_MAX ? U16_MAX : (unsigned)z->count;
    p = put16(p, n16);
    p = put16(p, n16);
    p = put32(p, cd_size >= U32_MAX ? U32_MAX : (uint32_t)cd_size);
    p = put32(p, cd_offset >= U32_MAX ? U32_MAX : (uint32_t)cd_offset);
    p = put16(p, 0); /* comment length */
    *out = buf;
    *outlen = (size_t)(p - buf);
    z->offset += *outlen;
    return 0;
}

void zip_writer_free(zip_writer *z)
{
    buf_free(&z->central);
}
