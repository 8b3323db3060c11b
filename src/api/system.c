/*
 * system.c: GET /version, /healthz (the worker's loop answers), /readyz (the database
 * and the object store both answer), and, in builds with test hooks, a route that blocks
 * the loop so the watchdog can be tested.
 */
#include "api/api.h"
#include "api/handlers.h"
#include "metrics/metrics.h"
#include "util/taskgroup.h"

#include "util/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void api_version(http_request_t *req)
{
    static const char body[] = "{\"version\":\"" OGD_VERSION "\"}";
    http_respond(req, 200, "application/json", body, sizeof(body) - 1);
}

void api_healthz(http_request_t *req)
{
    static const char body[] = "{\"status\":\"ok\"}";
    http_respond(req, 200, "application/json", body, sizeof(body) - 1);
}

/* Prometheus text of the whole server (every worker's counters: metrics/metrics.h). */
void api_metrics(http_request_t *req)
{
    buf_t out;
    buf_init(&out, (size_t)4 << 20);
    objstore_stats st; /* this worker's latest figures, not a heartbeat old */
    objstore_stats_get(((app_t *)req->app)->objstore, &st);
    metrics_publish_objstore(&st);
    size_t n;
    const http_route *routes = http_server_routes(req->server, &n);
    if (metrics_render(&out, routes, n) != 0) {
        buf_free(&out);
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    size_t len = out.len;
    http_respond_take(req, 200, "text/plain; version=0.0.4; charset=utf-8", buf_take(&out), len);
}

typedef struct ready_ctx {
    http_request_t *req;
    store_op_t op;
    int pending;
    bool db_ok, objects_ok;
    char db_err[128];
} ready_ctx;

static void ready_finish(ready_ctx *ctx)
{
    if (--ctx->pending > 0)
        return;
    http_request_t *req = ctx->req;
    http_set_abort(req, NULL, NULL);
    json_t *body = json_pack(
        "{ss ss ss}", "status", ctx->db_ok && ctx->objects_ok ? "ready" : "unavailable", "database",
        ctx->db_ok ? "ok" : "unavailable", "object_store", ctx->objects_ok ? "ok" : "unavailable");
    api_respond_json(req, ctx->db_ok && ctx->objects_ok ? 200 : 503, body);
}

static void ready_db(store_op_t *op)
{
    ready_ctx *ctx = op->data;
    ctx->db_ok = op->status == 0;
    if (!ctx->db_ok)
        log_warn("readyz: database: %s", op->err);
    store_op_cleanup(op);
    ready_finish(ctx);
}

static void ready_objects(int status, const objstore_blob_t *blob, void *data)
{
    ready_ctx *ctx = data;
    (void)blob;
    /* A missing probe object means the store answered. */
    ctx->objects_ok = status == 0 || status == -ENOENT;
    ready_finish(ctx);
}

static void ready_abort(http_request_t *req, void *data)
{
    ready_ctx *ctx = data;
    (void)req;
    store_cancel(&ctx->op);
}

void api_readyz(http_request_t *req)
{
    app_t *app = req->app;
    ready_ctx *ctx = api_ctx_new(req, sizeof(*ctx));
    if (!ctx)
        return;
    ctx->req = req;
    ctx->pending = 1;
    store_op_init(&ctx->op, STORE_PING);
    http_set_abort(req, ready_abort, ctx);
    ctx->pending++;
    if (store_submit(app->store, &ctx->op, ready_db, ctx) != 0)
        ctx->pending--;
    ctx->pending++;
    const void *owner = objstore_set_owner(app->objstore, req);
    if (objstore_get(app->objstore, ".ogd-readiness-probe", ready_objects, ctx, NULL) != 0)
        ctx->pending--;
    objstore_set_owner(app->objstore, owner);
    ready_finish(ctx);
}

#ifdef OGD_TEST_HOOKS
/* Blocks the loop thread for ?seconds=N (at most 60): only for the watchdog test. */
void api_test_block(http_request_t *req)
{
    int64_t secs;
    if (!api_query_int_range(req, "seconds", 1, 0, 60, &secs))
        return;
    if (!getenv("OGD_ENABLE_TEST_HOOKS")) {
        http_respond_error(req, 404, "Not Found");
        return;
    }
    sleep((unsigned)secs);
    http_respond(req, 200, "application/json", "{}", 2);
}

/* GET /_test/hold?name=N[&pool=1] (a heavy route): a request that runs until the test
 * creates <data_dir>/hold-N.release, for tests of what happens to requests that wait or
 * run (fairness, abandonment). On start it creates <data_dir>/hold-N.started. pool=1
 * holds a thread-pool thread meanwhile (polling the file), otherwise a loop timer polls.
 * A client that leaves ends it at once. */
typedef struct hold_ctx {
    http_request_t *req;
    char *release;
    uv_timer_t timer;
    work_t *work;
    atomic_bool stop;
    bool released;
} hold_ctx;

static void hold_finish(hold_ctx *h)
{
    http_set_abort(h->req, NULL, NULL);
    if (h->released)
        http_respond(h->req, 200, "application/json", "{}", 2);
    else
        http_respond_error(h->req, 500, "Unknown error"); /* aborted: writes nothing */
}

static void hold_closed(uv_handle_t *t)
{
    hold_finish(t->data);
}

static void hold_tick(uv_timer_t *t)
{
    hold_ctx *h = t->data;
    if (access(h->release, F_OK) == 0) {
        h->released = true;
        uv_close((uv_handle_t *)&h->timer, hold_closed);
    }
}

static void hold_run(void *data)
{
    hold_ctx *h = data;
    while (!atomic_load(&h->stop)) {
        if (access(h->release, F_OK) == 0) {
            h->released = true;
            return;
        }
        usleep(5000);
    }
}

static void hold_done(void *data, int status)
{
    (void)status;
    hold_finish(data);
}

static void hold_abort(http_request_t *req, void *data)
{
    hold_ctx *h = data;
    (void)req;
    if (h->work) {
        atomic_store(&h->stop, true);
        work_cancel(h->work);
    } else if (!uv_is_closing((uv_handle_t *)&h->timer)) {
        uv_close((uv_handle_t *)&h->timer, hold_closed);
    }
}

void api_test_hold(http_request_t *req)
{
    const char *name = http_query_get(req, "name");
    if (!getenv("OGD_ENABLE_TEST_HOOKS") || !name || !*name || strlen(name) > 32 ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
            strlen(name)) {
        http_respond_error(req, 404, "Not Found");
        return;
    }
    app_t *app = req->app;
    const char *dir = app->cfg->server.data_dir;
    hold_ctx *h = api_ctx_new(req, sizeof(*h));
    if (!h)
        return;
    h->req = req;
    size_t n = strlen(dir) + strlen(name) + 32;
    h->release = arena_alloc(&req->arena, n);
    char *started = arena_alloc(&req->arena, n);
    if (!h->release || !started) {
        http_respond_error(req, 500, "Unknown error");
        return;
    }
    snprintf(h->release, n, "%s/hold-%s.release", dir, name);
    snprintf(started, n, "%s/hold-%s.started", dir, name);
    FILE *f = fopen(started, "w");
    if (f)
        fclose(f);
    const char *pool = http_query_get(req, "pool");
    http_set_abort(req, hold_abort, h);
    if (pool && strcmp(pool, "1") == 0) {
        if (work_submit(app->loop, hold_run, hold_done, h, &h->work) != 0) {
            http_set_abort(req, NULL, NULL);
            http_respond_error(req, 500, "Unknown error");
        }
        return;
    }
    uv_timer_init(app->loop, &h->timer);
    h->timer.data = h;
    uv_timer_start(&h->timer, hold_tick, 10, 10);
}
#endif
