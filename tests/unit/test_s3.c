/*
 * Unit tests for the S3 back end (src/objstore/s3.c) against a real S3 server (Ceph RADOS
 * Gateway in `make test`), and through tests/tools/faultproxy.py for the failures:
 * 5xx answers, resets, stalls past the deadline, a wrong secret, the retry budget.
 *
 * Needs OGD_TEST_S3_URL, OGD_TEST_S3_ACCESS_KEY, OGD_TEST_S3_SECRET_KEY (scripts/test.sh
 * sets them after starting RGW); every test is skipped with a message when they are
 * missing. Each run works in a bucket of its own, created through objstore_prepare.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "objstore/objstore.h"
#include "objstore_harness.h"
#include "util/error.h"

static const char *s3_url, *s3_ak, *s3_sk;
static char bucket[64];
static char proxy_url[64];
static pid_t proxy_pid;

static objstore_options base_options(void)
{
    objstore_options o = {.bucket = bucket,
                          .access_key = s3_ak,
                          .secret_key = s3_sk,
                          .max_connections = 32,
                          .request_timeout_ms = 10000,
                          .max_retries = 3};
    return o;
}

#define SKIP_WITHOUT_S3()                                                                          \
    do {                                                                                           \
        if (!s3_url) {                                                                             \
            fprintf(stderr, "OGD_TEST_S3_URL not set: S3 tests skipped\n");                        \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- the fault proxy ---- */

static void proxy_arm(const char *query)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/__fault__?%s", proxy_url, query);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    FILE *devnull = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    fclose(devnull);
    curl_easy_cleanup(c);
}

