/* Unit tests for src/export: Python's number text, the main CSV cells, the per-channel
 * CSV files, and the zip writer (checked by reading its output back with Python's zipfile,
 * Info-ZIP's unzip and 7-Zip, including a Zip64 archive of more than 65,535 members). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <libdeflate.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "export/csv.h"
#include "export/zip.h"

static void check_double(double d, const char *want)
{
    char out[40];
    csv_format_double(d, out);
    if (strcmp(out, want) != 0)
        fail_msg("%.17g printed as %s, want %s", d, out, want);
}

static void test_python_float_text(void **state)
{
    (void)state;
    check_double(645.0, "645.0");
    check_double(1.0001059470803537, "1.0001059470803537");
    check_double(0.00010594708035376446, "0.00010594708035376446");
    check_double(9.053426445532069e-05, "9.053426445532069e-05");
    check_double(1e16, "1e+16");
    check_double(1e15, "1000000000000000.0");
    check_double(1234567890123456.0, "1234567890123456.0");
    check_double(12345678901234567.0, "1.2345678901234568e+16");
    check_double(0.0001, "0.0001");
    check_double(1e-5, "1e-05");
    check_double(-2.5, "-2.5");
    check_double(0.1, "0.1");
    check_double(1.5e300, "1.5e+300");
    check_double(5e-324, "5e-324");
    check_double(-0.0, "-0.0");
    check_double(0.0, "0.0");
    check_double(NAN, "nan");
    check_double(INFINITY, "inf");
    check_double(-INFINITY, "-inf");
    check_double(1275.2372063611533, "1275.2372063611533");
    check_double(123.0e100, "1.23e+102");
}

static void test_main_csv_cells(void **state)
{
    (void)state;
    buf_t b;
    buf_init(&b, 4096);
    json_t *s = json_string("1.0"), *e = json_string(""), *i = json_integer(423648000000);
    json_t *r = json_real(9.375810612751191e-05), *t = json_string("2023-06-05T08:00:00");
    json_t *tu = json_string("2023-06-05T08:00:00.250000"), *n = json_null();
    assert_int_equal(csv_header_cell(&b, "shotnum"), 0);
    assert_int_equal(csv_cell(&b, i, false), 0);
    assert_int_equal(csv_cell(&b, t, true), 0);
    assert_int_equal(csv_cell(&b, s, false), 0);
    assert_int_equal(csv_cell(&b, r, false), 0);
    assert_int_equal(csv_cell(&b, NULL, false), 0);
    assert_int_equal(csv_cell(&b, n, false), 0);
    assert_int_equal(csv_cell(&b, e, false), 0);
    assert_int_equal(csv_cell(&b, json_true(), false), 0);
    assert_int_equal(csv_cell(&b, tu, true), 0);
    assert_string_equal(b.data, "\"shotnum\",423648000000,2023-06-05 08:00:00,\"1.0\","
                                "9.375810612751191e-05,,,,True,2023-06-05 08:00:00.250000,");
    json_t *q = json_string("a\"b");
    buf_reset(&b);
    assert_int_equal(csv_cell(&b, q, false), 0);
    assert_string_equal(b.data, "\"a\"b\","); /* no escaping, as the reference */
    json_decref(q);
    json_decref(s);
    json_decref(e);
    json_decref(i);
    json_decref(r);
    json_decref(t);
    json_decref(tu);
    json_decref(n);
    buf_free(&b);
}

