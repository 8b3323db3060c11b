/* Unit tests for src/ingest/: timestamps, the bit-depth shift, manifest validation and comparison,
 * whole-file checks on hand-built descriptions, the npz writer, image encoding at every bit depth,
 * and the parse helper on both paths (pipes, memfds): its answers and failure modes (a helper that
 * crashes, hangs, or floods its output); datasets by reference (which are, which are copied,
 * hostile references) and the upload handed over as a file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hdf5.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "imaging/png.h"
#include "ingest/checks.h"
#include "ingest/encode.h"
#include "ingest/hdf5_read.h"
#include "util/base64.h"
#include "ingest/manifest.h"
#include "ingest/npz_write.h"
#include "ingest/parse_proc.h"
#include "store/timestamp.h"

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

/* The record id is the file's wall clock, always 14 digits; a timestamp whose wall clock
 * or UTC instant leaves the years 1..9999 has no id (the whole file is then rejected). */
static void test_record_id(void **state)
{
    (void)state;
    static const struct {
        const char *ts, *id; /* id NULL: -ERANGE */
    } cases[] = {
        {"2020-04-07T14:28:16+01:00", "20200407142816"},
        {"0001-01-01T00:00:00+00:00", "00010101000000"},
        {"0001-01-01T00:00:00-14:00", "00010101000000"},
        {"0001-01-01T14:00:00+14:00", "00010101140000"},
        {"0001-01-01T13:59:59+14:00", NULL}, /* 0000-12-31T23:59:59 in UTC */
        {"0001-01-01T00:00:00+14:00", NULL},
        {"0001-01-01T00:00:00+00:00:01", NULL},
        {"0999-06-05T08:00:00Z", "09990605080000"},
        {"1969-12-31T23:59:59Z", "19691231235959"},
        {"9999-12-31T23:59:59+00:00", "99991231235959"},
        {"9999-12-31T23:59:59+14:00", "99991231235959"},
        {"9999-12-31T09:59:59-14:00", "99991231095959"},
        {"9999-12-31T10:00:00-14:00", NULL}, /* 10000-01-01T00:00:00 in UTC */
        {"9999-12-31T23:59:59-14:00", NULL},
        {"9999-12-31T23:59:59-00:00:01", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t wall;
        int off;
        char id[INGEST_ID_LEN + 1];
        memset(id, 'x', sizeof(id));
        assert_int_equal(ingest_parse_timestamp(cases[i].ts, &wall, &off), 0);
        int rc = ingest_record_id(wall, off, id);
        if (cases[i].id) {
            if (rc != 0 || strcmp(id, cases[i].id) != 0)
                fail_msg("%s: %d '%s', expected '%s'", cases[i].ts, rc, id, cases[i].id);
        } else if (rc != -ERANGE || id[0] != '\0') {
            fail_msg("%s: %d '%s', expected -ERANGE", cases[i].ts, rc, id);
        }
    }
    /* any input: a fraction is dropped, the extremes are refused without overflow */
    const int64_t y1 = timestamp_days_from_civil(1, 1, 1) * 86400 * INT64_C(1000000);
    const int64_t y10000 = timestamp_days_from_civil(10000, 1, 1) * 86400 * INT64_C(1000000);
    char id[INGEST_ID_LEN + 1];
    assert_int_equal(ingest_record_id(y1 + 999999, 0, id), 0);
    assert_string_equal(id, "00010101000000");
    assert_int_equal(ingest_record_id(y10000 - 1, 0, id), 0);
    assert_string_equal(id, "99991231235959");
    assert_int_equal(ingest_record_id(-1, 0, id), 0);
    assert_string_equal(id, "19691231235959");
    const struct {
        int64_t wall;
        int off;
    } bad[] = {{y1 - 1, 0},
               {y10000, 0},
               {INT64_MIN, 0},
               {INT64_MAX, 0},
               {INT64_MIN, INT_MIN},
               {INT64_MAX, INT_MAX},
               {y1 + 3600000000, INT_MAX},
               {y10000 - 3600000000, INT_MIN},
               {y1, 1},
               {y10000 - 1, -1}};
    /* an int offset moves at most 68 years: 1970 stays in range either way */
    assert_int_equal(ingest_record_id(0, INT_MIN, id), 0);
    assert_int_equal(ingest_record_id(0, INT_MAX, id), 0);
    assert_string_equal(id, "19700101000000");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ingest_record_id(bad[i].wall, bad[i].off, id), -ERANGE);
}

