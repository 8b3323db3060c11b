/*
 * bench_fanout: fetches N objects of S bytes from S3 through ogd's object store (one
 * libuv loop, as in a worker) and, in the same run, the two ways the reference fetches
 * them: one connection in sequence, and a pool of 10 connections.
 *
 *   bench_fanout --url http://127.0.0.1:9700 --direct http://127.0.0.1:7480 \
 *                [--n 1000] [--size 204800] [--connections 256] [--seq-sample 20]
 *
 * --url is the S3 endpoint the fetches go to (bench/fanout.sh puts delayproxy, ~0.7 s
 * first-byte latency, there); --direct is where the objects are stored first, without
 * the latency. Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; the
 * bucket (ogd-bench-fanout) is created when missing. Every fetched object is checked
 * (its first bytes name its key). The sequential baseline fetches --seq-sample objects
 * and is extrapolated to N, which the output line says. Prints one line:
 *   fanout: n=.. size=..KB latency=..s ogd=..s pool10=..s sequential=..s speedup_vs_pool10=..x
 * and a second with the peak RSS of the ogd phase.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "objstore/objstore.h"

static const char *bucket = "ogd-bench-fanout";
static const char *ak, *sk;
static size_t n_objects = 1000, obj_size = 200 * 1024;

static double now_s(void)
{
    return (double)uv_hrtime() / 1e9;
}

static void key_of(size_t i, char *out, size_t len)
{
    snprintf(out, len, "bench/fanout/%zu/obj-%06zu.bin", obj_size, i);
}

static bool object_ok(size_t i, const unsigned char *data, size_t len)
{
    char key[128];
    key_of(i, key, sizeof(key));
    return len == obj_size && memcmp(data, key, strlen(key)) == 0;
}

/* ---- the ogd phase ---- */

typedef struct fan {
    size_t done, bad;
    int failures;
} fan;

typedef struct slot {
    fan *f;
    size_t i;
} slot;

static void on_put(int status, void *data)
{
    slot *s = data;
    if (status)
        s->f->failures++;
    s->f->done++;
}

static void on_get(int status, const objstore_blob_t *blob, void *data)
{
    slot *s = data;
    if (status) {
        s->f->failures++;
        fprintf(stderr, "get %zu: %s\n", s->i, strerror(-status));
    } else if (!object_ok(s->i, blob->data, blob->len)) {
        s->f->bad++;
    }
    s->f->done++;
}

static objstore_t *open_store(uv_loop_t *loop, const char *url, unsigned connections)
{
    objstore_options o = {.bucket = bucket,
                          .access_key = ak,
                          .secret_key = sk,
                          .max_connections = connections,
                          .request_timeout_ms = 120000,
                          .max_retries = 3};
    objstore_t *os;
    char err[256];
    if (objstore_open(url, &o, loop, &os, err, sizeof(err)) != 0) {
        fprintf(stderr, "objstore_open: %s\n", err);
        exit(1);
    }
    return os;
}

static void close_store(uv_loop_t *loop, objstore_t *os)
{
    objstore_close(os, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void store_objects(const char *direct)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    objstore_t *os = open_store(&loop, direct, 64);
    fan f = {0};
    slot *slots = calloc(n_objects, sizeof(*slots));
    unsigned char *bytes = malloc(obj_size);
    for (size_t i = 0; i < obj_size; i++)
        bytes[i] = (unsigned char)(i * 131u);
    for (size_t i = 0; i < n_objects; i++) {
        char key[128];
        key_of(i, key, sizeof(key));
        memcpy(bytes, key, strlen(key));
        slots[i] = (slot){&f, i};
        objstore_put(os, key, bytes, obj_size, on_put, &slots[i], NULL);
    }
    free(bytes);
    while (f.done < n_objects)
        uv_run(&loop, UV_RUN_ONCE);
    close_store(&loop, os);
    uv_loop_close(&loop);
    free(slots);
    if (f.failures) {
        fprintf(stderr, "storing the objects failed (%d)\n", f.failures);
        exit(1);
    }
}

static double ogd_fetch(const char *url, unsigned connections)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    objstore_t *os = open_store(&loop, url, connections);
    fan f = {0};
    slot *slots = calloc(n_objects, sizeof(*slots));
    double t0 = now_s();
    for (size_t i = 0; i < n_objects; i++) {
        char key[128];
        key_of(i, key, sizeof(key));
        slots[i] = (slot){&f, i};
        if (objstore_get(os, key, on_get, &slots[i], NULL) != 0)
            exit(1);
    }
    while (f.done < n_objects)
        uv_run(&loop, UV_RUN_ONCE);
    double t = now_s() - t0;
    close_store(&loop, os);
    uv_loop_close(&loop);
    free(slots);
    if (f.failures || f.bad) {
        fprintf(stderr, "ogd fetch: %d failures, %zu bad objects\n", f.failures, f.bad);
        exit(1);
    }
    return t;
}

/* ---- the baselines: blocking clients, as the reference's pool ---- */

typedef struct sink {
    unsigned char *data;
    size_t len, cap;
} sink;

