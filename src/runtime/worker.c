/*
 * worker.c: one serving process. Owns a libuv loop and, on it, the HTTP server, the
 * store, the object store, the heartbeat timer and the signal handlers. Fast stop closes
 * everything at once; graceful stop drains: no new connections, in-flight requests
 * finish, then the process exits.
 */
#include "runtime/runtime.h"

#include "api/api.h"
#include "api/control.h"
#include "auth/jwt.h"
#include "auth/ratelimit.h"
#include "objstore/config.h"
#include "metrics/metrics.h"
#include "util/log.h"
#include "util/pool.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

typedef struct worker {
    uv_loop_t loop;
    app_t app;
    http_server_t *server;
    worker_slot *slot;
    uv_timer_t heartbeat;
    uv_timer_t drain_deadline;
    uv_signal_t sig_term, sig_quit, sig_usr1;
    uint64_t max_requests;
    bool stopping;
    bool settled; /* after the stop: every aborted request has finished */
} worker;

uint64_t runtime_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void beat(uv_timer_t *t)
{
    worker *w = t->data;
    atomic_store(&w->slot->heartbeat_ms, runtime_monotonic_ms());
    objstore_stats st;
    objstore_stats_get(w->app.objstore, &st);
    size_t heavy_waiting;
    uint64_t shed;
    http_server_gate_stats(w->server, &heavy_waiting, &shed);
    uint64_t dropped, refused;
    http_server_conn_stats(w->server, &dropped, &refused);
    metrics_set_runtime(pool_waiting(), heavy_waiting, shed, dropped, refused);
    metrics_publish_objstore(&st);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void stop_loop(worker *w)
{
    w->stopping = true;
    uv_stop(&w->loop);
}

static void drained(void *data)
{
    stop_loop(data);
}

static void drain_expired(uv_timer_t *t)
{
    worker *w = t->data;
    log_warn("graceful stop: connections still open after graceful_timeout, closing them");
    stop_loop(w);
}

static void on_signal(uv_signal_t *s, int signum)
{
    worker *w = s->data;
    if (signum == SIGUSR1) {
        log_reopen();
        return;
    }
    if (signum == SIGQUIT) {
        if (w->stopping)
            return;
        w->stopping = true;
        uv_timer_start(&w->drain_deadline, drain_expired,
                       (uint64_t)w->app.cfg->server.graceful_timeout * 1000, 0);
        http_server_drain(w->server, drained, w);
        return;
    }
    stop_loop(w);
}

static void server_closed(void *data)
{
    worker *w = data;
    w->settled = true;
    uv_stop(&w->loop);
}

static void settle_expired(uv_timer_t *t)
{
    worker *w = t->data;
    log_warn("stop: %u requests still running %d ms after they were aborted, leaving them",
             http_server_requests_running(w->server), WORKER_STOP_SETTLE_MS);
    uv_stop(&w->loop);
}

/* Closes the server and runs the loop until the requests it aborts have unwound: their
 * abort hooks cancel what they started (a helper process killed, transfers and queries
 * cancelled), and what a cancelled request must still do to leave nothing half done (an
 * ingest deleting the objects it stored) runs while the store and the object store are
 * open. Bounded by WORKER_STOP_SETTLE_MS; the heartbeat keeps beating meanwhile. */
static void settle(worker *w)
{
    uv_timer_stop(&w->drain_deadline);
    http_server_close(w->server, server_closed, w);
    if (w->settled)
        return;
    uv_timer_start(&w->drain_deadline, settle_expired, WORKER_STOP_SETTLE_MS, 0);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&w->drain_deadline);
}

static void request_done(http_request_t *req, void *data)
{
    worker *w = data;
    int route = req->route ? (int)(req->route - api_routes) : -1;
    metrics_record_request(route, req->status, req->aborted, uv_hrtime() - req->start_ns);
    if (w->max_requests && http_server_requests(w->server) >= w->max_requests &&
        !atomic_load(&w->slot->retire)) {
        /* The master starts a replacement, then sends QUIT to drain this worker. */
        atomic_store(&w->slot->retire, 1);
        kill(getppid(), SIGCHLD);
    }
}

