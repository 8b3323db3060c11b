/*
 * The object store's contract (src/objstore/objstore.h), one suite run on every back end:
 * the filesystem (a fresh temp directory) and S3 (the RGW of OGD_TEST_S3_URL, a fresh
 * bucket; skipped without it), as the store suite runs on both databases. Each case
 * states what a caller may rely on whichever back end serves it: round trips of odd keys
 * and empty objects, -ENOENT for what is missing, overwrites seen at once (through the
 * cache too), deletes that succeed on missing objects, prefix deletes that count what they
 * removed and stop at the prefix, keys refused up front with no callback, large objects
 * (S3's multipart path), callbacks never run inside the call, cancellation and close
 * with requests pending (-ECANCELED, once).
 *
 * Back-end-specific behaviour (the fs back end's atomic writes, S3 retries and faults)
 * stays in test_objstore.c and test_s3.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objstore/objstore.h"
#include "objstore_harness.h"

typedef struct backend {
    const char *name;
    char url[512];
    objstore_options opts;
    bool available;
} backend;

static char fs_dir[] = "/tmp/ogd-contract-XXXXXX";
static char bucket[64];

static env *open_env(const backend *b)
{
    return open_url(b->url, &b->opts);
}

static res head(env *e, const char *key)
{
    res r = {0};
    assert_int_equal(objstore_head(e->os, key, on_head, &r, NULL), 0);
    assert_int_equal(r.calls, 0);
    run_until(e, &r.calls, 1);
    return r;
}

static int del(env *e, const char *key)
{
    res r = {0};
    assert_int_equal(objstore_delete(e->os, key, on_done, &r, NULL), 0);
    assert_int_equal(r.calls, 0);
    run_until(e, &r.calls, 1);
    return r.status;
}

static res del_prefix(env *e, const char *prefix)
{
    res r = {0};
    assert_int_equal(objstore_delete_prefix(e->os, prefix, on_count, &r, NULL), 0);
    assert_int_equal(r.calls, 0);
    run_until(e, &r.calls, 1);
    return r;
}

static void expect_object(env *e, const char *key, const void *bytes, size_t len)
{
    res r = get(e, key);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, len);
    if (len)
        assert_memory_equal(r.bytes, bytes, len);
    assert_int_equal(r.bytes[len], 0); /* blobs end with a NUL */
    free(r.bytes);
    res h = head(e, key);
    assert_int_equal(h.status, 0);
    assert_int_equal(h.value, len);
}

static void expect_missing(env *e, const char *key)
{
    assert_int_equal(get(e, key).status, -ENOENT);
    assert_int_equal(head(e, key).status, -ENOENT);
}

