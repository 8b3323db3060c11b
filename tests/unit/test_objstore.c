/*
 * Unit tests for src/objstore: the filesystem back end (round trip, atomic writes,
 * deletes), the cache (hits, LRU by entries and by bytes, oversize objects, clearing,
 * invalidation by writes), single-flight GETs, cancellation, close (also after a uv_walk
 * closed every handle), key validation and the key layout with its legacy fallback.
 *
 * Every test runs a real libuv loop over a fresh temp directory and ends by closing the
 * store, running the loop to completion and closing the loop, so LeakSanitizer sees
 * every allocation returned.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "objstore/coherence.h"
#include "objstore/keys.h"
#include "objstore/objstore.h"

typedef struct env {
    uv_loop_t loop;
    objstore_t *os;
    char dir[64];
    int closed;
} env;

static env *open_env_bucket(size_t entries, size_t bytes, const char *bucket)
{
    env *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    strcpy(e->dir, "/tmp/ogd-objstore-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    assert_int_equal(uv_loop_init(&e->loop), 0);
    char url[128], err[256];
    snprintf(url, sizeof(url), "file://%s", e->dir);
    objstore_options o = {.cache_max_entries = entries, .cache_max_bytes = bytes, .bucket = bucket};
    assert_int_equal(objstore_open(url, &o, &e->loop, &e->os, err, sizeof(err)), 0);
    return e;
}

static env *open_env(size_t entries, size_t bytes)
{
    return open_env_bucket(entries, bytes, NULL);
}

static void on_closed(void *data)
{
    (*(int *)data)++;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void remove_dir(const char *dir)
{
    assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static void close_env(env *e)
{
    objstore_close(e->os, on_closed, &e->closed);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(e->closed, 1);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    remove_dir(e->dir);
    free(e);
}

static void run(env *e)
{
    uv_run(&e->loop, UV_RUN_DEFAULT);
}

/* ---- callback recorders ---- */

typedef struct got {
    int calls;
    int status;
    size_t len;
    char text[256];
    const objstore_blob_t *blob; /* as borrowed: only compared, never read after */
} got;

static void on_get(int status, const objstore_blob_t *blob, void *data)
{
    got *g = data;
    g->calls++;
    g->status = status;
    g->blob = blob;
    if (status == 0) {
        assert_non_null(blob);
        g->len = blob->len;
        size_t n = blob->len < sizeof(g->text) - 1 ? blob->len : sizeof(g->text) - 1;
        memcpy(g->text, blob->data, n);
        g->text[n] = '\0';
        assert_int_equal(blob->data[blob->len], 0); /* NUL after the bytes */
    } else {
        assert_null(blob);
    }
}

typedef struct done {
    int calls;
    int status;
    uint64_t value;
} done;

static void on_done(int status, void *data)
{
    done *d = data;
    d->calls++;
    d->status = status;
}

static void on_count(int status, size_t removed, void *data)
{
    done *d = data;
    d->calls++;
    d->status = status;
    d->value = removed;
}

static void on_head(int status, uint64_t size, void *data)
{
    done *d = data;
    d->calls++;
    d->status = status;
    d->value = size;
}

static void put(env *e, const char *key, const char *text)
{
    done d = {0};
    assert_int_equal(objstore_put(e->os, key, text, strlen(text), on_done, &d, NULL), 0);
    assert_int_equal(d.calls, 0);
    run(e);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);
}

static got get(env *e, const char *key)
{
    got g = {0};
    assert_int_equal(objstore_get(e->os, key, on_get, &g, NULL), 0);
    assert_int_equal(g.calls, 0); /* never inside the call, not even for a hit */
    run(e);
    assert_int_equal(g.calls, 1);
    return g;
}

static objstore_stats stats(env *e)
{
    objstore_stats st;
    objstore_stats_get(e->os, &st);
    return st;
}

static bool file_exists(env *e, const char *rel)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", e->dir, rel);
    struct stat st;
    return stat(path, &st) == 0;
}

static int tmp_files;

static int count_tmp(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    if (flag == FTW_F && strncmp(path + ftw->base, ".ogd-tmp-", 9) == 0)
        tmp_files++;
    return 0;
}

static int temp_files_in(env *e)
{
    tmp_files = 0;
    assert_int_equal(nftw(e->dir, count_tmp, 16, FTW_PHYS), 0);
    return tmp_files;
}

/* ---- back end ---- */

static void test_round_trip_and_missing(void **state)
{
    (void)state;
    env *e = open_env(0, 0);
    assert_string_equal(objstore_backend_name(e->os), "fs");
    put(e, "images/2023/06/05/080000/CAM.png", "pixels");
    assert_true(file_exists(e, "images/2023/06/05/080000/CAM.png"));
    got g = get(e, "images/2023/06/05/080000/CAM.png");
    assert_int_equal(g.status, 0);
    assert_string_equal(g.text, "pixels");
    assert_int_equal(g.len, 6);

    assert_int_equal(get(e, "images/nope.png").status, -ENOENT);
    assert_int_equal(get(e, "images/2023").status, -ENOENT); /* a directory is no object */

    put(e, "images/2023/06/05/080000/CAM.png", "newer");
    assert_string_equal(get(e, "images/2023/06/05/080000/CAM.png").text, "newer");

    put(e, "empty", ""); /* zero-length objects are objects */
    g = get(e, "empty");
    assert_int_equal(g.status, 0);
    assert_int_equal(g.len, 0);

    done h = {0};
    assert_int_equal(objstore_head(e->os, "images/2023/06/05/080000/CAM.png", on_head, &h, NULL),
                     0);
    run(e);
    assert_int_equal(h.status, 0);
    assert_int_equal(h.value, 5);
    memset(&h, 0, sizeof(h));
    assert_int_equal(objstore_head(e->os, "missing", on_head, &h, NULL), 0);
    run(e);
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.status, -ENOENT);

    assert_int_equal(temp_files_in(e), 0);
    objstore_stats st = stats(e);
    assert_int_equal(st.puts, 3);
    assert_int_equal(st.bytes_written, 6 + 5);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.in_flight, 0);
    close_env(e);
}