static void proxy_start(void)
{
    const char *script = getenv("OGD_TEST_FAULTPROXY");
    if (!script)
        script = "../tools/faultproxy.py"; /* ctest runs in tests/unit */
    const char *up = strstr(s3_url, "://") + 3;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    proxy_pid = fork();
    assert_true(proxy_pid >= 0);
    if (proxy_pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl("/usr/bin/python3", "python3", script, "--upstream", up, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[64] = {0};
    FILE *f = fdopen(fds[0], "r");
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    int port = 0;
    assert_int_equal(sscanf(line, "ready %d", &port), 1);
    snprintf(proxy_url, sizeof(proxy_url), "http://127.0.0.1:%d", port);
}

static size_t collect(char *p, size_t size, size_t n, void *u)
{
    char *out = u;
    size_t have = strlen(out), len = size * n;
    if (have + len < 4096) {
        memcpy(out + have, p, len);
        out[have + len] = '\0';
    }
    return len;
}

/* A signed GET straight to the server (not through ogd's code); the body in out. */
static long signed_get(const char *path, char out[4096])
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", s3_url, path);
    out[0] = '\0';
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
    curl_easy_setopt(c, CURLOPT_USERNAME, s3_ak);
    curl_easy_setopt(c, CURLOPT_PASSWORD, s3_sk);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

/* ---- tests ---- */

static void test_prepare(void **state)
{
    (void)state;
    SKIP_WITHOUT_S3();
    char err[256];
    objstore_options o = base_options();
    char other[80];
    snprintf(other, sizeof(other), "%s-missing", bucket);
    o.bucket = other;
    assert_int_equal(objstore_prepare(s3_url, &o, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "Bucket for object storage cannot be found");
    o.secret_key = "not-the-secret";
    o.bucket = bucket;
    assert_int_equal(objstore_prepare(s3_url, &o, err, sizeof(err)), -EACCES);
    assert_non_null(strstr(err, "check echo.access_key and echo.secret_key"));
    assert_null(strstr(err, "not-the-secret"));
    o = base_options();
    assert_int_equal(objstore_prepare(s3_url, &o, err, sizeof(err)), 0);
    assert_int_equal(objstore_prepare("http://127.0.0.1:1", &o, err, sizeof(err)), -EIO);
    assert_non_null(strstr(err, "cannot reach the object store"));

    /* The lifecycle rule of expiry_days lands on the bucket. */
    o.expiry_days = 7;
    assert_int_equal(objstore_prepare(s3_url, &o, err, sizeof(err)), 0);
    char path[128], body[4096];
    snprintf(path, sizeof(path), "/%s?lifecycle=", bucket);
    assert_int_equal(signed_get(path, body), 200);
    assert_non_null(strstr(body, "<Days>7</Days>"));
    assert_non_null(strstr(body, "<ID>expiry</ID>"));
}

static void test_round_trip(void **state)
{
    (void)state;
    SKIP_WITHOUT_S3();
    objstore_options o = base_options();
    env *e = open_url(s3_url, &o);
    assert_string_equal(objstore_backend_name(e->os), "s3");
    const char *keys[] = {"rt/images/2023/06/05/100000/CAM-1.png", "rt/odd key+&=?%#'\"<>.json",
                          "rt/empty"};
    const char *vals[] = {"\x89PNG bytes", "{\"x\": [1, 2]}", ""};
    for (int i = 0; i < 3; i++)
        assert_int_equal(put(e, keys[i], vals[i], strlen(vals[i])), 0);
    for (int i = 0; i < 3; i++) {
        res r = get(e, keys[i]);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.len, strlen(vals[i]));
        assert_memory_equal(r.bytes, vals[i], r.len + 1);
        free(r.bytes);
        res h = {0};
        assert_int_equal(objstore_head(e->os, keys[i], on_head, &h, NULL), 0);
        run_until(e, &h.calls, 1);
        assert_int_equal(h.status, 0);
        assert_int_equal(h.value, strlen(vals[i]));
    }
    res m = get(e, "rt/missing");
    assert_int_equal(m.status, -ENOENT);
    res h = {0};
    assert_int_equal(objstore_head(e->os, "rt/missing", on_head, &h, NULL), 0);
    run_until(e, &h.calls, 1);
    assert_int_equal(h.status, -ENOENT);

    res d = {0};
    assert_int_equal(objstore_delete(e->os, keys[0], on_done, &d, NULL), 0);
    run_until(e, &d.calls, 1);
    assert_int_equal(d.status, 0);
    assert_int_equal(get(e, keys[0]).status, -ENOENT);
    d.calls = 0;
    assert_int_equal(objstore_delete(e->os, keys[0], on_done, &d, NULL), 0); /* missing: ok */
    run_until(e, &d.calls, 1);
    assert_int_equal(d.status, 0);

    objstore_stats st;
    objstore_stats_get(e->os, &st);
    assert_true(st.calls >= 12);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.connections_max, 32);
    close_env(e);
}

static void test_delete_prefix(void **state)
{
    (void)state;
    SKIP_WITHOUT_S3();
    objstore_options o = base_options();
    env *e = open_url(s3_url, &o);
    char key[128];
    res r[40];
    memset(r, 0, sizeof(r));
    int want = 0;
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof(key), "dp/a/%s%02d.json", i % 3 ? "" : "x & <y> ", i);
        assert_int_equal(objstore_put(e->os, key, "1", 1, on_done, &r[i], NULL), 0);
        want++;
    }
    assert_int_equal(objstore_put(e->os, "dp/ab.json", "2", 1, on_done, &r[30], NULL), 0);
    assert_int_equal(objstore_put(e->os, "dp/b/keep.json", "3", 1, on_done, &r[31], NULL), 0);
    want += 2;
    int calls = 0;
    for (;;) {
        calls = 0;
        for (int i = 0; i < want; i++)
            calls += r[i].calls;
        if (calls == want)
            break;
        uv_run(&e->loop, UV_RUN_ONCE);
    }
    for (int i = 0; i < want; i++)
        assert_int_equal(r[i].status, 0);

    res c = {0};
    assert_int_equal(objstore_delete_prefix(e->os, "dp/a/", on_count, &c, NULL), 0);
    run_until(e, &c.calls, 1);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.value, 30);
    assert_int_equal(get(e, "dp/a/01.json").status, -ENOENT);
    res k = get(e, "dp/ab.json"); /* "dp/a/" does not match "dp/ab.json" */
    assert_int_equal(k.status, 0);
    free(k.bytes);
    c.calls = 0;
    assert_int_equal(objstore_delete_prefix(e->os, "dp/", on_count, &c, NULL), 0);
    run_until(e, &c.calls, 1);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.value, 2);
    c.calls = 0;
    assert_int_equal(objstore_delete_prefix(e->os, "dp/", on_count, &c, NULL), 0);
    run_until(e, &c.calls, 1);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.value, 0);
    close_env(e);
}

