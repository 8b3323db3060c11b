/*
 * jobs.c: the `jobs` process: singleton background work, away from the workers' loops.
 *
 * The master forks exactly one jobs process and replaces it if it dies. Before doing
 * anything it takes an exclusive lock on <data_dir>/jobs.lock, so two servers sharing a
 * data directory still run one set of jobs; on PostgreSQL it then contends for the
 * cluster's lease (store/lease.h), and only while it holds the lease does it run them (the
 * others keep the schedule and try again every few seconds). Jobs today: database maintenance every
 * `maintenance_interval` seconds (SQLite: checkpoint and truncate the WAL, refresh the planner's
 * statistics), and, with `experiments.scheduler_background_task_enabled`, the experiments refresh
 * on the cron schedule `scheduler_background_frequency`, evaluated in
 * `scheduler_background_timezone` (this process sets TZ to it): each run searches up to
 * the occurrence after the one being run; a failed run is retried once after
 * `scheduler_background_retry_mins`, a second failure waits for the next occurrence. A run
 * that is late (the process was busy or just started after a missed occurrence) starts at
 * once. At each maintenance it also sweeps the objects of failed uploads that may have
 * landed late (ingest/sweep.h): only when a note is due does it open the object store, on
 * a private loop, for that sweep.
 *
 * Between jobs it sleeps in sigtimedwait, so TERM, QUIT and INT end it at once and HUP is
 * the master's business (it replaces this process with one on the new config). USR2 sent
 * to it runs the maintenance and the sweep at once (then every interval from there). An
 * experiments run drives its own libuv loop (store and HTTP calls, each with a timeout);
 * a stop signal during it ends the process at once.
 */
#include "runtime/runtime.h"

#include "util/cron.h"
#include "experiments/experiments.h"
#include "ingest/sweep.h"
#include "objstore/config.h"
#include "store/lease.h"
#include "store/store.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define JOBS_LOCK_RETRY_S 5
#define JOBS_MAINTENANCE_INTERVAL_S 600

static bool *run_now; /* set by a SIGUSR2 sleep_or_stop collected */

/* Sleeps up to seconds (0: only collects a pending signal); true when told to stop.
 * SIGUSR2 ends the sleep too, asking for the maintenance (and sweep) at once. */
static bool sleep_or_stop(const sigset_t *set, int seconds)
{
    struct timespec ts = {seconds, 0};
    int sig = sigtimedwait(set, NULL, &ts);
    if (sig == SIGUSR2 && run_now)
        *run_now = true;
    return sig == SIGTERM || sig == SIGQUIT || sig == SIGINT;
}

static void maintenance(store_t *store)
{
    store_op_t op;
    store_op_init(&op, STORE_MAINTENANCE);
    uint64_t t0 = runtime_monotonic_ms();
    if (store_run_sync(store, &op) != 0)
        log_warn("jobs: database maintenance failed: %s", op.err);
    else
        log_debug("jobs: database maintenance done in %llu ms",
                  (unsigned long long)(runtime_monotonic_ms() - t0));
    store_op_cleanup(&op);
}

/* Notes looked at per sweep: the rest wait for the next one. */
#define JOBS_SWEEP_MAX 1000