static void test_bucket_directory(void **state)
{
    (void)state;
    env *e = open_env_bucket(0, 0, "og-bucket");
    put(e, "vectors/1/V.json", "{}");
    assert_true(file_exists(e, "og-bucket/vectors/1/V.json"));
    assert_string_equal(get(e, "vectors/1/V.json").text, "{}");
    close_env(e);
}

static void test_open_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    objstore_t *os = NULL;
    char err[256];
    /* S3 needs a bucket and credentials; an endpoint without a host is refused. */
    assert_int_equal(objstore_open("http://127.0.0.1:9000", NULL, &loop, &os, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "echo.bucket_name: required when echo.url is http(s)");
    objstore_options s3o = {.bucket = "b"};
    assert_int_equal(objstore_open("https://s3.example", &s3o, &loop, &os, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "echo.access_key"));
    s3o.access_key = "a";
    s3o.secret_key = "s";
    assert_int_equal(objstore_open("http:///bucket", &s3o, &loop, &os, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "no host"));
    assert_int_equal(objstore_open("ftp://x/y", NULL, &loop, &os, err, sizeof(err)), -EINVAL);
    assert_int_equal(objstore_open("/just/a/path", NULL, &loop, &os, err, sizeof(err)), -EINVAL);
    assert_int_equal(objstore_open("file://", NULL, &loop, &os, err, sizeof(err)), -EINVAL);
    objstore_options bad = {.bucket = "a/b"};
    assert_int_equal(objstore_open("file:///tmp", &bad, &loop, &os, err, sizeof(err)), -EINVAL);
    assert_null(os);

    /* file://relative/path is relative to the working directory, and created. */
    char cwd[PATH_MAX], dir[] = "/tmp/ogd-objstore-rel-XXXXXX";
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chdir(dir), 0);
    int rc = objstore_open("file://data/objects", NULL, &loop, &os, err, sizeof(err));
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, 0);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/data/objects", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    int closed = 0;
    objstore_close(os, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    remove_dir(dir);
}

#define NPUTS 8
#define PUT_SIZE (256 * 1024)

static void test_atomic_concurrent_puts(void **state)
{
    (void)state;
    env *e = open_env(0, 0);
    done d[NPUTS] = {{0}};
    unsigned char *buf = malloc(PUT_SIZE);
    for (int i = 0; i < NPUTS; i++) {
        memset(buf, 'A' + i, PUT_SIZE); /* the call copies: reuse the buffer */
        assert_int_equal(objstore_put(e->os, "waveforms/2023/01/01/000000/W.json", buf, PUT_SIZE,
                                      on_done, &d[i], NULL),
                         0);
    }
    free(buf);
    run(e);
    for (int i = 0; i < NPUTS; i++) {
        assert_int_equal(d[i].calls, 1);
        assert_int_equal(d[i].status, 0);
    }
    /* One complete version, all of one writer's bytes. */
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/waveforms/2023/01/01/000000/W.json", e->dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char *back = malloc(PUT_SIZE + 1);
    assert_int_equal(fread(back, 1, PUT_SIZE + 1, f), PUT_SIZE);
    fclose(f);
    assert_true(back[0] >= 'A' && back[0] < 'A' + NPUTS);
    for (size_t i = 1; i < PUT_SIZE; i++)
        if (back[i] != back[0])
            fail_msg("mixed versions at byte %zu", i);
    free(back);
    assert_int_equal(temp_files_in(e), 0);
    assert_int_equal(stats(e).bytes_written, (uint64_t)NPUTS * PUT_SIZE);

    /* put_blob shares the caller's blob instead of copying it. */
    objstore_blob_t *blob = objstore_blob_copy("shared", 6);
    done p = {0};
    assert_int_equal(objstore_put_blob(e->os, "b/k", blob, on_done, &p, NULL), 0);
    objstore_blob_unref(blob); /* the store holds its own reference */
    run(e);
    assert_int_equal(p.status, 0);
    assert_string_equal(get(e, "b/k").text, "shared");

    /* an adopted buffer is the blob's data (no copy), NUL-terminated, freed with it */
    char *mine = malloc(16);
    assert_non_null(mine);
    memcpy(mine, "adopted!", 8);
    objstore_blob_t *ab = objstore_blob_adopt(mine, 7);
    assert_non_null(ab);
    assert_ptr_equal(ab->data, mine);
    assert_int_equal(ab->data[7], 0);
    done q = {0};
    assert_int_equal(objstore_put_blob(e->os, "b/a", ab, on_done, &q, NULL), 0);
    objstore_blob_unref(ab);
    run(e);
    assert_int_equal(q.status, 0);
    assert_string_equal(get(e, "b/a").text, "adopted");
    close_env(e);
}

