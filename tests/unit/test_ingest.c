/* Unit tests for src/ingest/ and src/http/multipart.c: timestamps, the bit-depth shift,
 * the multipart part finder, manifest validation and comparison, whole-file checks on
 * hand-built descriptions, the npz writer, image encoding at every bit depth, and the
 * parse helper on both paths (pipes, memfds): its answers and failure modes (a helper
 * that crashes, hangs, or floods its output). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "http/multipart.h"
#include "imaging/png.h"
#include "ingest/checks.h"
#include "ingest/encode.h"
#include "ingest/manifest.h"
#include "ingest/npz_write.h"
#include "ingest/parse_proc.h"

static void test_timestamps(void **state)
{
    (void)state;
    int64_t us;
    int off;
    assert_int_equal(ingest_parse_timestamp("2020-04-07T14:28:16+00:00", &us, &off), 0);
    assert_int_equal(off, 0);
    assert_int_equal(us, (int64_t)1586269696 * 1000000);
    assert_int_equal(ingest_parse_timestamp("2020-04-07T14:28:16+0100", &us, &off), 0);
    assert_int_equal(off, 3600);
    assert_int_equal(ingest_parse_timestamp("2020-04-07T14:28:16-01:30", &us, &off), 0);
    assert_int_equal(off, -5400);
    assert_int_equal(ingest_parse_timestamp("2020-4-7T1:2:3Z", &us, &off), 0);
    assert_int_equal(ingest_parse_timestamp("2020-04-07T14:28:16+01:00:00", &us, &off), 0);
    const char *bad[] = {"07-04-2020T14:28:16+00:00", "not-a-timestamp",
                         "2020/04/07T14:28:16Z",      "2020-04-07",
                         "2020-04-07T14:28:16",       "2020-04-07 14:28:16Z",
                         "2020-04-07T14:28",          "2020-04-07T14:28:16.5Z",
                         "2021-02-29T00:00:00Z",      "2020-13-01T00:00:00Z",
                         "2020-04-07T24:00:00Z",      "2020-04-07T14:28:16+0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ingest_parse_timestamp(bad[i], &us, &off), -EINVAL);
}

static void test_image_shift_table(void **state)
{
    (void)state;
    int t;
    /* spec/ingest.md A8.1: uint8 255 */
    assert_int_equal(ingest_image_shift(255, 1, 0, &t), 0);
    assert_int_equal(t, 8);
    assert_int_equal(ingest_image_shift(255, 1, 6, &t), 252);
    assert_int_equal(ingest_image_shift(255, 1, 8, &t), 255);
    assert_int_equal(ingest_image_shift(255, 1, 12, &t), 4080);
    assert_int_equal(t, 16);
    assert_int_equal(ingest_image_shift(255, 1, 16, &t), 255);
    assert_int_equal(ingest_image_shift(255, 1, 24, &t), 0);
    /* uint16 65535 */
    assert_int_equal(ingest_image_shift(65535, 2, 0, &t), 0);
    assert_int_equal(t, 8);
    assert_int_equal(ingest_image_shift(65535, 2, 6, &t), 252);
    assert_int_equal(ingest_image_shift(255, 2, 8, &t), 255);
    assert_int_equal(ingest_image_shift(65535, 2, 12, &t), 65520);
    assert_int_equal(ingest_image_shift(65535, 2, 16, &t), 65535);
    assert_int_equal(ingest_image_shift(65535, 2, 24, &t), 255);
}

/* ingest_encode of image channels: the stored PNG holds exactly ingest_image_shift of
 * every pixel (its fast paths agree with the table), with the PNG depth and sBIT the spec
 * asks for, for 8- and 16-bit data and bit depths inside and outside the sample size. */
