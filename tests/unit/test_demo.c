/* Unit tests for src/demo/demo.c: generation into a temp SQLite store and a temp
 * filesystem object store; counts, determinism, objects and thumbnails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/password.h"
#include "demo/demo.h"
#include "imaging/png.h"
#include "objstore/objstore.h"
#include "util/base64.h"

typedef struct env {
    char dir[64];
    char url[128];
    store_t *store;
    uv_loop_t loop;
    objstore_t *os;
} env;

static env *open_env(void)
{
    env *e = calloc(1, sizeof(*e));
    strcpy(e->dir, "/tmp/ogd-demo-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->url, sizeof(e->url), "sqlite://%s/db.sqlite3", e->dir);
    char err[256];
    assert_int_equal(store_migrate(e->url, err, sizeof(err)), 0);
    assert_int_equal(store_open(e->url, NULL, &e->store, err, sizeof(err)), 0);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    char ourl[128];
    snprintf(ourl, sizeof(ourl), "file://%s/objects", e->dir);
    objstore_options o = {.cache_max_entries = 0};
    assert_int_equal(objstore_open(ourl, &o, &e->loop, &e->os, err, sizeof(err)), 0);
    return e;
}

static void close_env(env *e)
{
    objstore_close(e->os, NULL, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    store_close(e->store);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
    assert_int_equal(system(cmd), 0);
    free(e);
}

static int64_t count_records(env *e)
{
    store_op_t op;
    store_op_init(&op, STORE_RECORDS_COUNT);
    assert_int_equal(store_run_sync(e->store, &op), 0);
    int64_t n = op.count;
    store_op_cleanup(&op);
    return n;
}

/* All records, ordered by _id (new reference). */
static json_t *all_records(env *e)
{
    store_op_t op;
    store_op_init(&op, STORE_RECORDS_FIND);
    const char *order = "_id asc";
    op.order = &order;
    op.norder = 1;
    assert_int_equal(store_run_sync(e->store, &op), 0);
    json_t *r = json_incref(op.result);
    store_op_cleanup(&op);
    assert_true(json_is_array(r));
    return r;
}

/* Reads a whole file (caller frees), or NULL. */
static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc((size_t)n + 1);
    assert_int_equal(fread(d, 1, (size_t)n, f), (size_t)n);
    d[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return d;
}

static unsigned char *read_object(env *e, const char *key, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/objects/%s", e->dir, key);
    return read_file(path, len);
}

/* Decodes a channel's base64 thumbnail. */
static void decode_thumbnail(json_t *ch, png_image *img)
{
    const char *b64 = json_string_value(json_object_get(ch, "thumbnail"));
    assert_non_null(b64);
    unsigned char *png = NULL;
    size_t len = 0;
    assert_int_equal(base64_decode(b64, strlen(b64), &png, &len), 0);
    assert_int_equal(png_decode(png, len, img), 0);
    free(png);
}

static void generate(env *e, uint64_t seed, bool images, int64_t n)
{
    demo_options o;
    demo_options_default(&o);
    o.records = n;
    o.seed = seed;
    o.images = images;
    assert_int_equal(demo_generate(&o, e->store, e->os, &e->loop, NULL), 0);
}

