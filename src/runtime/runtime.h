/*
 * runtime: the process model of `ogd serve` (docs/design.md §2).
 *
 * The master binds the listening socket, runs migrations, forks `workers` workers and one
 * jobs process (background work, jobs.c) and supervises them; it never serves. Each worker runs one
 * libuv loop (worker.c) with the HTTP server, the store and the object store. Workers write a
 * heartbeat into a shared slot from a loop timer; a worker whose heartbeat is older than `timeout`
 * has a blocked loop and is killed and replaced. A worker that reached max_requests asks to retire
 * through its slot; the master starts its replacement first and drains it once the
 * replacement serves (worker_slot.ready), as it does for every worker on a reload.
 *
 * Signals to the master: TERM/INT fast stop, QUIT graceful stop, HUP reload the config and
 * roll every worker (new ones first), USR1 reopen logs (forwarded to workers).
 */
#ifndef OGD_RUNTIME_RUNTIME_H
#define OGD_RUNTIME_RUNTIME_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/config.h"

/* One per worker, in memory shared between master and workers. */
typedef struct worker_slot {
    _Atomic uint64_t heartbeat_ms; /** CLOCK_MONOTONIC ms of the last loop tick */
    _Atomic int retire;            /** the worker asks to be replaced (max_requests) */
    _Atomic int ready;             /** the worker is serving (its HTTP server listens) */
    int replaces;                  /** master-side: 1 + the slot this worker replaces (0: none) */
    pid_t replaces_pid;            /** master-side: that slot's worker then */
    pid_t pid;                     /** master-side bookkeeping */
    int state;                     /** master-side: SLOT_* */
    uint64_t started_ms;
    uint64_t drain_started_ms;
    int generation;
} worker_slot;

enum { SLOT_FREE, SLOT_RUNNING, SLOT_DRAINING };

/* Runs the master until it stops. config_path may be NULL (defaults). Returns the exit
 * status for main. cfg is owned by the master (it is replaced on HUP). */
int master_run(const char *config_path, ogd_config *cfg);

/* Runs the jobs process (runtime/jobs.c); never returns. */
void jobs_run(const ogd_config *cfg);

/* How long a stopping worker waits for the requests it aborted to unwind (a cancelled
 * ingest removing what it uploaded, store operations completing) before it gives up on
 * them. The master's stop deadlines leave room for it. */
#define WORKER_STOP_SETTLE_MS 2000

/* Runs one worker to completion; never returns (exits the process). */
void worker_run(const ogd_config *cfg, int listen_fd, worker_slot *slot);

uint64_t runtime_monotonic_ms(void);

#endif
