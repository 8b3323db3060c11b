/* Unit tests for src/util/taskgroup.c: fan-out, window, cancel-on-error, cancel, and
 * work items on the thread pool. Tasks complete from real libuv timers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "util/taskgroup.h"

typedef struct timer_task {
    uv_timer_t timer;
    task_t *task;
    int result;
    uint64_t delay;
    int *order;
    int id;
    int *log_pos;
    size_t *max_running;
    bool canceled;
} timer_task;

static void timer_closed(uv_handle_t *h)
{
    (void)h;
}

static void timer_fire(uv_timer_t *t)
{
    timer_task *tt = t->data;
    if (tt->order)
        tt->order[(*tt->log_pos)++] = tt->id;
    uv_close((uv_handle_t *)&tt->timer, timer_closed);
    taskgroup_task_done(tt->task, tt->canceled ? -ECANCELED : tt->result);
}

static int timer_start(task_t *t)
{
    timer_task *tt = t->arg;
    tt->task = t;
    if (tt->max_running && t->group->running > *tt->max_running)
        *tt->max_running = t->group->running;
    uv_timer_init(t->group->loop, &tt->timer);
    tt->timer.data = tt;
    uv_timer_start(&tt->timer, timer_fire, tt->delay, 0);
    return 0;
}

static void timer_cancel(task_t *t)
{
    timer_task *tt = t->arg;
    tt->canceled = true;
    uv_timer_stop(&tt->timer);
    uv_close((uv_handle_t *)&tt->timer, timer_closed);
    taskgroup_task_done(t, -ECANCELED);
}

typedef struct result {
    int calls;
    int status;
} result;

static void on_done(taskgroup_t *tg, int status, void *data)
{
    (void)tg;
    result *r = data;
    r->calls++;
    r->status = status;
}

static void test_all_succeed_with_window(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    taskgroup_t tg;
    taskgroup_init(&tg, &loop, 3);
    timer_task tasks[10] = {0};
    size_t max_running = 0;
    int order[10], pos = 0;
    for (int i = 0; i < 10; i++) {
        tasks[i].delay = (uint64_t)(10 - i);
        tasks[i].max_running = &max_running;
        tasks[i].order = order;
        tasks[i].log_pos = &pos;
        tasks[i].id = i;
        assert_non_null(taskgroup_spawn(&tg, timer_start, timer_cancel, &tasks[i]));
    }
    result r = {0};
    taskgroup_wait(&tg, on_done, &r);
    assert_int_equal(r.calls, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(pos, 10);
    assert_true(max_running <= 3);
    assert_int_equal(tg.finished, 10);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_error_cancels_the_rest(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    taskgroup_t tg;
    taskgroup_init(&tg, &loop, 4);
    timer_task tasks[8] = {0};
    for (int i = 0; i < 8; i++) {
        tasks[i].delay = i == 1 ? 1 : 1000;
        tasks[i].result = i == 1 ? -EIO : 0;
        taskgroup_spawn(&tg, timer_start, timer_cancel, &tasks[i]);
    }
    result r = {0};
    taskgroup_wait(&tg, on_done, &r);
    uint64_t t0 = uv_now(&loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(uv_now(&loop) - t0 < 500); /* nobody waited for the 1 s timers */
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, -EIO);
    assert_true(tasks[0].canceled && tasks[2].canceled && tasks[3].canceled);
    assert_null(tasks[4].task); /* queued ones never started */
    assert_null(taskgroup_spawn(&tg, timer_start, timer_cancel, &tasks[0]));
    assert_int_equal(uv_loop_close(&loop), 0);
}

static int fail_now(task_t *t)
{
    (void)t;
    return -EINVAL;
}

static void test_start_failure_and_empty_group(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    taskgroup_t tg;
    taskgroup_init(&tg, &loop, 0);
    result r = {0};
    taskgroup_wait(&tg, on_done, &r); /* nothing spawned: done at once */
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);

    taskgroup_init(&tg, &loop, 0);
    taskgroup_spawn(&tg, fail_now, NULL, NULL);
    r.calls = 0;
    taskgroup_wait(&tg, on_done, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, -EINVAL);
    uv_loop_close(&loop);
}

static void test_external_cancel(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    taskgroup_t tg;
    taskgroup_init(&tg, &loop, 2);
    timer_task tasks[5] = {0};
    for (int i = 0; i < 5; i++) {
        tasks[i].delay = 5000;
        taskgroup_spawn(&tg, timer_start, timer_cancel, &tasks[i]);
    }
    result r = {0};
    taskgroup_wait(&tg, on_done, &r);
    taskgroup_cancel(&tg, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, -ECANCELED);
    uv_run(&loop, UV_RUN_DEFAULT); /* closes the timers */
    assert_int_equal(uv_loop_close(&loop), 0);
}

typedef struct work_probe {
    pthread_t loop_thread, run_thread;
    int done_calls;
    int status;
    long sum;
} work_probe;

static void probe_run(void *data)
{
    work_probe *p = data;
    p->run_thread = pthread_self();
    for (long i = 0; i < 1000; i++)
        p->sum += i;
}

static void probe_done(void *data, int status)
{
    work_probe *p = data;
    assert_true(pthread_equal(pthread_self(), p->loop_thread));
    p->done_calls++;
    p->status = status;
}

static void test_work_runs_off_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    work_probe p = {.loop_thread = pthread_self()};
    assert_int_equal(work_submit(&loop, probe_run, probe_done, &p, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(p.done_calls, 1);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.sum, 499500);
    assert_false(pthread_equal(p.run_thread, p.loop_thread));
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_succeed_with_window),
        cmocka_unit_test(test_error_cancels_the_rest),
        cmocka_unit_test(test_start_failure_and_empty_group),
        cmocka_unit_test(test_external_cancel),
        cmocka_unit_test(test_work_runs_off_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