static void sweep_uncertain(const ogd_config *cfg, store_t *store)
{
    int64_t now = (int64_t)time(NULL);
    int64_t grace = cfg->echo.uncertain_write_grace;
    if (!uncertain_sweep_due(store, now, grace))
        return;
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return;
    char err[512];
    objstore_options oo;
    objstore_options_from_config(cfg, &oo);
    oo.cache_max_entries = 0;
    objstore_t *os = NULL;
    if (objstore_open(cfg->echo.url, &oo, &loop, &os, err, sizeof(err)) != 0) {
        log_warn("jobs: uncertain objects: %s", err);
    } else {
        uncertain_sweep_stats st;
        if (uncertain_sweep(store, os, &loop, now, grace, JOBS_SWEEP_MAX, &st) != 0)
            log_warn("jobs: uncertain objects: cannot list them");
        else
            log_info("jobs: uncertain objects: %zu due, %zu deleted, %zu live, %zu skipped, %zu "
                     "failed",
                     st.due, st.deleted, st.live, st.skipped, st.failures);
        objstore_close(os, NULL, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

typedef struct refresh_result {
    bool done;
    int status;
} refresh_result;

static void refresh_done(int status, const char *err, json_t *results, void *data)
{
    (void)err;
    (void)results;
    refresh_result *r = data;
    r->done = true;
    r->status = status;
}

/* Signals stay blocked during a run: a stop request is seen here and ends the process at
 * once (each stored experiment is its own transaction, so nothing is left half-written). */
static void check_stop(uv_timer_t *t)
{
    (void)t;
    sigset_t pending;
    if (sigpending(&pending) == 0 &&
        (sigismember(&pending, SIGTERM) || sigismember(&pending, SIGQUIT) ||
         sigismember(&pending, SIGINT))) {
        log_info("jobs: stopping during an experiments refresh");
        _exit(0);
    }
}

/* One experiments refresh on a private loop; true when it succeeded. */
static bool experiments_run_once(const ogd_config *cfg, time_t window_end)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return false;
    uv_timer_t stop_check;
    uv_timer_init(&loop, &stop_check);
    uv_timer_start(&stop_check, check_stop, 200, 200);
    uv_unref((uv_handle_t *)&stop_check);
    char err[512];
    store_t *store = NULL;
    refresh_result res = {false, -1};
    if (store_open(cfg->database.url, &loop, &store, err, sizeof(err)) != 0) {
        log_error("jobs: experiments: %s", err);
    } else {
        if (experiments_refresh(&loop, store, &cfg->experiments, window_end, NULL, refresh_done,
                                &res) == 0)
            while (!res.done && uv_run(&loop, UV_RUN_ONCE))
                ;
        uv_run(&loop, UV_RUN_NOWAIT);
        store_close(store);
    }
    uv_close((uv_handle_t *)&stop_check, NULL);
    uv_run(&loop, UV_RUN_DEFAULT); /* let closing handles finish */
    uv_loop_close(&loop);
    return res.done && res.status == 0;
}

/* Whether this process runs the cluster's jobs now (store/lease.h); says so when that
 * changes, and once at the start. */
static bool lead(store_lease *l, bool was, bool first)
{
    char err[256] = "";
    int rc = store_lease_hold(l, err, sizeof err);
    bool now = rc == 1;
    if (now && !was)
        log_info("jobs: this node runs the cluster's jobs");
    else if (!now && was)
        log_warn("jobs: this node no longer runs the cluster's jobs%s%s", rc < 0 ? ": " : "",
                 rc < 0 ? err : "");
    else if (!now && first)
        log_info("jobs: another node runs the cluster's jobs; standing by%s%s", rc < 0 ? ": " : "",
                 rc < 0 ? err : "");
    return now;
}

static void format_local(time_t t, char out[40])
{
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, 40, "%Y-%m-%dT%H:%M:%S%z", &tm);
}

void jobs_run(const ogd_config *cfg)
{
    prctl(PR_SET_NAME, "ogd-jobs");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_SETMASK, &set, NULL);

    char path[4096];
    snprintf(path, sizeof(path), "%s/jobs.lock", cfg->server.data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        log_error("jobs: cannot open %s: %s", path, strerror(errno));
        _exit(1);
    }
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        log_info("jobs: another jobs process holds %s; waiting", path);
        if (sleep_or_stop(&set, JOBS_LOCK_RETRY_S))
            _exit(0);
    }

    char err[512];
    store_t *store = NULL;
    if (store_open(cfg->database.url, NULL, &store, err, sizeof(err)) != 0) {
        log_error("jobs: %s", err);
        _exit(1);
    }
    store_lease *lease = store_lease_new(cfg->database.url);
    if (!lease) {
        log_error("jobs: out of memory");
        _exit(1);
    }
    log_info("jobs process started");
    bool leader = lead(lease, false, true);
    int interval = cfg->server.maintenance_interval > 0 ? cfg->server.maintenance_interval
                                                        : JOBS_MAINTENANCE_INTERVAL_S;
    const ogd_experiments_config *ex = &cfg->experiments;
    cron_expr cron;
    bool experiments = ex->scheduler_background_task_enabled;
    if (experiments && cron_parse(ex->scheduler_background_frequency, &cron, err, sizeof(err))) {
        log_error("jobs: experiments.scheduler_background_frequency: %s", err);
        experiments = false;
    }
    if (experiments && ex->scheduler_background_timezone) {
        setenv("TZ", ex->scheduler_background_timezone, 1);
        tzset();
    }
    time_t now = time(NULL);
    time_t next_maintenance = now + interval;
    time_t next_run = experiments ? cron_next(&cron, now) : -1;
    time_t retry_at = -1; /* a retry of the failed run at next_run's predecessor */
    time_t failed_run = -1;
    if (experiments) {
        char when[40];
        format_local(next_run, when);
        log_info("jobs: experiments refresh scheduled for %s", when);
    }
    bool usr2 = false;
    run_now = &usr2;
    for (;;) {
        now = time(NULL);
        if (usr2) {
            usr2 = false;
            next_maintenance = now;
        }
        time_t wake = next_maintenance;
        if (next_run > 0 && next_run < wake)
            wake = next_run;
        if (retry_at > 0 && retry_at < wake)
            wake = retry_at;
        if (!leader && now + JOBS_LOCK_RETRY_S < wake)
            wake = now + JOBS_LOCK_RETRY_S; /* another node's lease may end any time */
        int wait = wake > now ? (int)(wake - now) : 0;
        if (wait > 0 && sleep_or_stop(&set, wait))
            break;
        if (wait == 0 && sleep_or_stop(&set, 0))
            break;
        now = time(NULL);
        if (usr2) {
            usr2 = false;
            next_maintenance = now;
        }
        /* Only the lease's holder runs the jobs; the others keep the schedule, so a
         * take-over starts from the next occurrence, not from every missed one. */
        leader = lead(lease, leader, false);
        if (now >= next_maintenance) {
            if (leader) {
                maintenance(store);
                sweep_uncertain(cfg, store);
            }
            next_maintenance = time(NULL) + interval;
        }
        if (retry_at > 0 && now >= retry_at) {
            retry_at = -1;
            if (leader && !experiments_run_once(cfg, cron_next(&cron, failed_run))) {
                char when[40];
                format_local(next_run, when);
                log_error("jobs: experiments refresh failed again; next run at %s", when);
            }
        }
        if (next_run > 0 && now >= next_run) {
            time_t this_run = next_run;
            next_run = cron_next(&cron, this_run);
            if (next_run > 0 && next_run <= now) /* catch up once, not once per missed run */
                next_run = cron_next(&cron, now);
            if (leader && !experiments_run_once(cfg, next_run > 0 ? next_run : now)) {
                failed_run = this_run;
                retry_at = time(NULL) + (time_t)(ex->scheduler_background_retry_mins * 60.0);
                log_warn("jobs: experiments refresh failed; retrying in %g minute(s)",
                         ex->scheduler_background_retry_mins);
            }
        }
    }
    store_lease_free(lease);
    store_close(store);
    close(fd);
    log_info("jobs process stopped");
    exit(0);
}
