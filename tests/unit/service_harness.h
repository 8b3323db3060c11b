/*
 * service_harness.h: the fixture of the unit tests that drive a service (the functions
 * engine, the export pipeline) without HTTP: a libuv loop, an SQLite store in a fresh
 * temporary directory (migrated), a filesystem object store under it, the default
 * configuration and an arena, as a worker would hand them to the service. Include it in
 * one test file after <cmocka.h>; svc_open and svc_close are its setup and teardown
 * (svc_teardown the latter as a cmocka teardown), svc_put stores a document with a put
 * op kind.
 */
#ifndef OGD_TESTS_SERVICE_HARNESS_H
#define OGD_TESTS_SERVICE_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "config/config.h"
#include "objstore/objstore.h"
#include "store/store.h"
#include "util/arena.h"

typedef struct svc_fixture {
    char dir[64];
    uv_loop_t loop;
    store_t *store;
    objstore_t *objstore;
    ogd_config cfg;
    arena_t arena;
} svc_fixture;

/* Stores doc (JSON text) with op kind `kind` (a put), synchronously. */
static void svc_put(svc_fixture *f, store_op_kind kind, const char *doc)
{
    store_op_t op;
    store_op_init(&op, kind);
    op.doc = json_loads(doc, 0, NULL);
    assert_non_null(op.doc);
    assert_int_equal(store_run_sync(f->store, &op), 0);
    json_decref(op.doc);
}

/* A new fixture; its directory is made from `tag` (e.g. "fneval"). */
static svc_fixture *svc_open(const char *tag)
{
    svc_fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ogd-%s-XXXXXX", tag);
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    char url[128], err[256];
    snprintf(url, sizeof url, "sqlite://%s/db.sqlite3", f->dir);
    assert_int_equal(store_migrate(url, err, sizeof err), 0);
    assert_int_equal(store_open(url, &f->loop, &f->store, err, sizeof err), 0);
    snprintf(url, sizeof url, "file://%s/objects", f->dir);
    assert_int_equal(objstore_open(url, NULL, &f->loop, &f->objstore, err, sizeof err), 0);
    config_defaults(&f->cfg);
    arena_init(&f->arena, 1 << 24);
    return f;
}

static void svc_closed(void *data)
{
    *(bool *)data = true;
}

/* Closes the stores and the loop and removes the directory. */
static void svc_close(svc_fixture *f)
{
    bool done = false;
    objstore_close(f->objstore, svc_closed, &done);
    while (!done)
        uv_run(&f->loop, UV_RUN_ONCE);
    store_close(f->store);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    arena_free(&f->arena);
    config_free(&f->cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
}

/* A cmocka teardown for tests whose setup put a fixture in *state. */
static int svc_teardown(void **state)
{
    svc_close(*state);
    return 0;
}

#endif