static void test_io_error_counted(void **state)
{
    (void)state;
    env *e = open_env(0, 0);
    put(e, "f", "file");
    done d = {0};
    assert_int_equal(objstore_put(e->os, "f/g", "x", 1, on_done, &d, NULL), 0);
    run(e);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, -ENOTDIR); /* "f" is an object, not a directory */
    assert_int_equal(get(e, "f/g").status, -ENOENT);
    assert_int_equal(stats(e).errors, 1); /* -ENOENT is not an error */
    close_env(e);
}

static void test_key_validation(void **state)
{
    (void)state;
    env *e = open_env(4, 1024);
    got g = {0};
    done d = {0};
    const char *bad[] = {"../etc/passwd",
                         "a/../../etc/passwd",
                         "/etc/passwd",
                         "a//b",
                         "a/./b",
                         "a\\b",
                         "",
                         "a/..",
                         "..",
                         ".",
                         "a/",
                         "a/\x01b",
                         "images/.ogd-tmp-1-2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(objstore_key_check(bad[i]), -EINVAL);
        assert_int_equal(objstore_get(e->os, bad[i], on_get, &g, NULL), -EINVAL);
        assert_int_equal(objstore_head(e->os, bad[i], on_head, &d, NULL), -EINVAL);
        assert_int_equal(objstore_put(e->os, bad[i], "a", 1, on_done, &d, NULL), -EINVAL);
        assert_int_equal(objstore_delete(e->os, bad[i], on_done, &d, NULL), -EINVAL);
    }
    assert_int_equal(objstore_key_check(NULL), -EINVAL);
    const char *bad_prefixes[] = {"", "/", "../", "a//", "a/../", "a//b/", "a\\"};
    for (size_t i = 0; i < sizeof(bad_prefixes) / sizeof(bad_prefixes[0]); i++)
        assert_int_equal(objstore_delete_prefix(e->os, bad_prefixes[i], on_count, &d, NULL),
                         -EINVAL);
    char longkey[OBJSTORE_KEY_MAX + 8];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    assert_int_equal(objstore_get(e->os, longkey, on_get, &g, NULL), -ENAMETOOLONG);
    assert_int_equal(objstore_get_fallback(e->os, "ok", "../no", on_get, &g, NULL), -EINVAL);
    run(e);
    assert_int_equal(g.calls, 0); /* an error return means no callback */
    assert_int_equal(d.calls, 0);
    /* Accepted shapes. */
    assert_int_equal(objstore_key_check(".ogd-readiness-probe"), 0);
    assert_int_equal(objstore_key_check("a/..b/c.d"), 0);
    assert_int_equal(objstore_prefix_check("images/2023/06/05/080000/"), 0);
    assert_int_equal(objstore_prefix_check("images/2023/06/0"), 0);
    assert_int_equal(stats(e).gets, 0);
    close_env(e);
}

static void test_delete_and_prefix(void **state)
{
    (void)state;
    env *e = open_env(10, 1 << 20);
    put(e, "images/2023/06/05/080000/A.png", "a");
    put(e, "images/2023/06/05/080000/B.png", "b");
    put(e, "images/2023/06/05/080000x", "file beside the directory");
    put(e, "images/20230605080000/A.png", "legacy");
    put(e, "images/2023/06/05/090000/A.png", "other");
    assert_int_equal(get(e, "images/2023/06/05/080000/A.png").status, 0); /* now cached */

    done d = {0};
    assert_int_equal(objstore_delete_prefix(e->os, "images/2023/06/05/080000/", on_count, &d, NULL),
                     0);
    run(e);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);
    assert_int_equal(d.value, 2);
    assert_int_equal(get(e, "images/2023/06/05/080000/A.png").status, -ENOENT); /* not cached */
    assert_false(file_exists(e, "images/2023/06/05/080000"));
    assert_string_equal(get(e, "images/2023/06/05/080000x").text, "file beside the directory");
    assert_string_equal(get(e, "images/2023/06/05/090000/A.png").text, "other");

    /* A prefix that ends with '/' never matches the object of the same name. */
    memset(&d, 0, sizeof(d));
    assert_int_equal(
        objstore_delete_prefix(e->os, "images/2023/06/05/080000x/", on_count, &d, NULL), 0);
    run(e);
    assert_int_equal(d.value, 0);
    assert_true(file_exists(e, "images/2023/06/05/080000x"));

    /* A prefix inside a name: "0" matches 080000x and the tree 090000. */
    memset(&d, 0, sizeof(d));
    assert_int_equal(objstore_delete_prefix(e->os, "images/2023/06/05/0", on_count, &d, NULL), 0);
    run(e);
    assert_int_equal(d.status, 0);
    assert_int_equal(d.value, 2);
    assert_false(file_exists(e, "images/2023")); /* emptied directories are pruned */
    assert_true(file_exists(e, "images/20230605080000/A.png"));

    memset(&d, 0, sizeof(d));
    assert_int_equal(objstore_delete(e->os, "images/20230605080000/A.png", on_done, &d, NULL), 0);
    run(e);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);
    assert_false(file_exists(e, "images"));
    assert_true(file_exists(e, "")); /* never the root */

    memset(&d, 0, sizeof(d)); /* deleting what is not there succeeds, as on S3 */
    assert_int_equal(objstore_delete(e->os, "images/none.png", on_done, &d, NULL), 0);
    run(e);
    assert_int_equal(d.status, 0);
    memset(&d, 0, sizeof(d));
    assert_int_equal(objstore_delete_prefix(e->os, "waveforms/none/", on_count, &d, NULL), 0);
    run(e);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);
    assert_int_equal(d.value, 0);
    assert_int_equal(stats(e).deletes, 6);
    close_env(e);
}