void worker_run(const ogd_config *cfg, int listen_fd, worker_slot *slot)
{
    prctl(PR_SET_NAME, "ogd-worker"); /* what ps/top/pgrep show */
    signal(SIGINT, SIG_IGN);          /* a terminal's ^C reaches the master, which decides */
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* libuv sizes its process-wide thread pool from the environment on first use, which
     * happens in this process after the fork. */
    char threads[16];
    snprintf(threads, sizeof(threads), "%d", cfg->server.threads);
    setenv("UV_THREADPOOL_SIZE", threads, 1);
    /* Workers share one listening socket. By default libuv accepts every pending
     * connection in a loop, so one worker can take a whole burst and leave the others
     * idle; single-accept mode yields after each accept and the burst spreads out. */
    setenv("UV_TCP_SINGLE_ACCEPT", "1", 1);
    /* Objects (100 KB .. 100 MB) are malloc'd on pool threads and freed on the loop. With
     * glibc's sliding mmap threshold, once such a buffer has been freed the next ones come
     * from the per-thread heaps, whose free space is kept: a long export would leave the
     * worker holding its peak in every heap. A fixed threshold keeps large buffers in
     * mmap, returned to the system when freed, so the resident size follows live data. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);

    worker *w = calloc(1, sizeof(*w));
    if (!w)
        _exit(1);
    char err[512];
    w->slot = slot;
    atomic_store(&slot->heartbeat_ms, runtime_monotonic_ms());
    uv_loop_init(&w->loop);
    w->app.cfg = cfg;
    w->app.loop = &w->loop;

    store_options so = {.pool_size = cfg->database.pool_size};
    if (store_open_ex(cfg->database.url, &w->loop, &so, &w->app.store, err, sizeof(err)) != 0) {
        log_error("worker: %s", err);
        _exit(3);
    }
    objstore_options oo;
    objstore_options_from_config(cfg, &oo);
    if (objstore_open(cfg->echo.url, &oo, &w->loop, &w->app.objstore, err, sizeof(err)) != 0) {
        log_error("worker: %s", err);
        _exit(3);
    }
    if (jwt_keys_load(cfg->auth.private_key_path, cfg->auth.public_key_path, &w->app.keys, err,
                      sizeof(err)) != 0) {
        log_error("worker: %s", err);
        _exit(3);
    }
    /* The master's shared table (all workers count together); a private one otherwise. */
    w->app.login_limiter = ratelimit_shared();
    if (!w->app.login_limiter)
        w->app.login_limiter = ratelimit_new(300);
    w->app.oidc = oidc_state_new(&w->loop, cfg->auth.oidc_providers_count);
    http_limits lim = {
        .max_header_bytes = (size_t)cfg->server.max_header_bytes,
        .max_body_bytes = (size_t)cfg->server.max_body_bytes,
        .header_timeout_ms = (unsigned)cfg->server.header_timeout * 1000,
        .body_timeout_ms = (unsigned)cfg->server.body_timeout * 1000,
        .keepalive_ms = (unsigned)cfg->server.keepalive * 1000,
        .max_connections = (unsigned)cfg->server.worker_connections,
        .max_conns_per_client = (unsigned)cfg->server.max_connections_per_client,
        .forwarded_allow_ips = (const char *const *)cfg->server.forwarded_allow_ips,
        .nforwarded_allow_ips = cfg->server.forwarded_allow_ips_count,
        .max_upload_bytes = (size_t)cfg->server.max_upload_bytes,
        .heavy_per_user = cfg->server.max_heavy_per_user > 0
                              ? (unsigned)cfg->server.max_heavy_per_user
                              : (unsigned)(cfg->server.threads > 2 ? cfg->server.threads - 1 : 1),
        .max_pool_waiting = (size_t)cfg->server.max_pool_waiting,
    };
    int rc = http_server_create(&w->loop, listen_fd, api_routes, api_nroutes, &lim,
                                cfg->app.url_prefix, (const char *const *)cfg->app.cors_origins,
                                cfg->app.cors_origins_count, &w->app, &w->server);
    if (rc != 0) {
        log_error("worker: cannot listen: %s", uv_strerror(rc));
        _exit(3);
    }
    w->max_requests = (uint64_t)cfg->server.max_requests;
    if (w->max_requests && cfg->server.max_requests_jitter > 0)
        w->max_requests += (uint64_t)(getpid() % (cfg->server.max_requests_jitter + 1));
    http_server_on_request_done(w->server, request_done, w);
    http_server_set_authorizer(w->server, api_authorize);

    uv_timer_init(&w->loop, &w->heartbeat);
    w->heartbeat.data = w;
    uv_timer_start(&w->heartbeat, beat, 0, 250);
    uv_timer_init(&w->loop, &w->drain_deadline);
    w->drain_deadline.data = w;
    uv_signal_t *sigs[] = {&w->sig_term, &w->sig_quit, &w->sig_usr1};
    int nums[] = {SIGTERM, SIGQUIT, SIGUSR1};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&w->loop, sigs[i]);
        sigs[i]->data = w;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    atomic_store(&slot->ready, 1); /* a worker it replaces may now drain: tell the master */
    kill(getppid(), SIGCHLD);
    log_info("worker started");

    uv_run(&w->loop, UV_RUN_DEFAULT);

    /* Stop: abort what is left and let it unwind, close the rest, let pending work
     * callbacks run, release everything. */
    settle(w);
    objstore_close(w->app.objstore, NULL, NULL);
    oidc_state_close(w->app.oidc);
    uv_walk(&w->loop, close_walk, NULL); /* the rest: timers, signals */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    store_close(w->app.store);
    http_server_free(w->server);
    jwt_keys_free(w->app.keys);
    ratelimit_free(w->app.login_limiter);
    uv_loop_close(&w->loop);
    log_info("worker stopped");
    free(w);
    exit(0);
}