static void test_image_shift_table(void **state)
{
    (void)state;
    int t;
    /* docs/ingest.md §8.1: uint8 255 */
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

/* ingest_encode of image channels: the stored PNG holds exactly ingest_image_shift of every
 * pixel (its fast paths agree with the table), with the PNG depth and sBIT
 * docs/ingest.md §8.1 asks for, for 8- and 16-bit data and bit depths inside and outside
 * the sample size. */
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

/* The grey + alpha thumbnail ingest_encode makes of a 1 x 6 float64 image. */
static void float_thumbnail(const double *d, uint8_t out[6][2])
{
    ingest_thumb_sizes ts = {{50, 50}, {50, 50}, {100, 75}, {100, 75}, 1.0};
    ingest_channel c;
    memset(&c, 0, sizeof(c));
    c.name = "FLT";
    c.kind = INGEST_FLOAT_IMAGE;
    c.metadata = json_pack("{ss}", "channel_dtype", "float_image");
    c.data.cls = 'f';
    c.data.size = 8;
    c.data.rank = 2;
    c.data.shape[0] = 1;
    c.data.shape[1] = 6;
    c.data.count = 6;
    c.data.data = (const unsigned char *)d;
    ingest_object o;
    const char *why = NULL;
    assert_int_equal(ingest_encode(&c, "20240101000000", &ts, &o, &why), 0);
    const char *b64 = json_string_value(json_object_get(o.doc, "thumbnail"));
    assert_non_null(b64);
    unsigned char *png = NULL;
    size_t plen = 0;
    assert_int_equal(base64_decode(b64, strlen(b64), &png, &plen), 0);
    png_image img;
    assert_int_equal(png_decode(png, plen, &img), 0);
    assert_int_equal(img.width, 6);
    assert_int_equal(img.height, 1);
    assert_int_equal(img.channels, 2);
    memcpy(out, img.pixels, 12);
    png_image_free(&img);
    free(png);
    ingest_object_free(&o);
    json_decref(c.metadata);
}

/* A float image's thumbnail scales to the largest finite |v|: +inf and -inf saturate white
 * and black instead of making the scale infinite (which flattened every finite pixel to
 * grey and turned the infinities into an undefined NaN-to-byte cast); NaN is transparent.
 * A largest |v| whose double overflows keeps its scale too (2 * 1e308 is inf). */
static void test_encode_float_image_infinities(void **state)
{
    (void)state;
    static const double d[][6] = {{2.0, -1.0, INFINITY, -INFINITY, NAN, 0.0},
                                  {1e308, -1e308, INFINITY, -INFINITY, NAN, 0.0}};
    static const uint8_t want[][6][2] = {
        {{255, 255}, {63, 255}, {255, 255}, {0, 255}, {0, 0}, {127, 255}},
        {{255, 255}, {0, 255}, {255, 255}, {0, 255}, {0, 0}, {127, 255}}};
    for (int k = 0; k < 2; k++) {
        uint8_t got[6][2];
        float_thumbnail(d[k], got);
        for (int i = 0; i < 6; i++) {
            assert_int_equal(got[i][0], want[k][i][0]);
            assert_int_equal(got[i][1], want[k][i][1]);
        }
    }
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

/* A description as the helper writes it, with no data part, checked within lim (NULL:
 * no limits). */
static int check_desc_lim(const char *json, const char *manifest, const hdf5_limits *lim,
                          ingest_plan *plan)
{
    parse_result pr;
    memset(&pr, 0, sizeof(pr));
    json_error_t e;
    pr.desc = json_loads(json, 0, &e);
    assert_non_null(pr.desc);
    json_t *m = manifest ? json_loads(manifest, 0, &e) : NULL;
    int rc = ingest_check(&pr, m, lim, plan);
    json_decref(m);
    json_decref(pr.desc);
    return rc;
}

static int check_desc(const char *json, const char *manifest, ingest_plan *plan)
{
    return check_desc_lim(json, manifest, NULL, plan);
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
    /* a valid timestamp in year 0 once in UTC: the whole file, naming the timestamp */
    const char *y0 = "{\"attrs\": {\"epac_ops_data_version\": {\"t\":\"str\",\"v\":\"1.0\"}, "
                     "\"timestamp\": {\"t\":\"str\",\"v\":\"0001-01-01T00:00:00+14:00\"}}, "
                     "\"members\": []}";
    assert_int_equal(check_desc(y0, man, &p), 0);
    assert_int_equal(p.status, 400);
    assert_string_equal(p.message, "Invalid timestamp metadata. '0001-01-01T00:00:00+14:00' is "
                                   "outside the supported range: in UTC it must fall within "
                                   "the years 1 to 9999.");
    assert_string_equal(p.id, "");
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

/* Root members past ingest.max_channels: the whole file is rejected, naming the count
 * and the limit, whether the helper described them all or (as it does) only counted
 * them. At the limit the file goes on to the other checks. */
static void test_too_many_channels(void **state)
{
    (void)state;
    const hdf5_limits lim = {0, 0, 3};
    json_t *m = json_pack("{ss s{}}", "_id", "1", "channels");
    for (int n = 3; n <= 4; n++) {
        json_t *members = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(members, json_pack("{ss ss}", "name", "X", "kind", "group"));
        parse_result pr;
        memset(&pr, 0, sizeof(pr));
        pr.desc = json_pack("{s{s{ss ss}} so}", "attrs", "timestamp", "t", "str", "v",
                            "2020-04-07T14:28:16Z", "members", members);
        ingest_plan p;
        assert_int_equal(ingest_check(&pr, m, &lim, &p), 0);
        assert_int_equal(p.status, 400);
        if (n == 3) /* on to the file checks */
            assert_string_equal(p.message, "epac_ops_data_version does not exist");
        else
            assert_string_equal(p.message, "File has too many channels: 4, more than the limit "
                                           "of 3 (ingest.max_channels)");
        ingest_plan_free(&p);
        json_decref(pr.desc);
    }
    ingest_plan p;
    assert_int_equal(check_desc_lim("{\"attrs\": {}, \"members\": [], \"channels\": 20000}",
                                    "{\"_id\": \"1\", \"channels\": {}}", &lim, &p),
                     0);
    assert_int_equal(p.status, 400);
    assert_string_equal(p.message, "File has too many channels: 20000, more than the limit of 3 "
                                   "(ingest.max_channels)");
    ingest_plan_free(&p);
    json_decref(m);
}

/* A channel whose dataset declares more than max_dataset_bytes is rejected with its size
 * and the limit (merged with the dataset check), whether the helper left it unread
 * ("too_large") or not; its other problems are not looked at. Sizes past 64 bits are
 * named as such. */
static void test_too_large_channels(void **state)
{
    (void)state;
    const hdf5_limits lim = {1000, 0, 0};
    const char *man = "{\"_id\": \"1\", \"channels\": {\"I\": {\"type\": \"image\"}, "
                      "\"W\": {\"type\": \"waveform\"}, \"F\": {\"type\": \"float_image\"}, "
                      "\"V\": {\"type\": \"vector\"}}}";
#define DS(name, d) "{\"name\": \"" name "\", \"kind\": \"dataset\", \"data\": " d "}"
#define CH(name, dtype, attrs, members)                                                            \
    "{\"name\": \"" name "\", \"kind\": \"group\", \"attrs\": {\"channel_dtype\": {\"t\":\"str\"," \
    "\"v\":\"" dtype "\"}" attrs "}, \"members\": [" members "]}"
    const char *chans[] = {
        /* over 2^64: 2^32 x 2^32 elements of 8 bytes, left unread */
        CH("F", "float_image", "",
           DS("data", "{\"class\": \"float\", \"size\": 8, \"shape\": "
                      "[4294967296, 4294967296], \"too_large\": true}")),
        /* read by the helper (no limits there), over the checks' limit; a bad attribute */
        CH("I", "image", ", \"gain\": {\"t\":\"str\",\"v\":\"x\"}",
           DS("data", "{\"class\": \"uint\", \"size\": 2, \"shape\": [30, 20], \"off\": 0, "
                      "\"len\": 1200}")),
        /* unread, with no shape: still rejected, no size to give */
        CH("V", "vector", "",
           DS("data", "{\"class\": \"float\", \"size\": 8, \"too_large\": true}")),
        /* y unread (200 doubles), x fine */
        CH("W", "waveform", "",
           DS("x", "{\"class\": \"float\", \"size\": 8, \"shape\": [3], \"off\": 0, "
                   "\"len\": 24}") "," DS("y", "{\"class\": \"float\", \"size\": 8, "
                                               "\"shape\": [200], \"too_large\": true}")),
    };
    char d[4096];
    int n = snprintf(d, sizeof(d),
                     "{\"attrs\": {\"epac_ops_data_version\": {\"t\":\"str\",\"v\":\"1.0\"}, "
                     "\"timestamp\": {\"t\":\"str\",\"v\":\"2020-04-07T14:28:16Z\"}, "
                     "\"active_area\": {\"t\":\"str\",\"v\":\"ea1\"}}, \"members\": [");
    for (size_t i = 0; i < sizeof(chans) / sizeof(chans[0]); i++)
        n += snprintf(d + n, sizeof(d) - (size_t)n, "%s%s", i ? "," : "", chans[i]);
    snprintf(d + n, sizeof(d) - (size_t)n, "]}");
#undef DS
#undef CH
    ingest_plan p;
    assert_int_equal(check_desc_lim(d, man, &lim, &p), 0);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.nchannels, 0);
    char *t = json_dumps(p.rejected, JSON_COMPACT);
    assert_string_equal(
        t, "{\"F\":[\"data is too large: over 2^64 bytes when decompressed, more than the limit "
           "of 1000 bytes\"],\"I\":[\"data is too large: 1200 bytes when decompressed, more "
           "than the limit of 1000 bytes\"],\"V\":[\"data is too large when decompressed, more "
           "than the limit of 1000 bytes\"],\"W\":[\"y attribute is too "
           "large: 1600 bytes when decompressed, more than the limit of 1000 bytes\"]}");
    free(t);
    ingest_plan_free(&p);
    /* no limit at all: only what the helper left unread */
    assert_int_equal(check_desc(d, man, &p), 0);
    /* I, now checked as usual (and this description has no data part to point into) */
    assert_int_equal(p.nchannels, 1);
    t = json_dumps(json_object_get(p.rejected, "I"), JSON_COMPACT);
    assert_string_equal(t, "[\"gain attribute has wrong datatype\",\"data has wrong datatype, "
                           "should be uint16 or uint8\"]");
    free(t);
    t = json_dumps(json_object_get(p.rejected, "V"), JSON_COMPACT);
    assert_string_equal(t, "[\"data is too large when decompressed\"]");
    free(t);
    t = json_dumps(json_object_get(p.rejected, "F"), JSON_COMPACT);
    assert_string_equal(t, "[\"data is too large: over 2^64 bytes when decompressed\"]");
    free(t);
    ingest_plan_free(&p);
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

#define ROOT_TS(ts)                                                                                \
    "{\"attrs\": {\"epac_ops_data_version\": {\"t\":\"str\",\"v\":\"1.0\"}, \"timestamp\": "       \
    "{\"t\":\"str\",\"v\":\"" ts "\"}, \"active_area\": {\"t\":\"str\",\"v\":\"ea1\"}}, "          \
    "\"members\": []}"

/* Found by tests/fuzz/fuzz_hdf5_desc: the helper's description is untrusted, and
 * ingest_check trusted its shapes and member names. A shape whose element count times
 * the element size wraps (2^61 doubles = "0 bytes") passed the length check and a
 * vector of 2^61 elements pointed at the data part; a member without a name or kind
 * crashed (strcmp of NULL); a "str" shotnum whose value is not a string crashed too. */
static void test_hostile_descriptions(void **state)
{
    (void)state;
    static uint64_t data[4]; /* an 8-aligned data part */
    const char *man = "{\"_id\": \"1\", \"channels\": {\"V\": {\"type\": \"vector\"}, "
                      "\"W\": {\"type\": \"waveform\"}}}";
    const char *d =
        "{\"attrs\": {\"epac_ops_data_version\": {\"t\":\"str\",\"v\":\"1.0\"}, \"timestamp\": "
        "{\"t\":\"str\",\"v\":\"2020-04-07T14:28:16Z\"}, \"active_area\": {\"t\":\"str\","
        "\"v\":\"ea1\"}}, \"members\": [{\"name\": \"V\", \"kind\": \"group\", \"attrs\": "
        "{\"channel_dtype\": {\"t\":\"str\",\"v\":\"vector\"}}, \"members\": [{\"name\": \"data\", "
        "\"kind\": \"dataset\", \"data\": {\"class\": \"float\", \"size\": 8, \"shape\": "
        "[2305843009213693952], \"off\": 0, \"len\": 0}}]}, {\"name\": \"W\", \"kind\": "
        "\"group\", \"attrs\": {\"channel_dtype\": {\"t\":\"str\",\"v\":\"waveform\"}}, "
        "\"members\": [{\"kind\": \"dataset\", \"data\": {}}, {\"name\": \"y\"}]}]}";
    parse_result pr;
    memset(&pr, 0, sizeof(pr));
    pr.desc = json_loads(d, 0, NULL);
    assert_non_null(pr.desc);
    pr.data = (const unsigned char *)data;
    pr.data_len = sizeof(data);
    json_t *m = json_loads(man, 0, NULL);
    ingest_plan p;
    assert_int_equal(ingest_check(&pr, m, NULL, &p), 0);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.nchannels, 1);
    assert_string_equal(p.channels[0].name, "V");
    assert_int_equal(p.channels[0].data.cls, 0); /* not numeric: never read */
    assert_null(p.channels[0].data.data);
    char *t = json_dumps(p.rejected, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(t, "{\"V\":[\"data has wrong datatype, should be list[float]\"],"
                           "\"W\":[\"unexpected group or dataset in channel group\"]}");
    free(t);
    ingest_plan_free(&p);
    json_decref(pr.desc);

    pr.desc = json_loads("{\"attrs\": {\"shotnum\": {\"t\":\"str\",\"v\":12}, \"timestamp\": "
                         "{\"t\":\"str\",\"v\":\"2020-04-07T14:28:16Z\"}}, \"members\": []}",
                         0, NULL);
    assert_int_equal(ingest_check(&pr, m, NULL, &p), 0);
    assert_int_equal(p.status, 400);
    assert_non_null(strstr(p.message, "unable to parse string as an integer"));
    ingest_plan_free(&p);
    json_decref(pr.desc);

    /* a year before 1000: the record id still has its 14 digits (glibc's %Y gave "326"
     * and the id was cut out of "326-06-05T...": "326-6-05T08:00:") */
    pr.desc = json_loads(ROOT_TS("0326-06-05T08:00:00+01:00"), 0, NULL);
    assert_non_null(pr.desc);
    assert_int_equal(ingest_check(&pr, m, NULL, &p), 0);
    assert_int_equal(p.status, 0);
    assert_string_equal(p.id, "03260605080000");
    assert_string_equal(json_string_value(json_object_get(p.metadata, "timestamp")),
                        "0326-06-05T07:00:00");
    ingest_plan_free(&p);
    json_decref(pr.desc);
    json_decref(m);
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
    parse_limits lim = {max_output, timeout_ms, pipe_only, {0, 0, 0}};
    static const char bytes[] = "some upload bytes";
    assert_int_equal(
        parse_proc_start(&loop, bytes, sizeof(bytes), -1, 0, &lim, helper_done, &h, NULL), 0);
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

/* ---- datasets by reference, and the upload as a file ---- */

#define H5_ROWS 64
#define H5_COLS 48

static uint16_t pixel(size_t i)
{
    return (uint16_t)(i * 7 + 3);
}

/* An HDF5 file at path with datasets the reader must treat differently:
 *   plain    uint16 little-endian, contiguous, written: by reference
 *   zipped   the same values, chunked and deflated: copied
 *   bigend   the same values, stored big-endian: copied (converted)
 *   unset    contiguous, never written (no storage): copied (fill value 0)
 *   odd_a    3 uint8, then odd_b 5 int64 right after it in the file (the library packs
 *            small raw data; odd_b is not on a multiple of 8 there: copied) */
static void make_h5(const char *path)
{
    static uint16_t img[H5_ROWS * H5_COLS];
    for (size_t i = 0; i < H5_ROWS * H5_COLS; i++)
        img[i] = pixel(i);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    hsize_t dims[2] = {H5_ROWS, H5_COLS};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(f, "plain", H5T_STD_U16LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, img) >= 0);
    H5Dclose(d);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk[2] = {16, 16};
    H5Pset_chunk(dcpl, 2, chunk);
    H5Pset_deflate(dcpl, 4);
    d = H5Dcreate2(f, "zipped", H5T_STD_U16LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, img) >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    d = H5Dcreate2(f, "bigend", H5T_STD_U16BE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, img) >= 0);
    H5Dclose(d);
    d = H5Dcreate2(f, "unset", H5T_STD_U16LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(sp);
    hsize_t three = 3, five = 5;
    uint8_t a[3] = {1, 2, 3};
    int64_t b[5] = {-1, 2, -3, 4, -5};
    sp = H5Screate_simple(1, &three, NULL);
    d = H5Dcreate2(f, "odd_a", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, a) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    sp = H5Screate_simple(1, &five, NULL);
    d = H5Dcreate2(f, "odd_b", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, b) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
}

/* The file's bytes (malloc'd, so 16-byte aligned like a mapping's start). */
static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static const json_t *dataset_of(const json_t *desc, const char *name)
{
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(desc, "members"), i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "name")), name) == 0)
            return json_object_get(m, "data");
    }
    return NULL;
}