static size_t sink_write(char *p, size_t size, size_t n, void *u)
{
    sink *s = u;
    size_t len = size * n;
    if (s->len + len > s->cap) {
        s->cap = (s->len + len) * 2;
        s->data = realloc(s->data, s->cap);
    }
    memcpy(s->data + s->len, p, len);
    s->len += len;
    return len;
}

typedef struct client {
    CURL *easy;
    struct curl_slist *headers;
    sink body;
} client;

static void client_init(client *c)
{
    memset(c, 0, sizeof(*c));
    c->easy = curl_easy_init();
    c->headers = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    curl_easy_setopt(c->easy, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
    curl_easy_setopt(c->easy, CURLOPT_USERNAME, ak);
    curl_easy_setopt(c->easy, CURLOPT_PASSWORD, sk);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, &c->body);
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
}

static void client_free(client *c)
{
    curl_slist_free_all(c->headers);
    curl_easy_cleanup(c->easy);
    free(c->body.data);
}

static bool client_get(client *c, const char *base, size_t i)
{
    char key[128], url[512];
    key_of(i, key, sizeof(key));
    snprintf(url, sizeof(url), "%s/%s/%s", base, bucket, key);
    c->body.len = 0;
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    long code = 0;
    if (curl_easy_perform(c->easy) != CURLE_OK)
        return false;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
    return code == 200 && object_ok(i, c->body.data, c->body.len);
}

typedef struct pool_arg {
    const char *base;
    atomic_size_t *next;
    atomic_int *bad;
} pool_arg;

static void *pool_thread(void *p)
{
    pool_arg *a = p;
    client c;
    client_init(&c);
    for (;;) {
        size_t i = atomic_fetch_add(a->next, 1);
        if (i >= n_objects)
            break;
        if (!client_get(&c, a->base, i))
            atomic_fetch_add(a->bad, 1);
    }
    client_free(&c);
    return NULL;
}

static double pool_fetch(const char *base, int threads)
{
    atomic_size_t next = 0;
    atomic_int bad = 0;
    pool_arg a = {base, &next, &bad};
    pthread_t t[64];
    double t0 = now_s();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, pool_thread, &a);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double took = now_s() - t0;
    if (bad) {
        fprintf(stderr, "pool fetch: %d failures\n", (int)bad);
        exit(1);
    }
    return took;
}

static double sequential_fetch(const char *base, size_t sample)
{
    client c;
    client_init(&c);
    double t0 = now_s();
    for (size_t i = 0; i < sample; i++)
        if (!client_get(&c, base, i)) {
            fprintf(stderr, "sequential fetch of %zu failed\n", i);
            exit(1);
        }
    double took = now_s() - t0;
    client_free(&c);
    return took;
}

/* The value of the last `name VALUE` pair (later arguments override earlier ones). */
static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    const char *v = def;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            v = argv[++i];
    return v;
}

int main(int argc, char **argv)
{
    const char *url = arg(argc, argv, "--url", NULL);
    const char *direct = arg(argc, argv, "--direct", url);
    n_objects = strtoul(arg(argc, argv, "--n", "1000"), NULL, 10);
    obj_size = strtoul(arg(argc, argv, "--size", "204800"), NULL, 10);
    unsigned connections = (unsigned)strtoul(arg(argc, argv, "--connections", "256"), NULL, 10);
    size_t sample = strtoul(arg(argc, argv, "--seq-sample", "20"), NULL, 10);
    double latency = strtod(arg(argc, argv, "--latency", "0.7"), NULL);
    ak = getenv("AWS_ACCESS_KEY_ID");
    sk = getenv("AWS_SECRET_ACCESS_KEY");
    if (!url || !ak || !sk || n_objects == 0 || obj_size < 64) {
        fprintf(stderr, "usage: bench_fanout --url URL [--direct URL] [--n N] [--size BYTES] "
                        "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY set)\n");
        return 2;
    }
    if (sample > n_objects)
        sample = n_objects;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    objstore_options po = {
        .bucket = bucket, .access_key = ak, .secret_key = sk, .create_bucket = true};
    char err[256];
    if (objstore_prepare(direct, &po, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* Stored from a child process, so the peak RSS below is the fetch phase's own. */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        store_objects(direct);
        _exit(0);
    }
    int wst = 0;
    if (pid < 0 || waitpid(pid, &wst, 0) < 0 || !WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
        fprintf(stderr, "storing the objects failed\n");
        return 1;
    }

    double ogd = ogd_fetch(url, connections);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long rss_mb = ru.ru_maxrss / 1024;
    double pool10 = pool_fetch(url, 10);
    double seq = sequential_fetch(url, sample) * (double)n_objects / (double)sample;

    char note[64] = "";
    if (sample < n_objects)
        snprintf(note, sizeof(note), "(extrapolated_from=%zu)", sample);
    printf("fanout: n=%zu size=%zuKB latency=%.2fs ogd=%.2fs pool10=%.2fs sequential=%.1fs%s "
           "speedup_vs_pool10=%.1fx\n",
           n_objects, obj_size / 1024, latency, ogd, pool10, seq, note, pool10 / ogd);
    printf("fanout: connections=%u peak_rss_ogd_phase=%ldMB sequential_sample=%zu\n", connections,
           rss_mb, sample);
    curl_global_cleanup();
    return 0;
}
