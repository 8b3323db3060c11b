/*
 * taskgroup: the fan-out primitive handlers use (the C counterpart of asyncio's
 * TaskGroup), and work: running CPU-bound functions on the libuv thread pool.
 *
 * A task group runs many asynchronous tasks on one loop. Each task has a start function
 * that begins some asynchronous operation (an object GET, a store op, a work item) and
 * returns 0, after which the operation must end with exactly one taskgroup_task_done; or
 * returns a negative error, which counts as the task's result. An optional cancel
 * function asks a started operation to finish early (it still calls taskgroup_task_done).
 *
 * - max_in_flight bounds how many tasks run at once; the rest wait in spawn order and
 *   start as others finish (the export window).
 * - Cancel on error: the first task that fails cancels every running task and drops the
 *   queued ones (they never start); the group's status is that first error.
 * - taskgroup_cancel does the same from outside (e.g. the client went away).
 * - taskgroup_wait registers the completion callback, called once when every spawned task
 *   has finished, possibly before taskgroup_wait returns. Spawning after wait is allowed
 *   until the callback has run.
 *
 * Tasks are allocated by the group and freed after their done call; the group itself is
 * caller-allocated (often in a request arena) and needs no cleanup once its callback ran.
 */
#ifndef OGD_RUNTIME_TASKGROUP_H
#define OGD_RUNTIME_TASKGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "util/list.h"

typedef struct taskgroup taskgroup_t;
typedef struct task task_t;
typedef int (*task_start_fn)(task_t *t);
typedef void (*task_cancel_fn)(task_t *t);
typedef void (*taskgroup_done_cb)(taskgroup_t *tg, int status, void *data);

struct task {
    taskgroup_t *group;
    task_start_fn start;
    task_cancel_fn cancel;
    void *arg;      /** the caller's, borrowed */
    void *op;       /** free for the start function: e.g. the operation's handle */
    int state;      /** private */
    list_node node; /** private: in the group's queue, then in its running list */
};

struct taskgroup {
    uv_loop_t *loop;
    size_t max_in_flight; /** 0 = unlimited */
    size_t running, queued, finished, spawned;
    int status; /** 0, or the first error */
    bool canceled;
    bool in_start;
    taskgroup_done_cb done;
    void *done_data;
    list_node running_tasks; /* private: task.node */
    list_node queue;         /* private: task.node, in spawn order */
};

void taskgroup_init(taskgroup_t *tg, uv_loop_t *loop, size_t max_in_flight);
/* Spawns a task (started now if the window allows). Returns it, or NULL when out of
 * memory (the group status becomes -ENOMEM) or the group was canceled. */
task_t *taskgroup_spawn(taskgroup_t *tg, task_start_fn start, task_cancel_fn cancel, void *arg);
/* Called by a task's operation when it has finished. status 0 or negative. */
void taskgroup_task_done(task_t *t, int status);
void taskgroup_wait(taskgroup_t *tg, taskgroup_done_cb cb, void *data);
void taskgroup_cancel(taskgroup_t *tg, int status);

/* ---- work: functions on the thread pool ---- */

typedef struct work work_t;
typedef void (*work_fn)(void *data);                  /* runs on a pool thread */
typedef void (*work_done_fn)(void *data, int status); /* runs on the loop; -ECANCELED if
                                                       * canceled before it started */
/* Queues run(data) on the pool; done(data, status) follows on the loop. *out (optional)
 * is valid until done is called. If it returns an error, done is never called. */
int work_submit(uv_loop_t *loop, work_fn run, work_done_fn done, void *data, work_t **out);
/* Cancels a queued item (done gets -ECANCELED); one already running finishes. */
void work_cancel(work_t *w);

#endif