static void test_multipart(void **state)
{
    (void)state;
    SKIP_WITHOUT_S3();
    objstore_options o = base_options();
    o.multipart_threshold = 6u << 20;
    o.multipart_part_size = 5u << 20;
    env *e = open_url(s3_url, &o);
    size_t len = (12u << 20) + 12345;
    unsigned char *big = malloc(len);
    for (size_t i = 0; i < len; i++)
        big[i] = (unsigned char)(i * 2654435761u >> 13);
    objstore_stats before;
    objstore_stats_get(e->os, &before);
    assert_int_equal(put(e, "mp/big.bin", big, len), 0);
    objstore_stats after;
    objstore_stats_get(e->os, &after);
    assert_int_equal(after.calls - before.calls, 5); /* initiate, 3 parts, complete */
    res r = get(e, "mp/big.bin");
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, len);
    assert_memory_equal(r.bytes, big, len);
    free(r.bytes);
    free(big);
    close_env(e);
}

/* The front end's byte cache and single-flight work over S3 as over files. */
static void test_cache_and_single_flight(void **state)
{
    (void)state;
    SKIP_WITHOUT_S3();
    objstore_options o = base_options();
    o.cache_max_entries = 16;
    env *e = open_url(s3_url, &o);
    assert_int_equal(put(e, "cache/k", "cached", 6), 0);
    objstore_stats before, after;
    objstore_stats_get(e->os, &before);
    res r[5];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 5; i++) /* five concurrent readers, one download */
        assert_int_equal(objstore_get(e->os, "cache/k", on_get, &r[i], NULL), 0);
    int done = 0;
    while (done < 5) {
        uv_run(&e->loop, UV_RUN_ONCE);
        done = r[0].calls + r[1].calls + r[2].calls + r[3].calls + r[4].calls;
    }
    for (int i = 0; i < 5; i++) {
        assert_int_equal(r[i].status, 0);
        assert_string_equal((char *)r[i].bytes, "cached");
        free(r[i].bytes);
    }
    res again = get(e, "cache/k"); /* a hit: no call to the server */
    assert_int_equal(again.status, 0);
    free(again.bytes);
    objstore_stats_get(e->os, &after);
    assert_int_equal(after.calls - before.calls, 1);
    assert_int_equal(after.shared - before.shared, 4);
    assert_int_equal(after.hits - before.hits, 1);
    close_env(e);
}

#define NOBJ 20
#define NGET 300

static void test_many_concurrent(void **state)
{
    (void)state;
    SKIP_WITHOUT_S3();
    objstore_options o = base_options();
    o.max_connections = 16;
    env *e = open_url(s3_url, &o);
    char key[64], val[64];
    for (int i = 0; i < NOBJ; i++) {
        snprintf(key, sizeof(key), "mc/%d", i);
        snprintf(val, sizeof(val), "value %d", i);
        assert_int_equal(put(e, key, val, strlen(val)), 0);
    }
    res *r = calloc(NGET, sizeof(*r));
    for (int i = 0; i < NGET; i++) {
        snprintf(key, sizeof(key), "mc/%d", i % NOBJ);
        assert_int_equal(objstore_get(e->os, key, on_get, &r[i], NULL), 0);
    }
    objstore_stats st;
    objstore_stats_get(e->os, &st);
    assert_int_equal(st.transfers, 0); /* nothing starts inside the calls */
    int done = 0;
    while (done < NGET) {
        uv_run(&e->loop, UV_RUN_ONCE);
        objstore_stats_get(e->os, &st);
        assert_true(st.transfers <= 16);
        done = 0;
        for (int i = 0; i < NGET; i++)
            done += r[i].calls;
    }
    for (int i = 0; i < NGET; i++) {
        snprintf(val, sizeof(val), "value %d", i % NOBJ);
        assert_int_equal(r[i].status, 0);
        assert_string_equal((char *)r[i].bytes, val);
        free(r[i].bytes);
    }
    free(r);
    close_env(e);
}

/* A request that arrives after a big fan-out is served while the fan-out is still
 * running: the fan-out's transfers stall at the proxy, holding the connections they get,
 * yet the small request completes, because the per-owner cap keeps one of the two
 * connections out of the fan-out's reach and round robin hands it to the newcomer. In
 * FIFO order without the cap both connections would go to the fan-out and the small
 * request would wait for it. */