#define SKIP_UNLESS_AVAILABLE(b)                                                                   \
    do {                                                                                           \
        if (!(b)->available) {                                                                     \
            fprintf(stderr, "%s back end not configured: skipped\n", (b)->name);                   \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- the cases ---- */

static void test_round_trip(void **state)
{
    const backend *b = *state;
    SKIP_UNLESS_AVAILABLE(b);
    env *e = open_env(b);
    const char *keys[] = {"rt/images/2023/06/05/100000/CAM-1.png", "rt/odd key+&=?%#'\"<>~.json",
                          "rt/ünïcode/ß.npz", "rt/empty"};
    /* the lengths come from the literals: binary bytes, a NUL inside, nothing at all */
#define BYTES(lit)                                                                                 \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }
    const struct {
        const char *bytes;
        size_t len;
    } vals[] = {BYTES("\x89PNG\r\n\x1a\n bytes"), BYTES("{\"x\": [1, 2]}"), BYTES("\0\1\2\3"),
                BYTES("")};
#undef BYTES
    for (int i = 0; i < 4; i++)
        assert_int_equal(put(e, keys[i], vals[i].bytes, vals[i].len), 0);
    for (int i = 0; i < 4; i++)
        expect_object(e, keys[i], vals[i].bytes, vals[i].len);
    expect_missing(e, "rt/missing");
    expect_missing(e, "rt/images/2023"); /* a "directory" is not an object */
    close_env(e);
}

static void test_overwrite_is_seen_at_once(void **state)
{
    const backend *b = *state;
    SKIP_UNLESS_AVAILABLE(b);
    env *e = open_env(b);
    assert_int_equal(put(e, "ow/a", "first", 5), 0);
    expect_object(e, "ow/a", "first", 5); /* now in the cache */
    assert_int_equal(put(e, "ow/a", "second!", 7), 0);
    expect_object(e, "ow/a", "second!", 7);
    close_env(e);
}

static void test_delete(void **state)
{
    const backend *b = *state;
    SKIP_UNLESS_AVAILABLE(b);
    env *e = open_env(b);
    assert_int_equal(put(e, "del/a", "x", 1), 0);
    expect_object(e, "del/a", "x", 1);
    assert_int_equal(del(e, "del/a"), 0);
    expect_missing(e, "del/a");
    assert_int_equal(del(e, "del/a"), 0);     /* a missing object deletes fine */
    assert_int_equal(del(e, "del/never"), 0); /* one that never was, too */
    close_env(e);
}

static void test_delete_prefix(void **state)
{
    const backend *b = *state;
    SKIP_UNLESS_AVAILABLE(b);
    env *e = open_env(b);
    const char *in[] = {"dp/r1/a.png", "dp/r1/b.json", "dp/r1/sub/c.npz"};
    const char *out[] = {"dp/r10/a.png", "dp/r2/a.png", "dp/r1x"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(put(e, in[i], "in", 2), 0);
        assert_int_equal(put(e, out[i], "out", 3), 0);
    }
    res r = del_prefix(e, "dp/r1/");
    assert_int_equal(r.status, 0);
    assert_int_equal(r.value, 3);
    for (int i = 0; i < 3; i++) {
        expect_missing(e, in[i]);
        expect_object(e, out[i], "out", 3); /* the prefix is a whole path segment */
    }
    r = del_prefix(e, "dp/nothing/");
    assert_int_equal(r.status, 0);
    assert_int_equal(r.value, 0);
    close_env(e);
}

static void test_bad_keys_refused_up_front(void **state)
{
    const backend *b = *state;
    SKIP_UNLESS_AVAILABLE(b);
    env *e = open_env(b);
    const char *bad[] = {"",          "/abs",        "a//b",    "a/./b",       "a/../b",
                         "trailing/", "back\\slash", "ctl\x01", "x/.ogd-tmp-1"};
    res r = {0};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(objstore_get(e->os, bad[i], on_get, &r, NULL), -EINVAL);
        assert_int_equal(objstore_put(e->os, bad[i], "x", 1, on_done, &r, NULL), -EINVAL);
        assert_int_equal(objstore_head(e->os, bad[i], on_head, &r, NULL), -EINVAL);
        assert_int_equal(objstore_delete(e->os, bad[i], on_done, &r, NULL), -EINVAL);
    }
    assert_int_equal(objstore_delete_prefix(e->os, "", on_count, &r, NULL), -EINVAL);
    char longkey[OBJSTORE_KEY_MAX + 8];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    assert_int_equal(objstore_get(e->os, longkey, on_get, &r, NULL), -ENAMETOOLONG);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    assert_int_equal(r.calls, 0); /* a refused call never calls back */
    close_env(e);
}

static void test_large_object(void **state)
{
    const backend *b = *state;
    SKIP_UNLESS_AVAILABLE(b);
    env *e = open_env(b);
    size_t len = (size_t)11 << 20; /* over the multipart threshold set below: 3 parts */
    unsigned char *big = malloc(len);
    assert_non_null(big);
    uint32_t x = 7;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        big[i] = (unsigned char)(x >> 16);
    }
    assert_int_equal(put(e, "big/obj.npz", big, len), 0);
    expect_object(e, "big/obj.npz", big, len);
    free(big);
    close_env(e);
}

static void test_cancel_calls_back_once(void **state)
{
    const backend *b = *state;
    SKIP_UNLESS_AVAILABLE(b);
    env *e = open_env(b);
    assert_int_equal(put(e, "cx/a", "abc", 3), 0);
    objstore_cache_clear(e->os);
    res g = {0}, p = {0};
    objstore_req_t *rg = NULL, *rp = NULL;
    assert_int_equal(objstore_get(e->os, "cx/a", on_get, &g, &rg), 0);
    assert_int_equal(objstore_put(e->os, "cx/b", "def", 3, on_done, &p, &rp), 0);
    objstore_cancel(rg);
    objstore_cancel(rp);
    assert_int_equal(g.calls + p.calls, 0); /* never inside the call */
    run_until(e, &g.calls, 1);
    run_until(e, &p.calls, 1);
    assert_int_equal(g.status, -ECANCELED);
    assert_int_equal(p.status, -ECANCELED);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(p.calls, 1);
    close_env(e);
}

