/*
 * fuzz_zip: the streaming zip writer of GET /export (src/export/zip.h), checked by an
 * independent reader written here (local headers, central directory, end record; zlib's
 * inflate and crc32, not the writer's libdeflate).
 *
 * Input: TIME(8 bytes, little-endian seconds) CAP(1 byte) then members separated by
 * FZ_SEP, each FLAGS(1 byte: bit 0 deflate, bits 1-3 pick the level: 1, the export's
 * 6, 12 and out-of-range values) NAME '\n' DATA. Members are
 * built with zip_member_build (in any order, as the export's workers do) and placed in
 * input order with zip_writer_add under a central-directory cap of CAP * 64 bytes (0:
 * none); a member the cap refuses is left out, and the writer must carry on unharmed.
 * Checks, besides memory errors, UB and leaks: the archive (members' bytes then
 * zip_writer_finish's tail) has an end record at its end that counts the members and
 * points at a central directory right after the last member; each central entry matches
 * its member (name, method, CRC, sizes, DOS time, UTF-8 flag, offset); each local header
 * at that offset says the same; every member's data, stored or inflated, is its input
 * byte for byte, with the CRC zlib computes; names that zip_member_build refuses (empty,
 * too long) are refused with -EINVAL.
 */
#include "harness.h"

#include <zlib.h>

#include "export/zip.h"

#define MAX_MEMBERS 16

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_silence_logs();
    return 0;
}

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

typedef struct expect {
    char *name;
    const uint8_t *data;
    size_t len;
    uint64_t offset;
} expect;

/* The member's data as stored (method 0) or deflated (8) equals want[0..n). */
static void check_data(int method, const unsigned char *p, size_t csize, const uint8_t *want,
                       size_t n)
{
    if (method == 0) {
        FZ_CHECK(csize == n && (n == 0 || memcmp(p, want, n) == 0));
        return;
    }
    FZ_CHECK(method == 8);
    unsigned char *out = malloc(n + 1);
    FZ_CHECK(out != NULL);
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    FZ_CHECK(inflateInit2(&zs, -15) == Z_OK);
    zs.next_in = (unsigned char *)p;
    zs.avail_in = (uInt)csize;
    zs.next_out = out;
    zs.avail_out = (uInt)(n + 1);
    int rc = inflate(&zs, Z_FINISH);
    FZ_CHECK(rc == Z_STREAM_END);
    FZ_CHECK(zs.total_out == n && zs.avail_in == 0); /* all of it, nothing more */
    FZ_CHECK(n == 0 || memcmp(out, want, n) == 0);
    inflateEnd(&zs);
    free(out);
}

/* Reads the archive back and compares it with what was placed. */
static void read_back(const unsigned char *z, size_t len, const expect *e, size_t n,
                      uint16_t dos_date, uint16_t dos_time)
{
    FZ_CHECK(len >= 22);
    const unsigned char *end = z + len - 22;
    FZ_CHECK(rd32(end) == 0x06054b50);
    FZ_CHECK(rd16(end + 4) == 0 && rd16(end + 6) == 0);
    FZ_CHECK(rd16(end + 8) == n && rd16(end + 10) == n);
    uint32_t cd_size = rd32(end + 12), cd_off = rd32(end + 16);
    FZ_CHECK(rd16(end + 20) == 0); /* no comment */
    uint64_t members_end = n ? e[n - 1].offset : 0;
    if (n) {
        const unsigned char *l = z + e[n - 1].offset;
        members_end += 30 + rd16(l + 26) + rd16(l + 28) + rd32(l + 18);
    }
    FZ_CHECK(cd_off == members_end && (uint64_t)cd_off + cd_size == len - 22);
    const unsigned char *c = z + cd_off;
    for (size_t i = 0; i < n; i++) {
        FZ_CHECK((size_t)(end - c) >= 46 && rd32(c) == 0x02014b50);
        size_t nl = rd16(c + 28), el = rd16(c + 30), cl = rd16(c + 32);
        FZ_CHECK((size_t)(end - c) >= 46 + nl + el + cl);
        FZ_CHECK(rd16(c + 4) == ((3u << 8) | 45u)); /* made on Unix */
        FZ_CHECK(rd16(c + 8) == 0x0800);            /* UTF-8 names */
        int method = rd16(c + 10);
        FZ_CHECK(rd16(c + 12) == dos_time && rd16(c + 14) == dos_date);
        uint32_t crc = rd32(c + 16), csize = rd32(c + 20), usize = rd32(c + 24);
        FZ_CHECK(el == 0 && cl == 0); /* no Zip64 extra below 4 GiB */
        FZ_CHECK(rd32(c + 38) == (0100600u << 16));
        FZ_CHECK(rd32(c + 42) == e[i].offset);
        FZ_CHECK(nl == strlen(e[i].name) && memcmp(c + 46, e[i].name, nl) == 0);
        FZ_CHECK(usize == e[i].len);
        FZ_CHECK(crc == (uint32_t)crc32(crc32(0, Z_NULL, 0), e[i].data, (uInt)e[i].len));
        /* the local header */
        const unsigned char *l = z + e[i].offset;
        FZ_CHECK(rd32(l) == 0x04034b50);
        FZ_CHECK(rd16(l + 6) == 0x0800 && rd16(l + 8) == method);
        FZ_CHECK(rd16(l + 10) == dos_time && rd16(l + 12) == dos_date);
        FZ_CHECK(rd32(l + 14) == crc && rd32(l + 18) == csize && rd32(l + 22) == usize);
        FZ_CHECK(rd16(l + 26) == nl && rd16(l + 28) == 0);
        FZ_CHECK(memcmp(l + 30, e[i].name, nl) == 0);
        const unsigned char *data = l + 30 + nl;
        uint64_t next = i + 1 < n ? e[i + 1].offset : cd_off;
        FZ_CHECK((uint64_t)(data - z) + csize == next); /* members are contiguous */
        check_data(method, data, csize, e[i].data, e[i].len);
        c += 46 + nl + el + cl;
    }
    FZ_CHECK(c == end);
}

