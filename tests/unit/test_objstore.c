/* Unit tests for src/objstore: the filesystem back end, the cache, single-flight GETs,
 * cancellation, key validation and the key layout. A real loop and a temp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "objstore/keys.h"
#include "objstore/objstore.h"

typedef struct env {
    uv_loop_t loop;
    objstore_t *os;
    char dir[64];
} env;

static env *open_env(size_t entries, size_t bytes)
{
    env *e = calloc(1, sizeof(*e));
    strcpy(e->dir, "/tmp/ogd-objstore-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    uv_loop_init(&e->loop);
    char url[128], err[256];
    snprintf(url, sizeof(url), "file://%s", e->dir);
    objstore_options o = {.cache_max_entries = entries, .cache_max_bytes = bytes};
    assert_int_equal(objstore_open(url, &o, &e->loop, &e->os, err, sizeof(err)), 0);
    return e;
}

static void close_env(env *e)
{
    objstore_close(e->os);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
    assert_int_equal(system(cmd), 0);
    free(e);
}

typedef struct got {
    int calls;
    int status;
    char text[256];
    size_t len;
} got;

static void on_get(int status, const objstore_blob_t *blob, void *data)
{
    got *g = data;
    g->calls++;
    g->status = status;
    if (blob) {
        g->len = blob->len;
        memcpy(g->text, blob->data, blob->len < 255 ? blob->len : 255);
        g->text[blob->len < 255 ? blob->len : 255] = '\0';
    }
}

static void on_done(int status, void *data)
{
    *(int *)data = status == 0 ? 1 : status;
}

static void put(env *e, const char *key, const char *text)
{
    int done = 0;
    assert_int_equal(objstore_put(e->os, key, text, strlen(text), on_done, &done), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
}

static got get(env *e, const char *key)
{
    got g = {0};
    assert_int_equal(objstore_get(e->os, key, on_get, &g, NULL), 0);
    assert_int_equal(g.calls, 0); /* never inside the call */
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    return g;
}

static void test_round_trip_and_missing(void **state)
{
    (void)state;
    env *e = open_env(0, 0);
    put(e, "images/2023/06/05/080000/CAM.png", "pixels");
    got g = get(e, "images/2023/06/05/080000/CAM.png");
    assert_int_equal(g.status, 0);
    assert_string_equal(g.text, "pixels");
    g = get(e, "images/nope.png");
    assert_int_equal(g.status, -ENOENT);
    put(e, "images/2023/06/05/080000/CAM.png", "newer");
    assert_string_equal(get(e, "images/2023/06/05/080000/CAM.png").text, "newer");
    /* no temporary files are left next to the object */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A %s/images/2023/06/05/080000 | grep tmp)\"",
             e->dir);
    assert_int_equal(system(cmd), 0);
    close_env(e);
}