static void test_encode_image_depths(void **state)
{
    (void)state;
    enum { W = 61, H = 17 };
    uint16_t d16[W * H];
    uint8_t d8[W * H];
    for (int i = 0; i < W * H; i++) {
        d16[i] = (uint16_t)((uint32_t)i * 2654435761u >> 16);
        d8[i] = (uint8_t)(i * 37 + 11);
    }
    const int depths[] = {-100, -3, 0, 1, 6, 8, 12, 16, 17, 24, 40, 99};
    ingest_thumb_sizes ts = {{50, 50}, {50, 50}, {100, 75}, {100, 75}, 1.0};
    for (int size = 1; size <= 2; size++) {
        for (size_t k = 0; k <= sizeof(depths) / sizeof(depths[0]); k++) {
            bool has = k < sizeof(depths) / sizeof(depths[0]);
            int depth = has ? depths[k] : (size == 1 ? 8 : 16);
            ingest_channel c;
            memset(&c, 0, sizeof(c));
            c.name = "CAM";
            c.kind = INGEST_IMAGE;
            c.metadata = has ? json_pack("{ss si}", "channel_dtype", "image", "bit_depth", depth)
                             : json_pack("{ss}", "channel_dtype", "image");
            c.data.cls = 'u';
            c.data.size = size;
            c.data.rank = 2;
            c.data.shape[0] = H;
            c.data.shape[1] = W;
            c.data.count = W * H;
            c.data.data = size == 1 ? d8 : (const unsigned char *)d16;
            ingest_object o;
            const char *why = NULL;
            assert_int_equal(ingest_encode(&c, "20240101000000", &ts, &o, &why), 0);
            png_image img;
            assert_int_equal(png_decode(o.bytes, o.len, &img), 0);
            int target;
            ingest_image_shift(0, size, depth, &target);
            assert_int_equal(img.bit_depth, target);
            assert_int_equal(img.sbit, has && depth > 0 && depth <= target ? depth : 0);
            for (int i = 0; i < W * H; i++) {
                uint32_t in = size == 1 ? d8[i] : d16[i];
                uint32_t want = ingest_image_shift(in, size, depth, &target);
                uint32_t got = target == 8 ? ((const uint8_t *)img.pixels)[i]
                                           : ((const uint16_t *)img.pixels)[i];
                assert_int_equal(got, want);
            }
            png_image_free(&img);
            ingest_object_free(&o);
            json_decref(c.metadata);
        }
    }
}

