/*
 * master.c: binds, migrates, forks and supervises workers; see runtime.h.
 *
 * The master has no event loop: it blocks the signals it handles and waits for them
 * with sigtimedwait, waking every 200 ms to check heartbeats, retire requests and drain
 * deadlines. Workers are forked (not exec'd) from this single-threaded process, so they
 * inherit the listening socket and the parsed configuration.
 */
#include "runtime/runtime.h"

#include "objstore/coherence.h"
#include "objstore/config.h"
#include "metrics/metrics.h"
#include "store/store.h"
#include "auth/ratelimit.h"
#include "auth/setup.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SLOTS 512

static int listen_socket(const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host && *host ? host : NULL, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "server.bind: cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        snprintf(err, errlen, "server.bind: cannot listen on %s:%d: %s", host, port,
                 strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

typedef struct master {
    ogd_config *cfg;
    ogd_config *original; /* the caller's; never freed here */
    const char *config_path;
    int listen_fd;
    worker_slot *slots;
    int generation;
    bool stopping;
    pid_t jobs_pid; /* the jobs process, 0 when none runs */
    uint64_t jobs_started_ms;
} master;

static void spawn_jobs(master *m)
{
    /* At most one start a second, so a jobs process that cannot start does not spin. */
    uint64_t now = runtime_monotonic_ms();
    if (m->jobs_pid || m->stopping || (m->jobs_started_ms && now - m->jobs_started_ms < 1000))
        return;
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork failed: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        close(m->listen_fd);
        jobs_run(m->cfg); /* does not return */
    }
    m->jobs_pid = pid;
    m->jobs_started_ms = now;
}

static void spawn(master *m, worker_slot *slot)
{
    memset(slot, 0, sizeof(*slot));
    atomic_store(&slot->heartbeat_ms, runtime_monotonic_ms());
    size_t index = (size_t)(slot - m->slots);
    metrics_slot_reset(index);
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork failed: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        metrics_worker_attach(index);
        worker_run(m->cfg, m->listen_fd, slot); /* does not return */
    }
    slot->pid = pid;
    slot->state = SLOT_RUNNING;
    slot->started_ms = runtime_monotonic_ms();
    slot->generation = m->generation;
}

static worker_slot *free_slot(master *m)
{
    for (int i = 0; i < MAX_SLOTS; i++)
        if (m->slots[i].state == SLOT_FREE)
            return &m->slots[i];
    return NULL;
}

static int running_count(master *m)
{
    int n = 0;
    for (int i = 0; i < MAX_SLOTS; i++)
        if (m->slots[i].state == SLOT_RUNNING)
            n++;
    return n;
}

static void fill_workers(master *m)
{
    while (!m->stopping && running_count(m) < m->cfg->server.workers) {
        worker_slot *s = free_slot(m);
        if (!s)
            return;
        spawn(m, s);
    }
}

static void drain_slot(master *m, worker_slot *s)
{
    (void)m;
    s->state = SLOT_DRAINING;
    s->drain_started_ms = runtime_monotonic_ms();
    kill(s->pid, SIGQUIT);
}

static void reap(master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == m->jobs_pid) {
            m->jobs_pid = 0;
            if (!m->stopping && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
                log_warn("jobs process %d ended (status %d), replacing it", (int)pid, status);
            continue;
        }
        for (int i = 0; i < MAX_SLOTS; i++) {
            worker_slot *s = &m->slots[i];
            if (s->state == SLOT_FREE || s->pid != pid)
                continue;
            if (s->state == SLOT_RUNNING && !m->stopping) {
                if (WIFSIGNALED(status))
                    log_warn("worker %d killed by signal %d, replacing it", (int)pid,
                             WTERMSIG(status));
                else
                    log_warn("worker %d exited with status %d, replacing it", (int)pid,
                             WEXITSTATUS(status));
            }
            s->state = SLOT_FREE;
            s->pid = 0;
            metrics_slot_reset((size_t)i);
        }
    }
}

