/*
 * pool.c: see pool.h. One atomic counter: incremented on the loop, decremented on a pool
 * thread when the work begins (or on the loop when it was cancelled before).
 */
#include "util/pool.h"

#include <stdatomic.h>

static atomic_size_t waiting;

int pool_queue_work(uv_loop_t *loop, uv_work_t *req, uv_work_cb work, uv_after_work_cb after)
{
    atomic_fetch_add_explicit(&waiting, 1, memory_order_relaxed);
    int rc = uv_queue_work(loop, req, work, after);
    if (rc != 0)
        atomic_fetch_sub_explicit(&waiting, 1, memory_order_relaxed);
    return rc;
}

void pool_work_begins(void)
{
    atomic_fetch_sub_explicit(&waiting, 1, memory_order_relaxed);
}

void pool_work_ends(int status)
{
    if (status == UV_ECANCELED)
        atomic_fetch_sub_explicit(&waiting, 1, memory_order_relaxed);
}

size_t pool_waiting(void)
{
    return atomic_load_explicit(&waiting, memory_order_relaxed);
}