/* DOS fields are the local time (two-second steps) within what they can express:
 * 1980-01-01 00:00:00 for earlier times, 2107-12-31 23:59:58 for later ones. */
static void check_dos_time(time_t t, uint16_t date, uint16_t time)
{
    struct tm tm;
    int y = 0, mo = 1, d = 1, h = 0, mi = 0, s = 0;
    if (localtime_r(&t, &tm) && tm.tm_year >= 80) {
        if (tm.tm_year - 80 > 127) {
            y = 127, mo = 12, d = 31, h = 23, mi = 59, s = 29;
        } else {
            y = tm.tm_year - 80, mo = tm.tm_mon + 1, d = tm.tm_mday;
            h = tm.tm_hour, mi = tm.tm_min, s = tm.tm_sec / 2;
        }
    }
    FZ_CHECK(date >> 9 == y && ((date >> 5) & 15) == mo && (date & 31) == d);
    FZ_CHECK(time >> 11 == h && ((time >> 5) & 63) == mi && (time & 31) == s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader r = {data, size};
    time_t t = (time_t)(int64_t)fz_uint(&r, 8);
    size_t cap = (size_t)fz_u8(&r) * 64;
    uint16_t dos_date, dos_time;
    zip_dos_time(t, &dos_date, &dos_time);
    check_dos_time(t, dos_date, dos_time);

    fz_part part[MAX_MEMBERS];
    size_t nparts = r.left ? fz_split(r.p, r.left, part, MAX_MEMBERS) : 0;
    zip_member m[MAX_MEMBERS];
    expect e[MAX_MEMBERS];
    bool built[MAX_MEMBERS] = {false};
    /* built last to first: a member's bytes do not depend on the others */
    for (size_t k = nparts; k-- > 0;) {
        const uint8_t *p = part[k].data;
        size_t left = part[k].size;
        uint8_t flags = left ? *p : 0;
        p += left ? 1 : 0;
        left -= left ? 1 : 0;
        const uint8_t *nl = memchr(p, '\n', left);
        size_t name_len = nl ? (size_t)(nl - p) : left;
        e[k].name = fz_strndup(p, name_len);
        e[k].data = nl ? nl + 1 : p + left;
        e[k].len = nl ? left - name_len - 1 : 0;
        /* levels: libdeflate's fastest, the export's 6, the near-optimal 12 and
         * out-of-range ones (clamped to 1 and 12); compressors are reused by
         * zip_member_build, so the costly set-up of 6 and 12 under ASan is paid once */
        static const int levels[8] = {1, 1, 6, 6, 12, 99, 0, -3};
        int level = levels[(flags >> 1) & 7];
        int rc = zip_member_build(e[k].name, e[k].data, e[k].len, flags & 1, level, dos_date,
                                  dos_time, &m[k]);
        size_t n = strlen(e[k].name);
        if (n == 0 || n > ZIP_NAME_MAX) {
            FZ_CHECK(rc == -EINVAL);
            continue;
        }
        FZ_CHECK(rc == 0);
        FZ_CHECK(m[k].usize == e[k].len && m[k].len == 30 + n + m[k].csize);
        built[k] = true;
    }

    zip_writer w;
    zip_writer_init(&w, dos_date, dos_time, cap);
    buf_t archive;
    buf_init(&archive, BUF_UNLIMITED);
    expect placed[MAX_MEMBERS];
    size_t nplaced = 0;
    for (size_t k = 0; k < nparts; k++) {
        if (!built[k])
            continue;
        uint64_t before = w.offset, count = w.count;
        size_t central = w.central.len;
        int rc = zip_writer_add(&w, &m[k]);
        if (rc != 0) {
            FZ_CHECK(rc == -E2BIG && cap > 0);
            FZ_CHECK(w.offset == before && w.count == count && w.central.len == central);
            continue;
        }
        FZ_CHECK(w.offset == before + m[k].len && w.count == count + 1);
        placed[nplaced] = e[k];
        placed[nplaced].offset = before;
        nplaced++;
        FZ_CHECK(buf_append(&archive, m[k].bytes, m[k].len) == 0);
    }
    unsigned char *tail = NULL;
    size_t tail_len = 0;
    FZ_CHECK(zip_writer_finish(&w, &tail, &tail_len) == 0);
    FZ_CHECK(buf_append(&archive, tail, tail_len) == 0);
    read_back((const unsigned char *)archive.data, archive.len, placed, nplaced, dos_date,
              dos_time);

    free(tail);
    buf_free(&archive);
    zip_writer_free(&w);
    for (size_t k = 0; k < nparts; k++) {
        if (built[k])
            zip_member_free(&m[k]);
        free(e[k].name);
    }
    return 0;
}