static void test_fair_share(void **state)
{
    (void)state;
    SKIP_WITHOUT_S3();
    objstore_options o = base_options();
    o.max_connections = 2;
    o.max_per_owner = 1;
    o.request_timeout_ms = 60000;
    o.max_retries = 0;
    env *e = open_url(proxy_url, &o);
    char q[256];
    snprintf(q, sizeof(q), "mode=stall&count=-1&match=/%s/fair/a", bucket);
    proxy_arm(q);
    enum { BIG = 60, SMALL = 4 };
    res big[BIG], small[SMALL];
    objstore_req_t *big_req[BIG];
    memset(big, 0, sizeof(big));
    memset(small, 0, sizeof(small));
    char key[32];
    int owner_a, owner_b;
    objstore_set_owner(e->os, &owner_a);
    for (int i = 0; i < BIG; i++) {
        snprintf(key, sizeof(key), "fair/a%d", i); /* distinct keys: no single-flight */
        assert_int_equal(objstore_get(e->os, key, on_get, &big[i], &big_req[i]), 0);
    }
    objstore_set_owner(e->os, &owner_b);
    for (int i = 0; i < SMALL; i++) {
        snprintf(key, sizeof(key), "fair/b%d", i);
        assert_int_equal(objstore_get(e->os, key, on_get, &small[i], NULL), 0);
    }
    objstore_set_owner(e->os, NULL);
    int done = 0;
    while (done < SMALL) {
        uv_run(&e->loop, UV_RUN_ONCE);
        done = small[0].calls + small[1].calls + small[2].calls + small[3].calls;
    }
    for (int i = 0; i < SMALL; i++)
        assert_int_equal(small[i].status, -ENOENT);
    for (int i = 0; i < BIG; i++)
        assert_int_equal(big[i].calls, 0); /* the fan-out is still stalled */
    for (int i = 0; i < BIG; i++)
        objstore_cancel(big_req[i]);
    proxy_arm("mode=pass");
    close_env(e);
    for (int i = 0; i < BIG; i++)
        assert_int_equal(big[i].status, -ECANCELED);
}

static void test_wrong_secret(void **state)
{
    (void)state;
    SKIP_WITHOUT_S3();
    objstore_options o = base_options();
    o.secret_key = "wrong-secret";
    env *e = open_url(s3_url, &o);
    res r = get(e, "any/key");
    assert_int_equal(r.status, -EACCES);
    assert_int_equal(put(e, "any/key", "x", 1), -EACCES);
    objstore_stats st;
    objstore_stats_get(e->os, &st);
    assert_int_equal(st.calls, 2); /* no retry loop */
    assert_int_equal(st.retries, 0);
    close_env(e);
}

static void test_fault_5xx_retried(void **state)
{
    (void)state;
    SKIP_WITHOUT_S3();
    objstore_options o = base_options();
    env *e = open_url(proxy_url, &o);
    assert_int_equal(put(e, "f/ok", "fine", 4), 0);
    proxy_arm("mode=status&code=503&count=2");
    res r = get(e, "f/ok");
    assert_int_equal(r.status, 0);
    assert_string_equal((char *)r.bytes, "fine");
    free(r.bytes);
    objstore_stats st;
    objstore_stats_get(e->os, &st);
    assert_int_equal(st.retries, 2);

    /* A server that keeps failing: max_retries + 1 calls, then "unavailable". */
    proxy_arm("mode=status&code=500&count=-1");
    objstore_stats before;
    objstore_stats_get(e->os, &before);
    r = get(e, "f/ok2");
    assert_int_equal(r.status, OGD_EOBJ_UNAVAILABLE);
    objstore_stats_get(e->os, &st);
    assert_int_equal(st.calls - before.calls, 4);
    proxy_arm("mode=pass");
    close_env(e);
}

static void test_fault_reset_retried(void **state)
{
    (void)state;
    SKIP_WITHOUT_S3();
    objstore_options o = base_options();
    env *e = open_url(proxy_url, &o);
    assert_int_equal(put(e, "f/reset", "again", 5), 0);
    proxy_arm("mode=reset&count=1");
    res r = get(e, "f/reset");
    assert_int_equal(r.status, 0);
    assert_string_equal((char *)r.bytes, "again");
    free(r.bytes);
    proxy_arm("mode=reset&count=1");
    assert_int_equal(put(e, "f/reset2", "put", 3), 0); /* puts are retried too */
    proxy_arm("mode=reset&count=-1");
    r = get(e, "f/reset");
    assert_int_equal(r.status, -ECONNRESET);
    proxy_arm("mode=pass");
    close_env(e);
}

