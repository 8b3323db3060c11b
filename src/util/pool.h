/*
 * pool: the count of items waiting for a thread of the libuv thread pool (the pool is
 * process-wide, so is the count). Every module that queues work goes through
 * pool_queue_work, and its work and after callbacks report the two ends, so the HTTP
 * server can refuse new expensive requests while the backlog is long instead of letting
 * it grow without bound (http_limits.max_pool_waiting).
 */
#ifndef OGD_UTIL_POOL_H
#define OGD_UTIL_POOL_H

#include <stddef.h>
#include <uv.h>

/* uv_queue_work, counting req as waiting when it was queued. */
int pool_queue_work(uv_loop_t *loop, uv_work_t *req, uv_work_cb work, uv_after_work_cb after);
/* First thing in a work callback: the item no longer waits. */
void pool_work_begins(void);
/* In the after callback, with its status: an item cancelled before it began (UV_ECANCELED)
 * no longer waits either. */
void pool_work_ends(int status);
/* Items queued and not begun. */
size_t pool_waiting(void);

#endif