static void test_generate_with_images(void **state)
{
    env *e = open_env();
    demo_options o;
    demo_options_default(&o);
    o.records = 20;
    o.seed = 42;
    o.skip_if_not_empty = true;
    FILE *progress = tmpfile();
    assert_int_equal(demo_generate(&o, e->store, e->os, &e->loop, progress), 0);
    assert_int_equal(count_records(e), 20);

    /* Second run with skip_if_not_empty does nothing. */
    assert_int_equal(demo_generate(&o, e->store, e->os, &e->loop, progress), DEMO_SKIPPED);
    assert_int_equal(count_records(e), 20);
    fclose(progress);

    /* Manifest: every generated channel, with types. */
    store_op_t op;
    store_op_init(&op, STORE_MANIFEST_LATEST);
    assert_int_equal(store_run_sync(e->store, &op), 0);
    assert_string_equal(json_string_value(json_object_get(op.result, "_id")), "20230605080000");
    json_t *mch = json_object_get(op.result, "channels");
    assert_int_equal(json_object_size(mch), 25);
    json_t *m = json_object_get(mch, "PM-201-FE-CAM-1");
    assert_string_equal(json_string_value(json_object_get(m, "type")), "image");
    m = json_object_get(mch, "PM-201-HJ-PD");
    assert_string_equal(json_string_value(json_object_get(m, "type")), "waveform");
    m = json_object_get(mch, "PM-201-FE-EM");
    assert_string_equal(json_string_value(json_object_get(m, "type")), "scalar");
    assert_string_equal(json_string_value(json_object_get(m, "units")), "mJ");
    assert_string_equal(json_string_value(json_object_get(m, "path")), "/PM-201/FE");
    m = json_object_get(mch, "TS-202-TSM-WFS-COEF");
    assert_int_equal(json_array_size(json_object_get(m, "labels")), 8);
    store_op_cleanup(&op);

    json_t *recs = all_records(e);
    assert_int_equal(json_array_size(recs), 20);
    json_t *r0 = json_array_get(recs, 0);
    assert_string_equal(json_string_value(json_object_get(r0, "_id")), "20230605080000");
    json_t *meta = json_object_get(r0, "metadata");
    assert_int_equal(json_integer_value(json_object_get(meta, "shotnum")), 423648000000);
    assert_string_equal(json_string_value(json_object_get(meta, "timestamp")),
                        "2023-06-05T08:00:00");
    assert_string_equal(json_string_value(json_object_get(meta, "active_area")), "ea1");
    assert_string_equal(json_string_value(json_object_get(meta, "epac_ops_data_version")), "1.0");
    json_t *r1 = json_array_get(recs, 1);
    assert_string_equal(json_string_value(json_object_get(r1, "_id")), "20230605080010");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(r1, "metadata"), "shotnum")),
        423648001800);

    size_t images = 0;
    size_t i;
    json_t *rec;
    json_array_foreach(recs, i, rec)
    {
        const char *id = json_string_value(json_object_get(rec, "_id"));
        json_t *chans = json_object_get(rec, "channels");
        json_t *s = json_object_get(chans, "SER-202-OP-MODE");
        assert_true(json_is_string(json_object_get(s, "data")));
        s = json_object_get(chans, "LA-201-OSC-REP");
        assert_true(json_is_integer(json_object_get(s, "data")));
        s = json_object_get(chans, "SER-202-BI-RH-1");
        assert_true(json_is_real(json_object_get(s, "data")));
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(s, "metadata"), "units")), "%RH");

        const char *cams[2] = {"PM-201-FE-CAM-1", "PM-201-FE-CAM-2"};
        for (int c = 0; c < 2; c++) {
            json_t *ch = json_object_get(chans, cams[c]);
            if (!ch)
                continue; /* CAM-2 may be missing on a shot */
            images++;
            json_t *cm = json_object_get(ch, "metadata");
            assert_string_equal(json_string_value(json_object_get(cm, "channel_dtype")), "image");
            assert_int_equal(json_integer_value(json_object_get(cm, "bit_depth")), 12);
            char key[256];
            snprintf(key, sizeof(key), "images/%.4s/%.2s/%.2s/%s/%s.png", id, id + 4, id + 6,
                     id + 8, cams[c]);
            assert_string_equal(json_string_value(json_object_get(ch, "image_path")),
                                key + strlen("images/"));
            size_t len = 0;
            unsigned char *png = read_object(e, key, &len);
            assert_non_null(png);
            png_image img;
            assert_int_equal(png_decode(png, len, &img), 0);
            assert_int_equal(img.width, 320);
            assert_int_equal(img.height, 240);
            assert_int_equal(img.bit_depth, 16);
            assert_int_equal(img.color_type, PNG_COLOR_GRAY);
            assert_int_equal(img.sbit, 12);
            const uint16_t *px = img.pixels;
            uint16_t maxv = 0;
            for (size_t k = 0; k < (size_t)img.width * img.height; k++) {
                assert_int_equal(px[k] & 0xf, 0);
                if (px[k] > maxv)
                    maxv = px[k];
            }
            assert_true(maxv > (1000 << 4)); /* there is a beam */
            png_image_free(&img);
            free(png);

            png_image th;
            decode_thumbnail(ch, &th);
            assert_true(th.width <= 50 && th.height <= 50);
            assert_int_equal(th.width, 50);
            assert_int_equal(th.height, 38);
            assert_int_equal(th.bit_depth, 8);
            assert_int_equal(th.color_type, PNG_COLOR_GRAY);
            png_image_free(&th);
        }

        const char *wfs[2] = {"PM-201-FE-PD", "PM-201-HJ-PD"};
        for (int w = 0; w < 2; w++) {
            json_t *ch = json_object_get(chans, wfs[w]);
            if (!ch)
                continue;
            char key[256];
            snprintf(key, sizeof(key), "waveforms/%.4s/%.2s/%.2s/%s/%s.json", id, id + 4, id + 6,
                     id + 8, wfs[w]);
            assert_string_equal(json_string_value(json_object_get(ch, "waveform_path")),
                                key + strlen("waveforms/"));
            size_t len = 0;
            unsigned char *text = read_object(e, key, &len);
            assert_non_null(text);
            assert_memory_equal(text, "{\n  \"x\": [\n    0.0,\n    0.1,\n", 27);
            json_t *doc = json_loadb((const char *)text, len, 0, NULL);
            assert_non_null(doc);
            assert_int_equal(json_array_size(json_object_get(doc, "x")), 500);
            assert_int_equal(json_array_size(json_object_get(doc, "y")), 500);
            json_decref(doc);
            free(text);
            png_image th;
            decode_thumbnail(ch, &th);
            assert_int_equal(th.width, 100);
            assert_int_equal(th.height, 100);
            assert_int_equal(th.color_type, PNG_COLOR_RGBA);
            png_image_free(&th);
        }

        json_t *vec = json_object_get(chans, "TS-202-TSM-WFS-COEF");
        assert_non_null(vec);
        char key[256];
        snprintf(key, sizeof(key), "vectors/%.4s/%.2s/%.2s/%s/TS-202-TSM-WFS-COEF.json", id, id + 4,
                 id + 6, id + 8);
        size_t len = 0;
        unsigned char *text = read_object(e, key, &len);
        assert_non_null(text);
        json_t *doc = json_loadb((const char *)text, len, 0, NULL);
        assert_int_equal(json_array_size(json_object_get(doc, "data")), 8);
        json_decref(doc);
        free(text);
        png_image th;
        decode_thumbnail(vec, &th);
        assert_int_equal(th.width, 100);
        assert_int_equal(th.height, 100);
        png_image_free(&th);
    }
    assert_true(images >= 30);
    json_decref(recs);
    close_env(e);
}