static void test_multipart(void **state)
{
    (void)state;
    const char *ct = "multipart/form-data; boundary=XyZ";
    const char body[] = "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
                        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
                        "filename=\"a.h5\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                        "AB\r\nCD\r\n--XyZ--\r\n";
    const char *d;
    size_t n;
    assert_int_equal(multipart_find_file(ct, body, sizeof(body) - 1, "file", &d, &n), MULTIPART_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(d, "AB\r\nCD", 6);
    assert_int_equal(multipart_find_file(ct, body, sizeof(body) - 1, "note", &d, &n),
                     MULTIPART_NOT_FILE);
    assert_int_equal(multipart_find_file(ct, body, sizeof(body) - 1, "other", &d, &n),
                     MULTIPART_MISSING);
    assert_int_equal(
        multipart_find_file("application/json", body, sizeof(body) - 1, "file", &d, &n),
        MULTIPART_NOT_MULTIPART);
    assert_int_equal(multipart_find_file("multipart/form-data; boundary=\"XyZ\"", body,
                                         sizeof(body) - 1, "file", &d, &n),
                     MULTIPART_OK);
    /* truncated: no closing delimiter */
    assert_int_equal(multipart_find_file(ct, body, 120, "file", &d, &n), MULTIPART_MALFORMED);
    assert_int_equal(multipart_find_file(ct, "", 0, "file", &d, &n), MULTIPART_MALFORMED);
}

static void test_manifest(void **state)
{
    (void)state;
    char err[1024];
    json_t *m = NULL;
    const char *good = "{\"_id\": \"x\", \"channels\": {\"A\": {\"name\": \"a\", \"path\": \"/a\", "
                       "\"type\": \"image\", \"junk\": 1}, \"B\": {\"name\": \"b\", \"path\": "
                       "\"/b\", \"units\": \"J\", \"precision\": \"3\", \"historical\": \"yes\"}}}";
    assert_int_equal(manifest_validate(good, strlen(good), "20250101000000", &m, err, sizeof(err)),
                     0);
    char *text = json_dumps(m, JSON_COMPACT);
    assert_string_equal(text, "{\"_id\":\"20250101000000\",\"channels\":{\"A\":{\"name\":\"a\","
                              "\"path\":\"/a\",\"type\":\"image\"},\"B\":{\"name\":\"b\",\"path\":"
                              "\"/b\",\"type\":\"scalar\",\"precision\":3,\"units\":\"J\","
                              "\"historical\":true}}}");
    free(text);
    assert_int_equal(manifest_compare(m, NULL, false, err, sizeof(err)), 0);
    assert_int_equal(manifest_compare(m, m, false, err, sizeof(err)), 0);
    json_t *changed = json_deep_copy(m);
    json_object_del(json_object_get(json_object_get(changed, "channels"), "B"), "units");
    assert_int_equal(manifest_compare(changed, m, false, err, sizeof(err)), -1);
    assert_string_equal(err, "units has been modified on the B channel. Value stored in database: "
                             "J. Re-submit the channel metadata without the modification. If the "
                             "metadata must be changed, please create a new channel.");
    json_object_del(json_object_get(changed, "channels"), "A");
    assert_int_equal(manifest_compare(changed, m, false, err, sizeof(err)), -1);
    assert_true(strncmp(err, "A has been removed from the input channel metadata.", 51) == 0);
    json_decref(changed);
    json_decref(m);
    assert_int_equal(manifest_validate("", 0, "1", &m, err, sizeof(err)), -1);
    assert_string_equal(err, "Channel manifest file not valid JSON. Expecting value: line 1 column "
                             "1 (char 0)");
    const char *bads[] = {
        "[]",
        "{}",
        "{\"channels\": []}",
        "{\"channels\": {\"a\": 1}}",
        "{\"channels\": {\"a\": {\"name\": 1, \"path\": \"/\"}}}",
        "{\"channels\": {\"a\": {\"name\": \"n\", \"path\": \"/\", \"type\": \"x\"}}}",
        "{\"channels\": {\"a\": {\"name\": \"n\", \"path\": \"/\", \"notation\": \"z\"}}}"};
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++)
        assert_int_equal(manifest_validate(bads[i], strlen(bads[i]), "1", &m, err, sizeof(err)),
                         -1);
    const char *wf =
        "{\"channels\": {\"a\": {\"name\": \"n\", \"path\": \"/\", \"y_units\": \"s\"}}}";
    assert_int_equal(manifest_validate(wf, strlen(wf), "1", &m, err, sizeof(err)), -1);
    assert_string_equal(err, "Only waveform channels should contain waveform channel metadata. "
                             "Invalid channel is called: n");
}

/* A description as the helper writes it, with no data part. */
static int check_desc(const char *json, const char *manifest, ingest_plan *plan)
{
    parse_result pr;
    memset(&pr, 0, sizeof(pr));
    json_error_t e;
    pr.desc = json_loads(json, 0, &e);
    assert_non_null(pr.desc);
    json_t *m = manifest ? json_loads(manifest, 0, &e) : NULL;
    int rc = ingest_check(&pr, m, plan);
    json_decref(m);
    json_decref(pr.desc);
    return rc;
}

#define ROOT(extra)                                                                                \
    "{\"attrs\": {\"epac_ops_data_version\": {\"t\":\"str\",\"v\":\"1.0\"}, \"timestamp\": "       \
    "{\"t\":\"str\",\"v\":\"2020-04-07T14:28:16+00:00\"}, \"active_area\": {\"t\":\"str\","        \
    "\"v\":\"ea1\"}" extra "}, \"members\": []}"