static void test_key_validation(void **state)
{
    (void)state;
    env *e = open_env(0, 0);
    got g = {0};
    const char *bad[] = {"../etc/passwd", "/abs", "a//b", "a/./b", "a\\b", "", "a/.."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(objstore_get(e->os, bad[i], on_get, &g, NULL), -EINVAL);
    int done = 0;
    assert_int_equal(objstore_put(e->os, "../x", "a", 1, on_done, &done), -EINVAL);
    assert_int_equal(g.calls, 0);
    close_env(e);
}

static void test_cache_and_single_flight(void **state)
{
    (void)state;
    env *e = open_env(2, 1 << 20);
    put(e, "a/1", "one");
    put(e, "a/2", "two");
    put(e, "a/3", "three");
    got gs[5] = {0};
    for (int i = 0; i < 5; i++)
        assert_int_equal(objstore_get(e->os, "a/1", on_get, &gs[i], NULL), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    objstore_stats st;
    objstore_stats_get(e->os, &st);
    assert_int_equal(st.misses, 1); /* one back-end read for five GETs */
    assert_int_equal(st.shared, 4);
    for (int i = 0; i < 5; i++)
        assert_string_equal(gs[i].text, "one");
    get(e, "a/1");
    objstore_stats_get(e->os, &st);
    assert_int_equal(st.hits, 1);
    get(e, "a/2");
    get(e, "a/3"); /* evicts a/1 (two entries at most) */
    objstore_stats_get(e->os, &st);
    assert_int_equal(st.cache_entries, 2);
    get(e, "a/1");
    objstore_stats_get(e->os, &st);
    assert_int_equal(st.misses, 4);
    objstore_cache_clear(e->os);
    objstore_stats_get(e->os, &st);
    assert_int_equal(st.cache_entries, 0);
    close_env(e);
}

static void test_cache_byte_bound(void **state)
{
    (void)state;
    env *e = open_env(100, 8);
    put(e, "big", "0123456789");
    put(e, "s1", "abcd");
    put(e, "s2", "efgh");
    put(e, "s3", "ij");
    get(e, "big"); /* larger than the cache: served, not kept */
    get(e, "s1");
    get(e, "s2");
    objstore_stats st;
    objstore_stats_get(e->os, &st);
    assert_int_equal(st.cache_entries, 2);
    assert_int_equal(st.cache_bytes, 8);
    get(e, "s3"); /* evicts s1 */
    objstore_stats_get(e->os, &st);
    assert_true(st.cache_bytes <= 8);
    assert_int_equal(st.cache_entries, 2);
    close_env(e);
}

static void on_count(int status, size_t count, void *data)
{
    size_t *out = data;
    *out = status == 0 ? count : (size_t)-1;
}

static void test_delete_and_prefix(void **state)
{
    (void)state;
    env *e = open_env(10, 1 << 20);
    put(e, "images/2023/06/05/080000/A.png", "a");
    put(e, "images/2023/06/05/080000/B.png", "b");
    put(e, "images/20230605080000/A.png", "legacy");
    put(e, "images/2023/06/05/090000/A.png", "other");
    get(e, "images/2023/06/05/080000/A.png"); /* cached */
    size_t n = 0;
    assert_int_equal(
        objstore_delete_prefix(e->os, "images/2023/06/05/080000/", on_count, &n), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(n, 2);
    assert_int_equal(get(e, "images/2023/06/05/080000/A.png").status, -ENOENT);
    assert_string_equal(get(e, "images/2023/06/05/090000/A.png").text, "other");
    int done = 0;
    assert_int_equal(objstore_delete(e->os, "images/20230605080000/A.png", on_done, &done), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    assert_int_equal(objstore_delete_prefix(e->os, "waveforms/none/", on_count, &n), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(n, 0);
    close_env(e);
}

static void test_cancel(void **state)
{
    (void)state;
    env *e = open_env(10, 1 << 20);
    put(e, "k", "v");
    got a = {0}, b = {0};
    objstore_req_t *ra;
    assert_int_equal(objstore_get(e->os, "k", on_get, &a, &ra), 0);
    assert_int_equal(objstore_get(e->os, "k", on_get, &b, NULL), 0);
    objstore_cancel(ra);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, -ECANCELED);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, 0);
    /* a cancelled cache hit */
    got c = {0};
    objstore_req_t *rc;
    assert_int_equal(objstore_get(e->os, "k", on_get, &c, &rc), 0);
    objstore_cancel(rc);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, -ECANCELED);
    close_env(e);
}

static void test_key_layout_and_legacy_fallback(void **state)
{
    (void)state;
    char key[OBJSTORE_KEY_MAX];
    assert_int_equal(objstore_key_new(OBJ_IMAGE, "20230605100000", "FE-CAM-1", key), 0);
    assert_string_equal(key, "images/2023/06/05/100000/FE-CAM-1.png");
    assert_int_equal(objstore_key_legacy(OBJ_WAVEFORM, "20230605100000", "PD", key), 0);
    assert_string_equal(key, "waveforms/20230605100000/PD.json");
    assert_int_equal(objstore_key_new(OBJ_FLOAT_IMAGE, "12345678", "W", key), 0);
    assert_string_equal(key, "float_images/12345678/W.npz");
    char prefixes[8][256];
    assert_int_equal(objstore_record_prefixes("20230605100000", prefixes), 8);
    assert_string_equal(prefixes[0], "waveforms/2023/06/05/100000/");
    assert_string_equal(prefixes[1], "waveforms/20230605100000/");
    assert_string_equal(prefixes[7], "float_images/20230605100000/");
    assert_string_equal(objstore_kind_class(OBJ_FLOAT_IMAGE), "FloatImage");
    assert_int_equal(objstore_kind_parse("vector"), OBJ_VECTOR);
    assert_int_equal(objstore_kind_parse("scalar"), -1);

    env *e = open_env(0, 0);
    put(e, "vectors/20230605080300/C.json", "{\"data\":[1]}");
    got g = {0};
    assert_int_equal(
        objstore_get_channel(e->os, OBJ_VECTOR, "20230605080300", "C", on_get, &g), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(g.status, 0);
    assert_string_equal(g.text, "{\"data\":[1]}");
    got m = {0};
    assert_int_equal(
        objstore_get_channel(e->os, OBJ_VECTOR, "20230605080300", "missing", on_get, &m), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(m.status, -ENOENT);
    close_env(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_missing),
        cmocka_unit_test(test_key_validation),
        cmocka_unit_test(test_cache_and_single_flight),
        cmocka_unit_test(test_cache_byte_bound),
        cmocka_unit_test(test_delete_and_prefix),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_key_layout_and_legacy_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