/* Scalar channel data of every record, as one JSON object {id: {channel: data}}. */
static json_t *scalar_values(json_t *recs)
{
    json_t *out = json_object();
    size_t i;
    json_t *rec;
    json_array_foreach(recs, i, rec)
    {
        json_t *vals = json_object();
        const char *name;
        json_t *ch;
        json_object_foreach(json_object_get(rec, "channels"), name, ch)
        {
            json_t *cm = json_object_get(ch, "metadata");
            const char *dt = json_string_value(json_object_get(cm, "channel_dtype"));
            if (strcmp(dt, "scalar") == 0)
                json_object_set(vals, name, json_object_get(ch, "data"));
        }
        json_object_set_new(out, json_string_value(json_object_get(rec, "_id")), vals);
    }
    return out;
}

static void test_deterministic(void **state)
{
    env *a = open_env();
    env *b = open_env();
    env *c = open_env();
    env *d = open_env();
    generate(a, 7, true, 20);
    generate(b, 7, true, 20);
    generate(c, 8, true, 20);
    generate(d, 7, false, 20);
    json_t *ra = all_records(a);
    json_t *rb = all_records(b);
    json_t *rc = all_records(c);
    json_t *rd = all_records(d);
    /* Same seed: identical documents (ids, values, thumbnails) and identical objects. */
    assert_true(json_equal(ra, rb));
    const char *key = "images/2023/06/05/080130/PM-201-FE-CAM-1.png";
    size_t la = 0;
    size_t lb = 0;
    unsigned char *oa = read_object(a, key, &la);
    unsigned char *ob = read_object(b, key, &lb);
    assert_non_null(oa);
    assert_non_null(ob);
    assert_int_equal(la, lb);
    assert_memory_equal(oa, ob, la);
    free(oa);
    free(ob);

    /* Another seed: same ids, other values. */
    json_t *sa = scalar_values(ra);
    json_t *sc = scalar_values(rc);
    json_t *sd = scalar_values(rd);
    assert_int_equal(json_object_size(sa), json_object_size(sc));
    const char *id;
    json_t *v;
    json_object_foreach(sa, id, v)
    {
        assert_non_null(json_object_get(sc, id));
    }
    assert_false(json_equal(sa, sc));
    /* Scalars do not depend on images being generated. */
    assert_true(json_equal(sa, sd));
    json_t *d0 = json_object_get(json_array_get(rd, 0), "channels");
    assert_null(json_object_get(d0, "PM-201-FE-CAM-1"));

    json_decref(sa);
    json_decref(sc);
    json_decref(sd);
    json_decref(ra);
    json_decref(rb);
    json_decref(rc);
    json_decref(rd);
    close_env(a);
    close_env(b);
    close_env(c);
    close_env(d);
}