static void test_close_with_requests_pending(void **state)
{
    const backend *b = *state;
    SKIP_UNLESS_AVAILABLE(b);
    env *e = open_env(b);
    assert_int_equal(put(e, "cl/a", "abc", 3), 0);
    objstore_cache_clear(e->os);
    enum { N = 8 };
    res r[N];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < N; i++)
        assert_int_equal(objstore_get(e->os, "cl/a", on_get, &r[i], NULL), 0);
    objstore_close(e->os, on_closed, &e->closed);
    res late = {0};
    assert_int_equal(objstore_get(e->os, "cl/a", on_get, &late, NULL), -ESHUTDOWN);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(e->closed, 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, -ECANCELED);
    }
    assert_int_equal(late.calls, 0);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    free(e);
}

/* ---- the back ends ---- */

static backend fs_backend = {.name = "fs"};
static backend s3_backend = {.name = "s3"};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(fs_dir))
        return -1;
    snprintf(fs_backend.url, sizeof(fs_backend.url), "file://%s", fs_dir);
    fs_backend.opts = (objstore_options){.cache_max_entries = 64, .bucket = "contract"};
    fs_backend.available = true;

    const char *url = getenv("OGD_TEST_S3_URL");
    const char *ak = getenv("OGD_TEST_S3_ACCESS_KEY");
    const char *sk = getenv("OGD_TEST_S3_SECRET_KEY");
    if (url && ak && sk) {
        snprintf(bucket, sizeof(bucket), "ogd-contract-%d", (int)getpid());
        snprintf(s3_backend.url, sizeof(s3_backend.url), "%s", url);
        s3_backend.opts = (objstore_options){.cache_max_entries = 64,
                                             .bucket = bucket,
                                             .access_key = ak,
                                             .secret_key = sk,
                                             .request_timeout_ms = 30000,
                                             .multipart_threshold = (size_t)5 << 20,
                                             .multipart_part_size = (size_t)5 << 20};
        objstore_options create = s3_backend.opts;
        create.create_bucket = true;
        char err[256];
        if (objstore_prepare(url, &create, err, sizeof(err)) != 0) {
            fprintf(stderr, "cannot create the contract bucket: %s\n", err);
            return -1;
        }
        s3_backend.available = true;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nftw(fs_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (s3_backend.available) { /* empty the bucket; the RGW of the tests is thrown away */
        uv_loop_t loop;
        uv_loop_init(&loop);
        objstore_t *os;
        char err[256];
        if (objstore_open(s3_backend.url, &s3_backend.opts, &loop, &os, err, sizeof(err)) == 0) {
            const char *prefixes[] = {"rt/", "ow/", "del/", "dp/", "big/", "cx/", "cl/"};
            res r[7];
            memset(r, 0, sizeof(r));
            for (int i = 0; i < 7; i++)
                objstore_delete_prefix(os, prefixes[i], on_count, &r[i], NULL);
            uv_run(&loop, UV_RUN_DEFAULT);
            int closed = 0;
            objstore_close(os, on_closed, &closed);
            uv_run(&loop, UV_RUN_DEFAULT);
        }
        uv_loop_close(&loop);
    }
    return 0;
}

/* Each case once per back end, named "case [back end]" in cmocka's output. */
#define CASE(fn, b, tag)                                                                           \
    {                                                                                              \
#fn " [" tag "]", fn, NULL, NULL, &b                                                       \
    }
#define CASES(b, tag)                                                                              \
    CASE(test_round_trip, b, tag), CASE(test_overwrite_is_seen_at_once, b, tag),                   \
        CASE(test_delete, b, tag), CASE(test_delete_prefix, b, tag),                               \
        CASE(test_bad_keys_refused_up_front, b, tag), CASE(test_large_object, b, tag),             \
        CASE(test_cancel_calls_back_once, b, tag), CASE(test_close_with_requests_pending, b, tag)

int main(void)
{
    const struct CMUnitTest tests[] = {CASES(fs_backend, "fs"), CASES(s3_backend, "s3")};
    return cmocka_run_group_tests(tests, setup, teardown);
}