/* ---- cache ---- */

static void test_cache_hits(void **state)
{
    (void)state;
    env *e = open_env(8, 1 << 20);
    put(e, "a/1", "one");
    assert_string_equal(get(e, "a/1").text, "one");
    objstore_stats st = stats(e);
    assert_int_equal(st.gets, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.hits, 0);
    assert_int_equal(st.bytes_read, 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(get(e, "a/1").text, "one"); /* deferred, never re-entrant */
    st = stats(e);
    assert_int_equal(st.gets, 4);
    assert_int_equal(st.hits, 3);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.bytes_read, 3); /* hits do not touch the back end */
    assert_int_equal(st.cache_entries, 1);
    assert_int_equal(st.cache_bytes, 3);

    /* HEAD answers from the cache too. */
    done h = {0};
    assert_int_equal(objstore_head(e->os, "a/1", on_head, &h, NULL), 0);
    assert_int_equal(h.calls, 0);
    run(e);
    assert_int_equal(h.value, 3);

    /* Errors are not cached. */
    assert_int_equal(get(e, "a/none").status, -ENOENT);
    assert_int_equal(get(e, "a/none").status, -ENOENT);
    assert_int_equal(stats(e).misses, 3);

    /* Puts and deletes drop the key. */
    put(e, "a/1", "uno");
    assert_string_equal(get(e, "a/1").text, "uno");
    done d = {0};
    assert_int_equal(objstore_delete(e->os, "a/1", on_done, &d, NULL), 0);
    run(e);
    assert_int_equal(get(e, "a/1").status, -ENOENT);
    close_env(e);
}

#define NGETS 16

static void test_single_flight(void **state)
{
    (void)state;
    for (int cached = 0; cached < 2; cached++) {
        env *e = open_env(cached ? 8 : 0, 1 << 20);
        put(e, "images/x.png", "shared bytes");
        got g[NGETS] = {{0}};
        for (int i = 0; i < NGETS; i++)
            assert_int_equal(objstore_get(e->os, "images/x.png", on_get, &g[i], NULL), 0);
        run(e);
        objstore_stats st = stats(e);
        assert_int_equal(st.misses, 1); /* one back-end read for all of them */
        assert_int_equal(st.shared, NGETS - 1);
        assert_int_equal(st.bytes_read, 12);
        for (int i = 0; i < NGETS; i++) {
            assert_int_equal(g[i].calls, 1);
            assert_int_equal(g[i].status, 0);
            assert_string_equal(g[i].text, "shared bytes");
            assert_ptr_equal(g[i].blob, g[0].blob); /* the very same blob */
        }
        assert_int_equal(st.cache_entries, cached ? 1 : 0);
        close_env(e);
    }
}

/* OBJSTORE_GET_NO_CACHE: reads what is there (and uses a hit) but does not fill the
 * cache, unless a plain reader joined the same read. */
static void test_get_no_cache(void **state)
{
    (void)state;
    env *e = open_env(8, 1 << 20);
    put(e, "a/1", "one");
    put(e, "a/2", "two");
    got g = {0};
    assert_int_equal(objstore_get_ex(e->os, "a/1", NULL, OBJSTORE_GET_NO_CACHE, on_get, &g, NULL),
                     0);
    run(e);
    assert_int_equal(g.status, 0);
    assert_string_equal(g.text, "one");
    assert_int_equal(stats(e).cache_entries, 0);
    /* joined by a plain reader: cached */
    got a = {0}, b = {0};
    assert_int_equal(objstore_get_ex(e->os, "a/2", NULL, OBJSTORE_GET_NO_CACHE, on_get, &a, NULL),
                     0);
    assert_int_equal(objstore_get(e->os, "a/2", on_get, &b, NULL), 0);
    run(e);
    assert_int_equal(stats(e).shared, 1);
    assert_int_equal(stats(e).cache_entries, 1);
    /* a hit is still a hit */
    got c = {0};
    assert_int_equal(objstore_get_ex(e->os, "a/2", NULL, OBJSTORE_GET_NO_CACHE, on_get, &c, NULL),
                     0);
    run(e);
    assert_string_equal(c.text, "two");
    assert_int_equal(stats(e).hits, 1);
    close_env(e);
}

static void test_lru_by_entries(void **state)
{
    (void)state;
    env *e = open_env(2, 1 << 20);
    put(e, "a", "A");
    put(e, "b", "B");
    put(e, "c", "C");
    get(e, "a");
    get(e, "b");
    get(e, "a"); /* hit: a is now the most recent, b the least */
    assert_int_equal(stats(e).hits, 1);
    get(e, "c"); /* evicts b */
    objstore_stats st = stats(e);
    assert_int_equal(st.cache_entries, 2);
    assert_int_equal(st.misses, 3);
    get(e, "a");
    assert_int_equal(stats(e).hits, 2);
    get(e, "b");
    assert_int_equal(stats(e).misses, 4);
    close_env(e);
}