static void supervise(master *m)
{
    uint64_t now = runtime_monotonic_ms();
    uint64_t timeout_ms = (uint64_t)m->cfg->server.timeout * 1000;
    uint64_t grace_ms = (uint64_t)m->cfg->server.graceful_timeout * 1000;
    for (int i = 0; i < MAX_SLOTS; i++) {
        worker_slot *s = &m->slots[i];
        if (s->state == SLOT_RUNNING) {
            uint64_t hb = atomic_load(&s->heartbeat_ms);
            if (timeout_ms && now > hb && now - hb > timeout_ms) {
                log_error("worker %d: loop blocked for %llu ms (timeout %llu ms), killing it",
                          (int)s->pid, (unsigned long long)(now - hb),
                          (unsigned long long)timeout_ms);
                kill(s->pid, SIGKILL);
                s->state = SLOT_DRAINING; /* reaped as gone; a replacement starts now */
                s->drain_started_ms = now;
            } else if (atomic_load(&s->retire) == 1 && !m->stopping) {
                /* The replacement first; this one drains once it serves (below). */
                log_info("worker %d reached max_requests, replacing it", (int)s->pid);
                atomic_store(&s->retire, 2);
                worker_slot *r = free_slot(m);
                if (r) {
                    spawn(m, r);
                    r->replaces = i + 1;
                    r->replaces_pid = s->pid;
                } else {
                    drain_slot(m, s);
                }
            }
        }
        /* A replacement that serves, or has had 10 s to start: its predecessor drains. */
        if (s->state == SLOT_RUNNING && s->replaces &&
            (atomic_load(&s->ready) || now - s->started_ms > 10000)) {
            worker_slot *old = &m->slots[s->replaces - 1];
            s->replaces = 0;
            if (old->state == SLOT_RUNNING && old->pid == s->replaces_pid)
                drain_slot(m, old);
        }
        if (s->state == SLOT_DRAINING && grace_ms &&
            now - s->drain_started_ms > grace_ms + WORKER_STOP_SETTLE_MS + 1000) {
            kill(s->pid, SIGKILL);
        }
    }
    fill_workers(m);
    spawn_jobs(m);
}

static void reload(master *m)
{
    ogd_config *fresh = calloc(1, sizeof(*fresh));
    char *errors = NULL;
    config_defaults(fresh);
    if (config_load(fresh, m->config_path, &errors) != 0 ||
        config_apply_env(fresh, environ, &errors) != 0 || config_resolve(fresh, &errors) != 0) {
        log_error("reload failed, keeping the running configuration: %s",
                  errors ? errors : "unknown error");
        free(errors);
        config_free(fresh);
        free(fresh);
        return;
    }
    free(errors);
    char kerr[512];
    if (auth_prepare_keys(fresh, kerr, sizeof(kerr)) != 0) {
        log_error("reload failed, keeping the running configuration: auth: %s", kerr);
        config_free(fresh);
        free(fresh);
        return;
    }
    /* Old workers keep their own copy of the old config (fork). */
    if (m->cfg != m->original) {
        config_free(m->cfg);
        free(m->cfg);
    }
    m->cfg = fresh;
    m->generation++;
    log_info("configuration reloaded; rolling workers");
    /* New workers first, then drain the old generation: no refused connection. */
    int old[MAX_SLOTS];
    int nold = 0;
    for (int i = 0; i < MAX_SLOTS; i++)
        if (m->slots[i].state == SLOT_RUNNING)
            old[nold++] = i;
    /* Each new worker replaces an old one, which drains once the new one serves
     * (supervise); old ones left over drain now. */
    int paired = 0;
    for (int k = 0; k < m->cfg->server.workers; k++) {
        worker_slot *s = free_slot(m);
        if (!s)
            break;
        spawn(m, s);
        if (paired < nold && s->state == SLOT_RUNNING) {
            s->replaces = old[paired] + 1;
            s->replaces_pid = m->slots[old[paired]].pid;
            paired++;
        }
    }
    for (int k = paired; k < nold; k++)
        drain_slot(m, &m->slots[old[k]]);
    /* The jobs process restarts on the new configuration (reaped, then started again). */
    if (m->jobs_pid)
        kill(m->jobs_pid, SIGTERM);
    m->jobs_started_ms = 0;
}

static void signal_all(master *m, int sig)
{
    for (int i = 0; i < MAX_SLOTS; i++)
        if (m->slots[i].state != SLOT_FREE)
            kill(m->slots[i].pid, sig);
    if (m->jobs_pid)
        kill(m->jobs_pid, sig);
}