static void test_channel_csvs(void **state)
{
    (void)state;
    char err[128];
    buf_t b;
    buf_init(&b, 4096);
    double *x, *y, *v;
    size_t n;
    const char *wf = "{\n  \"x\": [\n    645.0,\n    646,\n    647\n  ],\n  \"y\": "
                     "[1275.2372063611533, 1e-5, null]\n}";
    assert_int_equal(csv_parse_waveform(wf, strlen(wf), &x, &y, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    assert_int_equal(csv_waveform_lines(x, y, n, &b), 0);
    assert_string_equal(b.data, "645.0,1275.2372063611533\n646.0,1e-05\n647.0,nan\n");
    free(x);
    free(y);
    buf_reset(&b);
    const char *vec = "{\"data\": [-3.0535121402002847, 2.0]}";
    json_t *labels = json_pack("[ss]", "Tilt X", "Tilt Y");
    assert_int_equal(csv_parse_vector(vec, strlen(vec), &v, &n, err, sizeof(err)), 0);
    assert_int_equal(csv_vector_lines(v, n, labels, &b), 0);
    assert_string_equal(b.data, "Tilt X,-3.0535121402002847\nTilt Y,2.0\n");
    buf_reset(&b);
    assert_int_equal(csv_vector_lines(v, n, NULL, &b), 0);
    assert_string_equal(b.data, "-3.0535121402002847\n2.0\n");
    json_t *one = json_pack("[s]", "only");
    assert_int_equal(csv_vector_lines(v, n, one, &b), -ERANGE);
    free(v);
    /* Shorter y: as many lines as the shorter array. */
    assert_int_equal(
        csv_parse_waveform("{\"x\":[1,2],\"y\":[3]}", 19, &x, &y, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    free(x);
    free(y);
    assert_int_equal(csv_parse_waveform("[1]", 3, &x, &y, &n, err, sizeof(err)), -EINVAL);
    assert_int_equal(csv_parse_waveform("{\"x\":[1]}", 9, &x, &y, &n, err, sizeof(err)), -EINVAL);
    assert_int_equal(csv_parse_vector("{\"data\":[\"a\"]}", 14, &v, &n, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not a number"));
    assert_int_equal(csv_parse_vector("{nope", 5, &v, &n, err, sizeof(err)), -EINVAL);
    json_decref(labels);
    json_decref(one);
    buf_free(&b);
}

/* Writes members named m<i>.{csv,png} (every third one deflated) and the tail to path. */
static void write_zip(const char *path, size_t n, size_t payload)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint16_t dd, dt;
    zip_dos_time(time(NULL), &dd, &dt);
    zip_writer z;
    zip_writer_init(&z, dd, dt, 0);
    char *data = malloc(payload + 64);
    for (size_t i = 0; i < n; i++) {
        char name[64];
        bool deflate = i % 3 == 0;
        snprintf(name, sizeof(name), "m%zu.%s", i, deflate ? "csv" : "png");
        size_t len = payload ? payload : (size_t)snprintf(data, 64, "member %zu\n", i);
        if (payload)
            for (size_t k = 0; k < payload; k++)
                data[k] = (char)(deflate ? 'a' + (k % 7) : (k * 2654435761u) >> 13);
        zip_member m;
        assert_int_equal(zip_member_build(name, data, len, deflate, 6, dd, dt, &m), 0);
        assert_int_equal(zip_writer_add(&z, &m), 0);
        assert_int_equal(fwrite(m.bytes, 1, m.len, f), m.len);
        zip_member_free(&m);
    }
    unsigned char *tail;
    size_t tlen;
    assert_int_equal(zip_writer_finish(&z, &tail, &tlen), 0);
    assert_int_equal(fwrite(tail, 1, tlen, f), tlen);
    free(tail);
    free(data);
    zip_writer_free(&z);
    fclose(f);
}

static int run(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void check_readers(const char *path, size_t n)
{
    char cmd[1024];
    /* Python's zipfile: member count, names in write order, CRCs (testzip), contents. */
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c \"import zipfile,sys; z=zipfile.ZipFile('%s'); "
             "l=z.infolist(); assert len(l)==%zu, len(l); "
             "assert [i.filename for i in l[:3]]==['m0.csv','m1.png','m2.png']; "
             "assert z.testzip() is None; assert l[0].compress_type in (0,8); "
             "assert (l[1].external_attr>>16)&0o777==0o600; "
             "z.read(l[-1].filename)\"",
             path, n);
    assert_int_equal(run(cmd), 0);
    if (access("/usr/bin/unzip", X_OK) == 0) {
        snprintf(cmd, sizeof(cmd), "unzip -tqq '%s' >/dev/null", path);
        assert_int_equal(run(cmd), 0);
    } else {
        print_message("unzip not installed: skipped that reader\n");
    }
    if (access("/usr/bin/7z", X_OK) == 0) {
        snprintf(cmd, sizeof(cmd), "7z t '%s' >/dev/null", path);
        assert_int_equal(run(cmd), 0);
    } else {
        print_message("7z not installed: skipped that reader\n");
    }
}

static void test_zip_small(void **state)
{
    (void)state;
    char path[] = "/tmp/ogd-test-zip-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_zip(path, 7, 300000);
    check_readers(path, 7);
    /* The deflated members really are deflated (repetitive payload), the others stored. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c \"import zipfile; z=zipfile.ZipFile('%s'); "
             "i=z.getinfo('m0.csv'); assert i.compress_type==8 and i.compress_size<i.file_size; "
             "assert z.getinfo('m1.png').compress_type==0\"",
             path);
    assert_int_equal(run(cmd), 0);
    unlink(path);
}

static void test_zip64_many_members(void **state)
{
    (void)state;
    char path[] = "/tmp/ogd-test-zip64-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_zip(path, 70000, 0);
    check_readers(path, 70000);
    unlink(path);
}

static void test_zip_bad_names(void **state)
{
    (void)state;
    zip_member m;
    assert_int_equal(zip_member_build("", "x", 1, false, 6, 0, 0, &m), -EINVAL);
    assert_int_equal(zip_member_build(NULL, "x", 1, false, 6, 0, 0, &m), -EINVAL);
    /* An empty member is fine. */
    assert_int_equal(zip_member_build("empty.txt", "", 0, true, 6, 0, 0, &m), 0);
    assert_int_equal(m.usize, 0);
    zip_member_free(&m);
    /* The central-directory cap is enforced. */
    zip_writer z;
    zip_writer_init(&z, 0, 0, 100);
    assert_int_equal(zip_member_build("a-rather-long-member-name.csv", "x", 1, false, 6, 0, 0, &m),
                     0);
    assert_int_equal(zip_writer_add(&z, &m), 0);
    assert_int_equal(zip_writer_add(&z, &m), -E2BIG);
    assert_int_equal(z.count, 1);
    zip_member_free(&m);
    zip_writer_free(&z);
}

/* Compressors are reused (a cache of idle ones per level, shared by the pool threads):
 * members built in any order of levels, on several threads at once, are byte for byte
 * what a fresh libdeflate compressor makes (or stored, when that is not smaller). */
#define REUSE_INPUTS 5
#define REUSE_THREADS 4
#define REUSE_ROUNDS 2

typedef struct reuse_case {
    unsigned char *data;
    size_t len;
    unsigned char *want[13]; /* per level: the deflated payload, NULL if stored */
    size_t want_len[13];
} reuse_case;

static reuse_case reuse_cases[REUSE_INPUTS];

static void reuse_expect(reuse_case *rc)
{
    for (int level = 1; level <= 12; level++) {
        struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
        assert_non_null(c);
        size_t bound = libdeflate_deflate_compress_bound(c, rc->len);
        unsigned char *out = malloc(bound);
        assert_non_null(out);
        size_t n = libdeflate_deflate_compress(c, rc->data, rc->len, out, bound);
        libdeflate_free_compressor(c);
        if (n > 0 && n < rc->len) {
            rc->want[level] = out;
            rc->want_len[level] = n;
        } else {
            free(out);
        }
    }
}

/* 0 when the member is what a fresh compressor makes, else 1. */
static int reuse_check(const reuse_case *rc, int level)
{
    zip_member m;
    if (zip_member_build("r.bin", rc->data, rc->len, true, level, 0, 0, &m) != 0)
        return 1;
    const unsigned char *payload = m.bytes + 30 + 5;
    int bad;
    if (rc->want[level])
        bad = m.method != 8 || m.csize != rc->want_len[level] ||
              memcmp(payload, rc->want[level], rc->want_len[level]) != 0;
    else
        bad = m.method != 0 || m.csize != rc->len || memcmp(payload, rc->data, rc->len) != 0;
    zip_member_free(&m);
    return bad;
}

static void *reuse_thread(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    uintptr_t bad = 0;
    for (int round = 0; round < REUSE_ROUNDS; round++)
        for (int k = 0; k < REUSE_INPUTS * 12; k++) {
            seed = seed * 1103515245u + 12345u;
            /* runs of one level, then levels in a shuffled order */
            int level = round % 2 ? 1 + (int)((seed >> 16) % 12) : 1 + k / REUSE_INPUTS;
            bad += (uintptr_t)reuse_check(&reuse_cases[k % REUSE_INPUTS], level);
        }
    return (void *)bad;
}

static void test_zip_compressor_reuse(void **state)
{
    (void)state;
    static const size_t lens[REUSE_INPUTS] = {15, 2000, 70000, 100000, 40000};
    for (int i = 0; i < REUSE_INPUTS; i++) {
        reuse_case *rc = &reuse_cases[i];
        rc->len = lens[i];
        rc->data = malloc(rc->len);
        assert_non_null(rc->data);
        unsigned x = 17u + (unsigned)i;
        for (size_t k = 0; k < rc->len; k++) {
            x = x * 1103515245u + 12345u;
            /* text-like, repetitive, and (the last) noise that does not compress */
            rc->data[k] = i == 4   ? (unsigned char)(x >> 16)
                          : i == 2 ? (unsigned char)('a' + (k % 13))
                                   : (unsigned char)("0123456789,.\n"[(x >> 16) % 13]);
        }
        reuse_expect(rc);
    }
    zip_compressors_free();
    /* one thread: each level twice in a row, then levels in a shuffled order */
    unsigned x = 99;
    for (int k = 0; k < 48; k++) {
        x = x * 1103515245u + 12345u;
        int level = k < 24 ? 1 + k / 2 : 1 + (int)((x >> 16) % 12);
        for (int i = 0; i < REUSE_INPUTS; i++)
            assert_int_equal(reuse_check(&reuse_cases[i], level), 0);
    }
    assert_true(zip_compressors_idle() >= 1 && zip_compressors_idle() <= 12);
    /* several threads at once, as the export's pool threads */
    pthread_t t[REUSE_THREADS];
    for (uintptr_t i = 0; i < REUSE_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, reuse_thread, (void *)(i + 1)), 0);
    uintptr_t bad = 0;
    for (int i = 0; i < REUSE_THREADS; i++) {
        void *r;
        assert_int_equal(pthread_join(t[i], &r), 0);
        bad += (uintptr_t)r;
    }
    assert_int_equal(bad, 0);
    assert_true(zip_compressors_idle() <= 12 * REUSE_THREADS);
    zip_compressors_free();
    assert_int_equal(zip_compressors_idle(), 0);
    assert_int_equal(reuse_check(&reuse_cases[1], 6), 0); /* a new one after the free */
    zip_compressors_free();
    for (int i = 0; i < REUSE_INPUTS; i++) {
        for (int level = 1; level <= 12; level++)
            free(reuse_cases[i].want[level]);
        free(reuse_cases[i].data);
    }
}

/* Found by tests/fuzz/fuzz_zip: after 2107 the 7-bit year wrapped (2108 read as 1980)
 * and far-future years shifted a signed int past its range (UB). DOS times saturate. */
static void test_zip_dos_time_range(void **state)
{
    (void)state;
    uint16_t d, t;
    zip_dos_time((time_t)7258118400LL, &d, &t); /* 2200-01-01 */
    assert_int_equal(d, (127 << 9) | (12 << 5) | 31);
    assert_int_equal(t, (23 << 11) | (59 << 5) | 29);
    zip_dos_time((time_t)1000000000000000LL, &d, &t); /* year ~31.7 million */
    assert_int_equal(d, (127 << 9) | (12 << 5) | 31);
    zip_dos_time((time_t)INT64_MAX, &d, &t); /* no broken-down time at all */
    assert_int_equal(d, (0 << 9) | (1 << 5) | 1);
    assert_int_equal(t, 0);
    zip_dos_time((time_t)-86400 * 365, &d, &t); /* 1969 */
    assert_int_equal(d, (0 << 9) | (1 << 5) | 1);
    zip_dos_time((time_t)1686052800, &d, &t); /* 2023-06-06, whatever the zone */
    assert_int_equal(d >> 9, 2023 - 1980);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_float_text),  cmocka_unit_test(test_main_csv_cells),
        cmocka_unit_test(test_channel_csvs),       cmocka_unit_test(test_zip_small),
        cmocka_unit_test(test_zip64_many_members), cmocka_unit_test(test_zip_bad_names),
        cmocka_unit_test(test_zip_dos_time_range), cmocka_unit_test(test_zip_compressor_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