/* A dataset's elements as the checks see them: in the upload ("ref") or in the data
 * part ("off"); NULL when neither. */
static const unsigned char *elements_of(const parse_result *r, const json_t *ds)
{
    const json_t *ref = json_object_get(ds, "ref");
    const json_t *off = json_object_get(ds, "off");
    if (ref)
        return r->image + json_integer_value(ref);
    if (off)
        return r->data + json_integer_value(off);
    return NULL;
}

/* FNV-1a of each numeric dataset's elements, by name: what a reader of r would see. */
static json_t *dataset_digests(const parse_result *r)
{
    json_t *out = json_object();
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(r->desc, "members"), i, m)
    {
        const json_t *ds = json_object_get(m, "data");
        const unsigned char *p = elements_of(r, ds);
        if (!p)
            continue;
        uint64_t h = 1469598103934665603ULL;
        json_int_t n = json_integer_value(json_object_get(ds, "len"));
        for (json_int_t k = 0; k < n; k++)
            h = (h ^ p[k]) * 1099511628211ULL;
        char hex[20];
        snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
        json_object_set_new(out, json_string_value(json_object_get(m, "name")), json_string(hex));
    }
    return out;
}

/* Checks the values a reader gets for each dataset of make_h5's file. */
static void assert_h5_values(const parse_result *r)
{
    const char *images[] = {"plain", "zipped", "bigend"};
    for (int k = 0; k < 3; k++) {
        const json_t *ds = dataset_of(r->desc, images[k]);
        assert_non_null(ds);
        assert_int_equal(json_integer_value(json_object_get(ds, "len")), H5_ROWS * H5_COLS * 2);
        const uint16_t *v = (const uint16_t *)elements_of(r, ds);
        assert_non_null(v);
        for (size_t i = 0; i < H5_ROWS * H5_COLS; i++)
            assert_int_equal(v[i], pixel(i));
    }
    const uint16_t *unset = (const uint16_t *)elements_of(r, dataset_of(r->desc, "unset"));
    assert_non_null(unset);
    for (size_t i = 0; i < H5_ROWS * H5_COLS; i++)
        assert_int_equal(unset[i], 0);
    const uint8_t *a = elements_of(r, dataset_of(r->desc, "odd_a"));
    assert_non_null(a);
    assert_memory_equal(a, "\1\2\3", 3);
    const int64_t *b = (const int64_t *)elements_of(r, dataset_of(r->desc, "odd_b"));
    assert_non_null(b);
    assert_int_equal(((uintptr_t)b) % 8, 0);
    int64_t want[5] = {-1, 2, -3, 4, -5};
    assert_memory_equal(b, want, sizeof(want));
}