static int live_count(master *m)
{
    int n = m->jobs_pid ? 1 : 0;
    for (int i = 0; i < MAX_SLOTS; i++)
        if (m->slots[i].state != SLOT_FREE)
            n++;
    return n;
}

static void stop_all(master *m, int sig, uint64_t wait_ms)
{
    m->stopping = true;
    signal_all(m, sig);
    /* Workers close their copies of the listening socket when told to stop; this one goes
     * too, so the socket itself closes now: a new client is refused at once (and can go
     * elsewhere) instead of waiting in the backlog, where nobody accepts it any more, to be
     * reset when the stop ends. Connections the workers have accepted are still served. */
    if (m->listen_fd >= 0) {
        close(m->listen_fd);
        m->listen_fd = -1;
    }
    uint64_t deadline = runtime_monotonic_ms() + wait_ms;
    while (live_count(m) > 0 && runtime_monotonic_ms() < deadline) {
        usleep(20000);
        reap(m);
    }
    if (live_count(m) > 0) {
        signal_all(m, SIGKILL);
        while (live_count(m) > 0) {
            usleep(10000);
            reap(m);
        }
    }
}

int master_run(const char *config_path, ogd_config *cfg)
{
    char err[512];
    if (store_migrate(cfg->database.url, err, sizeof(err)) != 0) {
        log_error("database: %s", err);
        return 1;
    }
    objstore_options oo;
    objstore_options_from_config(cfg, &oo);
    if (objstore_prepare(cfg->echo.url, &oo, err, sizeof(err)) != 0) {
        log_error("object store: %s", err);
        return 1;
    }
    if (auth_prepare_keys(cfg, err, sizeof(err)) != 0) {
        log_error("auth: %s", err);
        return 1;
    }
    master m = {.cfg = cfg, .original = cfg, .config_path = config_path};
    m.listen_fd = listen_socket(cfg->server.host, cfg->server.port, err, sizeof(err));
    if (m.listen_fd < 0) {
        log_error("%s", err);
        return 1;
    }
    m.slots = mmap(NULL, sizeof(worker_slot) * MAX_SLOTS, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m.slots == MAP_FAILED) {
        log_error("mmap: %s", strerror(errno));
        return 1;
    }
    memset(m.slots, 0, sizeof(worker_slot) * MAX_SLOTS);
    int mrc = metrics_init(MAX_SLOTS);
    if (mrc != 0) {
        log_error("metrics: cannot map shared memory: %s", strerror(-mrc));
        return 1;
    }
    int lrc = ratelimit_shared_init(300); /* failed logins, counted across the workers */
    if (lrc != 0) {
        log_error("login limits: cannot map shared memory: %s", strerror(-lrc));
        return 1;
    }
    int crc = coherence_init(); /* the workers' caches drop what another process wrote */
    if (crc != 0) {
        log_error("object cache coherence: cannot map shared memory: %s", strerror(-crc));
        return 1;
    }

    sigset_t set;
    sigemptyset(&set);
    int handled[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGCHLD};
    for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
        sigaddset(&set, handled[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    log_info("ogd listening on http://%s:%d with %d workers", cfg->server.host, cfg->server.port,
             (int)cfg->server.workers);
    fill_workers(&m);
    spawn_jobs(&m);

    int exit_status = 0;
    for (;;) {
        struct timespec tick = {0, 200 * 1000000};
        siginfo_t info;
        int sig = sigtimedwait(&set, &info, &tick);
        reap(&m);
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("fast stop");
            stop_all(&m, SIGTERM, WORKER_STOP_SETTLE_MS + 3000);
            break;
        }
        if (sig == SIGQUIT) {
            log_info("graceful stop");
            stop_all(&m, SIGQUIT,
                     (uint64_t)m.cfg->server.graceful_timeout * 1000 + WORKER_STOP_SETTLE_MS +
                         1000);
            break;
        }
        if (sig == SIGHUP)
            reload(&m);
        if (sig == SIGUSR1) {
            log_reopen();
            signal_all(&m, SIGUSR1);
        }
        supervise(&m);
    }
    if (m.listen_fd >= 0)
        close(m.listen_fd);
    munmap(m.slots, sizeof(worker_slot) * MAX_SLOTS);
    if (m.cfg != cfg) {
        /* The caller owns the original; a reloaded one is ours. */
        config_free(m.cfg);
        free(m.cfg);
    }
    log_info("stopped");
    return exit_status;
}