static void test_fault_stall_deadline(void **state)
{
    (void)state;
    SKIP_WITHOUT_S3();
    objstore_options o = base_options();
    o.request_timeout_ms = 1500;
    o.max_retries = 0;
    env *e = open_url(proxy_url, &o);
    proxy_arm("mode=stall&count=-1");
    uint64_t t0 = uv_hrtime();
    res r = get(e, "f/stalled");
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(r.status, -ETIMEDOUT);
    assert_true(ms >= 1000 && ms < 5000); /* the deadline, not the server, ended it */
    proxy_arm("mode=pass");
    close_env(e);
}

static void test_retry_budget(void **state)
{
    (void)state;
    SKIP_WITHOUT_S3();
    objstore_options o = base_options();
    o.max_retries = 5;
    env *e = open_url(proxy_url, &o);
    proxy_arm("mode=status&code=503&count=-1");
    enum { N = 40 };
    res r[N];
    memset(r, 0, sizeof(r));
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "f/storm%d", i);
        assert_int_equal(objstore_get(e->os, key, on_get, &r[i], NULL), 0);
    }
    int done = 0;
    while (done < N) {
        uv_run(&e->loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < N; i++)
            done += r[i].calls;
    }
    objstore_stats st;
    objstore_stats_get(e->os, &st);
    /* 40 failing calls with 5 retries each would be 200 retries; the budget allows ~10. */
    assert_true(st.retries <= 12);
    assert_true(st.retries_denied > 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(r[i].status, OGD_EOBJ_UNAVAILABLE);
    proxy_arm("mode=pass");
    close_env(e);
}

static void test_cancel_and_close(void **state)
{
    (void)state;
    SKIP_WITHOUT_S3();
    objstore_options o = base_options();
    o.max_connections = 4;
    env *e = open_url(proxy_url, &o);
    proxy_arm("mode=stall&count=-1");
    enum { N = 10 };
    res r[N];
    objstore_req_t *req[N];
    memset(r, 0, sizeof(r));
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "f/c%d", i);
        assert_int_equal(objstore_get(e->os, key, on_get, &r[i], &req[i]), 0);
    }
    for (int i = 0; i < 5; i++) /* let the first 4 reach the wire */
        uv_run(&e->loop, UV_RUN_NOWAIT);
    usleep(100000);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    for (int i = 0; i < N / 2; i++)
        objstore_cancel(req[i]);
    for (int i = 0; i < N / 2; i++)
        assert_int_equal(r[i].calls, 0); /* never inside objstore_cancel */
    int done = 0;
    while (done < N / 2) {
        uv_run(&e->loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < N / 2; i++)
            done += r[i].calls;
    }
    for (int i = 0; i < N / 2; i++)
        assert_int_equal(r[i].status, -ECANCELED);
    /* the rest are cancelled by close */
    close_env(e);
    for (int i = N / 2; i < N; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, -ECANCELED);
    }
    proxy_arm("mode=pass");
}

static int setup(void **state)
{
    (void)state;
    s3_url = getenv("OGD_TEST_S3_URL");
    s3_ak = getenv("OGD_TEST_S3_ACCESS_KEY");
    s3_sk = getenv("OGD_TEST_S3_SECRET_KEY");
    if (!s3_url || !s3_ak || !s3_sk) {
        s3_url = NULL;
        return 0;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(bucket, sizeof(bucket), "ogd-unit-%d", (int)getpid());
    objstore_options o = base_options();
    o.create_bucket = true;
    char err[256];
    if (objstore_prepare(s3_url, &o, err, sizeof(err)) != 0) {
        fprintf(stderr, "cannot create the test bucket: %s\n", err);
        return -1;
    }
    proxy_start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (proxy_pid > 0) {
        kill(proxy_pid, SIGTERM);
        waitpid(proxy_pid, NULL, 0);
    }
    if (s3_url)
        curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepare),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_delete_prefix),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_cache_and_single_flight),
        cmocka_unit_test(test_many_concurrent),
        cmocka_unit_test(test_fair_share),
        cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_fault_5xx_retried),
        cmocka_unit_test(test_fault_reset_retried),
        cmocka_unit_test(test_fault_stall_deadline),
        cmocka_unit_test(test_retry_budget),
        cmocka_unit_test(test_cancel_and_close),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