static void test_file_checks(void **state)
{
    (void)state;
    ingest_plan p;
    const char *man = "{\"_id\": \"1\", \"channels\": {}}";
    assert_int_equal(check_desc(ROOT(""), man, &p), 0);
    assert_int_equal(p.status, 0);
    assert_string_equal(p.id, "20200407142816");
    assert_int_equal(p.nchannels, 0);
    ingest_plan_free(&p);
    /* no members and no manifest: the file checks run first, then the manifest error */
    assert_int_equal(check_desc(ROOT(""), NULL, &p), 0);
    assert_int_equal(p.status, 400);
    assert_string_equal(p.message, INGEST_NO_MANIFEST);
    ingest_plan_free(&p);
    assert_int_equal(check_desc(ROOT(", \"active_experiment\": {\"t\":\"int\",\"v\":5}"), NULL, &p),
                     0);
    assert_string_equal(p.message, "active_experiment has wrong datatype. Expected string");
    ingest_plan_free(&p);
    /* a version without a minor part: 400 (the reference crashes) */
    const char *v1 = "{\"attrs\": {\"epac_ops_data_version\": {\"t\":\"str\",\"v\":\"1\"}, "
                     "\"timestamp\": {\"t\":\"str\",\"v\":\"2020-04-07T14:28:16Z\"}}, "
                     "\"members\": []}";
    assert_int_equal(check_desc(v1, man, &p), 0);
    assert_string_equal(p.message, "epac_ops_data_version minor version is not a number");
    ingest_plan_free(&p);
    const char *v2 = "{\"attrs\": {\"epac_ops_data_version\": {\"t\":\"str\",\"v\":\"1.1_0\"}, "
                     "\"timestamp\": {\"t\":\"str\",\"v\":\"2020-04-07T14:28:16Z\"}, "
                     "\"active_area\": {\"t\":\"str\",\"v\":\"\"}}, \"members\": []}";
    assert_int_equal(check_desc(v2, man, &p), 0);
    assert_int_equal(p.status, 0);
    assert_int_equal(json_array_size(p.warnings), 1);
    ingest_plan_free(&p);
    /* fixed-length strings are not text attributes (as the reference: bytes fail) */
    const char *fs = "{\"attrs\": {\"timestamp\": {\"t\":\"fstr\",\"v\":\"2020-04-07T14:28:16Z\"}},"
                     " \"members\": []}";
    assert_int_equal(check_desc(fs, man, &p), 0);
    assert_string_equal(p.message, INGEST_TIMESTAMP_ERROR);
    ingest_plan_free(&p);
    /* the helper's refusal of an absurd dataset */
    assert_int_equal(check_desc("{\"attrs\": {}, \"members\": [], \"error\": \"a dataset is too "
                                "large (2 dimensions)\"}",
                                man, &p),
                     0);
    assert_int_equal(p.status, 400);
    assert_string_equal(p.message, "Uploaded HDF5 file is not accepted: a dataset is too large (2 "
                                   "dimensions)");
    ingest_plan_free(&p);
}

static void test_too_many_channels(void **state)
{
    (void)state;
    json_t *members = json_array();
    for (int i = 0; i <= INGEST_MAX_CHANNELS; i++)
        json_array_append_new(members, json_pack("{ss ss}", "name", "X", "kind", "group"));
    parse_result pr;
    memset(&pr, 0, sizeof(pr));
    pr.desc = json_pack("{s{} so}", "attrs", "members", members);
    ingest_plan p;
    json_t *m = json_pack("{ss s{}}", "_id", "1", "channels");
    assert_int_equal(ingest_check(&pr, m, &p), 0);
    assert_int_equal(p.status, 400);
    assert_string_equal(p.message, "File has too many channels (more than 20000)");
    ingest_plan_free(&p);
    json_decref(m);
    json_decref(pr.desc);
}

static void test_waveform_missing_both(void **state)
{
    (void)state;
    ingest_plan p;
    const char *man = "{\"_id\": \"1\", \"channels\": {\"W\": {\"type\": \"waveform\"}, "
                      "\"S\": {\"name\": \"s\"}}}";
    const char *d =
        "{\"attrs\": {\"epac_ops_data_version\": {\"t\":\"str\",\"v\":\"1.0\"}, \"timestamp\": "
        "{\"t\":\"str\",\"v\":\"2020-04-07T14:28:16Z\"}, \"active_area\": {\"t\":\"str\","
        "\"v\":\"ea1\"}}, \"members\": [{\"name\": \"S\", \"kind\": \"group\", \"attrs\": "
        "{\"channel_dtype\": {\"t\":\"str\",\"v\":\"scalar\"}}, \"members\": [{\"name\": \"data\", "
        "\"kind\": \"dataset\", \"data\": {\"class\": \"str\", \"shape\": [], \"v\": \"GS\"}}]}, "
        "{\"name\": \"W\", \"kind\": \"group\", \"attrs\": {\"channel_dtype\": {\"t\":\"str\","
        "\"v\":\"waveform\"}}, \"members\": []}]}";
    assert_int_equal(check_desc(d, man, &p), 0);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.nchannels, 1);
    assert_string_equal(json_string_value(p.channels[0].scalar), "GS");
    char *t = json_dumps(p.rejected, JSON_COMPACT);
    assert_string_equal(t, "{\"W\":[\"x attribute is missing\",\"y attribute is missing\"]}");
    free(t);
    ingest_plan_free(&p);
}

