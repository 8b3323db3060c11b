/*
 * objstore_harness.h: what the object-store unit tests (test_s3.c,
 * test_objstore_contract.c) share: a store on its own libuv loop, opened and closed
 * with the loop run to the end (so LeakSanitizer sees every allocation returned), the
 * callbacks that record a result, and blocking forms of put and get for the cases.
 * Each call checks that the callback did not run inside the call.
 */
#ifndef OGD_TESTS_OBJSTORE_HARNESS_H
#define OGD_TESTS_OBJSTORE_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objstore/objstore.h"

typedef struct env {
    uv_loop_t loop;
    objstore_t *os;
    int closed;
} env;

static inline env *open_url(const char *url, const objstore_options *o)
{
    env *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    char err[256];
    int rc = objstore_open(url, o, &e->loop, &e->os, err, sizeof(err));
    if (rc)
        fprintf(stderr, "objstore_open: %s\n", err);
    assert_int_equal(rc, 0);
    return e;
}

static inline void on_closed(void *data)
{
    (*(int *)data)++;
}

static inline void close_env(env *e)
{
    objstore_close(e->os, on_closed, &e->closed);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(e->closed, 1);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    free(e);
}

/* Runs the loop until *counter reaches want. */
static inline void run_until(env *e, const int *counter, int want)
{
    while (*counter < want)
        uv_run(&e->loop, UV_RUN_ONCE);
}

typedef struct res {
    int calls;
    int status;
    size_t len;
    uint64_t value;
    unsigned char *bytes; /* a copy of a GET's blob */
} res;

static inline void on_get(int status, const objstore_blob_t *blob, void *data)
{
    res *r = data;
    r->calls++;
    r->status = status;
    if (status == 0) {
        r->len = blob->len;
        r->bytes = malloc(blob->len + 1);
        memcpy(r->bytes, blob->data, blob->len + 1);
    }
}

static inline void on_done(int status, void *data)
{
    res *r = data;
    r->calls++;
    r->status = status;
}

static inline void on_count(int status, size_t n, void *data)
{
    res *r = data;
    r->calls++;
    r->status = status;
    r->value = n;
}

static inline void on_head(int status, uint64_t size, void *data)
{
    res *r = data;
    r->calls++;
    r->status = status;
    r->value = size;
}

static inline int put(env *e, const char *key, const void *bytes, size_t len)
{
    res r = {0};
    assert_int_equal(objstore_put(e->os, key, bytes, len, on_done, &r, NULL), 0);
    assert_int_equal(r.calls, 0);
    run_until(e, &r.calls, 1);
    return r.status;
}

static inline res get(env *e, const char *key)
{
    res r = {0};
    assert_int_equal(objstore_get(e->os, key, on_get, &r, NULL), 0);
    assert_int_equal(r.calls, 0);
    run_until(e, &r.calls, 1);
    return r;
}

#endif