static void test_lru_by_bytes_and_oversize(void **state)
{
    (void)state;
    env *e = open_env(100, 8);
    put(e, "big", "0123456789");
    put(e, "s1", "abcd");
    put(e, "s2", "efgh");
    put(e, "s3", "ij");
    assert_string_equal(get(e, "big").text, "0123456789"); /* served ... */
    assert_string_equal(get(e, "big").text, "0123456789");
    objstore_stats st = stats(e);
    assert_int_equal(st.misses, 2); /* ... but never cached */
    assert_int_equal(st.cache_entries, 0);
    get(e, "s1");
    get(e, "s2");
    st = stats(e);
    assert_int_equal(st.cache_entries, 2);
    assert_int_equal(st.cache_bytes, 8);
    get(e, "s3"); /* 8 + 2 > 8: evicts s1 */
    st = stats(e);
    assert_int_equal(st.cache_entries, 2);
    assert_int_equal(st.cache_bytes, 6);
    get(e, "s2");
    assert_int_equal(stats(e).hits, 1);
    get(e, "s1");
    assert_int_equal(stats(e).misses, 6);
    close_env(e);
}

static void test_cache_clear(void **state)
{
    (void)state;
    env *e = open_env(10, 1 << 20);
    put(e, "k1", "v1");
    put(e, "k2", "v2");
    get(e, "k1");
    get(e, "k2");
    assert_int_equal(stats(e).cache_entries, 2);
    objstore_cache_clear(e->os);
    objstore_stats st = stats(e);
    assert_int_equal(st.cache_entries, 0);
    assert_int_equal(st.cache_bytes, 0);
    get(e, "k1");
    st = stats(e);
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.hits, 0);

    /* A read in flight across a clear is delivered but not cached. */
    got g = {0};
    assert_int_equal(objstore_get(e->os, "k2", on_get, &g, NULL), 0);
    objstore_cache_clear(e->os);
    run(e);
    assert_string_equal(g.text, "v2");
    assert_int_equal(stats(e).cache_entries, 0);
    close_env(e);
}

/* Another process of the node (a worker forked by the same master) rewrites and deletes
 * objects and says so in the node's write log: this process's cache no longer serves
 * them, a read in flight across such a write is delivered but not cached, and a prefix
 * delete empties the cache. (The other process writes the files itself: the point is
 * what this cache does with the log.) */