static void test_npz(void **state)
{
    (void)state;
    double v[6] = {1, 2, 3, 4, 5, 6};
    uint64_t shape[2] = {2, 3};
    unsigned char *z;
    size_t n;
    assert_int_equal(npz_write("<f8", shape, 2, v, sizeof(v), &z, &n), 0);
    assert_memory_equal(z, "PK\x03\x04", 4);
    assert_int_equal(z[8], 8); /* deflate */
    assert_memory_equal(z + 30, "arr_0.npy", 9);
    uint32_t csize = z[18] | z[19] << 8 | z[20] << 16 | (uint32_t)z[21] << 24;
    uint32_t usize = z[22] | z[23] << 8 | z[24] << 16 | (uint32_t)z[25] << 24;
    assert_int_equal(usize, 128 + sizeof(v));
    unsigned char out[256];
    z_stream s;
    memset(&s, 0, sizeof(s));
    inflateInit2(&s, -15);
    s.next_in = z + 39;
    s.avail_in = csize;
    s.next_out = out;
    s.avail_out = sizeof(out);
    assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
    inflateEnd(&s);
    assert_int_equal(s.total_out, usize);
    assert_memory_equal(out, "\x93NUMPY\x01\x00", 8);
    assert_int_equal(out[8] | out[9] << 8, 118);
    assert_true(
        memcmp(out + 10, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 59) == 0);
    assert_int_equal(out[127], '\n');
    assert_memory_equal(out + 128, v, sizeof(v));
    assert_memory_equal(z + n - 22, "PK\x05\x06", 4);
    free(z);
}

/* ---- the helper process ---- */

typedef struct helper_run {
    int status;
    bool done;
    char *desc; /* the description, as compact JSON */
} helper_run;

static void helper_done(int status, parse_result *res, void *data)
{
    helper_run *h = data;
    h->status = status;
    h->done = true;
    if (res)
        h->desc = json_dumps(res->desc, JSON_SORT_KEYS);
    parse_result_free(res);
}

/* Runs script as the helper on a small upload; pipe_only picks the pipe path, else the
 * memfd path (stdin a file holding the upload, fd 3 the output file). */
static int run_helper_on(const char *script, unsigned timeout_ms, size_t max_output, bool pipe_only,
                         char **desc)
{
    char path[] = "/tmp/ogd-test-helper-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_true(write(fd, script, strlen(script)) == (ssize_t)strlen(script));
    close(fd);
    chmod(path, 0700);
    parse_proc_set_binary(path);
    uv_loop_t loop;
    uv_loop_init(&loop);
    helper_run h = {0, false, NULL};
    parse_limits lim = {max_output, timeout_ms, pipe_only};
    static const char bytes[] = "some upload bytes";
    assert_int_equal(parse_proc_start(&loop, bytes, sizeof(bytes), &lim, helper_done, &h, NULL), 0);
    assert_false(h.done);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(h.done);
    assert_int_equal(uv_loop_close(&loop), 0);
    parse_proc_set_binary(NULL);
    unlink(path);
    if (desc)
        *desc = h.desc;
    else
        free(h.desc);
    return h.status;
}

static int run_helper(const char *script, unsigned timeout_ms, size_t max_output, bool pipe_only)
{
    return run_helper_on(script, timeout_ms, max_output, pipe_only, NULL);
}

/* Both paths report a helper that crashes, hangs, floods its stdout, says "not HDF5" or
 * writes garbage the same way. */
