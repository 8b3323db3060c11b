/*
 * taskgroup.c: see taskgroup.h. Running tasks sit in a doubly linked list (so cancel can
 * reach them), waiting tasks in a FIFO. Completion is counted, not polled.
 */
#include "util/taskgroup.h"
#include "util/pool.h"

#include <errno.h>
#include <stdlib.h>

enum { TASK_QUEUED, TASK_RUNNING, TASK_CANCELING };

static void maybe_finish(taskgroup_t *tg)
{
    if (tg->done && !tg->in_start && tg->running == 0 && tg->queued == 0) {
        taskgroup_done_cb cb = tg->done;
        tg->done = NULL;
        cb(tg, tg->status, tg->done_data);
    }
}

static void fail(taskgroup_t *tg, int status);

/* Starts queued tasks while the window has room. */
static void pump(taskgroup_t *tg)
{
    bool outer = !tg->in_start;
    tg->in_start = true;
    while (!list_empty(&tg->queue) && !tg->canceled &&
           (tg->max_in_flight == 0 || tg->running < tg->max_in_flight)) {
        task_t *t = list_entry(list_first(&tg->queue), task_t, node);
        list_remove(&t->node);
        tg->queued--;
        t->state = TASK_RUNNING;
        tg->running++;
        list_insert_head(&tg->running_tasks, &t->node);
        int rc = t->start(t);
        if (rc < 0)
            taskgroup_task_done(t, rc);
    }
    if (outer) {
        tg->in_start = false;
        maybe_finish(tg);
    }
}

static void drop_queue(taskgroup_t *tg)
{
    list_node *n, *tmp;
    list_foreach_safe(n, tmp, &tg->queue)
    {
        list_remove(n);
        free(list_entry(n, task_t, node));
        tg->queued--;
        tg->finished++;
    }
}

static void fail(taskgroup_t *tg, int status)
{
    if (tg->canceled)
        return;
    tg->canceled = true;
    if (tg->status == 0)
        tg->status = status;
    drop_queue(tg);
    bool outer = !tg->in_start;
    tg->in_start = true;
    /* A cancel function may finish its task at once (freeing it): step first. A task
     * only ever finishes itself, so the saved successor stays valid. */
    list_node *n, *tmp;
    list_foreach_safe(n, tmp, &tg->running_tasks)
    {
        task_t *t = list_entry(n, task_t, node);
        if (t->state == TASK_RUNNING && t->cancel) {
            t->state = TASK_CANCELING;
            t->cancel(t);
        }
    }
    if (outer) {
        tg->in_start = false;
        maybe_finish(tg);
    }
}

void taskgroup_init(taskgroup_t *tg, uv_loop_t *loop, size_t max_in_flight)
{
    *tg = (taskgroup_t){.loop = loop, .max_in_flight = max_in_flight};
    list_init(&tg->running_tasks);
    list_init(&tg->queue);
}

task_t *taskgroup_spawn(taskgroup_t *tg, task_start_fn start, task_cancel_fn cancel, void *arg)
{
    if (tg->canceled)
        return NULL;
    task_t *t = calloc(1, sizeof(*t));
    if (!t) {
        fail(tg, -ENOMEM);
        return NULL;
    }
    t->group = tg;
    t->start = start;
    t->cancel = cancel;
    t->arg = arg;
    t->state = TASK_QUEUED;
    list_insert_tail(&tg->queue, &t->node);
    tg->queued++;
    tg->spawned++;
    pump(tg);
    return t;
}

void taskgroup_task_done(task_t *t, int status)
{
    taskgroup_t *tg = t->group;
    list_remove(&t->node);
    tg->running--;
    tg->finished++;
    free(t);
    if (status < 0)
        fail(tg, status);
    pump(tg);
}

void taskgroup_wait(taskgroup_t *tg, taskgroup_done_cb cb, void *data)
{
    tg->done = cb;
    tg->done_data = data;
    maybe_finish(tg);
}

void taskgroup_cancel(taskgroup_t *tg, int status)
{
    fail(tg, status ? status : -ECANCELED);
}

/* ---- work ---- */

struct work {
    uv_work_t req;
    work_fn run;
    work_done_fn done;
    void *data;
};

static void work_run(uv_work_t *req)
{
    pool_work_begins();
    work_t *w = req->data;
    w->run(w->data);
}

static void work_after(uv_work_t *req, int status)
{
    pool_work_ends(status);
    work_t *w = req->data;
    work_done_fn done = w->done;
    void *data = w->data;
    free(w);
    done(data, status == UV_ECANCELED ? -ECANCELED : 0);
}

int work_submit(uv_loop_t *loop, work_fn run, work_done_fn done, void *data, work_t **out)
{
    work_t *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->run = run;
    w->done = done;
    w->data = data;
    w->req.data = w;
    int rc = pool_queue_work(loop, &w->req, work_run, work_after);
    if (rc < 0) {
        free(w);
        return rc;
    }
    if (out)
        *out = w;
    return 0;
}

void work_cancel(work_t *w)
{
    uv_cancel((uv_req_t *)&w->req);
}