static void test_demo_user(void **state)
{
    (void)state;
    env *e = open_env();
    assert_int_equal(demo_create_user(e->store), 0);
    assert_int_equal(demo_create_user(e->store), 0); /* idempotent */
    store_op_t op;
    store_op_init(&op, STORE_USER_GET);
    op.id = "demo";
    assert_int_equal(store_run_sync(e->store, &op), 0);
    assert_string_equal(json_string_value(json_object_get(op.result, "auth_type")), "local");
    /* stored as new passwords are: argon2id, verifying "demo", nothing to upgrade */
    const char *stored = json_string_value(json_object_get(op.result, "password_hash"));
    assert_non_null(stored);
    assert_true(strncmp(stored, "$argon2id$", 10) == 0);
    bool upgrade = true;
    assert_true(password_verify("demo", stored, &upgrade));
    assert_false(upgrade);
    assert_false(password_verify("dem0", stored, NULL));
    assert_null(json_object_get(op.result, "sha256_password"));
    json_t *routes = json_object_get(op.result, "authorised_routes");
    assert_int_equal(json_array_size(routes), 10);
    store_op_cleanup(&op);
    close_env(e);
}

static void test_scalar_only_and_errors(void **state)
{
    env *e = open_env();
    demo_options o;
    demo_options_default(&o);
    o.records = 1200;
    o.images = false;
    char *text = NULL;
    size_t tlen = 0;
    FILE *progress = open_memstream(&text, &tlen);
    /* No object store needed without images. */
    assert_int_equal(demo_generate(&o, e->store, NULL, NULL, progress), 0);
    fclose(progress);
    assert_non_null(strstr(text, "1000/1200 records"));
    assert_non_null(strstr(text, "generated 1200 records"));
    free(text);
    assert_int_equal(count_records(e), 1200);

    /* Some channels are missing on some shots. */
    store_op_t op;
    store_op_init(&op, STORE_RECORDS_COUNT);
    char err[256];
    filter_t *flt = NULL;
    json_t *cond =
        json_loads("{\"channels.TS-202-TSM-P1-CAM-2-FWHMX\":{\"$exists\":true}}", 0, NULL);
    assert_int_equal(filter_compile(cond, true, &flt, err, sizeof(err)), 0);
    op.filter = flt;
    assert_int_equal(store_run_sync(e->store, &op), 0);
    assert_true(op.count > 900 && op.count < 1200);
    store_op_cleanup(&op);
    filter_free(flt);
    json_decref(cond);

    o.images = true;
    assert_int_equal(demo_generate(&o, e->store, NULL, NULL, NULL), -EINVAL);
    o.images = false;
    o.records = -1;
    assert_int_equal(demo_generate(&o, e->store, NULL, NULL, NULL), -EINVAL);
    close_env(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_with_images),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_scalar_only_and_errors),
        cmocka_unit_test(test_demo_user),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
