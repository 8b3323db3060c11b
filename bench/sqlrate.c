/*
 * sqlrate: the baseline of bench/records.sh. Runs the /records query of the benchmark
 * straight through the store (filter compile -> SQL -> SQLite -> rows), in T threads for
 * D seconds on the same database file, with no HTTP, no JSON output and no processes in
 * between, and prints queries per second.
 *
 *   bench_sqlrate DB_PATH THREADS SECONDS CONDITIONS_JSON ORDER PROJ1 [PROJ2 ...]
 */
#include "store/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bench {
    store_t *store;
    json_t *conditions;
    const char *order;
    const char *const *projection;
    size_t nprojection;
    double seconds;
    _Atomic long done;
    _Atomic int failed;
} bench;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
    bench *b = arg;
    double end = now() + b->seconds;
    char err[256];
    while (now() < end) {
        filter_t *f = NULL;
        if (filter_compile(b->conditions, true, &f, err, sizeof(err)) != 0) {
            fprintf(stderr, "filter: %s\n", err);
            atomic_store(&b->failed, 1);
            return NULL;
        }
        store_op_t op;
        store_op_init(&op, STORE_RECORDS_FIND);
        op.filter = f;
        op.order = &b->order;
        op.norder = 1;
        op.projection = b->projection;
        op.nprojection = b->nprojection;
        op.limit = 25;
        op.max_documents = 1000;
        if (store_run_sync(b->store, &op) != 0 || json_array_size(op.result) == 0) {
            fprintf(stderr, "query failed: %s\n", op.err);
            atomic_store(&b->failed, 1);
        }
        store_op_cleanup(&op);
        filter_free(f);
        atomic_fetch_add(&b->done, 1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s DB THREADS SECONDS CONDITIONS ORDER PROJ...\n", argv[0]);
        return 2;
    }
    char url[4200], err[256];
    snprintf(url, sizeof(url), "sqlite://%s", argv[1]);
    bench b = {.seconds = atof(argv[3]), .order = argv[5]};
    json_error_t je;
    b.conditions = json_loads(argv[4], 0, &je);
    b.projection = (const char *const *)&argv[6];
    b.nprojection = (size_t)(argc - 6);
    if (!b.conditions || store_open(url, NULL, &b.store, err, sizeof(err)) != 0) {
        fprintf(stderr, "setup failed: %s\n", b.conditions ? err : je.text);
        return 1;
    }
    int threads = atoi(argv[2]);
    pthread_t tid[64];
    if (threads < 1 || threads > 64)
        threads = 1;
    double t0 = now();
    for (int i = 0; i < threads; i++)
        pthread_create(&tid[i], NULL, run, &b);
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    double elapsed = now() - t0;
    printf("%.0f\n", (double)atomic_load(&b.done) / elapsed);
    store_close(b.store);
    json_decref(b.conditions);
    return atomic_load(&b.failed) ? 1 : 0;
}