static void rewrite_in_child(env *e, const char *key, const char *text, bool clear)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", e->dir, key);
        int ok = 1;
        if (text) { /* atomically, as a writer does: a read in flight sees old or new */
            char tmp[PATH_MAX + 8];
            snprintf(tmp, sizeof tmp, "%s.new", path);
            FILE *f = fopen(tmp, "w");
            ok = f && fputs(text, f) >= 0 && fclose(f) == 0 && rename(tmp, path) == 0;
        } else {
            ok = unlink(path) == 0;
        }
        if (clear)
            coherence_publish_clear();
        else
            coherence_publish_key(key);
        _exit(ok ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_coherence_across_processes(void **state)
{
    (void)state;
    assert_int_equal(coherence_init(), 0);
    env *e = open_env(10, 1 << 20);
    put(e, "a", "old-a");
    put(e, "b", "old-b");
    put(e, "p/c", "old-c");
    get(e, "a");
    get(e, "b");
    get(e, "p/c");
    assert_int_equal(stats(e).cache_entries, 3);

    rewrite_in_child(e, "a", "new-a", false);
    rewrite_in_child(e, "b", NULL, false);
    assert_string_equal(get(e, "a").text, "new-a");
    assert_int_equal(get(e, "b").status, -ENOENT);
    uint64_t hits = stats(e).hits;
    assert_string_equal(get(e, "p/c").text, "old-c"); /* untouched: still a hit */
    assert_int_equal(stats(e).hits, hits + 1);

    /* a read that began before the other process's write is delivered, not cached */
    objstore_cache_clear(e->os);
    got g = {0};
    assert_int_equal(objstore_get(e->os, "p/c", on_get, &g, NULL), 0);
    rewrite_in_child(e, "p/c", "new-c", false);
    run(e);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_int_equal(stats(e).cache_entries, 0);
    assert_string_equal(get(e, "p/c").text, "new-c");

    /* a prefix delete elsewhere drops everything */
    get(e, "a");
    assert_true(stats(e).cache_entries > 0);
    rewrite_in_child(e, "p/c", NULL, true);
    assert_int_equal(get(e, "p/c").status, -ENOENT);
    assert_int_equal(stats(e).cache_entries, 0);
    close_env(e);
}

static void test_write_races_read(void **state)
{
    (void)state;
    env *e = open_env(10, 1 << 20);
    put(e, "k", "old");
    /* A read in flight while the key is rewritten may return either version, but must
     * not leave the old one in the cache; a GET after the put starts its own read. */
    got before = {0}, after = {0};
    done d = {0};
    assert_int_equal(objstore_get(e->os, "k", on_get, &before, NULL), 0);
    assert_int_equal(objstore_put(e->os, "k", "new", 3, on_done, &d, NULL), 0);
    assert_int_equal(objstore_get(e->os, "k", on_get, &after, NULL), 0);
    run(e);
    assert_int_equal(d.status, 0);
    assert_int_equal(before.status, 0);
    assert_int_equal(after.status, 0);
    assert_int_equal(stats(e).misses, 2); /* the second GET did not join the first read */
    assert_int_equal(stats(e).cache_entries, 0);
    assert_string_equal(get(e, "k").text, "new");
    assert_string_equal(get(e, "k").text, "new"); /* from the cache now */
    assert_int_equal(stats(e).hits, 1);
    close_env(e);
}

/* ---- cancellation and close ---- */

typedef struct self_cancel {
    objstore_req_t *req;
    got g;
} self_cancel;

static void on_get_cancel_self(int status, const objstore_blob_t *blob, void *data)
{
    self_cancel *s = data;
    objstore_cancel(s->req); /* inside its own callback: a no-op */
    on_get(status, blob, &s->g);
}

static void test_cancel(void **state)
{
    (void)state;
    env *e = open_env(10, 1 << 20);
    put(e, "k", "v");

    /* One waiter of a shared read cancels; the other still gets the bytes. */
    got a = {0}, b = {0};
    objstore_req_t *ra = NULL;
    assert_int_equal(objstore_get(e->os, "k", on_get, &a, &ra), 0);
    assert_int_equal(objstore_get(e->os, "k", on_get, &b, NULL), 0);
    objstore_cancel(ra);
    assert_int_equal(a.calls, 0); /* never inside objstore_cancel */
    run(e);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, -ECANCELED);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, 0);
    assert_string_equal(b.text, "v");

    /* A cancelled cache hit; cancelling twice changes nothing. */
    got c = {0};
    objstore_req_t *rc = NULL;
    assert_int_equal(objstore_get(e->os, "k", on_get, &c, &rc), 0);
    objstore_cancel(rc);
    objstore_cancel(rc);
    run(e);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, -ECANCELED);

    /* Every waiter of a read cancels: the back-end read is abandoned (or finishes
     * unseen); each callback runs once. */
    objstore_cache_clear(e->os);
    got w[4] = {{0}};
    objstore_req_t *rw[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(objstore_get(e->os, "k", on_get, &w[i], &rw[i]), 0);
    for (int i = 0; i < 4; i++)
        objstore_cancel(rw[i]);
    run(e);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(w[i].calls, 1);
        assert_int_equal(w[i].status, -ECANCELED);
    }
    assert_int_equal(stats(e).in_flight, 0);

    /* Cancelled writes and deletes report -ECANCELED once, whatever the thread did. */
    done p = {0}, dl = {0}, dp = {0}, h = {0};
    objstore_req_t *rp, *rdl, *rdp, *rh;
    assert_int_equal(objstore_put(e->os, "k2", "x", 1, on_done, &p, &rp), 0);
    assert_int_equal(objstore_delete(e->os, "k", on_done, &dl, &rdl), 0);
    assert_int_equal(objstore_delete_prefix(e->os, "zz/", on_count, &dp, &rdp), 0);
    assert_int_equal(objstore_head(e->os, "k2", on_head, &h, &rh), 0);
    objstore_cancel(rp);
    objstore_cancel(rdl);
    objstore_cancel(rdp);
    objstore_cancel(rh);
    run(e);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.status, -ECANCELED);
    assert_int_equal(dl.calls, 1);
    assert_int_equal(dl.status, -ECANCELED);
    assert_int_equal(dp.calls, 1);
    assert_int_equal(dp.status, -ECANCELED);
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.status, -ECANCELED);

    /* Cancelling from inside the request's own callback does nothing. */
    put(e, "k3", "z");
    self_cancel s = {0};
    assert_int_equal(objstore_get(e->os, "k3", on_get_cancel_self, &s, &s.req), 0);
    run(e);
    assert_int_equal(s.g.calls, 1);
    assert_int_equal(s.g.status, 0);

    objstore_stats st = stats(e);
    assert_int_equal(st.canceled, 1 + 1 + 4 + 4);
    assert_int_equal(st.in_flight, 0);
    close_env(e);
}

typedef struct after_close {
    objstore_t *os;
    got g;
    int rc;
} after_close;

static void on_get_then_call(int status, const objstore_blob_t *blob, void *data)
{
    after_close *a = data;
    on_get(status, blob, &a->g);
    got unused = {0};
    a->rc = objstore_get(a->os, "k", on_get, &unused, NULL); /* the store is closing */
}