/* Describes image into a fresh mapping and decodes it, as parse_proc does. */
static void describe_mapped(unsigned char *image, size_t len, parse_result *res)
{
    unsigned skew = (unsigned)((uintptr_t)image % 8);
    size_t cap = (size_t)4 << 20, used = 0;
    unsigned char *area = malloc(cap);
    assert_non_null(area);
    assert_int_equal(hdf5_describe_mapped(image, len, skew, NULL, area, cap, &used), 0);
    void *map = mmap(NULL, used, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    memcpy(map, area, used);
    free(area);
    assert_int_equal(parse_result_decode_mapped(map, used, image, len, res), 0);
}

/* The mapped description points plain datasets into the image and copies the rest; the
 * pipe description copies everything; a reader sees the same values either way. */
static void test_describe_references(void **state)
{
    (void)state;
    char path[] = "/tmp/ogd-test-h5-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    make_h5(path);
    size_t len = 0;
    unsigned char *image = slurp(path, &len);
    /* where the library put odd_b */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "odd_b", H5P_DEFAULT);
    haddr_t odd_b = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
    unlink(path);
    assert_true(odd_b != HADDR_UNDEF);

    parse_result res;
    describe_mapped(image, len, &res);
    assert_true(res.image == image);
    const json_t *plain = dataset_of(res.desc, "plain");
    assert_non_null(json_object_get(plain, "ref"));
    assert_null(json_object_get(plain, "off"));
    assert_non_null(json_object_get(dataset_of(res.desc, "odd_a"), "ref"));
    const char *copied[] = {"zipped", "bigend", "unset"};
    for (int k = 0; k < 3; k++) {
        assert_null(json_object_get(dataset_of(res.desc, copied[k]), "ref"));
        assert_non_null(json_object_get(dataset_of(res.desc, copied[k]), "off"));
    }
    const json_t *b = dataset_of(res.desc, "odd_b");
    print_message("odd_b at byte %llu of the file: %s\n", (unsigned long long)odd_b,
                  odd_b % 8 ? "misaligned, must be copied" : "aligned, by reference");
    if (odd_b % 8) {
        assert_null(json_object_get(b, "ref"));
        assert_non_null(json_object_get(b, "off"));
    } else {
        assert_int_equal(json_integer_value(json_object_get(b, "ref")), (json_int_t)odd_b);
    }
    assert_h5_values(&res);
    json_t *mapped = dataset_digests(&res);
    parse_result_free(&res);

    buf_t out;
    buf_init(&out, (size_t)4 << 20);
    assert_int_equal(hdf5_describe(image, len, NULL, &out), 0);
    size_t n = out.len;
    assert_int_equal(parse_result_decode(buf_take(&out), n, &res), 0);
    assert_null(json_object_get(dataset_of(res.desc, "plain"), "ref"));
    assert_h5_values(&res);
    json_t *piped = dataset_digests(&res);
    parse_result_free(&res);
    assert_true(json_equal(mapped, piped));
    assert_int_equal(json_object_size(mapped), 6);
    json_decref(mapped);
    json_decref(piped);
    free(image);
}

