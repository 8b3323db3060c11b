/*
 * jobs.c: the `jobs` process: singleton background work, away from the workers' loops.
 *
 * The master forks exactly one jobs process and replaces it if it dies. Before doing
 * anything it takes an exclusive lock on <data_dir>/jobs.lock, so two servers sharing a
 * data directory still run one set of jobs (a PostgreSQL advisory lock will play this
 * part across hosts). Jobs today: database maintenance every `maintenance_interval`
 * seconds (SQLite: checkpoint and truncate the WAL, refresh the planner's statistics).
 * The experiments scheduler sync and the backup copier will run here too.
 *
 * It has no event loop: it sleeps in sigtimedwait, so TERM, QUIT and INT end it at once
 * and HUP is the master's business (it replaces this process with one on the new config).
 */
#include "runtime/runtime.h"

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
#include <unistd.h>

#define JOBS_LOCK_RETRY_S 5
#define JOBS_MAINTENANCE_INTERVAL_S 600

/* Sleeps up to seconds; returns true when told to stop. */
static bool sleep_or_stop(const sigset_t *set, int seconds)
{
    struct timespec ts = {seconds, 0};
    int sig = sigtimedwait(set, NULL, &ts);
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

void jobs_run(const ogd_config *cfg)
{
    prctl(PR_SET_NAME, "ogd-jobs");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
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
    log_info("jobs process started");
    int interval = cfg->server.maintenance_interval > 0 ? cfg->server.maintenance_interval
                                                        : JOBS_MAINTENANCE_INTERVAL_S;
    while (!sleep_or_stop(&set, interval))
        maintenance(store);
    store_close(store);
    close(fd);
    log_info("jobs process stopped");
    exit(0);
}