static void test_close_with_pending_work(void **state)
{
    (void)state;
    env *e = open_env(10, 1 << 20);
    put(e, "k", "v");
    get(e, "k"); /* cached */
    put(e, "m", "miss");
    got hit = {0}, miss[3] = {{0}};
    done p = {0};
    after_close ac = {.os = e->os};
    assert_int_equal(objstore_get(e->os, "k", on_get, &hit, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(objstore_get(e->os, "m", on_get, &miss[i], NULL), 0);
    assert_int_equal(objstore_get(e->os, "m", on_get_then_call, &ac, NULL), 0);
    assert_int_equal(objstore_put(e->os, "n", "new", 3, on_done, &p, NULL), 0);

    objstore_close(e->os, on_closed, &e->closed);
    assert_int_equal(hit.calls, 0); /* nothing runs inside objstore_close */
    assert_int_equal(objstore_get(e->os, "k", on_get, &hit, NULL), -ESHUTDOWN);
    run(e);
    assert_int_equal(e->closed, 1);
    assert_int_equal(hit.calls, 1);
    assert_int_equal(hit.status, -ECANCELED);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(miss[i].calls, 1);
        assert_int_equal(miss[i].status, -ECANCELED);
    }
    assert_int_equal(ac.g.calls, 1);
    assert_int_equal(ac.rc, -ESHUTDOWN);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.status, -ECANCELED);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    remove_dir(e->dir);
    free(e);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void test_close_after_foreign_walk(void **state)
{
    (void)state;
    /* The worker's shutdown closes every handle of the loop with uv_walk, then closes
     * the store: the store's idle handle is gone by then, with work still queued. */
    env *e = open_env(10, 1 << 20);
    put(e, "k", "v");
    get(e, "k");
    got hit = {0}, miss = {0};
    assert_int_equal(objstore_get(e->os, "k", on_get, &hit, NULL), 0); /* idle is active */
    assert_int_equal(objstore_get(e->os, "absent", on_get, &miss, NULL), 0);
    uv_walk(&e->loop, close_any, NULL);
    objstore_close(e->os, on_closed, &e->closed);
    run(e);
    assert_int_equal(e->closed, 1);
    assert_int_equal(hit.calls, 1);
    assert_int_equal(hit.status, -ECANCELED);
    assert_int_equal(miss.calls, 1);
    assert_int_equal(miss.status, -ECANCELED);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    remove_dir(e->dir);
    free(e);

    /* The same with nothing pending. */
    e = open_env(10, 1 << 20);
    uv_walk(&e->loop, close_any, NULL);
    close_env(e);
}

/* ---- key layout ---- */

static void test_key_layout(void **state)
{
    (void)state;
    char key[OBJSTORE_KEY_MAX];
    assert_int_equal(objstore_key_new(OBJ_IMAGE, "20230605100000", "FE-204-NSO-P1-CAM-1", key), 0);
    assert_string_equal(key, "images/2023/06/05/100000/FE-204-NSO-P1-CAM-1.png");
    assert_int_equal(objstore_key_legacy(OBJ_IMAGE, "20230605100000", "FE-204-NSO-P1-CAM-1", key),
                     0);
    assert_string_equal(key, "images/20230605100000/FE-204-NSO-P1-CAM-1.png");
    assert_int_equal(objstore_key_new(OBJ_FLOAT_IMAGE, "20230605100000", "W", key), 0);
    assert_string_equal(key, "float_images/2023/06/05/100000/W.npz");
    assert_int_equal(objstore_key_new(OBJ_WAVEFORM, "20230605100000", "PD", key), 0);
    assert_string_equal(key, "waveforms/2023/06/05/100000/PD.json");
    assert_int_equal(objstore_key_legacy(OBJ_VECTOR, "20230605100000", "V", key), 0);
    assert_string_equal(key, "vectors/20230605100000/V.json");
    /* ids of 8 characters or fewer: both layouts are the bare id */
    assert_int_equal(objstore_key_new(OBJ_FLOAT_IMAGE, "12345678", "W", key), 0);
    assert_string_equal(key, "float_images/12345678/W.npz");
    assert_int_equal(objstore_key_new(OBJ_IMAGE, "abc", "C", key), 0);
    assert_string_equal(key, "images/abc/C.png");
    /* 9 characters: id[0:4]/id[4:6]/id[6:8]/id[8:], as Python slices */
    assert_int_equal(objstore_key_new(OBJ_IMAGE, "123456789", "C", key), 0);
    assert_string_equal(key, "images/1234/56/78/9/C.png");
    char huge[OBJSTORE_KEY_MAX + 1];
    memset(huge, '1', OBJSTORE_KEY_MAX);
    huge[OBJSTORE_KEY_MAX] = '\0';
    assert_int_equal(objstore_key_new(OBJ_IMAGE, huge, "C", key), -ENAMETOOLONG);
    assert_int_equal(objstore_key_legacy(OBJ_IMAGE, huge, "C", key), -ENAMETOOLONG);

    char prefixes[OBJSTORE_RECORD_PREFIXES][OBJSTORE_PREFIX_MAX];
    assert_int_equal(objstore_record_prefixes("20230605100000", prefixes), 8);
    const char *want[] = {"waveforms/2023/06/05/100000/",    "waveforms/20230605100000/",
                          "images/2023/06/05/100000/",       "images/20230605100000/",
                          "vectors/2023/06/05/100000/",      "vectors/20230605100000/",
                          "float_images/2023/06/05/100000/", "float_images/20230605100000/"};
    for (int i = 0; i < 8; i++) {
        assert_string_equal(prefixes[i], want[i]);
        assert_int_equal(objstore_prefix_check(prefixes[i]), 0);
    }
    assert_int_equal(objstore_record_prefixes("1234", prefixes), 8);
    assert_string_equal(prefixes[2], "images/1234/");
    assert_string_equal(prefixes[3], "images/1234/");
    assert_int_equal(objstore_record_prefixes(huge, prefixes), -ENAMETOOLONG);

    assert_string_equal(objstore_kind_class(OBJ_IMAGE), "Image");
    assert_string_equal(objstore_kind_class(OBJ_FLOAT_IMAGE), "FloatImage");
    assert_string_equal(objstore_kind_class(OBJ_WAVEFORM), "Waveform");
    assert_string_equal(objstore_kind_class(OBJ_VECTOR), "Vector");
    assert_string_equal(objstore_kind_prefix(OBJ_FLOAT_IMAGE), "float_images");
    assert_string_equal(objstore_kind_ext(OBJ_VECTOR), "json");
    objstore_kind k = OBJ_IMAGE;
    assert_int_equal(objstore_kind_parse("vector", &k), 0);
    assert_int_equal(k, OBJ_VECTOR);
    assert_int_equal(objstore_kind_parse("float_image", &k), 0);
    assert_int_equal(k, OBJ_FLOAT_IMAGE);
    assert_int_equal(objstore_kind_parse("image", &k), 0);
    assert_int_equal(k, OBJ_IMAGE);
    assert_int_equal(objstore_kind_parse("waveform", &k), 0);
    assert_int_equal(k, OBJ_WAVEFORM);
    assert_int_equal(objstore_kind_parse("scalar", &k), -EINVAL);
    assert_int_equal(objstore_kind_parse("rgb-image", &k), -EINVAL);
    assert_int_equal(objstore_kind_parse(NULL, &k), -EINVAL);
    assert_int_equal(k, OBJ_WAVEFORM);
}

static void test_legacy_fallback(void **state)
{
    (void)state;
    env *e = open_env(10, 1 << 20);
    put(e, "vectors/20230605080300/C.json", "{\"data\":[1]}"); /* legacy layout only */
    put(e, "images/2023/06/05/080300/N.png", "new");
    put(e, "images/20230605080300/N.png", "legacy"); /* shadowed by the new key */
    put(e, "waveforms/1234/S.json", "short");

    got g = {0};
    assert_int_equal(
        objstore_get_channel(e->os, OBJ_VECTOR, "20230605080300", "C", on_get, &g, NULL), 0);
    assert_int_equal(g.calls, 0);
    run(e);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_string_equal(g.text, "{\"data\":[1]}");
    assert_int_equal(stats(e).gets, 2); /* the new key, then the legacy one */

    memset(&g, 0, sizeof(g));
    assert_int_equal(
        objstore_get_channel(e->os, OBJ_IMAGE, "20230605080300", "N", on_get, &g, NULL), 0);
    run(e);
    assert_string_equal(g.text, "new");

    memset(&g, 0, sizeof(g));
    objstore_stats before = stats(e);
    assert_int_equal(objstore_get_channel(e->os, OBJ_WAVEFORM, "1234", "S", on_get, &g, NULL), 0);
    run(e);
    assert_string_equal(g.text, "short");
    assert_int_equal(stats(e).gets, before.gets + 1); /* one key: no second read */

    memset(&g, 0, sizeof(g));
    before = stats(e);
    assert_int_equal(
        objstore_get_channel(e->os, OBJ_VECTOR, "20230605080300", "missing", on_get, &g, NULL), 0);
    run(e);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, -ENOENT);
    assert_int_equal(stats(e).misses, before.misses + 2);

    /* The legacy read comes from the cache the second time. */
    memset(&g, 0, sizeof(g));
    before = stats(e);
    assert_int_equal(
        objstore_get_channel(e->os, OBJ_VECTOR, "20230605080300", "C", on_get, &g, NULL), 0);
    run(e);
    assert_int_equal(g.status, 0);
    assert_int_equal(stats(e).hits, before.hits + 1);

    /* One handle cancels the whole channel read. */
    memset(&g, 0, sizeof(g));
    objstore_cache_clear(e->os);
    objstore_req_t *req = NULL;
    assert_int_equal(
        objstore_get_channel(e->os, OBJ_VECTOR, "20230605080300", "C", on_get, &g, &req), 0);
    objstore_cancel(req);
    run(e);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, -ECANCELED);

    /* Channel names cannot walk out of the store. */
    assert_int_equal(
        objstore_get_channel(e->os, OBJ_IMAGE, "20230605080300", "../../x", on_get, &g, NULL),
        -EINVAL);
    assert_int_equal(objstore_get_channel(e->os, OBJ_IMAGE, "..", "x", on_get, &g, NULL), -EINVAL);
    close_env(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_missing),
        cmocka_unit_test(test_bucket_directory),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_atomic_concurrent_puts),
        cmocka_unit_test(test_io_error_counted),
        cmocka_unit_test(test_key_validation),
        cmocka_unit_test(test_delete_and_prefix),
        cmocka_unit_test(test_cache_hits),
        cmocka_unit_test(test_single_flight),
        cmocka_unit_test(test_get_no_cache),
        cmocka_unit_test(test_lru_by_entries),
        cmocka_unit_test(test_lru_by_bytes_and_oversize),
        cmocka_unit_test(test_cache_clear),
        cmocka_unit_test(test_write_races_read),
        cmocka_unit_test(test_coherence_across_processes),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_close_with_pending_work),
        cmocka_unit_test(test_close_after_foreign_walk),
        cmocka_unit_test(test_key_layout),
        cmocka_unit_test(test_legacy_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