/* The declared size of a dataset: a zero side wins over any overflow, and products past
 * 64 bits (sides or the element size) are refused, not wrapped. */
static void test_declared_bytes(void **state)
{
    (void)state;
    uint64_t b = 1;
    assert_true(hdf5_declared_bytes(NULL, 0, 8, &b)); /* a scalar: one element */
    assert_int_equal(b, 8);
    uint64_t frame[2] = {24000, 24000};
    assert_true(hdf5_declared_bytes(frame, 2, 2, &b));
    assert_int_equal(b, 1152000000);
    uint64_t empty[3] = {UINT64_MAX, UINT64_MAX, 0};
    assert_true(hdf5_declared_bytes(empty, 3, 8, &b));
    assert_int_equal(b, 0);
    uint64_t empty2[2] = {0, UINT64_MAX};
    assert_true(hdf5_declared_bytes(empty2, 2, 8, &b));
    assert_int_equal(b, 0);
    uint64_t max[1] = {UINT64_MAX};
    assert_true(hdf5_declared_bytes(max, 1, 1, &b));
    assert_true(b == UINT64_MAX);
    assert_false(hdf5_declared_bytes(max, 1, 2, &b)); /* the element size overflows it */
    uint64_t half[2] = {(uint64_t)1 << 32, (uint64_t)1 << 31};
    assert_true(hdf5_declared_bytes(half, 2, 1, &b));
    assert_true(b == (uint64_t)1 << 63);
    assert_false(hdf5_declared_bytes(half, 2, 2, &b)); /* exactly 2^64 */
    uint64_t wrap[2] = {(uint64_t)1 << 32, (uint64_t)1 << 32};
    assert_false(hdf5_declared_bytes(wrap, 2, 1, &b)); /* would wrap to 0 */
    uint64_t wrap3[3] = {(uint64_t)1 << 63, 2, 3};
    assert_false(hdf5_declared_bytes(wrap3, 3, 1, &b));
    uint64_t eight[8] = {256, 256, 256, 256, 256, 256, 256, 256};
    assert_false(hdf5_declared_bytes(eight, 8, 1, &b)); /* 2^64 over eight sides */
    assert_true(hdf5_declared_bytes(eight, 7, 8, &b));
    assert_true(b == (uint64_t)1 << 59);
    uint64_t odd[3] = {3, 5, 7};
    assert_true(hdf5_declared_bytes(odd, 3, 4, &b));
    assert_int_equal(b, 420);
}