static void test_helper_failures(void **state)
{
    (void)state;
    for (int pipe_only = 0; pipe_only <= 1; pipe_only++) {
        assert_int_equal(run_helper("#!/bin/sh\nkill -SEGV $$\n", 5000, 1000, pipe_only),
                         PARSE_CRASHED);
        assert_int_equal(run_helper("#!/bin/sh\nexec sleep 30\n", 200, 1000, pipe_only),
                         PARSE_TIMEOUT);
        assert_int_equal(run_helper("#!/bin/sh\nexec cat /dev/zero\n", 5000, 100000, pipe_only),
                         PARSE_TOO_LARGE);
        assert_int_equal(run_helper("#!/bin/sh\nexit 3\n", 5000, 1000, pipe_only), PARSE_NOT_HDF5);
        assert_int_equal(run_helper("#!/bin/sh\nexit 4\n", 5000, 1000, pipe_only), PARSE_TOO_LARGE);
        assert_int_equal(run_helper("#!/bin/sh\necho garbage\n", 5000, 1000, pipe_only),
                         PARSE_CRASHED);
    }
}

/* The pipe path: the upload arrives on stdin, the "OGDH" answer is read from stdout. */
static void test_helper_pipe_answer(void **state)
{
    (void)state;
    char *desc = NULL;
    assert_int_equal(run_helper_on("#!/bin/sh\ncat >/dev/null\n"
                                   "printf 'OGDH\\002\\0\\0\\0\\0\\0\\0\\0{}'\n",
                                   5000, 1000, true, &desc),
                     0);
    assert_string_equal(desc, "{}");
    free(desc);
}

/* The memfd path: stdin is a regular file holding the upload (not a pipe), and the
 * answer is the "OGDM" file the helper leaves on fd 3; a malformed or oversized file is
 * refused. */
static void test_helper_memfd_answer(void **state)
{
    (void)state;
    /* the answer carries the upload's size and first word, read from the stdin file */
    static const char ok[] =
        "#!/bin/sh\n"
        "[ -f /dev/stdin ] || exit 1\n"
        "n=$(wc -c </dev/stdin); w=$(head -c 4 /dev/stdin)\n"
        "j=\"{\\\"n\\\":$n,\\\"w\\\":\\\"$w\\\"}\"\n"
        "o=$(printf '%03o' ${#j})\n"
        "{ printf 'OGDM\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\100\\0\\0\\0\\0\\0\\0\\0'\n"
        "  printf \"\\\\$o\\0\\0\\0\\0\\0\\0\\0\"\n"
        "  head -c 32 /dev/zero; printf '%s' \"$j\"; } >&3\n";
    char *desc = NULL;
    assert_int_equal(run_helper_on(ok, 5000, 1000, false, &desc), 0);
    assert_string_equal(desc, "{\"n\": 18, \"w\": \"some\"}");
    free(desc);
    /* nothing written to fd 3 */
    assert_int_equal(run_helper("#!/bin/sh\nexit 0\n", 5000, 1000, false), PARSE_CRASHED);
    /* a header pointing past the file */
    assert_int_equal(run_helper("#!/bin/sh\n{ printf 'OGDM\\0\\0\\0\\0\\377\\377'; "
                                "head -c 100 /dev/zero; } >&3\n",
                                5000, 1000, false),
                     PARSE_CRASHED);
    /* an output file past the cap */
    assert_int_equal(run_helper("#!/bin/sh\ntruncate -s 100000 /dev/fd/3\n", 5000, 1000, false),
                     PARSE_TOO_LARGE);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as in a worker: a helper that exits early breaks the pipe */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_image_shift_table),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_manifest),
        cmocka_unit_test(test_file_checks),
        cmocka_unit_test(test_waveform_missing_both),
        cmocka_unit_test(test_npz),
        cmocka_unit_test(test_encode_image_depths),
        cmocka_unit_test(test_too_many_channels),
        cmocka_unit_test(test_helper_failures),
        cmocka_unit_test(test_helper_pipe_answer),
        cmocka_unit_test(test_helper_memfd_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