/* A dataset that declares more than max_dataset_bytes (chunked, compressed, never
 * written: it stores nothing) is described but not read ("too_large"), and does not
 * count towards the file's total; the others are read as before. The file's total over
 * max_file_bytes, or more root members than max_channels, refuse the file before any
 * dataset is read. Both output formats. */
static void test_describe_limits(void **state)
{
    (void)state;
    char path[] = "/tmp/ogd-test-h5-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    make_h5(path);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hsize_t dims[2] = {24000, 24000}, chunk[2] = {1000, 1000};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    H5Pset_deflate(dcpl, 4);
    hid_t d = H5Dcreate2(f, "bomb", H5T_STD_U16LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(d >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Fclose(f);
    size_t len = 0;
    unsigned char *image = slurp(path, &len);
    unlink(path);
    /* make_h5's datasets: four of 64 x 48 uint16, 3 uint8, 5 int64 */
    const uint64_t total = 4 * H5_ROWS * H5_COLS * 2 + 3 + 40;

    for (int mapped = 0; mapped <= 1; mapped++) {
        for (int round = 0; round < 4; round++) {
            hdf5_limits lim = {(uint64_t)256 << 20, 0, 0};
            if (round == 1)
                lim.max_file_bytes = total; /* at the limit */
            if (round == 2)
                lim.max_file_bytes = total - 1;
            if (round == 3)
                lim.max_channels = 6; /* seven members */
            parse_result res;
            if (mapped) {
                size_t cap = (size_t)4 << 20, used = 0;
                unsigned char *area = malloc(cap);
                assert_non_null(area);
                assert_int_equal(hdf5_describe_mapped(image, len, 0, &lim, area, cap, &used), 0);
                void *map =
                    mmap(NULL, used, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                assert_true(map != MAP_FAILED);
                memcpy(map, area, used);
                free(area);
                assert_int_equal(parse_result_decode_mapped(map, used, image, len, &res), 0);
            } else {
                buf_t out;
                buf_init(&out, (size_t)4 << 20);
                assert_int_equal(hdf5_describe(image, len, &lim, &out), 0);
                size_t n = out.len;
                assert_int_equal(parse_result_decode(buf_take(&out), n, &res), 0);
            }
            const char *err = json_string_value(json_object_get(res.desc, "error"));
            if (round == 2) {
                char want[256];
                snprintf(want, sizeof(want),
                         "its datasets hold %llu bytes when decompressed, more than the limit "
                         "of %llu bytes (ingest.max_file_decompressed_bytes)",
                         (unsigned long long)total, (unsigned long long)total - 1);
                assert_non_null(err);
                assert_string_equal(err, want);
                assert_int_equal(res.data_len, 0); /* nothing was read */
                assert_int_equal(json_array_size(json_object_get(res.desc, "members")), 7);
            } else if (round == 3) {
                assert_null(err);
                assert_int_equal(json_integer_value(json_object_get(res.desc, "channels")), 7);
                assert_int_equal(json_array_size(json_object_get(res.desc, "members")), 0);
                assert_int_equal(res.data_len, 0);
            } else {
                assert_null(err);
                const json_t *bomb = dataset_of(res.desc, "bomb");
                assert_true(json_is_true(json_object_get(bomb, "too_large")));
                assert_null(json_object_get(bomb, "off"));
                assert_null(json_object_get(bomb, "ref"));
                assert_int_equal(json_integer_value(json_object_get(bomb, "size")), 2);
                assert_h5_values(&res);
            }
            parse_result_free(&res);
        }
    }
    free(image);
}

/* An "OGDM" mapping around a JSON description. */
static void *ogdm(const char *json, size_t *len)
{
    size_t jl = strlen(json);
    *len = HDF5_MAPPED_HEADER + jl;
    unsigned char *m = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    memset(m, 0, HDF5_MAPPED_HEADER);
    memcpy(m, "OGDM", 4);
    m[16] = HDF5_MAPPED_HEADER;
    for (int i = 0; i < 8; i++)
        m[24 + i] = (unsigned char)((uint64_t)jl >> (8 * i));
    memcpy(m + HDF5_MAPPED_HEADER, json, jl);
    return m;
}

static int decode_refs(const char *json, const void *image, size_t image_len)
{
    size_t len;
    void *m = ogdm(json, &len);
    parse_result r;
    int rc = parse_result_decode_mapped(m, len, image, image_len, &r);
    if (rc == 0)
        parse_result_free(&r);
    return rc;
}

/* The helper's output is untrusted: a reference outside the upload, misaligned, of a
 * bad size or with no upload to point into is a malformed description. */
static void test_hostile_references(void **state)
{
    (void)state;
    static uint64_t image[8]; /* 64 aligned bytes */
    char json[512];
    const char *fmt = "{\"members\":[{\"name\":\"x\",\"kind\":\"dataset\",\"data\":"
                      "{\"class\":\"uint\",\"size\":%d,\"shape\":[4],\"ref\":%s,\"len\":%s}}]}";
#define REF(size, ref, len) (snprintf(json, sizeof(json), fmt, size, ref, len), json)
    assert_int_equal(decode_refs(REF(2, "56", "8"), image, sizeof(image)), 0);
    assert_int_equal(decode_refs(REF(2, "58", "8"), image, sizeof(image)), PARSE_CRASHED);
    assert_int_equal(decode_refs(REF(2, "64", "8"), image, sizeof(image)), PARSE_CRASHED);
    assert_int_equal(
        decode_refs(REF(8, "4611686018427387904", "4611686018427387904"), image, sizeof(image)),
        PARSE_CRASHED);
    assert_int_equal(decode_refs(REF(2, "-8", "8"), image, sizeof(image)), PARSE_CRASHED);
    assert_int_equal(decode_refs(REF(2, "8", "-2"), image, sizeof(image)), PARSE_CRASHED);
    assert_int_equal(decode_refs(REF(2, "9", "8"), image, sizeof(image)), PARSE_CRASHED);
    assert_int_equal(decode_refs(REF(3, "0", "12"), image, sizeof(image)), PARSE_CRASHED);
    assert_int_equal(decode_refs(REF(2, "\"8\"", "8"), image, sizeof(image)), PARSE_CRASHED);
    assert_int_equal(decode_refs(REF(2, "8", "8"), NULL, 0), PARSE_CRASHED);
    /* inside a group */
    assert_int_equal(decode_refs("{\"members\":[{\"name\":\"g\",\"kind\":\"group\",\"members\":["
                                 "{\"name\":\"x\",\"kind\":\"dataset\",\"data\":{\"class\":"
                                 "\"uint\",\"size\":1,\"shape\":[4],\"ref\":62,\"len\":4}}]}]}",
                                 image, sizeof(image)),
                     PARSE_CRASHED);
    /* the pipe format has no upload to point into */
    const char *j = REF(2, "0", "8");
    size_t jl = strlen(j);
    char *raw = malloc(12 + jl);
    memcpy(raw, "OGDH", 4);
    for (int i = 0; i < 8; i++)
        raw[4 + i] = (char)((uint64_t)jl >> (8 * i));
    memcpy(raw + 12, j, jl);
    parse_result r;
    assert_int_equal(parse_result_decode(raw, 12 + jl, &r), PARSE_CRASHED);
#undef REF
}

typedef struct digest_run {
    int status;
    bool done;
    bool refs; /* some dataset came by reference */
    json_t *digests;
} digest_run;

static void digest_done(int status, parse_result *res, void *data)
{
    digest_run *d = data;
    d->status = status;
    d->done = true;
    if (res) {
        assert_h5_values(res); /* the upload is still valid here */
        d->digests = dataset_digests(res);
        d->refs = json_object_get(dataset_of(res->desc, "plain"), "ref") != NULL;
    }
    parse_result_free(res);
}

static json_t *parse_with(const void *bytes, size_t len, int fd, uint64_t off, bool pipe_only,
                          bool *refs)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    parse_limits lim = {(size_t)16 << 20, 20000, pipe_only, {0, 0, 0}};
    digest_run d = {0, false, false, NULL};
    assert_int_equal(parse_proc_start(&loop, bytes, len, fd, off, &lim, digest_done, &d, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_true(d.done);
    assert_int_equal(d.status, 0);
    *refs = d.refs;
    return d.digests;
}

/* The upload handed over as a file (a window not starting on a page), through the real
 * helper: the same datasets as the memfd copy and the pipes. */
static void test_helper_fd_input(void **state)
{
    (void)state;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 8);
    assert_true(n > 0);
    exe[n] = 0;
    strcpy(strrchr(exe, '/') + 1, "ogd");
    assert_int_equal(access(exe, X_OK), 0);
    parse_proc_set_binary(exe);

    char h5[] = "/tmp/ogd-test-h5-XXXXXX";
    int fd = mkstemp(h5);
    assert_true(fd >= 0);
    close(fd);
    make_h5(h5);
    size_t len = 0;
    unsigned char *image = slurp(h5, &len);
    unlink(h5);
    /* the upload inside a bigger file, as in a multipart body: at 5002 (not on a page,
     * 2 bytes past a multiple of 8) and at 5003 (odd: 16-bit elements cannot be aligned) */
    static const char junk[5003];
    for (uint64_t off = 5002; off <= 5003; off++) {
        char path[] = "/tmp/ogd-test-upload-XXXXXX";
        fd = mkstemp(path);
        assert_true(fd >= 0);
        unlink(path);
        assert_int_equal(write(fd, junk, off), (ssize_t)off);
        assert_int_equal(write(fd, image, len), (ssize_t)len);
        assert_int_equal(write(fd, junk, 100), 100);
        size_t file_len = (size_t)off + len + 100;
        unsigned char *map = mmap(NULL, file_len, PROT_READ, MAP_SHARED, fd, 0);
        assert_true(map != MAP_FAILED);
        const unsigned char *bytes = map + off;

        bool refs = false;
        json_t *by_fd = parse_with(bytes, len, fd, off, false, &refs);
        if (off % 2 == 0)
            assert_true(refs);
        json_t *copied = parse_with(bytes, len, -1, 0, false, &refs);
        assert_true(refs); /* into the worker's page-aligned map of its copy, at any offset */
        json_t *piped = parse_with(bytes, len, fd, off, true, &refs);
        assert_false(refs);
        assert_int_equal(json_object_size(by_fd), 6);
        assert_true(json_equal(by_fd, copied));
        assert_true(json_equal(by_fd, piped));
        json_decref(copied);
        json_decref(piped);

        /* a window past the file's end: the copy path (the bytes given are what counts) */
        json_t *past = parse_with(bytes, len, fd, file_len, false, &refs);
        assert_true(json_equal(by_fd, past));
        json_decref(past);
        json_decref(by_fd);
        munmap(map, file_len);
        close(fd);
    }
    free(image);
    parse_proc_set_binary(NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as in a worker: a helper that exits early breaks the pipe */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_record_id),
        cmocka_unit_test(test_image_shift_table),
        cmocka_unit_test(test_manifest),
        cmocka_unit_test(test_file_checks),
        cmocka_unit_test(test_waveform_missing_both),
        cmocka_unit_test(test_hostile_descriptions),
        cmocka_unit_test(test_npz),
        cmocka_unit_test(test_encode_image_depths),
        cmocka_unit_test(test_encode_float_image_infinities),
        cmocka_unit_test(test_too_many_channels),
        cmocka_unit_test(test_too_large_channels),
        cmocka_unit_test(test_helper_failures),
        cmocka_unit_test(test_helper_pipe_answer),
        cmocka_unit_test(test_helper_memfd_answer),
        cmocka_unit_test(test_describe_references),
        cmocka_unit_test(test_declared_bytes),
        cmocka_unit_test(test_describe_limits),
        cmocka_unit_test(test_hostile_references),
        cmocka_unit_test(test_helper_fd_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
